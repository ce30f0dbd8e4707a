//! A trained skip-thought encoder, loaded from the folder `storytool train-encoder` wrote, turning sentences
//! into vectors.
//!
//! The folder is self-contained: `manifest.json` (dimensions, vocabulary hash), `tokenizer.json` and
//! `encoder.safetensors` (embedding and encoder GRU). A vocabulary whose hash differs from the manifest's is
//! refused. Sentences are normalised like corpus text, cut to the training length and closed with `<eos>`.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor, TensorData};

use serde::{Deserialize, Serialize};

use crate::config::EncoderConfig;
use crate::corpus::manifest::CreatedBy;
use crate::corpus::normalise::normalise_typography;
use crate::encoder::expanded::{ExpandedError, ExpandedVocab};
use crate::model::batch::PaddedBatch;
use crate::model::skip_thought::{SkipThought, SkipThoughtConfig, TripleTensors};
use crate::text::{UNK_ID, Vocabulary, VocabularyError};
use crate::util::Cause;
use crate::util::values::f32_values;
use crate::util::{IoContext, PathError};

pub mod expanded;
pub mod search;
pub mod vectors_file;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const ENCODER_FILE: &str = "encoder.safetensors";
/// The corpus vocabulary, copied so that an encoder folder is all `encode` needs.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const ENCODER_FORMAT: &str = "storytool-skip-thought-encoder";

/// `manifest.json` of a trained encoder: what later stages check before using it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncoderManifest {
    pub format: String,
    pub created_by: CreatedBy,
    pub corpus: String,
    pub vocabulary_size: usize,
    pub vocabulary_hash: String,
    pub word_dim: usize,
    pub hidden_dim: usize,
    pub max_tokens: usize,
    pub steps: u64,
    pub final_train_loss: Option<f32>,
    pub final_valid_loss: Option<f32>,
    /// The settings it was trained with (older manifests hold the schedule keys flat; both load).
    #[serde(deserialize_with = "crate::config::section_with_lifted_schedule")]
    pub config: EncoderConfig,
}

/// Sentences encoded per forward pass.
const BATCH: usize = 256;

/// Why an encoder folder could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("`{path}` is not a storytool encoder manifest")]
    Manifest {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error(transparent)]
    Vocabulary(#[from] VocabularyError),
    #[error("the vocabulary in `{dir}` has hash {found}, but the encoder was trained on {expected}")]
    VocabularyMismatch { dir: PathBuf, expected: String, found: String },
    #[error("cannot load the weights `{path}`")]
    Weights {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error(transparent)]
    Expanded(#[from] ExpandedError),
    #[error(
        "the expanded vocabulary in `{dir}` was made for an encoder with vocabulary {found} and {found_dim}-d words, but this encoder has {expected} and {expected_dim}-d words"
    )]
    ExpandedMismatch { dir: PathBuf, expected: String, found: String, expected_dim: usize, found_dim: usize },
    #[error("encoders trained on different vocabularies ({first} and {other}) cannot be combined")]
    CombineMismatch { first: String, other: String },
}

/// A loaded encoder, ready for inference on the CPU.
#[derive(Debug)]
pub struct SentenceEncoder {
    model: SkipThought,
    vocabulary: Vocabulary,
    manifest: EncoderManifest,
    device: Device,
    /// Words beyond the vocabulary, and the model's own word table to mix with them.
    expanded: Option<(ExpandedVocab, Vec<f32>)>,
}

/// One sentence's vector and the words the vocabulary did not know.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub vector: Vec<f32>,
    pub unknown_words: Vec<String>,
}

impl SentenceEncoder {
    /// Loads the encoder in `dir` onto `device`, checking that its vocabulary is the one it was trained on.
    pub fn load(dir: &Path, device: &Device) -> Result<SentenceEncoder, EncoderError> {
        let (manifest, vocabulary) = read_manifest_and_vocabulary(dir)?;
        let device = device.clone();
        let config = SkipThoughtConfig::new(manifest.vocabulary_size, manifest.word_dim, manifest.hidden_dim)
            .with_bidirectional(manifest.config.bidirectional);
        let mut model = config.init(&device);
        let weights = dir.join(ENCODER_FILE);
        let weights_error = |source: Cause| EncoderError::Weights { path: weights.clone(), source };
        if !weights.is_file() {
            return Err(weights_error("the file does not exist".into()));
        }
        // The file holds the encoder half only: the decoders are not needed to encode.
        let mut store = SafetensorsStore::from_file(&weights).allow_partial(true);
        let applied = model.load_from(&mut store).map_err(|error| weights_error(error.into()))?;
        let loaded_encoder = applied.applied.iter().any(|path| path.starts_with("encoder."))
            && (!manifest.config.bidirectional
                || applied.applied.iter().any(|path| path.starts_with("encoder_backward.")));
        let loaded_embedding = applied.applied.iter().any(|path| path.starts_with("embedding."));
        if !applied.errors.is_empty() || !loaded_encoder || !loaded_embedding {
            return Err(weights_error(Cause::from(format!(
                "expected the embedding and encoder tensors; applied {:?}, errors {:?}",
                applied.applied, applied.errors
            ))));
        }
        Ok(SentenceEncoder { model: model.valid(), vocabulary, manifest, device, expanded: None })
    }

