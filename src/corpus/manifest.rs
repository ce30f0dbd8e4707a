//! What a corpus folder holds and what made it: `manifest.json`, `books.json` and `genres.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::decode::Encoding;
use super::discover::Skipped;
use crate::config::Config;

/// Names of the files in a corpus folder.
pub const MANIFEST_FILE: &str = "manifest.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const BOOKS_FILE: &str = "books.json";
pub const GENRES_FILE: &str = "genres.json";
pub const STATS_FILE: &str = "stats.parquet";

/// Identifies the folder layout; bumped when it changes incompatibly.
pub const CORPUS_FORMAT: &str = "storytool-corpus";
pub const CORPUS_FORMAT_VERSION: u32 = 1;

/// The split names, in the order they are written.
pub const SPLITS: [&str; 2] = ["train", "valid"];

/// The tool and command that made an artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedBy {
    pub tool: String,
    pub version: String,
    pub git_revision: Option<String>,
    /// The command line, as given.
    pub command: Vec<String>,
}

impl CreatedBy {
    pub fn now(command: Vec<String>) -> CreatedBy {
        CreatedBy {
            tool: "storytool".into(),
            version: crate::VERSION.into(),
            git_revision: crate::GIT_REVISION.map(String::from),
            command,
        }
    }
}

/// An input file and its content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    pub path: String,
    pub bytes: u64,
    pub blake3: String,
}

impl InputFile {
    /// Reads `path` and records its size and hash.
    pub fn of(path: &std::path::Path) -> Result<InputFile, crate::util::PathError> {
        let bytes = std::fs::read(path).map_err(|error| crate::util::PathError::new("read", path, error))?;
        Ok(InputFile {
            path: path.display().to_string(),
            bytes: bytes.len() as u64,
            blake3: crate::util::hash::content_hash(&bytes),
        })
    }
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusManifest {
    pub format: String,
    pub format_version: u32,
    pub created_by: CreatedBy,
    /// The settings of the run (older manifests hold the trainers' schedule keys flat; both load).
    #[serde(deserialize_with = "crate::config::config_with_lifted_schedule")]
    pub config: Config,
    pub inputs: CorpusInputs,
    pub vocabulary: VocabularyInfo,
    pub splits: BTreeMap<String, SplitCounts>,
    pub skipped: Vec<Skipped>,
}

/// The books folder, the catalogue and every file read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusInputs {
    /// The folder every book's `file` is relative to: the books folder, or the one several share.
    pub books_dir: String,
    /// The catalogue of a corpus of one books folder.
    pub catalogue: Option<InputFile>,
    /// The books folders and catalogues of a corpus of several (empty for one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shelves: Vec<ShelfInput>,
    pub files: Vec<InputFile>,
}

/// One of several books folders a corpus was made from, as given, with its catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShelfInput {
    pub books_dir: String,
    pub catalogue: Option<InputFile>,
}

/// The vocabulary file and its identity, which later stages check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VocabularyInfo {
    pub file: String,
    /// Real size, reserved ids included; may be below `requested_size` for a small corpus.
    pub size: usize,
    pub requested_size: usize,
    pub lowercase: bool,
    pub hash: String,
}

/// Counts of one split.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitCounts {
    pub books: u64,
    pub paragraphs: u64,
    pub sentences: u64,
    pub tokens: u64,
    pub unknown_tokens: u64,
}

/// One book of the corpus, with its statistics (`books.json`, and `stats.parquet` as a table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookRecord {
    /// Position in `books.json`.
    pub id: usize,
    pub file: String,
    pub title: Option<String>,
    pub author: Option<String>,
    pub year: Option<String>,
    pub tags: Vec<String>,
    pub split: String,
    /// The book's index inside its split's `books.u64`.
    pub index_in_split: usize,
    pub encoding: Encoding,
    pub bytes: u64,
    pub blake3: String,
    pub paragraphs: u64,
    pub sentences: u64,
    pub tokens: u64,
    pub unknown_tokens: u64,
}

impl BookRecord {
    pub fn unknown_rate(&self) -> f64 {
        if self.tokens == 0 { 0.0 } else { self.unknown_tokens as f64 / self.tokens as f64 }
    }
}

/// `genres.json`: which books carry each catalogue tag and each configured genre.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenreIndex {
    /// Catalogue tag -> book ids.
    pub tags: BTreeMap<String, Vec<usize>>,
    /// Configured genre -> its tags and book ids.
    pub genres: BTreeMap<String, GenreBooks>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenreBooks {
    pub tags: Vec<String>,
    pub books: Vec<usize>,
}

impl GenreIndex {
    /// Builds the index from the books' tags and the configured genres.
    pub fn build(books: &[BookRecord], genres: &BTreeMap<String, Vec<String>>) -> GenreIndex {
        let mut index = GenreIndex::default();
        for book in books {
            for tag in &book.tags {
                index.tags.entry(tag.clone()).or_default().push(book.id);
            }
        }
        for (genre, tags) in genres {
            let tags: Vec<String> = tags.iter().map(|tag| tag.trim().to_lowercase()).collect();
            let books = books
                .iter()
                .filter(|book| book.tags.iter().any(|tag| tags.contains(tag)))
                .map(|book| book.id)
                .collect();
            index.genres.insert(genre.clone(), GenreBooks { tags, books });
        }
        index
    }
}
