//! A trained captioner folder (`storytool train-captioner --out`): weights (f16), vocabulary and manifest.

use std::path::{Path, PathBuf};

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::config::CaptionerConfig;
use crate::corpus::manifest::{CreatedBy, InputFile};
use crate::features::FeaturesInput;
use crate::model::captioner::{Captioner, CaptionerModelConfig};
use crate::text::vocab::Vocabulary;
use crate::util::Cause;
use crate::util::tensor_file::read_widened;

pub const CAPTIONER_FILE: &str = "captioner.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const FORMAT: &str = "storytool-captioner";

/// `manifest.json` of a trained captioner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaptionerManifest {
    pub format: String,
    pub created_by: CreatedBy,
    pub features: Vec<FeaturesInput>,
    /// The CNN whose spatial maps it reads: photos must go through the same weights at the same size.
    pub cnn: InputFile,
    pub image_size: u32,
    /// Locations of the spatial map (rows, columns) and the size of each annotation vector.
    pub grid: [usize; 2],
    pub feature_dim: usize,
    pub vocabulary_size: usize,
    pub vocabulary_hash: String,
    pub steps: u64,
    pub final_train_loss: Option<f32>,
    /// Validation negative log-likelihood per token at the end of training.
    pub final_valid_loss: Option<f32>,
    /// The settings it was trained with (older manifests hold the schedule keys flat; both load).
    #[serde(deserialize_with = "crate::config::section_with_lifted_schedule")]
    pub config: CaptionerConfig,
}

/// A captioner ready for inference.
#[derive(Debug)]
pub struct TrainedCaptioner {
    pub dir: PathBuf,
    pub manifest: CaptionerManifest,
    pub vocabulary: Vocabulary,
    pub model: Captioner,
    pub device: Device,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptionerLoadError {
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("`{path}` is not a captioner folder")]
    NotCaptioner {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error(
        "the vocabulary in `{path}` is not the one the captioner was trained with (hash {found}, manifest says {expected})"
    )]
    VocabularyMismatch { path: PathBuf, found: String, expected: String },
}

impl TrainedCaptioner {
    pub fn load(dir: &Path, device: &Device) -> Result<TrainedCaptioner, CaptionerLoadError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let read_error = |path: &Path, source: Cause| CaptionerLoadError::Read { path: path.to_path_buf(), source };
        let bytes = std::fs::read(&manifest_path).map_err(|error| read_error(&manifest_path, error.into()))?;
        let not_captioner = |source: Cause| CaptionerLoadError::NotCaptioner { path: dir.to_path_buf(), source };
        let manifest: CaptionerManifest =
            serde_json::from_slice(&bytes).map_err(|error| not_captioner(error.into()))?;
        if manifest.format != FORMAT {
            return Err(not_captioner(Cause::from(format!("format `{}`, expected `{FORMAT}`", manifest.format))));
        }
        let tokenizer = dir.join(TOKENIZER_FILE);
        let vocabulary = Vocabulary::load(&tokenizer).map_err(|error| read_error(&tokenizer, error.into()))?;
        if vocabulary.content_hash() != manifest.vocabulary_hash {
            return Err(CaptionerLoadError::VocabularyMismatch {
                path: tokenizer,
                found: vocabulary.content_hash(),
                expected: manifest.vocabulary_hash.clone(),
            });
        }
        let device = device.clone();
        let mut model = model_config(&manifest.config, vocabulary.len(), manifest.feature_dim).init(&device);
        let weights = dir.join(CAPTIONER_FILE);
        let bytes = read_widened(&weights).map_err(|error| read_error(&weights, error.into()))?;
        let mut store = SafetensorsStore::from_bytes(Some(bytes));
        model.load_from(&mut store).map_err(|error| read_error(&weights, error.into()))?;
        Ok(TrainedCaptioner { dir: dir.to_path_buf(), manifest, vocabulary, model, device })
    }

    /// Annotation vectors per photo.
    pub fn locations(&self) -> usize {
        self.manifest.grid[0] * self.manifest.grid[1]
    }
}

/// The model sizes of a `[captioner]` config for a vocabulary and annotation size.
pub fn model_config(config: &CaptionerConfig, vocab_size: usize, feature_dim: usize) -> CaptionerModelConfig {
    CaptionerModelConfig::new(vocab_size, config.word_dim, config.hidden_dim, config.attention_dim, feature_dim)
        .with_dropout(config.dropout)
}
