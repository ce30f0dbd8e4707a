//! `storytool evaluate decoder` and `evaluate story`: whether the story decoder uses its input, and whether
//! stories follow their photo and genre, each figure beside chance or a shuffled baseline.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use storytool::captions::DatasetKind;
use storytool::evaluation::decoder::{DecoderEvalRequest, DecoderEvaluation, evaluate_decoder};
use storytool::evaluation::story::{StoryEvalRequest, StoryEvaluation, evaluate_stories};
use storytool::story::generate::ModelPaths;

use super::device_args::DeviceArgs;
use super::progress_bar::Bar;
use super::{ConfigArgs, cnn_weights};

#[derive(Debug, Args)]
pub struct EvaluateDecoderArgs {
    /// Model folder with encoder/ and decoder/
    #[arg(long, value_name = "DIR", default_value = "checkpoints/demo")]
    models: PathBuf,

    /// Score the validation books of this corpus (its vocabulary must be the decoder's) instead of the
    /// held-out books the decoder's manifest names
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,

    /// Folder of the books the manifest names, if not where it records (`../shared/data/books` for the demo)
    #[arg(long, value_name = "DIR")]
    books: Option<PathBuf>,

    /// Passages scored for perplexity and conditioning gain
    #[arg(long, default_value_t = 1024)]
    passages: usize,

    /// Passages written back greedily for the content-word recall
    #[arg(long, default_value_t = 150)]
    reconstructions: usize,

    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Debug, Args)]
pub struct EvaluateStoryArgs {
    /// Model folder with encoder/, decoder/, bias/, vse/ and caption-bank/
    #[arg(long, value_name = "DIR", default_value = "checkpoints/demo")]
    models: PathBuf,

    /// Captioner folder: write each photo's captions instead of retrieving them
    #[arg(long, value_name = "DIR")]
    captioner: Option<PathBuf>,

    /// EfficientNet-Lite weights (default: $STORYTOOL_CNN_WEIGHTS or the file scripts/fetch-cnn.sh fetched)
    #[arg(long, value_name = "FILE")]
    cnn: Option<PathBuf>,

    /// Genres to write each photo's stories in (repeatable; default: `pipeline.story_genres`)
    #[arg(long)]
    genre: Vec<String>,

    /// At most this many test photos, taken evenly (default: all)
    #[arg(long)]
    max_photos: Option<usize>,

    /// Folder of the held-out books the decoder's manifest names, if not where it records
    #[arg(long, value_name = "DIR")]
    books: Option<PathBuf>,

    /// Train the genre classifier on this corpus's validation books (its vocabulary must be the decoder's)
    /// instead of the held-out books the decoder's manifest names
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,

    /// Seed of the shuffled baseline
    #[arg(long, default_value_t = 7)]
    seed: u64,

    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    config: ConfigArgs,

    #[command(flatten)]
    device: DeviceArgs,
}

