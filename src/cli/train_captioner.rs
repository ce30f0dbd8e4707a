//! `storytool train-captioner`: arguments, the call into `storytool::train::captioner`, and the report.

use std::path::PathBuf;

use clap::Args;
use storytool::train::captioner::{CaptionerTrainRequest, train_captioner};
use storytool::train::run::METRICS_FILE;

use super::progress_bar::Bar;
use super::{ConfigArgs, cancel_on_interrupt, command_line, training_error};

/// Train a Show-Attend-Tell captioner on features from `storytool extract-features --spatial`: an LSTM that
/// writes each caption word by word while attending over the photo's spatial CNN map (soft attention,
/// gating scalar, doubly stochastic penalty, dropout, teacher forcing). Photos are split into train / valid
/// / test by a hash of their key (as the VSE's); the validation captions' loss is logged to
/// `metrics.jsonl`. Writes checkpoints and at the end `captioner.safetensors`, its vocabulary and a manifest.
#[derive(Debug, Args)]
pub struct TrainCaptionerArgs {
    /// Features folder(s) written by `storytool extract-features --spatial` (repeat to mix datasets)
    #[arg(long, value_name = "DIR", required = true)]
    features: Vec<PathBuf>,

    /// Run folder for checkpoints, metrics and the trained captioner
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Continue the run in `--out` from its last checkpoint
    #[arg(long, conflicts_with = "force")]
    resume: bool,

    /// Delete the run in `--out` and start over
    #[arg(long)]
    force: bool,

    /// Total optimizer steps (overrides `captioner.steps`)
    #[arg(long, value_name = "N")]
    steps: Option<u64>,

    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: TrainCaptionerArgs) -> anyhow::Result<()> {
    let config = args.config.resolve(&[("captioner.steps", args.steps.map(|n| n.to_string()))])?;
    if args.config.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let request = CaptionerTrainRequest {
        features: args.features,
        out: args.out.clone(),
        resume: args.resume,
        force: args.force,
        config,
        command: command_line(),
        cancel: cancel_on_interrupt(),
    };
    let report = train_captioner(&request, &Bar::steps())
        .map_err(|error| training_error(error, "cannot train the captioner"))?;
    match report.resumed_from {
        Some(step) => println!("Resumed at step {step} and trained to step {}", report.steps),
        None => println!("Trained {} steps", report.steps),
    }
    let [train, valid, test] = report.images;
    println!("photos: {train} train, {valid} valid, {test} test; vocabulary: {} words", report.vocabulary_size);
    println!("train loss: {}", report.train_loss.map_or("-".into(), |loss| format!("{loss:.3}")));
    if let Some(loss) = report.valid_loss {
        println!("validation: {loss:.3} nats per token (perplexity {:.1})", loss.exp());
    }
    println!("captioner: `{}`, metrics: `{}`", args.out.display(), args.out.join(METRICS_FILE).display());
    Ok(())
}
