//! `storytool expand-vocab`: give every word of a word-vector file an encoder word embedding.
//!
//! Two streaming passes over the vectors file. The first collects the words the encoder's vocabulary also
//! has (lowercased when the vocabulary is) and fits the linear map from word-vector space to embedding space
//! on nine in ten of them, keeping the tenth (chosen by a hash of the word) to measure R² and cosine on words
//! the fit never saw. The second maps every word in batches and appends the rows to the table file. Memory
//! holds one batch, the fit's small matrices and the set of words written (to drop duplicates).

use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::readers::{VectorFormat, VectorsError, open_vectors};
use super::regression::{FitQuality, NormalEquations, RegressionError};
use crate::corpus::manifest::CreatedBy;
use crate::encoder::expanded::{ExpandedManifest, MANIFEST_FILE, TableType, WORDS_FILE};
use crate::encoder::read_manifest_and_vocabulary;
use crate::encoder::{ENCODER_FILE, EncoderManifest};
use crate::progress::Progress;
use crate::text::Vocabulary;
use crate::util::Cause;
use crate::util::atomic::{StagingDir, StagingError, write_json};
use crate::util::cancel::{CancelFlag, Interrupted};
use crate::util::{IoContext, PathError};

/// Rows mapped per matrix multiplication in the second pass.
const BATCH_ROWS: usize = 4096;

/// What to expand and where.
#[derive(Debug, Clone)]
pub struct ExpandRequest {
    pub encoder_dir: PathBuf,
    pub vectors: PathBuf,
    pub format: VectorFormat,
    /// The word list of an `npy` table.
    pub words: Option<PathBuf>,
    pub out: PathBuf,
    pub dtype: TableType,
    pub force: bool,
    pub command: Vec<String>,
    pub cancel: CancelFlag,
}

