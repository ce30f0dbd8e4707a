//! A trained story decoder folder: its format, file names, manifest and loader, shared by its trainer
//! ([`crate::train::decoder`]) and everything that writes with it.
//!
//! The folder holds `decoder.safetensors` (f16), `tokenizer.json` (the corpus vocabulary) and
//! `manifest.json` ([`DecoderManifest`]).

use std::path::{Path, PathBuf};

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::config::DecoderConfig;
use crate::corpus::Corpus;
use crate::corpus::manifest::CreatedBy;
use crate::model::story_decoder::{StoryDecoder, StoryDecoderConfig};
use crate::text::vocab::Vocabulary;
use crate::util::Cause;
use crate::util::PathError;
use crate::util::tensor_file::read_widened;

pub const DECODER_FILE: &str = "decoder.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const DECODER_FORMAT: &str = "storytool-story-decoder";

/// A decoder folder that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
pub enum DecoderError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("cannot load the story decoder `{path}`")]
    Invalid {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error(
        "the story decoder `{decoder}` was trained on {expected}, but `{given}` has BLAKE3 {found}\n\nhint: fetch its base model with `scripts/fetch-lm.sh`, or pass it with `--lm`"
    )]
    BaseModel { decoder: PathBuf, expected: String, given: PathBuf, found: String },
}

/// `manifest.json` of a trained story decoder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecoderManifest {
    pub format: String,
    pub created_by: CreatedBy,
    pub corpus: String,
    pub encoder: String,
    pub vocabulary_size: usize,
    pub vocabulary_hash: String,
    /// Size of the vectors it is conditioned on: the encoder's sentence vectors.
    pub context_dim: usize,
    pub steps: u64,
    pub final_train_loss: Option<f32>,
    pub final_valid_loss: Option<f32>,
    /// The settings it was trained with (older manifests hold the schedule keys flat; both load).
    #[serde(deserialize_with = "crate::config::section_with_lifted_schedule")]
    pub config: DecoderConfig,
    /// With `decoder.centre_context`: the training passages' mean vector and the spread it is divided by;
    /// every vector the decoder reads is `(v - centre) / scale`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_centre: Option<ContextCentre>,
    /// The corpus's validation books, which the decoder never saw: what `evaluate` reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out: Option<HeldOutBooks>,
    /// Whether the decoder reads keywords (`decoder.keywords` > 0); decoders from before keywords read none.
    #[serde(default)]
    pub keywords: bool,
    /// The genres it reads, in the order of its multi-hot input (empty: no genre input).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub genres: Vec<String>,
}

impl DecoderManifest {
    /// The model's shape as this manifest describes it.
    pub fn model_config(&self) -> StoryDecoderConfig {
        StoryDecoderConfig::new(self.vocabulary_size, self.config.word_dim, self.config.hidden_dim, self.context_dim)
            .with_per_step_context(self.config.per_step_context)
            .with_keyword_input(self.keywords)
            .with_genres(self.genres.len())
    }
}

/// The affine map applied to conditioning vectors (see `decoder.centre_context`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextCentre {
    pub mean: Vec<f32>,
    pub scale: f32,
}

impl ContextCentre {
    /// The mean of `vectors` and the root-mean-square of their deviations from it.
    pub fn of(vectors: &[Vec<f32>]) -> ContextCentre {
        let dim = vectors.first().map_or(0, Vec::len);
        let mut mean = vec![0.0f64; dim];
        for vector in vectors {
            for (sum, value) in mean.iter_mut().zip(vector) {
                *sum += f64::from(*value);
            }
        }
        let count = vectors.len().max(1) as f64;
        let mean: Vec<f32> = mean.iter().map(|sum| (sum / count) as f32).collect();
        let squares: f64 = vectors
            .iter()
            .flat_map(|vector| vector.iter().zip(&mean).map(|(value, centre)| f64::from(value - centre).powi(2)))
            .sum();
        let scale = (squares / (count * dim.max(1) as f64)).sqrt().max(1e-6) as f32;
        ContextCentre { mean, scale }
    }

    /// `(vector - mean) / scale`, in place.
    pub fn apply(&self, vector: &mut [f32]) {
        for (value, centre) in vector.iter_mut().zip(&self.mean) {
            *value = (*value - centre) / self.scale;
        }
    }
}

/// Books of a corpus that a model did not train on, and where they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOutBooks {
    /// The corpus's books folder, as given to `ingest`.
    pub books_dir: String,
    pub books: Vec<HeldOutBook>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOutBook {
    /// Relative to `books_dir`.
    pub file: String,
    pub tags: Vec<String>,
}

impl HeldOutBooks {
    /// The validation books of `corpus`.
    pub fn of(corpus: &Corpus) -> HeldOutBooks {
        HeldOutBooks {
            books_dir: corpus.manifest.inputs.books_dir.clone(),
            books: corpus
                .books
                .iter()
                .filter(|book| book.split == "valid")
                .map(|book| HeldOutBook { file: book.file.clone(), tags: book.tags.clone() })
                .collect(),
        }
    }
}

/// A trained decoder folder: model, vocabulary (checked against its manifest) and manifest.
pub fn load_decoder(dir: &Path, device: &Device) -> Result<(StoryDecoder, Vocabulary, DecoderManifest), DecoderError> {
    let error = |source: Cause| DecoderError::Invalid { path: dir.to_path_buf(), source };
    let manifest_path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&manifest_path).map_err(|e| PathError::new("read", &manifest_path, e))?;
    let manifest: DecoderManifest = serde_json::from_slice(&bytes).map_err(|e| error(e.into()))?;
    if manifest.format != DECODER_FORMAT {
        return Err(error(Cause::from(format!("format `{}`, expected `{DECODER_FORMAT}`", manifest.format))));
    }
    let vocabulary = Vocabulary::load(&dir.join(TOKENIZER_FILE)).map_err(|e| error(e.into()))?;
    if vocabulary.content_hash() != manifest.vocabulary_hash {
        return Err(error(Cause::from(format!(
            "its tokenizer.json (hash {}) is not the vocabulary it was trained with ({})",
            vocabulary.content_hash(),
            manifest.vocabulary_hash
        ))));
    }
    if vocabulary.len() != manifest.vocabulary_size {
        return Err(error(Cause::from(format!(
            "its tokenizer.json has {} words, its manifest says {}",
            vocabulary.len(),
            manifest.vocabulary_size
        ))));
    }
    let mut model = manifest.model_config().init(device);
    let weights = read_widened(&dir.join(DECODER_FILE)).map_err(|e| error(e.into()))?;
    let mut store = SafetensorsStore::from_bytes(Some(weights));
    model.load_from(&mut store).map_err(|e| error(e.into()))?;
    Ok((model, vocabulary, manifest))
}
