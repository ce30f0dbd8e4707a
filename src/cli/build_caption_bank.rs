//! `storytool build-caption-bank`: embed caption corpora once with a trained VSE.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use storytool::captions::DatasetKind;
use storytool::encoder::SentenceEncoder;
use storytool::retrieval::TrainedVse;
use storytool::retrieval::bank::build_bank;

use super::device_args::DeviceArgs;
use super::progress_bar::Bar;
use super::{cancel_on_interrupt, command_line};

/// Embed every caption of COCO and/or Flickr8k annotation files with a trained VSE, so `caption` and
/// `generate` can find a photo's nearest captions. The bank stores vectors and caption ids, not text; with
/// `--encoder`, also each caption's skip-thought vector, which `generate` shifts toward a genre.
#[derive(Debug, Args)]
pub struct BuildCaptionBankArgs {
    /// VSE folder written by `storytool train-vse`
    #[arg(long, value_name = "DIR")]
    vse: PathBuf,

    /// Skip-thought encoder whose caption vectors to store too (needed by `storytool generate`)
    #[arg(long, value_name = "DIR")]
    encoder: Option<PathBuf>,

    /// COCO captions JSON (repeatable)
    #[arg(long, value_name = "FILE")]
    coco: Vec<PathBuf>,

    /// Flickr8k `captions.txt` (repeatable)
    #[arg(long, value_name = "FILE")]
    flickr8k: Vec<PathBuf>,

    /// Folder to write the bank to
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Replace `--out` if it exists
    #[arg(long)]
    force: bool,

    #[command(flatten)]
    device: DeviceArgs,
}

pub fn run(args: BuildCaptionBankArgs) -> anyhow::Result<()> {
    let sources: Vec<(DatasetKind, PathBuf)> = args
        .coco
        .iter()
        .map(|path| (DatasetKind::Coco, path.clone()))
        .chain(args.flickr8k.iter().map(|path| (DatasetKind::Flickr8k, path.clone())))
        .collect();
    if sources.is_empty() {
        anyhow::bail!("no captions given: pass `--coco FILE` and/or `--flickr8k FILE`");
    }
    let device = args.device.one(None, "build-caption-bank")?;
    let vse = TrainedVse::load(&args.vse, &device)?;
    let encoder = args.encoder.as_deref().map(|dir| SentenceEncoder::load(dir, &device)).transpose()?;
    let started = std::time::Instant::now();
    let bank = build_bank(
        &vse,
        encoder.as_ref().zip(args.encoder.as_deref()),
        &sources,
        &args.out,
        args.force,
        command_line(),
        &cancel_on_interrupt(),
        &Bar::items("captions"),
    )
    .context("cannot build the caption bank")?;
    let seconds = started.elapsed().as_secs_f64();
    for source in &bank.manifest.sources {
        println!("{:>8} captions from {}", source.captions, source.annotations.path);
    }
    println!(
        "{} captions embedded in {seconds:.1} s ({:.0}/s), {}-d; wrote {}",
        bank.len(),
        bank.len() as f64 / seconds.max(1e-9),
        bank.manifest.embed_dim,
        args.out.display()
    );
    Ok(())
}
