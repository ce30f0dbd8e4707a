//! `--device`, shared by every command that computes with a model.

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;
use storytool::config::Config;
use storytool::device::DeviceSpec;

/// Where models compute, flattened into each command that runs one.
#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// Where models compute: cpu, cuda, cuda:N, wgpu or wgpu:N (GPUs need a binary built with `--features
    /// cuda` or `wgpu`). `train-encoder` also takes a list, e.g. cuda:0,cuda:1, for data-parallel training.
    /// Default: the config's `device.select`, else cpu
    #[arg(long, value_name = "DEVICE", env = "STORYTOOL_DEVICE")]
    device: Option<String>,
}

impl DeviceArgs {
    /// `--device` (or `$STORYTOOL_DEVICE`), else the config's `device.select`, else the CPU.
    pub fn spec(&self, config: Option<&Config>) -> anyhow::Result<DeviceSpec> {
        if let Some(text) = &self.device {
            return text.parse().context("bad `--device` (or $STORYTOOL_DEVICE)");
        }
        match config {
            Some(config) => config.device.select.parse().context("bad config key `device.select`"),
            None => Ok(DeviceSpec::cpu()),
        }
    }

    /// Every device named, for training (the first holds the model).
    pub fn all(&self, config: Option<&Config>) -> anyhow::Result<Vec<Device>> {
        Ok(self.spec(config)?.devices()?)
    }

    /// The one device of a command that computes on one; `command` names it in the error.
    pub fn one(&self, config: Option<&Config>, command: &str) -> anyhow::Result<Device> {
        Ok(self.spec(config)?.single(command)?)
    }
}
