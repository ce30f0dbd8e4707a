//! `storytool train-decoder`: arguments, the call into `storytool::train::decoder`, and the report.

use std::path::PathBuf;

use clap::Args;
use storytool::train::decoder::{DecoderTrainRequest, train_decoder};
use storytool::train::run::METRICS_FILE;

use super::progress_bar::Bar;
use super::run_args::{RunArgs, print_steps};
use super::{ConfigArgs, training_error};

/// Train the story decoder: passages of the corpus's novels, each encoded to a skip-thought vector by the
/// (frozen) encoder, and a GRU that learns to write each passage back from its vector (Pix2Story's recipe).
/// Writes checkpoints, `metrics.jsonl`, and at the end `decoder.safetensors` with a manifest.
#[derive(Debug, Args)]
pub struct TrainDecoderArgs {
    /// Corpus folder written by `storytool ingest`
    #[arg(long, value_name = "DIR")]
    corpus: PathBuf,

    /// Encoder folder written by `storytool train-encoder` (trained on this corpus's vocabulary)
    #[arg(long, value_name = "DIR")]
    encoder: PathBuf,

    #[command(flatten)]
    run: RunArgs,

    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: TrainDecoderArgs) -> anyhow::Result<()> {
    let config = args.run.resolve(&args.config, "decoder")?;
    if args.config.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let out = args.run.out.clone();
    let run = args.run.options(&config)?;
    let request = DecoderTrainRequest { corpus_dir: args.corpus, encoder_dir: args.encoder, config, run };
    let bar = Bar::steps();
    let report = train_decoder(&request, &bar).map_err(|error| training_error(error, "cannot train the decoder"))?;
    let show =
        |loss: Option<f32>| loss.map_or("-".to_string(), |loss| format!("{loss:.3} (perplexity {:.1})", loss.exp()));
    print_steps(report.steps, report.resumed_from);
    println!(
        "passages: {} for training, {} held out (encoded in {:.0} s)",
        report.train_passages, report.valid_passages, report.encode_seconds
    );
    println!("train loss: {}", show(report.train_loss));
    println!("valid loss: {}", show(report.valid_loss));
    println!(
        "decoder: `{}`, metrics: `{}`",
        out.join(storytool::story::decoder::DECODER_FILE).display(),
        out.join(METRICS_FILE).display()
    );
    Ok(())
}