    /// Uses the expanded vocabulary in `dir` (from `storytool expand-vocab`) for words outside the
    /// vocabulary; it must have been made for this encoder.
    pub fn with_expanded_vocab(mut self, dir: &Path) -> Result<SentenceEncoder, EncoderError> {
        let expanded = ExpandedVocab::open(dir)?;
        if expanded.manifest.encoder_vocabulary_hash != self.manifest.vocabulary_hash
            || expanded.manifest.dim != self.manifest.word_dim
        {
            return Err(EncoderError::ExpandedMismatch {
                dir: dir.to_path_buf(),
                expected: self.manifest.vocabulary_hash.clone(),
                found: expanded.manifest.encoder_vocabulary_hash.clone(),
                expected_dim: self.manifest.word_dim,
                found_dim: expanded.manifest.dim,
            });
        }
        let table = self.word_embeddings();
        self.expanded = Some((expanded, table));
        Ok(self)
    }

    /// Size of a sentence vector.
    /// The encoder's word embeddings, row-major `[vocab, word_dim]`.
    pub fn word_embeddings(&self) -> Vec<f32> {
        f32_values(self.model.word_embeddings())
    }

    pub fn dim(&self) -> usize {
        self.manifest.hidden_dim
    }

    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    pub fn manifest(&self) -> &EncoderManifest {
        &self.manifest
    }

    /// Vectors of `sentences`, in order.
    pub fn encode(&self, sentences: &[impl AsRef<str>]) -> Vec<Encoded> {
        let mut encoded = Vec::with_capacity(sentences.len());
        for chunk in sentences.chunks(BATCH) {
            let mut unknown: Vec<Vec<String>> = Vec::with_capacity(chunk.len());
            let ids: Vec<Vec<u32>> = chunk
                .iter()
                .map(|sentence| {
                    let text = normalise_typography(sentence.as_ref());
                    let ids = self.vocabulary.encode(&text);
                    let words = crate::text::tokenize::words(&text, self.vocabulary.lowercase());
                    unknown.push(
                        words.into_iter().zip(&ids).filter(|(_, id)| **id == UNK_ID).map(|(word, _)| word).collect(),
                    );
                    ids
                })
                .collect();
            let vectors = match &self.expanded {
                None => self.encode_ids(ids.iter().map(Vec::as_slice)),
                Some((expanded, table)) => {
                    for unknown_words in &mut unknown {
                        unknown_words.retain(|word| expanded.embedding(word).is_none());
                    }
                    self.encode_with_expanded(chunk, expanded, table)
                }
            };
            encoded.extend(
                vectors.into_iter().zip(unknown).map(|(vector, unknown_words)| Encoded { vector, unknown_words }),
            );
        }
        encoded
    }

    /// Vectors of one batch of sentences whose words outside the vocabulary are looked up in `expanded`.
    fn encode_with_expanded(
        &self,
        sentences: &[impl AsRef<str>],
        expanded: &ExpandedVocab,
        table: &[f32],
    ) -> Vec<Vec<f32>> {
        let word_dim = self.manifest.word_dim;
        let rows: Vec<Vec<Vec<f32>>> = sentences
            .iter()
            .map(|sentence| {
                let text = normalise_typography(sentence.as_ref());
                let mut words = crate::text::tokenize::words(&text, self.vocabulary.lowercase());
                words.truncate(self.manifest.max_tokens);
                let row = |id: u32| table[id as usize * word_dim..(id as usize + 1) * word_dim].to_vec();
                let mut embedded: Vec<Vec<f32>> = words
                    .iter()
                    .map(|word| match self.vocabulary.id(word) {
                        UNK_ID => expanded.embedding(word).unwrap_or_else(|| row(UNK_ID)),
                        id => row(id),
                    })
                    .collect();
                embedded.push(row(crate::text::EOS_ID));
                embedded
            })
            .collect();
        let width = rows.iter().map(Vec::len).max().unwrap_or(1);
        let mut flat = vec![0f32; rows.len() * width * word_dim];
        let mut last = Vec::with_capacity(rows.len() * self.dim());
        for (index, row) in rows.iter().enumerate() {
            for (position, values) in row.iter().enumerate() {
                let at = (index * width + position) * word_dim;
                flat[at..at + word_dim].copy_from_slice(values);
            }
            last.extend(std::iter::repeat_n(row.len() as i64 - 1, self.dim()));
        }
        let embedded = Tensor::from_data(TensorData::new(flat, [rows.len(), width, word_dim]), &self.device);
        let last = Tensor::from_data(TensorData::new(last, [rows.len(), 1, self.dim()]), &self.device);
        let values: Vec<f32> =
            self.model.encode_embedded(embedded, last).into_data().try_to_vec().expect("encoder output is f32");
        values.chunks(self.dim()).map(<[f32]>::to_vec).collect()
    }

