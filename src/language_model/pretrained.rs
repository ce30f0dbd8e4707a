//! Loads a llama GGUF into a [`LanguageModel`]: the sizes from the metadata, every tensor by its llama.cpp
//! name with its shape checked, dequantised to f32 (matrices transposed to burn's `[input, output]`), and the
//! tokenizer. A tensor the model does not use is an error too: a file with biases or an untied output layer
//! is another model, and ignoring part of it would load a different one silently.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;
use tokenizers::Tokenizer;

use crate::gguf::dequantize::dequantize;
use crate::gguf::tokenizer::tokenizer_from_gguf;
use crate::gguf::{GgufError, GgufFile};
use crate::model::llama::{BlockWeights, FileBlock, LanguageModel, LlamaConfig, Projection};
use crate::util::hash::content_hash;

#[derive(Debug, thiserror::Error)]
pub enum LanguageModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("`{path}` holds a `{found}` model; storytool reads `llama` models (SmolLM2, `scripts/fetch-lm.sh`)")]
    Architecture { path: PathBuf, found: String },
    #[error("`{path}`: {what}")]
    Unsupported { path: PathBuf, what: String },
}

/// A pretrained model, ready to compute on its device: burn's module (`M = LanguageModel`), or the same
/// model in the form it writes with ([`crate::model::packed::DecodingLm`]).
pub struct PretrainedLm<M = LanguageModel> {
    pub model: M,
    pub config: LlamaConfig,
    pub tokenizer: Tokenizer,
    /// BLAKE3 of the GGUF file.
    pub hash: String,
    pub path: PathBuf,
    /// The token that ends a text (`<|endoftext|>` for SmolLM2), and the chat markers if the model has
    /// them: never written into a story.
    pub end_of_text: u32,
    pub control_tokens: Vec<u32>,
}

impl<M> std::fmt::Debug for PretrainedLm<M> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("PretrainedLm").field("path", &self.path).field("config", &self.config).finish()
    }
}

impl PretrainedLm {
    /// burn's module of the model at `path`, on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<PretrainedLm, LanguageModelError> {
        let opened = OpenedLm::open(path)?;
        let model = module_of(&opened.file, &opened.config, device, |_, _| {})?;
        Ok(opened.with_model(model))
    }
}

/// A GGUF opened, its sizes, tokenizer and hash read but not its weights: a caller can refuse the file
/// first (a decoder trained on another base model) and build the model in the form it needs.
pub struct OpenedLm {
    pub file: GgufFile,
    pub config: LlamaConfig,
    pub hash: String,
    tokenizer: Tokenizer,
    end_of_text: u32,
    control_tokens: Vec<u32>,
}

impl OpenedLm {
    pub fn open(path: &Path) -> Result<OpenedLm, LanguageModelError> {
        let file = GgufFile::open(path)?;
        let config = config_of(&file)?;
        let tokenizer = tokenizer_from_gguf(&file)?;
        // Prose ends with `<|endoftext|>`; the chat end (`eos` of an instruct model) is the fallback.
        let end_of_text =
            match (tokenizer.token_to_id("<|endoftext|>"), file.metadata.get("tokenizer.ggml.eos_token_id")) {
                (Some(id), _) => id,
                (None, Some(value)) => {
                    value.as_u64().ok_or_else(|| file.wrong_type("tokenizer.ggml.eos_token_id", "an id", value))? as u32
                }
                (None, None) => 0,
            };
        let types = file.value_array("tokenizer.ggml.token_type").ok();
        let control_tokens = types
            .map(|types| {
                types.iter().enumerate().filter(|(_, kind)| kind.as_u64() == Some(3)).map(|(id, _)| id as u32).collect()
            })
            .unwrap_or_default();
        let hash = content_hash(file.bytes());
        Ok(OpenedLm { file, config, hash, tokenizer, end_of_text, control_tokens })
    }

