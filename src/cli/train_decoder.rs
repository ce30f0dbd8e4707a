//! `storytool train-decoder`: arguments, the call into `storytool::train::decoder`, and the report.

use std::path::PathBuf;

use clap::Args;
use storytool::config::DecoderKind;
use storytool::story::lm_decoder::default_lm_path;
use storytool::train::decoder::{DecoderTrainReport, DecoderTrainRequest, train_decoder};
use storytool::train::lm_decoder::{LmDecoderTrainRequest, train_lm_decoder};
use storytool::train::run::METRICS_FILE;

use super::progress_bar::Bar;
use super::run_args::{RunArgs, print_steps};
use super::{ConfigArgs, training_error};

/// Train the story decoder: passages of the corpus's novels, each encoded to a skip-thought vector by the
/// (frozen) encoder, and a decoder that learns to write each passage back from its vector. With
/// `decoder.kind = "gru"` (default) a GRU trained from scratch (Pix2Story's recipe), writing
/// `decoder.safetensors`; with `decoder.kind = "lm"` the steering of a frozen pretrained language model
/// (`--lm`): a prefix mapped from the vector, genre tokens and LoRA, writing `steering.safetensors`. Writes
/// checkpoints, `metrics.jsonl` and a manifest.
#[derive(Debug, Args)]
pub struct TrainDecoderArgs {
    /// Corpus folder written by `storytool ingest`
    #[arg(long, value_name = "DIR")]
    corpus: PathBuf,

    /// Encoder folder written by `storytool train-encoder` (trained on this corpus's vocabulary)
    #[arg(long, value_name = "DIR")]
    encoder: PathBuf,

    /// The pretrained language model for `decoder.kind = "lm"` (default: $STORYTOOL_LM_WEIGHTS, then the
    /// file scripts/fetch-lm.sh fetches)
    #[arg(long, value_name = "GGUF")]
    lm: Option<PathBuf>,

    #[command(flatten)]
    run: RunArgs,

    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: TrainDecoderArgs) -> anyhow::Result<()> {
    let kind = args.config.resolve(&[])?.decoder.kind;
    let config = args.run.resolve(&args.config, if kind == DecoderKind::Lm { "decoder.lm" } else { "decoder" })?;
    if args.config.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    if kind == DecoderKind::Lm {
        return run_lm(args, config);
    }
    let out = args.run.out.clone();
    let run = args.run.options(&config)?;
    let request = DecoderTrainRequest { corpus_dir: args.corpus, encoder_dir: args.encoder, config, run };
    let bar = Bar::steps();
    let report = train_decoder(&request, &bar).map_err(|error| training_error(error, "cannot train the decoder"))?;
    print_report(&report, &out.join(storytool::story::decoder::DECODER_FILE));
    Ok(())
}

fn run_lm(args: TrainDecoderArgs, config: storytool::config::Config) -> anyhow::Result<()> {
    let Some(lm_path) = args.lm.clone().or_else(default_lm_path) else {
        anyhow::bail!("no language model given\n\nhint: run `scripts/fetch-lm.sh`, or pass `--lm FILE`");
    };
    if !lm_path.is_file() {
        anyhow::bail!(
            "the language model `{}` is missing\n\nhint: run `scripts/fetch-lm.sh`, or pass `--lm FILE`",
            lm_path.display()
        );
    }
    let out = args.run.out.clone();
    let run = args.run.options(&config)?;
    let request = LmDecoderTrainRequest { corpus_dir: args.corpus, encoder_dir: args.encoder, lm_path, config, run };
    let bar = Bar::steps();
    let report = train_lm_decoder(&request, &bar).map_err(|error| training_error(error, "cannot train the decoder"))?;
    print_report(&report, &out.join(storytool::story::lm_decoder::STEERING_FILE));
    Ok(())
}

/// What both kinds print: steps, passages, losses per token and where the weights went.
fn print_report(report: &DecoderTrainReport, weights: &std::path::Path) {
    let show =
        |loss: Option<f32>| loss.map_or("-".to_string(), |loss| format!("{loss:.3} (perplexity {:.1})", loss.exp()));
    print_steps(report.steps, report.resumed_from);
    println!(
        "passages: {} for training, {} held out (made in {:.0} s)",
        report.train_passages, report.valid_passages, report.encode_seconds
    );
    println!("train loss per token: {}", show(report.train_loss));
    println!("valid loss per token: {}", show(report.valid_loss));
    let metrics = weights.with_file_name(METRICS_FILE);
    println!("decoder: `{}`, metrics: `{}`", weights.display(), metrics.display());
}
