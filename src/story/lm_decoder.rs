//! A trained language-model story decoder folder (`[decoder] kind = "lm"`): what was trained on top of the
//! frozen pretrained model, shared by its trainer ([`crate::train::lm_decoder`]) and everything that writes
//! with it.
//!
//! The folder holds `steering.safetensors` (f16: the prefix mapper, genre tokens and LoRA factors, a few
//! MB) and `manifest.json` ([`LmDecoderManifest`]), which names the base model by its BLAKE3 hash. The base
//! model is never copied in: it is fetched (`scripts/fetch-lm.sh`) and checked against that hash at load.

use std::path::{Path, PathBuf};

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::decoder::{ContextCentre, DecoderError, HeldOutBooks, MANIFEST_FILE};
use crate::config::DecoderConfig;
use crate::corpus::manifest::CreatedBy;
use crate::gguf::GgufFile;
use crate::language_model::pretrained::module_of;
use crate::language_model::{LanguageModelError, OpenedLm, PretrainedLm};
use crate::model::llama::{FileBlock, LanguageModel, LlamaConfig};
use crate::model::lm_steering::{LmSteering, LmSteeringConfig};
use crate::util::tensor_file::read_widened;
use crate::util::{Cause, PathError, cached_file};

pub const STEERING_FILE: &str = "steering.safetensors";
pub const LM_DECODER_FORMAT: &str = "storytool-lm-decoder";

/// The base model a decoder was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseModel {
    /// File name only (where it was is no business of the decoder's).
    pub file: String,
    pub blake3: String,
}

/// `manifest.json` of a trained language-model decoder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmDecoderManifest {
    pub format: String,
    pub created_by: CreatedBy,
    pub corpus: String,
    pub encoder: String,
    /// The encoder's vocabulary hash and vector size: the vectors it reads.
    pub vocabulary_hash: String,
    pub context_dim: usize,
    pub base_model: BaseModel,
    pub steering: SteeringShape,
    pub steps: u64,
    pub final_train_loss: Option<f32>,
    pub final_valid_loss: Option<f32>,
    #[serde(deserialize_with = "crate::config::section_with_lifted_schedule")]
    pub config: DecoderConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_centre: Option<ContextCentre>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out: Option<HeldOutBooks>,
    /// Whether it was trained with keywords in its prompt.
    pub keywords: bool,
    /// The genres with tokens of their own, in order (empty: none).
    #[serde(default)]
    pub genres: Vec<String>,
}

/// The steering module's sizes (everything [`LmSteeringConfig`] needs beside the base model's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SteeringShape {
    pub prefix_len: usize,
    pub mapper_hidden: usize,
    pub genre_tokens: usize,
    pub lora_rank: usize,
    pub lora_alpha: f64,
}

impl LmDecoderManifest {
    /// The steering's sizes on a base model of `lm`'s sizes.
    pub fn steering_config(&self, lm: &LlamaConfig) -> LmSteeringConfig {
        let shape = &self.steering;
        LmSteeringConfig::new(self.context_dim, lm.width, lm.blocks, lm.kv_heads * lm.head_dim())
            .with_prefix_len(shape.prefix_len)
            .with_mapper_hidden(shape.mapper_hidden)
            .with_genres(self.genres.len())
            .with_genre_tokens(shape.genre_tokens)
            .with_lora_rank(shape.lora_rank)
            .with_lora_alpha(shape.lora_alpha)
    }
}

/// The prompt text before a passage: its genre (for decoders trained with `decoder.lm.genre_text`) and
/// its keywords, or nothing. Training, evaluation and generation share it.
pub fn keyword_prompt(genre: Option<&str>, keywords: &[String]) -> String {
    let mut prompt = String::new();
    if let Some(genre) = genre {
        prompt.push_str(&format!("Genre: {genre}.\n"));
    }
    if !keywords.is_empty() {
        prompt.push_str(&format!("Keywords: {}.\n", keywords.join(", ")));
    }
    if !prompt.is_empty() {
        prompt.push('\n');
    }
    prompt
}

/// A passage in the language model's tokens as the decoder learns it: closed by `<|endoftext|>`, or cut to
/// `max_tokens` (then not closed: it did not end there). Training and evaluation share it.
pub fn passage_tokens(lm: &PretrainedLm, text: &str, max_tokens: usize) -> Vec<u32> {
    let mut tokens = lm.tokenizer.encode(text, false).map(|e| e.get_ids().to_vec()).unwrap_or_default();
    if tokens.len() < max_tokens {
        tokens.push(lm.end_of_text);
    } else {
        tokens.truncate(max_tokens);
    }
    tokens
}

