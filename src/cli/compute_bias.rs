//! `storytool compute-bias`: the caption bias and one bias per configured genre.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use storytool::captions::DatasetKind;
use storytool::story::bias::{BiasRequest, compute_bias};

use super::device_args::DeviceArgs;
use super::progress_bar::Bar;
use super::{ConfigArgs, command_line};

/// Compute the style vectors of neural-storyteller's shift `mean(captions) - caption bias + genre bias`:
/// the caption bias is the mean skip-thought vector of a caption corpus; each genre's bias is the mean
/// vector of the passages (paragraphs of at least `bias.min_passage_tokens` tokens) of the books whose
/// catalogue tags belong to that genre in the config's `[genres]`.
#[derive(Debug, Args)]
pub struct ComputeBiasArgs {
    /// Encoder folder written by `storytool train-encoder`
    #[arg(long, value_name = "DIR")]
    encoder: PathBuf,

    /// Corpus folder written by `storytool ingest` (its books' tags define the genres)
    #[arg(long, value_name = "DIR")]
    corpus: PathBuf,

    /// COCO captions JSON for the caption bias (repeatable)
    #[arg(long, value_name = "FILE")]
    coco: Vec<PathBuf>,

    /// Flickr8k `captions.txt` for the caption bias (repeatable)
    #[arg(long, value_name = "FILE")]
    flickr8k: Vec<PathBuf>,

    /// Folder to write the biases to
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Replace `--out` if it exists
    #[arg(long)]
    force: bool,

    #[command(flatten)]
    config: ConfigArgs,

    #[command(flatten)]
    device: DeviceArgs,
}

pub fn run(args: ComputeBiasArgs) -> anyhow::Result<()> {
    let config = args.config.resolve(&[])?;
    if args.config.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let captions: Vec<(DatasetKind, PathBuf)> = args
        .coco
        .iter()
        .map(|path| (DatasetKind::Coco, path.clone()))
        .chain(args.flickr8k.iter().map(|path| (DatasetKind::Flickr8k, path.clone())))
        .collect();
    if captions.is_empty() {
        anyhow::bail!("no captions given for the caption bias: pass `--coco FILE` and/or `--flickr8k FILE`");
    }
    let request = BiasRequest {
        encoder_dir: args.encoder,
        corpus_dir: args.corpus,
        captions,
        out: args.out.clone(),
        force: args.force,
        device: args.device.one(Some(&config), "compute-bias")?,
        config,
        command: command_line(),
    };
    let bar = Bar::steps();
    let bias = compute_bias(&request, &bar).context("cannot compute the biases")?;
    bar.finish_now();
    let manifest = &bias.manifest;
    println!("caption bias: mean of {} captions", manifest.caption_count);
    println!("{:<12} {:>6} {:>9}  tags", "genre", "books", "passages");
    for (name, genre) in &manifest.genres {
        println!("{name:<12} {:>6} {:>9}  {}", genre.books, genre.passages, genre.tags.join(", "));
    }
    for name in &manifest.empty_genres {
        eprintln!("warning: genre `{name}` has no book with a paragraph long enough; left out");
    }
    println!("wrote {}", args.out.display());
    Ok(())
}
