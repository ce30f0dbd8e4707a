//! `storytool train-vse`: arguments, the call into `storytool::train::vse`, and the report.

use std::path::PathBuf;

use clap::Args;
use storytool::retrieval::RetrievalScores;
use storytool::train::run::METRICS_FILE;
use storytool::train::vse::{VseTrainRequest, WordVectorsSource, train_vse};
use storytool::vectors::readers::VectorFormat;

use super::progress_bar::Bar;
use super::run_args::{RunArgs, print_steps};
use super::{ConfigArgs, training_error};

/// Train a visual-semantic embedding on features from `storytool extract-features`: a GRU caption encoder
/// and a linear image projection into one space, with VSE's hinge loss (or VSE++'s max violation).
/// Images are split into train / valid / test by a hash of their key; recall on the validation images is
/// logged to `metrics.jsonl`. Writes checkpoints and at the end `vse.safetensors`, the caption vocabulary
/// and a manifest.
#[derive(Debug, Args)]
pub struct TrainVseArgs {
    /// Features folder(s) written by `storytool extract-features` (repeat to mix datasets)
    #[arg(long, value_name = "DIR", required = true)]
    features: Vec<PathBuf>,

    /// Word vectors to start the word embeddings from (GloVe, word2vec, .npy); their size must be `vse.word_dim`
    #[arg(long, value_name = "FILE")]
    word_vectors: Option<PathBuf>,

    /// Layout of `--word-vectors` (default: from the extension, as in `expand-vocab`)
    #[arg(long, value_enum)]
    word_vectors_format: Option<VectorFormat>,

    /// Word list of an `.npy` table (text, one word a line, or Parquet)
    #[arg(long, value_name = "FILE")]
    word_vectors_words: Option<PathBuf>,

    #[command(flatten)]
    run: RunArgs,

    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: TrainVseArgs) -> anyhow::Result<()> {
    let config = args.run.resolve(&args.config, "vse")?;
    if args.config.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let word_vectors = args.word_vectors.map(|path| WordVectorsSource {
        format: args.word_vectors_format.unwrap_or_else(|| VectorFormat::guess(&path)),
        path,
        words: args.word_vectors_words,
    });
    let run = args.run.options(&config)?;
    let request = VseTrainRequest { features: args.features, config, word_vectors, run };
    let report = train_vse(&request, &Bar::steps()).map_err(|error| training_error(error, "cannot train the VSE"))?;
    print_steps(report.steps, report.resumed_from);
    let [train, valid, test] = report.images;
    println!("images: {train} train, {valid} valid, {test} test");
    if let Some(init) = &report.word_vectors {
        println!("word vectors: {} of the vocabulary's words found in `{}`", init.matched, init.path);
    }
    println!("train loss: {}", report.train_loss.map_or("-".into(), |loss| format!("{loss:.4}")));
    if let Some(scores) = &report.valid {
        print_scores("validation images", scores);
    }
    println!("VSE: `{}`, metrics: `{}`", args.run.out.display(), args.run.out.join(METRICS_FILE).display());
    Ok(())
}

/// The recall table shared with `evaluate vse`.
pub fn print_scores(title: &str, scores: &RetrievalScores) {
    println!("{title}:");
    println!("  {:<14} {:>7} {:>7} {:>7} {:>8}   {:>21}", "", "R@1", "R@5", "R@10", "med r", "chance R@1/5/10");
    for (name, recall) in [("image->text", &scores.image_to_text), ("text->image", &scores.text_to_image)] {
        println!(
            "  {name:<14} {:>7.1} {:>7.1} {:>7.1} {:>8.1}   {:>6.1} {:>6.1} {:>6.1}   ({} queries)",
            recall.r1,
            recall.r5,
            recall.r10,
            recall.median_rank,
            recall.chance_r1,
            recall.chance_r5,
            recall.chance_r10,
            recall.queries
        );
    }
    println!("  rsum {:.1}", scores.rsum());
}
