//! Per-book statistics as a Parquet table, for anyone who wants to look at the corpus with a dataframe.
//!
//! This is the one module that uses polars (a large dependency): keep it that way.

use std::path::Path;

use polars::prelude::*;

use super::manifest::BookRecord;
use crate::util::{IoContext, PathError};

/// Why the statistics could not be written.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("cannot write statistics `{path}`: {message}")]
    Polars { path: String, message: String },
}

/// Writes one row per book: file, title, author, year, genres, split, encoding, bytes, paragraphs,
/// sentences, tokens, unknown tokens and unknown rate.
pub fn write_stats(path: &Path, books: &[BookRecord]) -> Result<(), StatsError> {
    let polars_error = |error: PolarsError| StatsError::Polars {
        path: path.display().to_string(),
        message: error.to_string(),
    };
    let text = |values: Vec<Option<String>>, name: &str| Column::new(name.into(), values);
    let mut frame = DataFrame::new(
        books.len(),
        vec![
            Column::new(
                "id".into(),
                books.iter().map(|book| book.id as u32).collect::<Vec<_>>(),
            ),
            Column::new(
                "file".into(),
                books
                    .iter()
                    .map(|book| book.file.clone())
                    .collect::<Vec<_>>(),
            ),
            text(
                books.iter().map(|book| book.title.clone()).collect(),
                "title",
            ),
            text(
                books.iter().map(|book| book.author.clone()).collect(),
                "author",
            ),
            text(books.iter().map(|book| book.year.clone()).collect(), "year"),
            Column::new(
                "genres".into(),
                books
                    .iter()
                    .map(|book| book.tags.join(";"))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "split".into(),
                books
                    .iter()
                    .map(|book| book.split.clone())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "encoding".into(),
                books
                    .iter()
                    .map(|book| book.encoding.name())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "bytes".into(),
                books.iter().map(|book| book.bytes).collect::<Vec<_>>(),
            ),
            Column::new(
                "paragraphs".into(),
                books.iter().map(|book| book.paragraphs).collect::<Vec<_>>(),
            ),
            Column::new(
                "sentences".into(),
                books.iter().map(|book| book.sentences).collect::<Vec<_>>(),
            ),
            Column::new(
                "tokens".into(),
                books.iter().map(|book| book.tokens).collect::<Vec<_>>(),
            ),
            Column::new(
                "unknown_tokens".into(),
                books
                    .iter()
                    .map(|book| book.unknown_tokens)
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "unknown_rate".into(),
                books
                    .iter()
                    .map(BookRecord::unknown_rate)
                    .collect::<Vec<_>>(),
            ),
        ],
    )
    .map_err(polars_error)?;
    let mut file = std::fs::File::create(path).path_context("create", path)?;
    ParquetWriter::new(&mut file)
        .finish(&mut frame)
        .map_err(polars_error)?;
    file.sync_all().path_context("sync", path)?;
    Ok(())
}

/// Reads the statistics back (for tests and tools): the number of rows and the `file` column.
pub fn read_stats_files(path: &Path) -> Result<Vec<String>, StatsError> {
    let polars_error = |error: PolarsError| StatsError::Polars {
        path: path.display().to_string(),
        message: error.to_string(),
    };
    let file = std::fs::File::open(path).path_context("open", path)?;
    let frame = ParquetReader::new(file).finish().map_err(polars_error)?;
    let files = frame
        .column("file")
        .map_err(polars_error)?
        .str()
        .map_err(polars_error)?;
    Ok(files
        .iter()
        .map(|file| file.unwrap_or_default().to_string())
        .collect())
}
