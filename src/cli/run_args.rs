//! The options every `train-*` command shares: where the run goes, how it starts, how long it runs.

use std::path::PathBuf;

use clap::Args;
use storytool::config::Config;
use storytool::train::trainer::RunOptions;

use super::device_args::DeviceArgs;
use super::{ConfigArgs, cancel_on_interrupt, command_line};

/// `--out`, `--resume`, `--force` and `--steps`, flattened into each `train-*` command.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run folder for checkpoints, `metrics.jsonl` and the trained model
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Continue the run in `--out` from its last checkpoint
    #[arg(long, conflicts_with = "force")]
    resume: bool,

    /// Replace the run in `--out` (the old one is kept until the new one has exported)
    #[arg(long)]
    force: bool,

    /// Total optimizer steps (overrides the section's `train.steps`, e.g. `encoder.train.steps`)
    #[arg(long, value_name = "N")]
    steps: Option<u64>,

    #[command(flatten)]
    device: DeviceArgs,
}

impl RunArgs {
    /// The settings of `config` with `--steps` applied to `section`'s schedule.
    pub fn resolve(&self, config: &ConfigArgs, section: &str) -> anyhow::Result<Config> {
        config.resolve(&[(&format!("{section}.train.steps"), self.steps.map(|steps| steps.to_string()))])
    }

    /// The run options on the devices `--device` or `config` names, with the command line recorded and
    /// Ctrl-C wired to a checkpoint and a stop.
    pub fn options(&self, config: &Config) -> anyhow::Result<RunOptions> {
        Ok(RunOptions {
            out: self.out.clone(),
            resume: self.resume,
            force: self.force,
            command: command_line(),
            cancel: cancel_on_interrupt(),
            devices: self.device.all(Some(config))?,
        })
    }
}

/// The first line every trainer prints: how many steps, and from where.
pub fn print_steps(steps: u64, resumed_from: Option<u64>) {
    match resumed_from {
        Some(step) => println!("Resumed at step {step} and trained to step {steps}"),
        None => println!("Trained {steps} steps"),
    }
}
