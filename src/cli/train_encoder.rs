//! `storytool train-encoder`: arguments, the call into `storytool::train::encoder`, and the report.

use std::path::PathBuf;

use clap::Args;
use storytool::train::encoder::{EncoderTrainRequest, METRICS_FILE, train_encoder};

use super::progress_bar::Bar;
use super::run_args::{RunArgs, print_steps};
use super::{ConfigArgs, training_error};

/// Train a skip-thought sentence encoder on a corpus from `storytool ingest`: a GRU encoder whose state
/// lets two GRU decoders write the previous and the next sentence. Writes checkpoints, `metrics.jsonl`,
/// and at the end `encoder.safetensors` with a manifest.
#[derive(Debug, Args)]
pub struct TrainEncoderArgs {
    /// Corpus folder written by `storytool ingest`
    #[arg(long, value_name = "DIR")]
    corpus: PathBuf,

    #[command(flatten)]
    run: RunArgs,

    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: TrainEncoderArgs) -> anyhow::Result<()> {
    let config = args.run.resolve(&args.config, "encoder")?;
    if args.config.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let run = args.run.options(&config)?;
    let request = EncoderTrainRequest { corpus_dir: args.corpus, config, run };
    let bar = Bar::steps();
    let report = train_encoder(&request, &bar).map_err(|error| training_error(error, "cannot train the encoder"))?;
    let show =
        |loss: Option<f32>| loss.map_or("-".to_string(), |loss| format!("{loss:.3} (perplexity {:.1})", loss.exp()));
    print_steps(report.steps, report.resumed_from);
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
