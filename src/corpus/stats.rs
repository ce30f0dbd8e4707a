//! Per-book statistics as a Parquet table, for anyone who wants to look at the corpus with a dataframe.
//!
//! This is the one module that uses polars (a large dependency): keep it that way. It also reads the text
//! column of Parquet word lists for `crate::vectors`.

use std::path::Path;

use polars::prelude::*;

use super::manifest::BookRecord;
use crate::util::Cause;
use crate::util::{IoContext, PathError};

/// Why the statistics could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("statistics `{path}`")]
    Polars {
        path: String,
        #[source]
        source: Cause,
    },
}

impl StatsError {
    fn polars(path: &Path) -> impl Fn(PolarsError) -> StatsError + '_ {
        move |error| StatsError::Polars { path: path.display().to_string(), source: error.into() }
    }
}

/// A column holding `value` of every book.
fn column<T>(name: &str, books: &[BookRecord], value: impl Fn(&BookRecord) -> T) -> Column
where
    Series: NamedFrom<Vec<T>, [T]>,
{
    Column::new(name.into(), books.iter().map(value).collect::<Vec<T>>())
}

/// Writes one row per book: file, title, author, year, genres, split, encoding, bytes, paragraphs,
/// sentences, tokens, unknown tokens and unknown rate.
pub fn write_stats(path: &Path, books: &[BookRecord]) -> Result<(), StatsError> {
    let columns = vec![
        column("id", books, |book| book.id as u32),
        column("file", books, |book| book.file.clone()),
        column("title", books, |book| book.title.clone()),
        column("author", books, |book| book.author.clone()),
        column("year", books, |book| book.year.clone()),
        column("genres", books, |book| book.tags.join(";")),
        column("split", books, |book| book.split.clone()),
        column("encoding", books, |book| book.encoding.name()),
        column("bytes", books, |book| book.bytes),
        column("paragraphs", books, |book| book.paragraphs),
        column("sentences", books, |book| book.sentences),
        column("tokens", books, |book| book.tokens),
        column("unknown_tokens", books, |book| book.unknown_tokens),
        column("unknown_rate", books, BookRecord::unknown_rate),
    ];
    let mut frame = DataFrame::new(books.len(), columns).map_err(StatsError::polars(path))?;
    let mut file = std::fs::File::create(path).path_context("create", path)?;
    ParquetWriter::new(&mut file).finish(&mut frame).map_err(StatsError::polars(path))?;
    file.sync_all().path_context("sync", path)?;
    Ok(())
}

/// The first text column of a Parquet file, in row order (word lists that ship as Parquet).
pub fn read_string_column(path: &Path) -> Result<Vec<String>, StatsError> {
    let file = std::fs::File::open(path).path_context("open", path)?;
    let frame = ParquetReader::new(file).finish().map_err(StatsError::polars(path))?;
    let column = frame
        .columns()
        .iter()
        .find(|column| column.dtype() == &DataType::String)
        .ok_or_else(|| StatsError::Polars { path: path.display().to_string(), source: "no text column".into() })?;
    let values = column.str().map_err(StatsError::polars(path))?;
    Ok(values.iter().map(|value| value.unwrap_or_default().to_string()).collect())
}

/// Reads the `file` column back (for tests and tools).
pub fn read_stats_files(path: &Path) -> Result<Vec<String>, StatsError> {
    let file = std::fs::File::open(path).path_context("open", path)?;
    let frame = ParquetReader::new(file).finish().map_err(StatsError::polars(path))?;
    let files = frame.column("file").and_then(|column| column.str()).map_err(StatsError::polars(path))?;
    Ok(files.iter().map(|file| file.unwrap_or_default().to_string()).collect())
}
