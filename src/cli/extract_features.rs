//! `storytool extract-features`: arguments, the call into `storytool::features`, and the report.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use storytool::captions::{CaptionDataset, DatasetKind};
use storytool::features::{ExtractRequest, extract_features};

use super::device_args::DeviceArgs;
use super::progress_bar::Bar;
use super::{cancel_on_interrupt, cnn_weights, command_line};

/// Run every photo an annotation file names through EfficientNet-Lite and store the 1280-d features with
/// the image ids and captions. Images the file names that are missing or unreadable are counted, listed
/// in the manifest and skipped. With `--spatial`, the last spatial map is kept too, for the captioner.
#[derive(Debug, Args)]
pub struct ExtractFeaturesArgs {
    /// Format of the annotation file
    #[arg(long, value_enum)]
    dataset: DatasetKind,

    /// COCO captions JSON (with `--dataset coco`)
    #[arg(long, value_name = "FILE", required_if_eq("dataset", "coco"))]
    annotations: Option<PathBuf>,

    /// Flickr8k `captions.txt` (with `--dataset flickr8k`)
    #[arg(long, value_name = "FILE", required_if_eq("dataset", "flickr8k"))]
    captions: Option<PathBuf>,

    /// Folder of the photos
    #[arg(long, value_name = "DIR")]
    images: PathBuf,

    /// Folder to write the features to
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// EfficientNet-Lite weights (PyTorch .pth; default: $STORYTOOL_CNN_WEIGHTS or the file scripts/fetch-cnn.sh fetched)
    #[arg(long, value_name = "FILE")]
    cnn: Option<PathBuf>,

    /// Images per forward pass
    #[arg(long, default_value_t = 16)]
    batch_size: usize,

    /// Also store each photo's last spatial feature map (7x7x1280 at 224 px), the annotation vectors
    /// `train-captioner` attends over (f16, about 125 KB a photo)
    #[arg(long)]
    spatial: bool,

    /// Input side in pixels instead of the CNN's own (a multiple of 32; 448 gives Lite0 a 14x14 map)
    #[arg(long, value_name = "PX")]
    image_size: Option<u32>,

    /// Replace `--out` if it exists
    #[arg(long)]
    force: bool,

    #[command(flatten)]
    device: DeviceArgs,
}

pub fn run(args: ExtractFeaturesArgs) -> anyhow::Result<()> {
    let annotations = match args.dataset {
        DatasetKind::Coco => args.annotations.clone(),
        DatasetKind::Flickr8k => args.captions.clone(),
    }
    .context("no annotation file given")?;
    if !args.images.is_dir() {
        anyhow::bail!("the images folder `{}` does not exist", args.images.display());
    }
    let dataset = CaptionDataset::read(args.dataset, &annotations)?;
    let request = ExtractRequest {
        dataset,
        images_dir: args.images.clone(),
        cnn_weights: cnn_weights(args.cnn.clone())?,
        out: args.out.clone(),
        force: args.force,
        batch_size: args.batch_size,
        spatial: args.spatial,
        image_size: args.image_size,
        device: args.device.one(None, "extract-features")?,
        command: command_line(),
        cancel: cancel_on_interrupt(),
    };
    let report = extract_features(&request, &Bar::items("images")).context("feature extraction failed")?;
    let manifest = &report.manifest;
    let rate = manifest.images_extracted as f64 / manifest.seconds.max(1e-9);
    println!(
        "{} images named, {} extracted ({rate:.1} images/s), {} missing, {} unreadable; {} captions",
        manifest.images_named,
        manifest.images_extracted,
        manifest.missing.len(),
        manifest.unreadable.len(),
        manifest.captions
    );
    for skipped in &manifest.unreadable {
        println!("  unreadable: {} ({})", skipped.file_name, skipped.reason);
    }
    if !manifest.missing.is_empty() {
        println!("  missing files are listed in {}", args.out.join("manifest.json").display());
    }
    println!("wrote {}", args.out.display());
    Ok(())
}
