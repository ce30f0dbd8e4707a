//! `storytool encode`: sentences in, skip-thought vectors out, optionally with their nearest corpus sentences.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use super::device_args::DeviceArgs;
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use storytool::corpus::Corpus;
use storytool::encoder::search::{nearest_sentences, sample_sentences};
use storytool::encoder::vectors_file::write_sentence_vectors;
use storytool::encoder::{CombinedEncoder, SentenceEncoder};

/// Encode sentences (one per line, from `--file` or standard input) into skip-thought vectors with an
/// encoder trained by `storytool train-encoder`. Given twice (a uni-skip and a bi-skip encoder of one
/// vocabulary), `--encoder` gives combine-skip vectors: the two concatenated.
#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// Encoder folder written by `storytool train-encoder` (repeat to concatenate encoders: combine-skip)
    #[arg(long, value_name = "DIR", required = true)]
    encoder: Vec<PathBuf>,

    /// Expanded vocabulary from `storytool expand-vocab`, for words outside the encoder's vocabulary
    #[arg(long, value_name = "DIR")]
    expanded_vocab: Option<PathBuf>,

    /// Read sentences from this file, one per line (default: standard input)
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,

    /// Write vectors here (required for `--format safetensors`; default: standard output)
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Print each sentence's N nearest sentences of `--corpus` instead of vectors
    #[arg(long, value_name = "N", requires = "corpus")]
    neighbours: Option<usize>,

    /// Corpus to search with `--neighbours` (its training books)
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,

    /// How many corpus sentences to search, spread evenly over the corpus
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    search_sentences: usize,

    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One JSON object per line: `{"sentence": ..., "vector": [...], "unknown_words": [...]}`
    Jsonl,
    /// One `vectors` tensor, `[sentences, dim]` f32
    Safetensors,
}

pub fn run(args: EncodeArgs) -> anyhow::Result<()> {
    if args.format == Format::Safetensors && args.output.is_none() {
        bail!("`--format safetensors` writes a binary file: give it a path with `--output FILE`");
    }
    if args.expanded_vocab.is_some() && args.encoder.len() > 1 {
        bail!("`--expanded-vocab` maps into one encoder's word space: use it with a single `--encoder`");
    }
    let device = args.device.one(None, "encode")?;
    let mut parts = Vec::new();
    for dir in &args.encoder {
        let mut encoder = SentenceEncoder::load(dir, &device)
            .with_context(|| format!("cannot load the encoder in `{}`", dir.display()))?;
        if let Some(expanded) = &args.expanded_vocab {
            encoder = encoder
                .with_expanded_vocab(expanded)
                .with_context(|| format!("cannot use the expanded vocabulary in `{}`", expanded.display()))?;
        }
        parts.push(encoder);
    }
    let encoder = CombinedEncoder::new(parts)?;
    let sentences = read_sentences(args.file.as_ref())?;
    if sentences.is_empty() {
        bail!("no sentences to encode: give one per line");
    }
    let encoded = encoder.encode(&sentences);

    if let (Some(n), Some(corpus)) = (args.neighbours, &args.corpus) {
        let corpus = Corpus::open(corpus).with_context(|| format!("cannot open corpus `{}`", corpus.display()))?;
        let indices = sample_sentences(&corpus, args.search_sentences);
        eprintln!("encoding {} corpus sentences to search...", indices.len());
        let neighbours = nearest_sentences(&encoder, &corpus, &indices, &encoded, n)?;
        let mut out = std::io::stdout().lock();
        for (sentence, nearest) in sentences.iter().zip(&neighbours) {
            writeln!(out, "{sentence}")?;
            for neighbour in nearest {
                writeln!(out, "  {:.3}  {}", neighbour.score, neighbour.sentence)?;
            }
        }
        return Ok(());
    }

    match args.format {
        Format::Jsonl => {
            let mut out: Box<dyn Write> = match &args.output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path).with_context(|| format!("cannot create `{}`", path.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            for (sentence, encoded) in sentences.iter().zip(&encoded) {
                let line = serde_json::json!({
                    "sentence": sentence,
                    "vector": encoded.vector,
                    "unknown_words": encoded.unknown_words,
                });
                writeln!(out, "{line}")?;
            }
            out.flush()?;
        }
        Format::Safetensors => {
            let path = args.output.as_ref().expect("checked above");
            let hash = &encoder.first().manifest().vocabulary_hash;
            write_sentence_vectors(path, &encoded, encoder.dim(), hash)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
            eprintln!("wrote {} vectors of {} dimensions to `{}`", encoded.len(), encoder.dim(), path.display());
        }
    }
    Ok(())
}

fn read_sentences(file: Option<&PathBuf>) -> anyhow::Result<Vec<String>> {
    let lines: Vec<String> = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?
            .lines()
            .map(String::from)
            .collect(),
        None => std::io::stdin().lock().lines().collect::<Result<_, _>>().context("cannot read standard input")?,
    };
    Ok(lines.into_iter().map(|line| line.trim().to_string()).filter(|line| !line.is_empty()).collect())
}
