//! `storytool evaluate`: figures of trained models on their held-out data.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use storytool::captions::Split;
use storytool::retrieval::TrainedVse;
use storytool::train::vse::retrieval_scores;
use storytool::train::vse_data::VseData;

use super::train_vse::print_scores;

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    #[command(subcommand)]
    what: Evaluate,
}

#[derive(Debug, Subcommand)]
enum Evaluate {
    /// Image->text and text->image recall at 1, 5, 10 and median rank of a VSE on its test images
    Vse(EvaluateVseArgs),
}

#[derive(Debug, Args)]
struct EvaluateVseArgs {
    /// VSE folder written by `storytool train-vse`
    #[arg(long, value_name = "DIR")]
    vse: PathBuf,

    /// Features folder(s) (default: those the VSE was trained on, as its manifest records them)
    #[arg(long, value_name = "DIR")]
    features: Vec<PathBuf>,

    /// Which images
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,

    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SplitArg {
    Train,
    Valid,
    Test,
}

pub fn run(args: EvaluateArgs) -> anyhow::Result<()> {
    match args.what {
        Evaluate::Vse(args) => evaluate_vse(args),
    }
}

fn evaluate_vse(args: EvaluateVseArgs) -> anyhow::Result<()> {
    let vse = TrainedVse::load(&args.vse)?;
    let features: Vec<PathBuf> = if args.features.is_empty() {
        vse.manifest.features.iter().map(|input| PathBuf::from(&input.dir)).collect()
    } else {
        args.features.clone()
    };
    let config = &vse.manifest.config;
    let data = VseData::load(&features, config, Some(vse.vocabulary.clone()))?;
    if data.cnn.blake3 != vse.manifest.cnn.blake3 {
        anyhow::bail!("the features were extracted with other CNN weights than the VSE was trained on");
    }
    let split = match args.split {
        SplitArg::Train => Split::Train,
        SplitArg::Valid => Split::Valid,
        SplitArg::Test => Split::Test,
    };
    let images = data.split(split);
    let Some(scores) = retrieval_scores(&vse.model, &data, &images, config) else {
        anyhow::bail!("the {split:?} split has no images");
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"split": split, "images": images.len(), "scores": scores, "rsum": scores.rsum()})
            )?
        );
    } else {
        print_scores(&format!("{split:?} split, {} images", images.len()), &scores);
    }
    Ok(())
}
