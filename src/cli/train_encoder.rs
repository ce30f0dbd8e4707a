//! `storytool train-encoder`: arguments, the call into `storytool::train::encoder`, and the report.

use std::path::PathBuf;

use clap::Args;
use storytool::train::encoder::{EncoderTrainRequest, METRICS_FILE, train_encoder};

use super::progress_bar::Bar;
use super::{ConfigArgs, cancel_on_interrupt, command_line, training_error};

/// Train a skip-thought sentence encoder on a corpus from `storytool ingest`: a GRU encoder whose state
/// lets two GRU decoders write the previous and the next sentence. Writes checkpoints, `metrics.jsonl`,
/// and at the end `encoder.safetensors` with a manifest.
#[derive(Debug, Args)]
pub struct TrainEncoderArgs {
    /// Corpus folder written by `storytool ingest`
    #[arg(long, value_name = "DIR")]
    corpus: PathBuf,

    /// Run folder for checkpoints, metrics and the trained encoder
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Continue the run in `--out` from its last checkpoint
    #[arg(long, conflicts_with = "force")]
    resume: bool,

    /// Delete the run in `--out` and start over
    #[arg(long)]
    force: bool,

    /// Total optimizer steps (overrides `encoder.steps`)
    #[arg(long, value_name = "N")]
    steps: Option<u64>,

    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: TrainEncoderArgs) -> anyhow::Result<()> {
    let config = args.config.resolve(&[("encoder.steps", args.steps.map(|n| n.to_string()))])?;
    if args.config.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let request = EncoderTrainRequest {
        corpus_dir: args.corpus,
        out: args.out,
        resume: args.resume,
        force: args.force,
        config,
        command: command_line(),
        cancel: cancel_on_interrupt(),
    };
    let bar = Bar::steps();
    let report = train_encoder(&request, &bar).map_err(|error| training_error(error, "cannot train the encoder"))?;
    let show =
        |loss: Option<f32>| loss.map_or("-".to_string(), |loss| format!("{loss:.3} (perplexity {:.1})", loss.exp()));
    match report.resumed_from {
        Some(step) => println!("Resumed at step {step} and trained to step {}", report.steps),
        None => println!("Trained {} steps", report.steps),
    }
    println!("triples: {} for training, {} held out", report.train_triples, report.valid_triples);
    println!("train loss: {}", show(report.train_loss));
    println!("valid loss: {}", show(report.valid_loss));
    println!(
        "encoder: `{}`, metrics: `{}`",
        report.out.join(storytool::encoder::ENCODER_FILE).display(),
        report.out.join(METRICS_FILE).display()
    );
    Ok(())
}