pub fn evaluate_decoder_cli(args: EvaluateDecoderArgs) -> anyhow::Result<()> {
    let request = DecoderEvalRequest {
        decoder_dir: args.models.join("decoder"),
        encoder_dir: args.models.join("encoder"),
        corpus: args.corpus,
        books_dir: args.books,
        passages: args.passages,
        reconstructions: args.reconstructions,
        device: args.device.one(None, "evaluate decoder")?,
    };
    let evaluation = evaluate_decoder(&request)
        .with_context(|| format!("cannot evaluate the decoder in `{}`", request.decoder_dir.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
    } else {
        print_decoder(&evaluation);
    }
    Ok(())
}

fn print_decoder(evaluation: &DecoderEvaluation) {
    println!(
        "{} passages ({} tokens, {:.1}% unknown) of {} held-out books",
        evaluation.passages,
        evaluation.tokens,
        evaluation.unknown_share * 100.0,
        evaluation.books
    );
    println!("{:<44} {:>10}", "figure", "value");
    println!("{:<44} {:>10.3}", "NLL per token, own vector", evaluation.nll_own);
    println!("{:<44} {:>10.3}", "NLL per token, another passage's vector", evaluation.nll_other);
    println!("{:<44} {:>10.1}", "perplexity (own vector)", evaluation.perplexity);
    println!("{:<44} {:>10.3}", "conditioning gain (nats/token; 0 = ignored)", evaluation.conditioning_gain_nats);
    println!(
        "{:<44} {:>9.1}%",
        format!("content-word recall of {} reconstructions", evaluation.reconstructions),
        evaluation.content_recall_own * 100.0
    );
    println!("{:<44} {:>9.1}%", "  the same from another passage's vector", evaluation.content_recall_other * 100.0);
    for sample in &evaluation.samples {
        println!("\npassage: {}\nwritten: {}", sample.passage, sample.written);
    }
}

pub fn evaluate_story_cli(args: EvaluateStoryArgs) -> anyhow::Result<()> {
    let config = args.config.resolve(&[])?;
    if args.config.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let mut models = ModelPaths::from_dir(&args.models, cnn_weights(args.cnn.clone())?);
    models.captioner = args.captioner.clone();
    let photo_sets: Vec<(DatasetKind, PathBuf, PathBuf)> = config
        .pipeline
        .coco
        .iter()
        .map(|set| (DatasetKind::Coco, set.captions.clone(), set.images.clone()))
        .chain(
            config
                .pipeline
                .flickr8k
                .iter()
                .map(|set| (DatasetKind::Flickr8k, set.captions.clone(), set.images.clone())),
        )
        .collect();
    let genres = if args.genre.is_empty() { config.pipeline.story_genres.clone() } else { args.genre.clone() };
    let request = StoryEvalRequest {
        models,
        photo_sets,
        genres,
        genre_tags: config.genres.iter().map(|(genre, tags)| (genre.clone(), tags.clone())).collect(),
        generate: config.generate.clone(),
        max_photos: args.max_photos,
        books_dir: args.books.clone(),
        corpus: args.corpus.clone(),
        seed: args.seed,
        device: args.device.one(Some(&config), "evaluate story")?,
        cancel: super::cancel_on_interrupt(),
    };
    let bar = Bar::steps();
    let evaluation = evaluate_stories(&request, &bar)
        .with_context(|| format!("cannot evaluate the stories of `{}`", args.models.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
    } else {
        print_story(&evaluation);
    }
    Ok(())
}

fn print_story(evaluation: &StoryEvaluation) {
    println!(
        "{} stories: {} test photos x {} genres ({}), captions by {}, {:.0} s",
        evaluation.stories,
        evaluation.photos,
        evaluation.genres.len(),
        evaluation.genres.join(", "),
        evaluation.captions,
        evaluation.seconds
    );
    let percent = |value: f32| format!("{:.1}%", value * 100.0);
    let rows = [
        (
            "relevance: own photo in the top 10%",
            percent(evaluation.relevance_top10),
            percent(evaluation.relevance_chance),
        ),
        ("  the same, photos shuffled", percent(evaluation.relevance_top10_shuffled), String::new()),
        (
            "relevance: mean rank of the own photo",
            format!("{:.1}", evaluation.relevance_mean_rank),
            format!("{:.1}", (evaluation.photos + 1) as f32 / 2.0),
        ),
        (
            "stories sharing no word with their captions",
            percent(evaluation.stories_sharing_no_caption_word),
            String::new(),
        ),
        ("genre accuracy", percent(evaluation.genre_accuracy), percent(evaluation.genre_chance)),
        (
            "genre accuracy, paired within a photo",
            percent(evaluation.genre_paired_accuracy),
            percent(evaluation.genre_chance),
        ),
        (
            "  classifier, leave one book out",
            evaluation.classifier_leave_one_book_out.map_or("-".into(), percent),
            format!("{} books", evaluation.classifier_books),
        ),
        ("distinct-1", format!("{:.3}", evaluation.distinct_1), String::new()),
        ("distinct-2", format!("{:.3}", evaluation.distinct_2), String::new()),
        ("most common opening sentence", percent(evaluation.top_opening_share), String::new()),
        ("overlap, same photo across genres", format!("{:.3}", evaluation.cross_genre_jaccard), String::new()),
        ("overlap, other photos in one genre", format!("{:.3}", evaluation.cross_photo_jaccard), String::new()),
    ];
    println!("{:<46} {:>9} {:>10}", "figure", "value", "chance");
    for (name, value, chance) in rows {
        println!("{name:<46} {value:>9} {chance:>10}");
    }
    for sample in &evaluation.samples {
        println!("\n[{} / {}] {}", sample.photo, sample.genre, sample.story);
    }
}