    /// The pretrained model with `model` built from this file (which is closed).
    pub fn with_model<M>(self, model: M) -> PretrainedLm<M> {
        PretrainedLm {
            model,
            config: self.config,
            tokenizer: self.tokenizer,
            hash: self.hash,
            path: self.file.path().to_path_buf(),
            end_of_text: self.end_of_text,
            control_tokens: self.control_tokens,
        }
    }
}

/// The model's sizes from the file's `llama.*` keys.
pub fn config_of(file: &GgufFile) -> Result<LlamaConfig, LanguageModelError> {
    let architecture = file.value_str("general.architecture")?;
    if architecture != "llama" {
        return Err(LanguageModelError::Architecture { path: file.path().to_path_buf(), found: architecture.into() });
    }
    let size = |key: &str| -> Result<usize, LanguageModelError> { Ok(file.value_u64(key)? as usize) };
    let width = size("llama.embedding_length")?;
    let heads = size("llama.attention.head_count")?;
    let kv_heads = match file.metadata.get("llama.attention.head_count_kv") {
        Some(_) => size("llama.attention.head_count_kv")?,
        None => heads,
    };
    let embedding = file.tensor("token_embd.weight")?;
    let vocab_size = *embedding.dims.get(1).unwrap_or(&0);
    let mut config = LlamaConfig::new(
        vocab_size,
        width,
        size("llama.block_count")?,
        heads,
        kv_heads,
        size("llama.feed_forward_length")?,
    )
    .with_rms_epsilon(file.value_f64("llama.attention.layer_norm_rms_epsilon")?)
    .with_context_length(size("llama.context_length")?);
    if file.metadata.contains_key("llama.rope.freq_base") {
        config = config.with_rope_base(file.value_f64("llama.rope.freq_base")?);
    }
    let unsupported = |what: String| LanguageModelError::Unsupported { path: file.path().to_path_buf(), what };
    config.check().map_err(unsupported)?;
    if let Some(value) = file.metadata.get("llama.rope.dimension_count")
        && value.as_u64() != Some(config.head_dim() as u64)
    {
        return Err(unsupported(format!(
            "rotary encoding over {value:?} dimensions of {}-wide heads is not supported",
            config.head_dim()
        )));
    }
    if let Some(scaling) = file.metadata.get("llama.rope.scaling.type")
        && scaling.as_str() != Some("none")
    {
        return Err(unsupported(format!("RoPE scaling {scaling:?} is not supported")));
    }
    Ok(config)
}

/// The weights of a model as its file holds them (f32, each matrix an output per row), its blocks
/// converted as they are read.
pub struct FileWeights<B> {
    /// `[vocab, width]`: the input table and the tied output layer.
    pub embedding: Vec<f32>,
    pub blocks: Vec<B>,
    pub norm: Vec<f32>,
}

/// Every tensor of the model, checked by name and shape and dequantised to f32, each block handed to
/// `convert` as soon as it is read, so that a caller who converts them (packing) never holds the whole
/// model in f32.
pub fn read_weights<B>(
    file: &GgufFile,
    config: &LlamaConfig,
    mut convert: impl FnMut(usize, FileBlock) -> B,
) -> Result<FileWeights<B>, LanguageModelError> {
    let mut used = Vec::new();
    let mut take = |name: String, dims: Vec<usize>| -> Result<Vec<f32>, GgufError> {
        let info = file.tensor(&name)?;
        if info.dims != dims {
            return Err(GgufError::WrongShape {
                path: file.path().to_path_buf(),
                name,
                expected: dims,
                found: info.dims.clone(),
            });
        }
        used.push(name);
        dequantize(file, info)
    };
    let width = config.width;
    let embedding = take("token_embd.weight".into(), vec![width, config.vocab_size])?;
    let mut blocks = Vec::with_capacity(config.blocks);
    for index in 0..config.blocks {
        let mut part = |name: &str, dims: Vec<usize>| take(format!("blk.{index}.{name}.weight"), dims);
        let mut matrices: [Vec<f32>; 7] = Default::default();
        for (projection, values) in Projection::ALL.into_iter().zip(&mut matrices) {
            // A GGUF matrix's dims are `[input, output]`, fastest first: `output` rows of `input` values.
            let (input, output) = projection.dims(config);
            *values = part(file_name(projection), vec![input, output])?;
        }
        let block = FileBlock {
            attention_norm: part("attn_norm", vec![width])?,
            ffn_norm: part("ffn_norm", vec![width])?,
            matrices,
        };
        blocks.push(convert(index, block));
    }
    let norm = take("output_norm.weight".into(), vec![width])?;
    let unused: Vec<&str> =
        file.tensors.iter().map(|tensor| tensor.name.as_str()).filter(|name| !used.iter().any(|u| u == name)).collect();
    if !unused.is_empty() {
        return Err(LanguageModelError::Unsupported {
            path: file.path().to_path_buf(),
            what: format!(
                "tensors {} are not part of the llama model storytool builds (an untied output layer or biases \
                 make another model)",
                unused.join(", ")
            ),
        });
    }
    Ok(FileWeights { embedding, blocks, norm })
}

