//! `storytool expand-vocab`: arguments, the call into `storytool::vectors::expand`, and the report.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use storytool::encoder::expanded::TableType;
use storytool::vectors::expand::{ExpandError, ExpandRequest, expand_vocab};
use storytool::vectors::readers::VectorFormat;

use super::progress_bar::Bar;
use super::{cancel_on_interrupt, command_line, nothing_written};

/// Give every word of a word-vector file (word2vec, GloVe, fastText, .npy) an encoder word embedding
/// through a linear map fitted on the words both share, as skip-thoughts did with word2vec. The table is
/// written memory-mappable; `storytool encode --expanded-vocab` uses it for words outside the vocabulary.
#[derive(Debug, Args)]
pub struct ExpandVocabArgs {
    /// Encoder folder written by `storytool train-encoder`
    #[arg(long, value_name = "DIR")]
    encoder: PathBuf,

    /// Word-vector file
    #[arg(long, value_name = "FILE")]
    vectors: PathBuf,

    /// Its layout (default: from the extension: .bin word2vec binary, .vec word2vec text, .npy table, else GloVe)
    #[arg(long, value_enum)]
    format: Option<VectorFormat>,

    /// Word list of an `npy` table: text (one word a line) or Parquet (default: `<table>.words.txt`)
    #[arg(long, value_name = "FILE")]
    words: Option<PathBuf>,

    /// Folder to write the expanded vocabulary to
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Number type of the table (f16 halves its size)
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    dtype: Dtype,

    /// Replace `--out` if it exists
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Dtype {
    F32,
    F16,
}

pub fn run(args: ExpandVocabArgs) -> anyhow::Result<()> {
    let format = args.format.unwrap_or_else(|| VectorFormat::guess(&args.vectors));
    let request = ExpandRequest {
        encoder_dir: args.encoder,
        vectors: args.vectors,
        format,
        words: args.words,
        out: args.out,
        dtype: match args.dtype {
            Dtype::F32 => TableType::F32,
            Dtype::F16 => TableType::F16,
        },
        force: args.force,
        command: command_line(),
        cancel: cancel_on_interrupt(),
    };
    let bar = Bar::steps();
    let report = expand_vocab(&request, &bar).map_err(|error| match error {
        ExpandError::Interrupted(interrupted) => nothing_written(interrupted),
        other => anyhow::Error::new(other),
    });
    let report =
        report.with_context(|| format!("cannot expand the vocabulary with `{}`", request.vectors.display()))?;
    let manifest = &report.manifest;
    println!(
        "Expanded to {} words of {} dimensions ({}) in `{}` in {:.1} s",
        manifest.rows,
        manifest.dim,
        request.dtype.file_name(),
        report.out.display(),
        report.elapsed.as_secs_f64()
    );
    println!(
        "fit on {} shared words: R² {:.4}; on {} held-out words: R² {:.4}, mean cosine {:.4}",
        manifest.fit_words,
        manifest.r_squared,
        manifest.heldout_words,
        manifest.heldout_r_squared,
        manifest.heldout_cosine
    );
    if manifest.skipped_words > 0 {
        println!("skipped {} words (duplicates after lowercasing, or line breaks)", manifest.skipped_words);
    }
    Ok(())
}