/// Why expansion failed.
#[derive(Debug, thiserror::Error)]
pub enum ExpandError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Vectors(#[from] VectorsError),
    #[error(transparent)]
    Regression(#[from] RegressionError),
    #[error(transparent)]
    Staging(#[from] StagingError),
    #[error("cannot use the encoder in `{dir}`")]
    Encoder {
        dir: PathBuf,
        #[source]
        source: Cause,
    },
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// What expansion did.
#[derive(Debug, Clone)]
pub struct ExpandReport {
    pub out: PathBuf,
    pub manifest: ExpandedManifest,
    pub elapsed: Duration,
}

/// Builds the expanded vocabulary described by `request`.
pub fn expand_vocab(request: &ExpandRequest, progress: &dyn Progress) -> Result<ExpandReport, ExpandError> {
    let started = Instant::now();
    let staging = StagingDir::new(&request.out, request.force)?;
    let (encoder, vocabulary, embeddings) = load_encoder(&request.encoder_dir)?;
    let word_dim = encoder.word_dim;
    let key = |word: &str| if vocabulary.lowercase() { word.to_lowercase() } else { word.to_string() };

    // Pass 1: fit on shared words, hold one in ten out.
    let mut reader = open_vectors(&request.vectors, request.format, request.words.as_deref())?;
    let in_dim = reader.dim();
    progress.set_total(reader.expected_len().map_or(0, |count| 2 * count as u64));
    progress.set_message("fitting");
    let mut equations = NormalEquations::new(in_dim, word_dim);
    let mut heldout: Vec<(Vec<f32>, u32)> = Vec::new();
    let mut seen = HashSet::new();
    let mut vector = Vec::new();
    let mut n_read = 0u64;
    while let Some(word) = reader.next_into(&mut vector)? {
        n_read += 1;
        if n_read % 65_536 == 0 {
            progress.advance(65_536);
            request.cancel.check()?;
        }
        let word = key(&word);
        if !vocabulary.contains(&word) || !seen.insert(word.clone()) {
            continue;
        }
        let id = vocabulary.id(&word);
        if blake3::hash(word.as_bytes()).as_bytes()[0] < 26 {
            heldout.push((vector.clone(), id));
        } else {
            equations.add(&vector, embedding_row(&embeddings, id, word_dim));
        }
    }
    let map = equations.solve()?;
    let fit_words = seen.len() - heldout.len();
    // In-sample quality is measured in pass 2, which sees the fitted words' vectors again.
    let mut fit_quality = FitQuality::default();
    let mut heldout_quality = FitQuality::default();
    let heldout_ids: HashSet<u32> = heldout.iter().map(|(_, id)| *id).collect();
    let mut predicted = Vec::new();
    for (vector, id) in &heldout {
        map.apply(vector, 1, &mut predicted);
        heldout_quality.add(&predicted, embedding_row(&embeddings, *id, word_dim));
    }

    // Pass 2: map every word and write the table.
    progress.set_message("expanding");
    let mut reader = open_vectors(&request.vectors, request.format, request.words.as_deref())?;
    let table_path = staging.path().join(request.dtype.file_name());
    let words_path = staging.path().join(WORDS_FILE);
    let mut table =
        BufWriter::with_capacity(1 << 22, std::fs::File::create(&table_path).path_context("create", &table_path)?);
    let mut words_out = BufWriter::new(std::fs::File::create(&words_path).path_context("create", &words_path)?);
    let mut written = HashSet::new();
    let (mut batch, mut batch_words) = (Vec::with_capacity(BATCH_ROWS * in_dim), Vec::with_capacity(BATCH_ROWS));
    let mut skipped_words = 0;
    let mut rows = 0;
    let mut flush = |batch: &mut Vec<f32>, batch_words: &mut Vec<String>| -> Result<(), ExpandError> {
        if batch_words.is_empty() {
            return Ok(());
        }
        map.apply(batch, batch_words.len(), &mut predicted);
        for (row, word) in batch_words.iter().enumerate() {
            let values = &predicted[row * word_dim..(row + 1) * word_dim];
            let id = vocabulary.id(word);
            if vocabulary.contains(word) && !heldout_ids.contains(&id) {
                fit_quality.add(values, embedding_row(&embeddings, id, word_dim));
            }
            match request.dtype {
                TableType::F32 => {
                    for value in values {
                        table.write_all(&value.to_le_bytes()).path_context("write", &table_path)?;
                    }
                }
                TableType::F16 => {
                    for value in values {
                        table
                            .write_all(&half::f16::from_f32(*value).to_le_bytes())
                            .path_context("write", &table_path)?;
                    }
                }
            }
            writeln!(words_out, "{word}").path_context("write", &words_path)?;
        }
        rows += batch_words.len();
        progress.advance(batch_words.len() as u64);
        batch.clear();
        batch_words.clear();
        Ok(())
    };
    while let Some(word) = reader.next_into(&mut vector)? {
        let word = key(&word);
        if word.contains(['\n', '\r']) || word.is_empty() || !written.insert(word.clone()) {
            skipped_words += 1;
            continue;
        }
        batch.extend_from_slice(&vector);
        batch_words.push(word);
        if batch_words.len() == BATCH_ROWS {
            request.cancel.check()?;
            flush(&mut batch, &mut batch_words)?;
        }
    }
    flush(&mut batch, &mut batch_words)?;
    drop(flush);
    progress.finish();
    let table = table.into_inner().map_err(|error| PathError::new("write", &table_path, error.into_error()))?;
    table.sync_all().path_context("sync", &table_path)?;
    words_out.flush().path_context("write", &words_path)?;

    let manifest = ExpandedManifest {
        format: "storytool-expanded-vocabulary".into(),
        created_by: CreatedBy::now(request.command.clone()),
        dtype: request.dtype,
        rows,
        dim: word_dim,
        encoder_vocabulary_hash: encoder.vocabulary_hash.clone(),
        encoder_word_dim: word_dim,
        vectors_file: request.vectors.display().to_string(),
        vectors_dim: in_dim,
        shared_words: seen.len(),
        fit_words,
        heldout_words: heldout.len(),
        r_squared: fit_quality.r_squared(),
        heldout_r_squared: heldout_quality.r_squared(),
        heldout_cosine: heldout_quality.mean_cosine(),
        skipped_words,
    };
    write_json(&staging.path().join(MANIFEST_FILE), &manifest)?;
    request.cancel.check()?;
    let out = staging.commit()?;
    Ok(ExpandReport { out, manifest, elapsed: started.elapsed() })
}

fn embedding_row(embeddings: &[f32], id: u32, word_dim: usize) -> &[f32] {
    &embeddings[id as usize * word_dim..(id as usize + 1) * word_dim]
}

/// The encoder's manifest, vocabulary and word-embedding table (`vocabulary x word_dim`, row-major).
pub fn load_encoder(dir: &Path) -> Result<(EncoderManifest, Vocabulary, Vec<f32>), ExpandError> {
    let error = |source: Cause| ExpandError::Encoder { dir: dir.to_path_buf(), source };
    let (manifest, vocabulary) = read_manifest_and_vocabulary(dir).map_err(|e| error(e.into()))?;
    let weights_path = dir.join(ENCODER_FILE);
    let bytes = std::fs::read(&weights_path).path_context("read", &weights_path)?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| error(e.into()))?;
    let table =
        tensors.tensor("embedding.weight").map_err(|e| error(Cause::from(format!("no embedding table: {e}"))))?;
    if table.dtype() != safetensors::Dtype::F32 || table.shape() != [manifest.vocabulary_size, manifest.word_dim] {
        return Err(error(Cause::from(format!(
            "the embedding table is {:?} {:?}, expected F32 [{}, {}]",
            table.dtype(),
            table.shape(),
            manifest.vocabulary_size,
            manifest.word_dim
        ))));
    }
    let embeddings = table.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok((manifest, vocabulary, embeddings))
}
