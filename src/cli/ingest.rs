//! `storytool ingest`: arguments, the call into `storytool::corpus::ingest`, and the summary table.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use storytool::corpus::discover::Shelf;
use storytool::corpus::ingest::SummaryRow;
use storytool::corpus::{IngestError, IngestReport, IngestRequest, ingest};

use super::progress_bar::Bar;
use super::{ConfigArgs, command_line, nothing_written};

/// Find books (a catalogue CSV or one folder per genre), strip Gutenberg packaging and headings, split
/// sentences, build the vocabulary and write memory-mappable token streams with per-book statistics.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Folder of `.txt` books: flat with a catalogue, or one subfolder per genre. Repeat it to make one
    /// corpus of several folders (books are then named from the folder they share)
    #[arg(long, value_name = "DIR", required = true)]
    books: Vec<PathBuf>,

    /// Catalogue CSV with columns `file,title,author,year,genres` (genres `;`-separated), its files
    /// relative to its `--books` folder. With several `--books`, give one `--catalog` for each, in order
    #[arg(long, visible_alias = "catalogue", value_name = "FILE")]
    catalog: Vec<PathBuf>,

    /// Corpus folder to create
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Replace `--out` if it exists
    #[arg(long)]
    force: bool,

    /// Vocabulary size including `<eos>` and `<unk>` (overrides `corpus.vocab_size`)
    #[arg(long, value_name = "N")]
    vocab_size: Option<usize>,

    /// Tokenize with this model's `tokenizer.json` (an encoder's or decoder's) instead of building a
    /// vocabulary: books it never saw become a corpus that model can be trained further on or evaluated with
    #[arg(long, value_name = "FILE", conflicts_with = "vocab_size")]
    vocabulary: Option<PathBuf>,

    /// Books held out for validation (overrides `corpus.valid_books`)
    #[arg(long, value_name = "N")]
    valid_books: Option<usize>,

    /// Worker threads (default: one per core)
    #[arg(long, value_name = "N")]
    threads: Option<usize>,

    /// Print the manifest as JSON instead of the summary table
    #[arg(long)]
    json: bool,

    /// Also print how long each phase took
    #[arg(long, short = 'v')]
    verbose: bool,

    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: IngestArgs) -> anyhow::Result<()> {
    let config = args.config.resolve(&[
        ("corpus.vocab_size", args.vocab_size.map(|n| n.to_string())),
        ("corpus.valid_books", args.valid_books.map(|n| n.to_string())),
    ])?;
    if args.config.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    for catalog in &args.catalog {
        if !catalog.is_file() {
            anyhow::bail!("catalogue `{}` does not exist or is not a file", catalog.display());
        }
    }
    let shelves = shelves(args.books, args.catalog)?;
    let books_named = shelves.iter().map(|shelf| format!("`{}`", shelf.books_dir.display())).collect::<Vec<_>>();
    let request = IngestRequest {
        shelves,
        out: args.out,
        force: args.force,
        config,
        command: command_line(),
        cancel: super::cancel_on_interrupt(),
        vocabulary: args.vocabulary,
    };
    let bar = Bar::bytes();
    let report = match args.threads {
        Some(threads) => rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .context("cannot start worker threads")?
            .install(|| ingest(&request, &bar)),
        None => ingest(&request, &bar),
    }
    .map_err(|error| match error {
        // Reported as itself so that `main` exits with 130, the convention for Ctrl-C.
        IngestError::Interrupted(interrupted) => nothing_written(interrupted),
        other => anyhow::Error::new(other).context(format!("cannot ingest books from {}", books_named.join(" and "))),
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.manifest)?);
    } else {
        print_summary(&report);
    }
    if args.verbose {
        eprintln!();
        for (phase, duration) in &report.timings {
            eprintln!("{:>9.3} s  {phase}", duration.as_secs_f64());
        }
    }
    Ok(())
}

/// Each `--books` folder with its `--catalog`, paired in order: none at all, or one for each.
fn shelves(books: Vec<PathBuf>, catalogs: Vec<PathBuf>) -> anyhow::Result<Vec<Shelf>> {
    if catalogs.is_empty() {
        return Ok(books.into_iter().map(|books_dir| Shelf { books_dir, catalogue: None }).collect());
    }
    if catalogs.len() != books.len() {
        anyhow::bail!(
            "{} --books folders and {} --catalog files: give one catalogue for each books folder, in the same \
             order, or none (one subfolder per genre)",
            books.len(),
            catalogs.len()
        );
    }
    Ok(books
        .into_iter()
        .zip(catalogs)
        .map(|(books_dir, catalog)| Shelf { books_dir, catalogue: Some(catalog) })
        .collect())
}

fn print_summary(report: &IngestReport) {
    let seconds = report.elapsed.as_secs_f64();
    let megabytes = report.input_bytes as f64 / 1e6;
    println!(
        "Ingested {} book{} ({megabytes:.1} MB) into `{}` in {seconds:.2} s ({:.1} MB/s)",
        report.total.books,
        if report.total.books == 1 { "" } else { "s" },
        report.out.display(),
        megabytes / seconds.max(1e-9)
    );
    println!();
    print_table("tag", &report.by_tag, &report.total);
    if !report.by_genre.is_empty() {
        println!();
        print_table("genre (config)", &report.by_genre, &report.total);
    }
    let manifest = &report.manifest;
    let vocabulary = &manifest.vocabulary;
    println!();
    println!(
        "vocabulary: {} words (requested {}){}",
        vocabulary.size,
        vocabulary.requested_size,
        if vocabulary.size < vocabulary.requested_size { ": the corpus has fewer distinct words" } else { "" }
    );
    for (name, split) in &manifest.splits {
        let rate = if split.tokens == 0 { 0.0 } else { 100.0 * split.unknown_tokens as f64 / split.tokens as f64 };
        println!(
            "{name}: {} books, {} sentences, {} tokens, {rate:.2}% unknown",
            split.books, split.sentences, split.tokens
        );
    }
    for tag in &report.unused_tags {
        println!("warning: the config's genres use tag `{tag}`, which no book carries");
    }
    if !manifest.skipped.is_empty() {
        println!();
        println!("skipped {} files:", manifest.skipped.len());
        for skipped in &manifest.skipped {
            println!("  {}: {}", skipped.file, skipped.reason);
        }
    }
}

fn print_table(label: &str, rows: &BTreeMap<String, SummaryRow>, total: &SummaryRow) {
    let width = rows.keys().map(String::len).chain([label.len(), 5]).max().unwrap_or(5);
    println!("{label:<width$}  {:>6}  {:>10}  {:>12}", "books", "sentences", "tokens");
    for (name, row) in rows {
        println!("{name:<width$}  {:>6}  {:>10}  {:>12}", row.books, row.sentences, row.tokens);
    }
    println!("{:<width$}  {:>6}  {:>10}  {:>12}", "total", total.books, total.sentences, total.tokens);
}
