//! `storytool evaluate decoder` and `evaluate story`: whether the story decoder uses its input, and whether
//! stories follow their photo and genre, each figure beside chance or a shuffled baseline.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use storytool::captions::DatasetKind;
use storytool::evaluation::decoder::{DecoderEvalRequest, DecoderEvaluation, evaluate_decoder};
use storytool::evaluation::lm_decoder::{LmDecoderEvalRequest, evaluate_lm_decoder};
use storytool::evaluation::story::{StoryEvalRequest, StoryEvaluation, StoryScores, evaluate_stories};
use storytool::story::generate::ModelPaths;
use storytool::story::lm_decoder::{default_lm_path, read_lm_manifest};

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

    /// A story decoder folder to use instead of the model folder's `decoder/` (e.g.
    /// `checkpoints/demo/decoder-gru`, the GRU decoder)
    #[arg(long, value_name = "DIR")]
    decoder: Option<PathBuf>,

    /// The pretrained language model of an `lm` decoder (default: $STORYTOOL_LM_WEIGHTS, then the file
    /// scripts/fetch-lm.sh fetches)
    #[arg(long, value_name = "GGUF")]
    lm: Option<PathBuf>,

    #[command(flatten)]
    config: ConfigArgs,

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

    /// At most this many test photos, taken evenly (default: all; 30 when a language model writes, the
    /// decoder's or the baseline's)
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

    /// A story decoder folder to use instead of the model folder's `decoder/` (e.g.
    /// `checkpoints/demo/decoder-gru`, the GRU decoder)
    #[arg(long, value_name = "DIR")]
    decoder: Option<PathBuf>,

    /// The pretrained language model of an `lm` decoder and of the prompt-only baseline (default:
    /// $STORYTOOL_LM_WEIGHTS, then the file scripts/fetch-lm.sh fetches)
    #[arg(long, value_name = "GGUF")]
    lm: Option<PathBuf>,

    /// Skip the prompt-only baseline (the bare language model asked for a story about the same keywords)
    #[arg(long)]
    no_baseline: bool,

    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,

    /// Also write every story to FILE, a JSON object per line (`photo`, `genre`, `story`, and `writer`:
    /// `decoder` or `baseline`), to read them
    #[arg(long, value_name = "FILE")]
    stories: Option<PathBuf>,

    #[command(flatten)]
    config: ConfigArgs,

    #[command(flatten)]
    device: DeviceArgs,
}

