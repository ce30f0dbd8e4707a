//! A trained skip-thought encoder, loaded from the folder `storytool train-encoder` wrote, turning sentences
//! into vectors.
//!
//! The folder is self-contained: `manifest.json` (dimensions, vocabulary hash), `tokenizer.json` and
//! `encoder.safetensors` (embedding and encoder GRU). A vocabulary whose hash differs from the manifest's is
//! refused. Sentences are normalised like corpus text, cut to the training length and closed with `<eos>`.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;

use crate::corpus::normalise::normalise_typography;
use crate::model::skip_thought::{SkipThought, SkipThoughtConfig, TripleTensors};
use crate::text::{UNK_ID, Vocabulary, VocabularyError};
use crate::train::batches::PaddedBatch;
use crate::train::encoder::{ENCODER_FILE, EncoderManifest, MANIFEST_FILE, TOKENIZER_FILE};
use crate::util::{IoContext, PathError};

/// Sentences encoded per forward pass.
const BATCH: usize = 256;

/// Why an encoder folder could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("`{path}` is not a storytool encoder manifest: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error(transparent)]
    Vocabulary(#[from] VocabularyError),
    #[error("the vocabulary in `{dir}` has hash {found}, but the encoder was trained on {expected}")]
    VocabularyMismatch { dir: PathBuf, expected: String, found: String },
    #[error("cannot load the weights `{path}`: {message}")]
    Weights { path: PathBuf, message: String },
}

/// A loaded encoder, ready for inference on the CPU.
#[derive(Debug)]
pub struct SentenceEncoder {
    model: SkipThought,
    vocabulary: Vocabulary,
    manifest: EncoderManifest,
    device: Device,
}

/// One sentence's vector and the words the vocabulary did not know.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub vector: Vec<f32>,
    pub unknown_words: Vec<String>,
}

impl SentenceEncoder {
    /// Loads the encoder in `dir`, checking that its vocabulary is the one it was trained on.
    pub fn load(dir: &Path) -> Result<SentenceEncoder, EncoderError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&manifest_path).path_context("read", &manifest_path)?;
        let manifest: EncoderManifest = serde_json::from_slice(&bytes)
            .map_err(|error| EncoderError::Manifest { path: manifest_path.clone(), message: error.to_string() })?;
        let vocabulary = Vocabulary::load(&dir.join(TOKENIZER_FILE))?;
        if vocabulary.content_hash() != manifest.vocabulary_hash {
            return Err(EncoderError::VocabularyMismatch {
                dir: dir.to_path_buf(),
                expected: manifest.vocabulary_hash.clone(),
                found: vocabulary.content_hash(),
            });
        }
        let device = Device::flex();
        let config = SkipThoughtConfig::new(manifest.vocabulary_size, manifest.word_dim, manifest.hidden_dim);
        let mut model = config.init(&device);
        let weights = dir.join(ENCODER_FILE);
        let weights_error = |message: String| EncoderError::Weights { path: weights.clone(), message };
        if !weights.is_file() {
            return Err(weights_error("the file does not exist".into()));
        }
        // The file holds the encoder half only: the decoders are not needed to encode.
        let mut store = SafetensorsStore::from_file(&weights).allow_partial(true);
        let applied = model.load_from(&mut store).map_err(|error| weights_error(error.to_string()))?;
        let loaded_encoder = applied.applied.iter().any(|path| path.starts_with("encoder."));
        let loaded_embedding = applied.applied.iter().any(|path| path.starts_with("embedding."));
        if !applied.errors.is_empty() || !loaded_encoder || !loaded_embedding {
            return Err(weights_error(format!(
                "expected the embedding and encoder tensors; applied {:?}, errors {:?}",
                applied.applied, applied.errors
            )));
        }
        Ok(SentenceEncoder { model: model.valid(), vocabulary, manifest, device })
    }

    /// Size of a sentence vector.
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
            let mut unknown = Vec::with_capacity(chunk.len());
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
            let vectors = self.encode_ids(ids.iter().map(Vec::as_slice));
            encoded.extend(
                vectors.into_iter().zip(unknown).map(|(vector, unknown_words)| Encoded { vector, unknown_words }),
            );
        }
        encoded
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

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator == 0.0 { 0.0 } else { dot / denominator }
}