    /// Vectors of sentences already given as token ids (corpus sentences), in order.
    pub fn encode_ids<'a>(&self, sentences: impl IntoIterator<Item = &'a [u32]>) -> Vec<Vec<f32>> {
        let sentences: Vec<&[u32]> = sentences.into_iter().collect();
        let mut vectors = Vec::with_capacity(sentences.len());
        for chunk in sentences.chunks(BATCH) {
            let batch = PaddedBatch::new(chunk.iter().copied(), self.manifest.max_tokens);
            let tensors = TripleTensors::new(&batch, &batch, &batch, self.dim(), &self.device);
            let flat: Vec<f32> = self
                .model
                .encode(tensors.current, tensors.current_last)
                .into_data()
                .try_to_vec()
                .expect("encoder output is f32");
            vectors.extend(flat.chunks(self.dim()).map(<[f32]>::to_vec));
        }
        vectors
    }
}

/// An encoder folder's manifest and vocabulary, refusing a vocabulary whose hash is not the manifest's.
pub fn read_manifest_and_vocabulary(dir: &Path) -> Result<(EncoderManifest, Vocabulary), EncoderError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&manifest_path).path_context("read", &manifest_path)?;
    let manifest: EncoderManifest = serde_json::from_slice(&bytes)
        .map_err(|error| EncoderError::Manifest { path: manifest_path.clone(), source: error.into() })?;
    if manifest.format != ENCODER_FORMAT {
        return Err(EncoderError::Manifest {
            path: manifest_path,
            source: Cause::from(format!("format `{}`, expected `{ENCODER_FORMAT}`", manifest.format)),
        });
    }
    let vocabulary = Vocabulary::load(&dir.join(TOKENIZER_FILE))?;
    if vocabulary.content_hash() != manifest.vocabulary_hash {
        return Err(EncoderError::VocabularyMismatch {
            dir: dir.to_path_buf(),
            expected: manifest.vocabulary_hash.clone(),
            found: vocabulary.content_hash(),
        });
    }
    Ok((manifest, vocabulary))
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator == 0.0 { 0.0 } else { dot / denominator }
}

/// Combine-skip (Kiros et al. 2015): the concatenated vectors of several encoders trained on the same
/// vocabulary, typically a uni-skip and a bi-skip one.
#[derive(Debug)]
pub struct CombinedEncoder {
    parts: Vec<SentenceEncoder>,
}

impl CombinedEncoder {
    /// Combines `parts`; they must share one vocabulary, since corpus token ids are fed to each.
    pub fn new(parts: Vec<SentenceEncoder>) -> Result<CombinedEncoder, EncoderError> {
        if let Some(first) = parts.first()
            && let Some(other) =
                parts.iter().find(|part| part.manifest.vocabulary_hash != first.manifest.vocabulary_hash)
        {
            return Err(EncoderError::CombineMismatch {
                first: first.manifest.vocabulary_hash.clone(),
                other: other.manifest.vocabulary_hash.clone(),
            });
        }
        Ok(CombinedEncoder { parts })
    }

    /// The first part, whose vocabulary and manifest stand for all.
    pub fn first(&self) -> &SentenceEncoder {
        &self.parts[0]
    }

    /// Size of a combined vector: the sum of the parts'.
    pub fn dim(&self) -> usize {
        self.parts.iter().map(SentenceEncoder::dim).sum()
    }

    /// Combined vectors of `sentences`; unknown words are those of the first part.
    pub fn encode(&self, sentences: &[impl AsRef<str>]) -> Vec<Encoded> {
        let mut encoded = self.parts[0].encode(sentences);
        for part in &self.parts[1..] {
            for (combined, more) in encoded.iter_mut().zip(part.encode(sentences)) {
                combined.vector.extend(more.vector);
            }
        }
        encoded
    }

    /// Combined vectors of sentences given as token ids.
    pub fn encode_ids<'a>(&self, sentences: impl IntoIterator<Item = &'a [u32]>) -> Vec<Vec<f32>> {
        let sentences: Vec<&[u32]> = sentences.into_iter().collect();
        let mut vectors = self.parts[0].encode_ids(sentences.iter().copied());
        for part in &self.parts[1..] {
            for (combined, more) in vectors.iter_mut().zip(part.encode_ids(sentences.iter().copied())) {
                combined.extend(more);
            }
        }
        vectors
    }
}
