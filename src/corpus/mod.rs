//! Novels into a corpus: find, decode, clean, split, tokenize, count and write (`storytool ingest`), and
//! read the result back ([`Corpus::open`]).
//!
//! Data flows `discover` -> `decode` -> `book` (`gutenberg` -> `paragraphs` + `normalise` -> `sentences` ->
//! tokenize) -> `ingest` (vocabulary, splits) -> `streams` + `manifest` + `stats`.

pub mod book;
pub mod decode;
pub mod discover;
pub mod gutenberg;
pub mod ingest;
pub mod interner;
pub mod manifest;
pub mod normalise;
pub mod paragraphs;
pub mod reader;
pub mod sentences;
pub mod stats;
pub mod streams;
#[cfg(test)]
mod test_texts;

pub use ingest::{IngestError, IngestReport, IngestRequest, ingest};
pub use reader::{Corpus, CorpusError};
