//! `storytool caption`: the captions of the bank nearest to a photo.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use storytool::retrieval::photo::PhotoRetriever;
use storytool::vision::load_image;

use super::cnn_weights;

/// Find the captions nearest to a photo in a caption bank (through the CNN and the VSE), with their
/// cosine scores. Caption text is read from the bank's annotation files when they can be found.
#[derive(Debug, Args)]
pub struct CaptionArgs {
    /// The photo (JPEG, PNG or WebP)
    #[arg(long, value_name = "FILE")]
    image: PathBuf,

    /// How many captions
    #[arg(short, long, default_value_t = 5)]
    k: usize,

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
}

pub fn run(args: CaptionArgs) -> anyhow::Result<()> {
    let vse = args.vse.clone().unwrap_or_else(|| args.models.join("vse"));
    let bank = args.bank.clone().unwrap_or_else(|| args.models.join("caption-bank"));
    let retriever = PhotoRetriever::load(&cnn_weights(args.cnn.clone())?, &vse, &bank)?;
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