/// llama.cpp's name of a block's matrix.
fn file_name(projection: Projection) -> &'static str {
    match projection {
        Projection::Query => "attn_q",
        Projection::Key => "attn_k",
        Projection::Value => "attn_v",
        Projection::Output => "attn_output",
        Projection::Gate => "ffn_gate",
        Projection::Up => "ffn_up",
        Projection::Down => "ffn_down",
    }
}

/// burn's module of the model in `file` on `device`, each block first changed by `adjust` (a LoRA update
/// merged into it).
pub fn module_of(
    file: &GgufFile,
    config: &LlamaConfig,
    device: &Device,
    mut adjust: impl FnMut(usize, &mut FileBlock),
) -> Result<LanguageModel, LanguageModelError> {
    let vector = |values: Vec<f32>| {
        let len = values.len();
        Tensor::<1>::from_data(TensorData::new(values, [len]), device)
    };
    let weights = read_weights(file, config, |index, mut block| {
        adjust(index, &mut block);
        let [query, key, value, output, gate, up, down] = block.matrices;
        let matrix = |values: Vec<f32>, projection: Projection| {
            // Transposed to burn's `[input, output]`.
            let (input, output) = projection.dims(config);
            let values = transpose(&values, output, input);
            Tensor::<2>::from_data(TensorData::new(values, [input, output]), device)
        };
        BlockWeights {
            query: matrix(query, Projection::Query),
            key: matrix(key, Projection::Key),
            value: matrix(value, Projection::Value),
            output: matrix(output, Projection::Output),
            gate: matrix(gate, Projection::Gate),
            up: matrix(up, Projection::Up),
            down: matrix(down, Projection::Down),
            attention_norm: vector(block.attention_norm),
            ffn_norm: vector(block.ffn_norm),
        }
    })?;
    let embedding =
        Tensor::<2>::from_data(TensorData::new(weights.embedding, [config.vocab_size, config.width]), device);
    Ok(LanguageModel::from_weights(config, embedding, weights.blocks, vector(weights.norm)))
}

/// `rows x columns` row-major into `columns x rows`.
fn transpose(values: &[f32], rows: usize, columns: usize) -> Vec<f32> {
    const TILE: usize = 32;
    let mut out = vec![0f32; values.len()];
    out.par_chunks_mut(TILE * rows).enumerate().for_each(|(tile, out)| {
        let first_column = tile * TILE;
        let tile_columns = out.len() / rows;
        for row in 0..rows {
            let source = &values[row * columns + first_column..row * columns + first_column + tile_columns];
            for (column, &value) in source.iter().enumerate() {
                out[column * rows + row] = value;
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn transpose_of_odd_sizes() {
        let (rows, columns) = (5, 70);
        let values: Vec<f32> = (0..rows * columns).map(|i| i as f32).collect();
        let out = transpose(&values, rows, columns);
        for row in 0..rows {
            for column in 0..columns {
                assert_eq!(out[column * rows + row], values[row * columns + column]);
            }
        }
    }
}
