//! A trained VSE folder (`storytool train-vse --out`): weights, caption vocabulary and manifest.

use std::path::{Path, PathBuf};

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::embed::{embed_captions, embed_images};
use crate::config::VseConfig;
use crate::corpus::manifest::{CreatedBy, InputFile};
use crate::features::FeaturesInput;
use crate::model::vse::{Vse, VseModelConfig};
use crate::text::vocab::Vocabulary;
use crate::util::Cause;

pub const VSE_FILE: &str = "vse.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const FORMAT: &str = "storytool-vse";

/// `manifest.json` of a trained VSE.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VseManifest {
    pub format: String,
    pub created_by: CreatedBy,
    pub features: Vec<FeaturesInput>,
    /// The CNN whose features the image projection expects: photos must go through the same weights.
    pub cnn: InputFile,
    pub image_size: u32,
    pub image_dim: usize,
    pub vocabulary_size: usize,
    pub vocabulary_hash: String,
    pub word_vectors: Option<WordVectorsInit>,
    pub steps: u64,
    pub final_train_loss: Option<f32>,
    /// Recall sum on the validation images at the end of training.
    pub final_valid_rsum: Option<f64>,
    /// The settings it was trained with (older manifests hold the schedule keys flat; both load).
    #[serde(deserialize_with = "crate::config::section_with_lifted_schedule")]
    pub config: VseConfig,
}

/// How the word embeddings were initialised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordVectorsInit {
    pub path: String,
    pub dim: usize,
    /// Vocabulary words found in the file (the rest start random).
    pub matched: usize,
}

/// A VSE ready for inference.
#[derive(Debug)]
pub struct TrainedVse {
    pub dir: PathBuf,
    pub manifest: VseManifest,
    pub vocabulary: Vocabulary,
    pub model: Vse,
    pub device: Device,
}

#[derive(Debug, thiserror::Error)]
pub enum VseLoadError {
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("`{path}` is not a VSE folder")]
    NotVse {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error(
        "the vocabulary in `{path}` is not the one the VSE was trained with (hash {found}, manifest says {expected})"
    )]
    VocabularyMismatch { path: PathBuf, found: String, expected: String },
}

impl TrainedVse {
    pub fn load(dir: &Path, device: &Device) -> Result<TrainedVse, VseLoadError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let read_error = |path: &Path, source: Cause| VseLoadError::Read { path: path.to_path_buf(), source };
        let bytes = std::fs::read(&manifest_path).map_err(|error| read_error(&manifest_path, error.into()))?;
        let manifest: VseManifest = serde_json::from_slice(&bytes)
            .map_err(|error| VseLoadError::NotVse { path: dir.to_path_buf(), source: error.into() })?;
        if manifest.format != FORMAT {
            return Err(VseLoadError::NotVse {
                path: dir.to_path_buf(),
                source: Cause::from(format!("format `{}`, expected `{FORMAT}`", manifest.format)),
            });
        }
        let tokenizer = dir.join(TOKENIZER_FILE);
        let vocabulary = Vocabulary::load(&tokenizer).map_err(|error| read_error(&tokenizer, error.into()))?;
        if vocabulary.content_hash() != manifest.vocabulary_hash {
            return Err(VseLoadError::VocabularyMismatch {
                path: tokenizer,
                found: vocabulary.content_hash(),
                expected: manifest.vocabulary_hash.clone(),
            });
        }
        let device = device.clone();
        let config = &manifest.config;
        let mut model =
            VseModelConfig::new(vocabulary.len(), config.word_dim, config.embed_dim, manifest.image_dim).init(&device);
        let weights = dir.join(VSE_FILE);
        let mut store = SafetensorsStore::from_file(&weights);
        model.load_from(&mut store).map_err(|error| read_error(&weights, error.into()))?;
        Ok(TrainedVse { dir: dir.to_path_buf(), manifest, vocabulary, model, device })
    }

    pub fn embed_dim(&self) -> usize {
        self.manifest.config.embed_dim
    }

    /// Unit vectors of caption texts, row-major.
    pub fn embed_texts<S: AsRef<str>>(&self, texts: &[S]) -> Vec<f32> {
        let ids: Vec<Vec<u32>> = texts.iter().map(|text| self.vocabulary.encode(text.as_ref())).collect();
        embed_captions(&self.model, &ids, self.manifest.config.max_tokens, &self.device)
    }

    /// Unit vectors of CNN features, row-major.
    pub fn embed_features(&self, features: &[f32]) -> Vec<f32> {
        embed_images(&self.model, features, self.manifest.image_dim, &self.device)
    }
}
