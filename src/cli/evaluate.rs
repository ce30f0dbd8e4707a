//! `storytool evaluate`: figures of trained models on their held-out data (VSE recall, captioner BLEU; the
//! story decoder and the stories in `evaluate_story`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use storytool::captioner::data::CaptionerData;
use storytool::captioner::evaluate::CaptionScores;
use storytool::captioner::evaluate::evaluate_captioner;
use storytool::captioner::trained::TrainedCaptioner;
use storytool::captions::Split;
use storytool::retrieval::TrainedVse;
use storytool::retrieval::evaluate::evaluate_trained_vse;

use super::device_args::DeviceArgs;
use super::progress_bar::Bar;
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
    /// BLEU-1..4 and CIDEr-D of a captioner's written captions on its test photos, beside the VSE retrieval baseline
    Captioner(EvaluateCaptionerArgs),
    /// Perplexity of a story decoder on held-out books and how much it uses its input (conditioning gain)
    Decoder(super::evaluate_story::EvaluateDecoderArgs),
    /// Stories for every test photo in every genre: relevance to the photo, genre accuracy, diversity
    Story(super::evaluate_story::EvaluateStoryArgs),
}

#[derive(Debug, Args)]
struct EvaluateCaptionerArgs {
    /// Captioner folder written by `storytool train-captioner`
    #[arg(long, value_name = "DIR")]
    captioner: PathBuf,

    /// VSE folder for the retrieval baseline: each photo's nearest caption among the training photos' captions
    #[arg(long, value_name = "DIR")]
    vse: Option<PathBuf>,

    /// Features folder(s) with spatial maps (default: those the captioner was trained on, as its manifest records them)
    #[arg(long, value_name = "DIR")]
    features: Vec<PathBuf>,

    /// Which photos
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,

    /// Beam width (default: the captioner's `captioner.beam`; 1 decodes greedily, many photos at a time)
    #[arg(long)]
    beam: Option<usize>,

    /// Photos whose captions are printed beside the scores
    #[arg(long, default_value_t = 5)]
    samples: usize,

    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    device: DeviceArgs,
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

    #[command(flatten)]
    device: DeviceArgs,
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
        Evaluate::Captioner(args) => evaluate_captioner_cli(args),
        Evaluate::Decoder(args) => super::evaluate_story::evaluate_decoder_cli(args),
        Evaluate::Story(args) => super::evaluate_story::evaluate_story_cli(args),
    }
}

fn split_of(arg: SplitArg) -> Split {
    match arg {
        SplitArg::Train => Split::Train,
        SplitArg::Valid => Split::Valid,
        SplitArg::Test => Split::Test,
    }
}

fn evaluate_captioner_cli(args: EvaluateCaptionerArgs) -> anyhow::Result<()> {
    let device = args.device.one(None, "evaluate captioner")?;
    let captioner = TrainedCaptioner::load(&args.captioner, &device)?;
    let features = if args.features.is_empty() {
        CaptionerData::dirs_of(&captioner.manifest.features)
    } else {
        args.features.clone()
    };
    let config = &captioner.manifest.config;
    let data = CaptionerData::load(&features, config, Some(captioner.vocabulary.clone()))?;
    if data.cnn.blake3 != captioner.manifest.cnn.blake3 || data.spatial.grid != captioner.manifest.grid {
        anyhow::bail!(
            "the features were extracted with other CNN weights or another image size than the captioner was trained on"
        );
    }
    let vse = args.vse.as_deref().map(|dir| TrainedVse::load(dir, &device)).transpose()?;
    let beam = args.beam.unwrap_or(config.beam);
    let evaluation =
        evaluate_captioner(&captioner, &data, split_of(args.split), beam, vse.as_ref(), &Bar::items("photos"))
            .context("cannot evaluate the captioner")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
        return Ok(());
    }
    println!(
        "{:?} split: {} photos, {} reference captions",
        evaluation.split, evaluation.photos, evaluation.references
    );
    println!(
        "  {:<34} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7}",
        "", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D", "BP"
    );
    let row = |name: &str, scores: &CaptionScores| {
        let [b1, b2, b3, b4] = scores.bleu.bleu.map(|value| value * 100.0);
        println!(
            "  {name:<34} {b1:>7.1} {b2:>7.1} {b3:>7.1} {b4:>7.1} {:>8.3} {:>7.3}",
            scores.cider_d, scores.bleu.brevity_penalty
        );
    };
    row(&format!("captioner (beam {beam})"), &evaluation.captioner);
    match &evaluation.retrieval {
        Some(baseline) => row(&format!("retrieval (VSE, {} captions)", baseline.pool), &baseline.scores),
        None => println!("  (pass `--vse DIR` for the retrieval baseline)"),
    }
    for sample in evaluation.samples.iter().take(args.samples) {
        println!("\n{}", sample.image);
        println!("  written:   {}", sample.written);
        if let Some(retrieved) = &sample.retrieved {
            println!("  retrieved: {retrieved}");
        }
        println!("  reference: {}", sample.reference);
    }
    Ok(())
}

fn evaluate_vse(args: EvaluateVseArgs) -> anyhow::Result<()> {
    let vse = TrainedVse::load(&args.vse, &args.device.one(None, "evaluate vse")?)?;
    let split = split_of(args.split);
    let (scores, images) = evaluate_trained_vse(&vse, &args.features, split)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"split": split, "images": images, "scores": scores, "rsum": scores.rsum()})
            )?
        );
    } else {
        print_scores(&format!("{split:?} split, {images} images"), &scores);
    }
    Ok(())
}
