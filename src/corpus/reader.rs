//! Opening a corpus folder written by `storytool ingest`, for the stages that train on it.

use std::path::{Path, PathBuf};

use super::manifest::*;
use super::streams::{SplitStreams, StreamError};
use crate::text::{Vocabulary, VocabularyError};
use crate::util::Cause;
use crate::util::{IoContext, PathError};

/// Why a corpus folder could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("`{path}` is not a valid corpus file")]
    Format {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error(transparent)]
    Vocabulary(#[from] VocabularyError),
    #[error(transparent)]
    Streams(#[from] StreamError),
    #[error(
        "corpus `{dir}` has vocabulary hash {found}, but its manifest records {expected}\n\nhint: run `storytool ingest` again"
    )]
    VocabularyMismatch { dir: PathBuf, expected: String, found: String },
}

/// An opened corpus: its manifest, vocabulary, book table and memory-mapped splits.
#[derive(Debug)]
pub struct Corpus {
    pub dir: PathBuf,
    pub manifest: CorpusManifest,
    pub vocabulary: Vocabulary,
    pub books: Vec<BookRecord>,
    pub genres: GenreIndex,
    pub train: SplitStreams,
    pub valid: SplitStreams,
}

impl Corpus {
    /// Opens `dir`, checking its format version and that the vocabulary matches the manifest.
    pub fn open(dir: &Path) -> Result<Corpus, CorpusError> {
        let manifest: CorpusManifest = read_json(&dir.join(MANIFEST_FILE))?;
        if manifest.format != CORPUS_FORMAT || manifest.format_version != CORPUS_FORMAT_VERSION {
            return Err(CorpusError::Format {
                path: dir.join(MANIFEST_FILE),
                source: Cause::from(format!(
                    "format {} version {}, this storytool reads {CORPUS_FORMAT} version {CORPUS_FORMAT_VERSION}",
                    manifest.format, manifest.format_version
                )),
            });
        }
        let vocabulary = Vocabulary::load(&dir.join(&manifest.vocabulary.file))?;
        if vocabulary.content_hash() != manifest.vocabulary.hash {
            return Err(CorpusError::VocabularyMismatch {
                dir: dir.to_path_buf(),
                expected: manifest.vocabulary.hash.clone(),
                found: vocabulary.content_hash(),
            });
        }
        Ok(Corpus {
            dir: dir.to_path_buf(),
            books: read_json(&dir.join(BOOKS_FILE))?,
            genres: read_json(&dir.join(GENRES_FILE))?,
            train: SplitStreams::open(&dir.join("train"))?,
            valid: SplitStreams::open(&dir.join("valid"))?,
            manifest,
            vocabulary,
        })
    }

    /// The streams of the split called `name` (`train` or `valid`).
    pub fn split(&self, name: &str) -> Option<&SplitStreams> {
        match name {
            "train" => Some(&self.train),
            "valid" => Some(&self.valid),
            _ => None,
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CorpusError> {
    let bytes = std::fs::read(path).path_context("read", path)?;
    serde_json::from_slice(&bytes)
        .map_err(|error| CorpusError::Format { path: path.to_path_buf(), source: error.into() })
}
