//! `storytool caption`: the captions of the bank nearest to a photo, or captions a captioner writes.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use image::DynamicImage;
use storytool::captioner::photo::PhotoCaptioner;
use storytool::retrieval::photo::PhotoRetriever;
use storytool::util::atomic::write_file;
use storytool::vision::load_image;

use super::cnn_weights;
use super::device_args::DeviceArgs;

/// Find the captions nearest to a photo in a caption bank (through the CNN and the VSE), with their
/// cosine scores; caption text is read from the bank's annotation files when they can be found. With
/// `--captioner`, write captions instead (Show-Attend-Tell beam search), best first with their
/// log-probabilities, and with `--attention` draw where each word looked.
#[derive(Debug, Args)]
pub struct CaptionArgs {
    /// The photo (JPEG, PNG or WebP)
    #[arg(long, value_name = "FILE")]
    image: PathBuf,

    /// How many captions (with `--captioner`: at most the beam width)
    #[arg(short, long, default_value_t = 5)]
    k: usize,

    /// Captioner folder (`storytool train-captioner --out`): write captions instead of retrieving them
    #[arg(long, value_name = "DIR")]
    captioner: Option<PathBuf>,

    /// Beam width of the captioner (default: its `captioner.beam`)
    #[arg(long, requires = "captioner")]
    beam: Option<usize>,

    /// Write the best caption's attention over the photo as a PNG (one tile per word)
    #[arg(long, value_name = "FILE.png", requires = "captioner")]
    attention: Option<PathBuf>,

    /// Model folder holding `vse/` and `caption-bank/` (as `checkpoints/demo/`)
    #[arg(long, value_name = "DIR", default_value = "checkpoints/demo")]
    models: PathBuf,

    /// VSE folder (default: `<models>/vse`)
    #[arg(long, value_name = "DIR")]
    vse: Option<PathBuf>,

    /// Caption bank folder (default: `<models>/caption-bank`)
    #[arg(long, value_name = "DIR")]
    bank: Option<PathBuf>,

    /// EfficientNet-Lite weights (default: $STORYTOOL_CNN_WEIGHTS or the file scripts/fetch-cnn.sh fetched)
    #[arg(long, value_name = "FILE")]
    cnn: Option<PathBuf>,

    /// Annotation files to read caption text from, if not where the bank's manifest says (repeatable)
    #[arg(long, value_name = "FILE")]
    annotations: Vec<PathBuf>,

    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    device: DeviceArgs,
}

pub fn run(args: CaptionArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.captioner {
        let image = load_image(&args.image).context("cannot read the photo")?;
        return write_captions(&args, dir, &image);
    }
    let vse = args.vse.clone().unwrap_or_else(|| args.models.join("vse"));
    let bank = args.bank.clone().unwrap_or_else(|| args.models.join("caption-bank"));
    let retriever =
        PhotoRetriever::load(&cnn_weights(args.cnn.clone())?, &vse, &bank, &args.device.one(None, "caption")?)?;
    let image = load_image(&args.image).context("cannot read the photo")?;
    let nearest = retriever.nearest(&image, args.k);
    let (texts, unavailable) = retriever.bank.texts(&args.annotations);
    let rows: Vec<serde_json::Value> = nearest
        .iter()
        .map(|&(row, score)| {
            let id = &retriever.bank.ids[row];
            serde_json::json!({"id": id, "score": score, "text": texts.get(id)})
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"image": args.image, "captions": rows}))?);
        return Ok(());
    }
    for &(row, score) in &nearest {
        let id = &retriever.bank.ids[row];
        match texts.get(id) {
            Some(text) => println!("{score:.3}  {text}"),
            None => println!("{score:.3}  [{id}]"),
        }
    }
    if !unavailable.is_empty() {
        eprintln!(
            "note: caption text not shown for sources not found ({}); pass `--annotations FILE`",
            unavailable.join(", ")
        );
    }
    Ok(())
}

/// `--captioner`: beam search, the best `k` finished beams, and the attention picture.
fn write_captions(args: &CaptionArgs, dir: &std::path::Path, image: &DynamicImage) -> anyhow::Result<()> {
    let captioner = PhotoCaptioner::load(&cnn_weights(args.cnn.clone())?, dir, &args.device.one(None, "caption")?)
        .with_context(|| format!("cannot load the captioner `{}`", dir.display()))?;
    let beam = args.beam.unwrap_or(captioner.captioner.manifest.config.beam);
    if beam == 0 {
        anyhow::bail!("--beam must be at least 1");
    }
    let annotations = captioner.annotations(image);
    let captions = captioner.captions_of(annotations.clone(), beam);
    let Some(best) = captions.first() else {
        anyhow::bail!(
            "the captioner finished no caption within {} words",
            captioner.captioner.manifest.config.max_words
        );
    };
    if let Some(path) = &args.attention {
        let picture = captioner.attention_picture(image, annotations, best);
        let mut png = std::io::Cursor::new(Vec::new());
        picture.write_to(&mut png, image::ImageFormat::Png).context("cannot encode the attention picture")?;
        write_file(path, png.get_ref())?;
    }
    let shown = &captions[..captions.len().min(args.k.max(1))];
    if args.json {
        let json =
            serde_json::json!({"image": args.image, "beam": beam, "captions": shown, "attention": args.attention});
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    for caption in shown {
        println!("{:>7.2}  {}", caption.log_prob, caption.text);
    }
    if let Some(path) = &args.attention {
        eprintln!("attention of \"{}\" written to {}", best.text, path.display());
    }
    Ok(())
}