pub fn evaluate_decoder_cli(args: EvaluateDecoderArgs) -> anyhow::Result<()> {
    let decoder_dir = args.decoder.clone().unwrap_or_else(|| args.models.join("decoder"));
    if read_lm_manifest(&decoder_dir)?.is_some() {
        return evaluate_lm_decoder_cli(args);
    }
    let request = DecoderEvalRequest {
        decoder_dir: decoder_dir.clone(),
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

fn evaluate_lm_decoder_cli(args: EvaluateDecoderArgs) -> anyhow::Result<()> {
    let config = args.config.resolve(&[])?;
    let Some(lm_path) = args.lm.clone().or_else(default_lm_path) else {
        anyhow::bail!("no language model given\n\nhint: run `scripts/fetch-lm.sh`, or pass `--lm FILE`");
    };
    let request = LmDecoderEvalRequest {
        decoder_dir: args.decoder.clone().unwrap_or_else(|| args.models.join("decoder")),
        encoder_dir: args.models.join("encoder"),
        lm_path,
        corpus: args.corpus,
        books_dir: args.books,
        passages: args.passages,
        genre_tags: config.genres.iter().map(|(genre, tags)| (genre.clone(), tags.clone())).collect(),
        seed: 7,
        device: args.device.one(Some(&config), "evaluate decoder")?,
    };
    let evaluation = evaluate_lm_decoder(&request)
        .with_context(|| format!("cannot evaluate the decoder in `{}`", request.decoder_dir.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
        return Ok(());
    }
    println!("{} passages ({} tokens) of {} held-out books", evaluation.passages, evaluation.tokens, evaluation.books);
    println!("{:<48} {:>10}", "figure", "value");
    println!("{:<48} {:>10.3}", "NLL per token, every input", evaluation.nll);
    println!("{:<48} {:>10.1}", "perplexity", evaluation.perplexity);
    println!("{:<48} {:>10.3}", "NLL per token, the base model alone", evaluation.base_nll);
    for (name, gain) in [
        ("gain of the own vector over another's", evaluation.vector_gain),
        ("gain of the keywords", evaluation.keyword_gain),
        ("gain of the genre", evaluation.genre_gain),
    ] {
        println!("{name:<48} {:>10.3}   95% [{:.3}, {:.3}] nats/token", gain.nats, gain.low, gain.high);
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
    if let Some(lm) = &args.lm {
        models.lm = Some(lm.clone());
    }
    if let Some(decoder) = &args.decoder {
        models.decoder = decoder.clone();
    }
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
        baseline: !args.no_baseline,
        device: args.device.one(Some(&config), "evaluate story")?,
        cancel: super::cancel_on_interrupt(),
    };
    let bar = Bar::steps();
    let evaluation = evaluate_stories(&request, &bar)
        .with_context(|| format!("cannot evaluate the stories of `{}`", args.models.display()))?;
    if let Some(path) = &args.stories {
        write_stories(path, &evaluation)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
    } else {
        print_story(&evaluation);
    }
    Ok(())
}

/// Every story of the evaluation as JSON lines (through a temporary file, renamed when whole).
fn write_stories(path: &Path, evaluation: &StoryEvaluation) -> anyhow::Result<()> {
    let mut lines = String::new();
    let written = [("decoder", &evaluation.every_story), ("baseline", &evaluation.every_baseline_story)];
    for (writer, stories) in written {
        for story in stories {
            let line =
                serde_json::json!({"photo": story.photo, "genre": story.genre, "story": story.story, "writer": writer});
            lines.push_str(&line.to_string());
            lines.push('\n');
        }
    }
    storytool::util::atomic::write_file(path, lines.as_bytes())
        .with_context(|| format!("cannot write the stories to `{}`", path.display()))
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
    let number = |value: Option<f64>, digits: usize| value.map_or("-".to_string(), |value| format!("{value:.digits$}"));
    let baseline = evaluation.baseline.as_ref();
    let column = |pick: &dyn Fn(&StoryScores) -> String| baseline.map_or(String::new(), pick);
    let own = &evaluation.scores;
    let real = evaluation.real_passages;
    type Row = (&'static str, Box<dyn Fn(&StoryScores) -> String>, String);
    let rows: Vec<Row> = vec![
        (
            "relevance: own photo in the top 10%",
            Box::new(move |s| percent(s.relevance_top10)),
            percent(evaluation.relevance_chance),
        ),
        ("  the same, photos shuffled", Box::new(move |s| percent(s.relevance_top10_shuffled)), String::new()),
        (
            "relevance: mean rank of the own photo",
            Box::new(|s| format!("{:.1}", s.relevance_mean_rank)),
            format!("{:.1}", (evaluation.photos + 1) as f32 / 2.0),
        ),
        (
            "stories sharing no word with their captions",
            Box::new(move |s| percent(s.stories_sharing_no_caption_word)),
            String::new(),
        ),
        ("genre accuracy", Box::new(move |s| percent(s.genre_accuracy)), percent(evaluation.genre_chance)),
        (
            "genre accuracy, paired within a photo",
            Box::new(move |s| percent(s.genre_paired_accuracy)),
            percent(evaluation.genre_chance),
        ),
        ("distinct-1", Box::new(|s| format!("{:.3}", s.distinct_1)), String::new()),
        ("distinct-2", Box::new(|s| format!("{:.3}", s.distinct_2)), String::new()),
        ("most common opening sentence", Box::new(move |s| percent(s.top_opening_share)), String::new()),
        ("overlap, same photo across genres", Box::new(|s| format!("{:.3}", s.cross_genre_jaccard)), String::new()),
        ("overlap, other photos in one genre", Box::new(|s| format!("{:.3}", s.cross_photo_jaccard)), String::new()),
        ("words per story", Box::new(|s| format!("{:.1}", s.mean_words)), String::new()),
        (
            "fluency: judge's nats per word (real prose)",
            Box::new(move |s| number(s.fluency.map(|f| f.cross_entropy), 2)),
            number(real.map(|f| f.cross_entropy), 2),
        ),
        (
            "  shuffled (real prose shuffled)",
            Box::new(move |s| number(s.fluency.map(|f| f.shuffled_cross_entropy), 2)),
            number(real.map(|f| f.shuffled_cross_entropy), 2),
        ),
        ("  ratio to real prose (<= 1.2)", Box::new(move |s| number(s.fluency_ratio, 2)), String::new()),
        (
            "  word-order gain (real prose)",
            Box::new(move |s| number(s.fluency.map(|f| f.word_order_gain()), 2)),
            number(real.map(|f| f.word_order_gain()), 2),
        ),
        (
            "  word-order gain over real prose's (>= 0.8)",
            Box::new(move |s| number(s.word_order_ratio, 2)),
            String::new(),
        ),
        (
            "genre's words per 100 content words (books)",
            Box::new(|s| s.genre_words_per_100.map_or("-".into(), |value| format!("{value:.1}"))),
            evaluation.real_genre_words_per_100.map_or("-".into(), |value| format!("{value:.1}")),
        ),
    ];
    println!("{:<46} {:>9} {:>10} {:>10}", "figure", "decoder", "baseline", "reference");
    for (name, pick, reference) in &rows {
        println!("{name:<46} {:>9} {:>10} {reference:>10}", pick(own), column(&|s| pick(s)));
    }
    println!(
        "genre classifier, leave one book out: {} of {} books; fluency references: {} real passages",
        evaluation.classifier_leave_one_book_out.map_or("-".into(), percent),
        evaluation.classifier_books,
        evaluation.real_passage_count
    );
    for sample in &evaluation.samples {
        println!("\n[{} / {}] {}", sample.photo, sample.genre, sample.story);
    }
    for sample in &evaluation.baseline_samples {
        println!("\n[baseline: {} / {}] {}", sample.photo, sample.genre, sample.story);
    }
}
