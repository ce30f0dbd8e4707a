//! The expanded vocabulary table on disk: every word of a word-vector file with an encoder embedding.
//!
//! A folder holds `embeddings.f32` or `embeddings.f16` (row-major `rows x dim`, little-endian), `words.txt`
//! (row i's word on line i) and `manifest.json`. The table is memory-mapped: the paper-sized table is
//! 2.5 GB in f32, and the old tools crashed with MemoryError loading it whole.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::util::Cause;
use crate::util::{IoContext, PathError};

pub const WORDS_FILE: &str = "words.txt";
pub const MANIFEST_FILE: &str = "manifest.json";

/// How the table stores its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableType {
    F32,
    F16,
}

impl TableType {
    pub fn file_name(self) -> &'static str {
        match self {
            TableType::F32 => "embeddings.f32",
            TableType::F16 => "embeddings.f16",
        }
    }

    pub fn width(self) -> usize {
        match self {
            TableType::F32 => 4,
            TableType::F16 => 2,
        }
    }
}

/// `manifest.json` of an expanded vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpandedManifest {
    pub format: String,
    pub created_by: crate::corpus::manifest::CreatedBy,
    pub dtype: TableType,
    pub rows: usize,
    pub dim: usize,
    /// The encoder whose embedding space this is, by vocabulary hash and dimensions.
    pub encoder_vocabulary_hash: String,
    pub encoder_word_dim: usize,
    pub vectors_file: String,
    pub vectors_dim: usize,
    pub shared_words: usize,
    pub fit_words: usize,
    pub heldout_words: usize,
    pub r_squared: f64,
    pub heldout_r_squared: f64,
    pub heldout_cosine: f64,
    /// Words of the vectors file left out, and why (duplicates after lowercasing, words with line breaks).
    pub skipped_words: usize,
}

/// Why an expanded table could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ExpandedError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("`{path}` is damaged")]
    Damaged {
        path: PathBuf,
        #[source]
        source: Cause,
    },
}

/// An opened table: the word index in memory, the numbers memory-mapped.
#[derive(Debug)]
pub struct ExpandedVocab {
    pub manifest: ExpandedManifest,
    index: HashMap<String, u32>,
    table: memmap2::Mmap,
}

impl ExpandedVocab {
    pub fn open(dir: &Path) -> Result<ExpandedVocab, ExpandedError> {
        let damaged = |path: PathBuf, source: Cause| ExpandedError::Damaged { path, source };
        let manifest_path = dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&manifest_path).path_context("read", &manifest_path)?;
        let manifest: ExpandedManifest =
            serde_json::from_slice(&bytes).map_err(|error| damaged(manifest_path.clone(), error.into()))?;
        let table_path = dir.join(manifest.dtype.file_name());
        let file = std::fs::File::open(&table_path).path_context("open", &table_path)?;
        // SAFETY: the folder is written once through a staging folder and never modified in place.
        let table = unsafe { memmap2::Mmap::map(&file) }.path_context("memory-map", &table_path)?;
        let expected = manifest.rows * manifest.dim * manifest.dtype.width();
        if table.len() != expected {
            return Err(damaged(table_path, Cause::from(format!("{} bytes, expected {expected}", table.len()))));
        }
        let words_path = dir.join(WORDS_FILE);
        let words = std::fs::read_to_string(&words_path).path_context("read", &words_path)?;
        let index: HashMap<String, u32> =
            words.lines().enumerate().map(|(row, word)| (word.to_string(), row as u32)).collect();
        if words.lines().count() != manifest.rows {
            return Err(damaged(
                words_path,
                Cause::from(format!("{} words, expected {}", words.lines().count(), manifest.rows)),
            ));
        }
        Ok(ExpandedVocab { manifest, index, table })
    }

    pub fn len(&self) -> usize {
        self.manifest.rows
    }

    pub fn is_empty(&self) -> bool {
        self.manifest.rows == 0
    }

    /// The embedding of `word`, if the table has it.
    pub fn embedding(&self, word: &str) -> Option<Vec<f32>> {
        let row = *self.index.get(word)? as usize;
        let dim = self.manifest.dim;
        let width = self.manifest.dtype.width();
        let bytes = &self.table[row * dim * width..(row + 1) * dim * width];
        Some(match self.manifest.dtype {
            TableType::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            TableType::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        })
    }
}
