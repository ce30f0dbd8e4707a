//! `storytool check-device`: every model on `--device` against the CPU, with the same weights and batch.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use storytool::evaluation::device_parity::{TOLERANCE, check_parity};
use storytool::util::atomic::write_file;

use super::device_args::DeviceArgs;

/// Run every model (skip-thought encoder, story decoder, VSE, captioner, EfficientNet-Lite0) forward and
/// through one training step (the loss and every gradient) on `--device` and on the CPU, with the same
/// weights and the same batch, and compare. Exits with an error if any differs by more than 1e-3
/// (relative L2). Run it once on a new GPU or a new build before training there.
#[derive(Debug, Args)]
pub struct CheckDeviceArgs {
    #[command(flatten)]
    device: DeviceArgs,

    /// Also write the results as JSON to this file
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

pub fn run(args: CheckDeviceArgs) -> anyhow::Result<()> {
    let spec = args.device.spec(None)?;
    let device = spec.single("check-device")?;
    let started = std::time::Instant::now();
    let checks = check_parity(&device);
    let seconds = started.elapsed().as_secs_f64();
    println!("{spec} against the CPU (tolerance {TOLERANCE:e}, relative L2):");
    println!("  {:<20} {:<11} {:>9} {:>12} {:>12}", "model", "check", "values", "relative", "max abs");
    for check in &checks {
        println!(
            "  {:<20} {:<11} {:>9} {:>12.3e} {:>12.3e}  {}",
            check.model,
            check.check,
            check.values,
            check.relative,
            check.max_abs,
            if check.passed { "ok" } else { "DIFFERS" }
        );
    }
    let failed = checks.iter().filter(|check| !check.passed).count();
    if let Some(path) = &args.json {
        let report = serde_json::json!({
            "device": spec.to_string(),
            "reference": "cpu",
            "tolerance": TOLERANCE,
            "seconds": seconds,
            "passed": failed == 0,
            "checks": checks,
        });
        write_file(path, serde_json::to_string_pretty(&report)?.as_bytes())
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} checks differ from the CPU beyond {TOLERANCE:e} on {spec}", checks.len());
    }
    println!("all {} checks agree ({seconds:.1} s)", checks.len());
    Ok(())
}