/// Reads a decoder folder's manifest, if it is a language-model decoder's (`None` for a GRU decoder).
pub fn read_lm_manifest(dir: &Path) -> Result<Option<LmDecoderManifest>, DecoderError> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(|e| PathError::new("read", &path, e))?;
    let invalid = |source: Cause| DecoderError::Invalid { path: dir.to_path_buf(), source };
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| invalid(e.into()))?;
    if value.get("format").and_then(|format| format.as_str()) != Some(LM_DECODER_FORMAT) {
        return Ok(None);
    }
    serde_json::from_value(value).map(Some).map_err(|e| invalid(e.into()))
}

/// A language-model decoder ready to write: the base model from `lm_path` (refused unless it is the one the
/// decoder was trained on) with the LoRA update merged into its weights, in burn's module (`M =
/// LanguageModel`) or the form it writes with, the steering module, the manifest.
pub struct LoadedLmDecoder<M = LanguageModel> {
    pub lm: PretrainedLm<M>,
    pub steering: LmSteering,
    pub manifest: LmDecoderManifest,
}

/// The decoder in `dir` on burn's module of its base model (for evaluation).
pub fn load_lm_decoder(dir: &Path, lm_path: &Path, device: &Device) -> Result<LoadedLmDecoder, DecoderError> {
    load_lm_decoder_as(dir, lm_path, device, |file, config, merge| module_of(file, config, device, merge))
}

/// The decoder in `dir`, its base model built by `build` from the file with the LoRA update merged into
/// each block as it is read (`merge`).
pub fn load_lm_decoder_as<M>(
    dir: &Path,
    lm_path: &Path,
    device: &Device,
    build: impl FnOnce(&GgufFile, &LlamaConfig, &mut dyn FnMut(usize, &mut FileBlock)) -> Result<M, LanguageModelError>,
) -> Result<LoadedLmDecoder<M>, DecoderError> {
    let invalid = |source: Cause| DecoderError::Invalid { path: dir.to_path_buf(), source };
    let Some(manifest) = read_lm_manifest(dir)? else {
        return Err(invalid(Cause::from(format!("it is not a `{LM_DECODER_FORMAT}` folder"))));
    };
    let opened = OpenedLm::open(lm_path).map_err(|e| invalid(e.into()))?;
    if opened.hash != manifest.base_model.blake3 {
        return Err(DecoderError::BaseModel {
            decoder: dir.to_path_buf(),
            expected: format!("{} (BLAKE3 {})", manifest.base_model.file, manifest.base_model.blake3),
            given: lm_path.to_path_buf(),
            found: opened.hash.clone(),
        });
    }
    let mut steering = manifest.steering_config(&opened.config).init(device);
    let weights = read_widened(&dir.join(STEERING_FILE)).map_err(|e| invalid(e.into()))?;
    let mut store = SafetensorsStore::from_bytes(Some(weights));
    steering.load_from(&mut store).map_err(|e| invalid(e.into()))?;
    let model = build(&opened.file, &opened.config, &mut |index, block| steering.merge_lora(index, block))
        .map_err(|e| invalid(e.into()))?;
    Ok(LoadedLmDecoder { lm: opened.with_model(model), steering, manifest })
}

impl<M> std::fmt::Debug for LoadedLmDecoder<M> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("LoadedLmDecoder").field("lm", &self.lm).field("steps", &self.manifest.steps).finish()
    }
}

/// Where the base model is by default: `$STORYTOOL_LM_WEIGHTS`, else the file `scripts/fetch-lm.sh` puts
/// in the user's cache.
pub fn default_lm_path() -> Option<PathBuf> {
    match std::env::var_os("STORYTOOL_LM_WEIGHTS") {
        Some(path) => Some(PathBuf::from(path)),
        None => cached_file("SmolLM2-135M-Instruct.Q4_1.gguf"),
    }
}

#[cfg(test)]
mod tests {
    use super::keyword_prompt;

    #[test]
    fn the_prompt_names_the_genre_and_the_keywords_when_there_are_any() {
        let keywords = vec!["cat".to_string(), "pool".into()];
        assert_eq!(keyword_prompt(None, &keywords), "Keywords: cat, pool.\n\n");
        assert_eq!(keyword_prompt(Some("horror"), &keywords), "Genre: horror.\nKeywords: cat, pool.\n\n");
        assert_eq!(keyword_prompt(Some("horror"), &[]), "Genre: horror.\n\n");
        assert_eq!(keyword_prompt(None, &[]), "");
    }
}
