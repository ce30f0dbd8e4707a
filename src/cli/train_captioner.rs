//! `storytool train-captioner`: arguments, the call into `storytool::train::captioner`, and the report.

use std::path::PathBuf;

use clap::Args;
use storytool::train::captioner::{CaptionerTrainRequest, train_captioner};
use storytool::train::run::METRICS_FILE;

use super::progress_bar::Bar;
use super::run_args::{RunArgs, print_steps};
use super::{ConfigArgs, training_error};

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

    #[command(flatten)]
    run: RunArgs,

    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: TrainCaptionerArgs) -> anyhow::Result<()> {
    let config = args.run.resolve(&args.config, "captioner")?;
    if args.config.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let run = args.run.options(&config)?;
    let request = CaptionerTrainRequest { features: args.features, config, run };
    let report = train_captioner(&request, &Bar::steps())
        .map_err(|error| training_error(error, "cannot train the captioner"))?;
    print_steps(report.steps, report.resumed_from);
    let [train, valid, test] = report.images;
    println!("photos: {train} train, {valid} valid, {test} test; vocabulary: {} words", report.vocabulary_size);
    println!("train loss: {}", report.train_loss.map_or("-".into(), |loss| format!("{loss:.3}")));
    if let Some(loss) = report.valid_loss {
        println!("validation: {loss:.3} nats per token (perplexity {:.1})", loss.exp());
    }
    println!("captioner: `{}`, metrics: `{}`", args.run.out.display(), args.run.out.join(METRICS_FILE).display());
    Ok(())
}
