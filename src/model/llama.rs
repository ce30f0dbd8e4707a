//! A llama-architecture language model (SmolLM2 is one) as a burn module, with a key/value cache for
//! decoding a token at a time.
//!
//! Each block: `x + attention(rms_norm(x))`, then `x + down(silu(gate(h)) * up(h))` with `h = rms_norm(x)`.
//! Attention is grouped-query: `heads` query heads share `kv_heads` key/value heads (each key/value head
//! repeated for its group), with rotary position encoding on queries and keys. The rotation is the one
//! GGUF files are written for: adjacent pairs `(0, 1), (2, 3), ...` of a head turn together by
//! `position * base^(-2i / head_dim)` (llama.cpp's "normal" mode; the converter permutes the query and key
//! weights of Hugging Face checkpoints into it). A model trained with the half-split rotation still
//! completes short prompts but reads prose at six times the perplexity, which is why the tests compare
//! whole passages with a numpy oracle (`scripts/oracle/llama_gguf.py`). The output layer is tied to the
//! token embedding.
//!
//! The model reads either token ids or input vectors (`forward_embeddings`), so a story decoder can put
//! vectors of its own (a prefix mapped from a skip-thought vector) before a prompt's tokens. Padding is on
//! the right: with causal attention no real position reads a padded one, and losses mask them out.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::activation::silu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::lm_steering::BlockLora;

#[derive(Config, Debug, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    /// Width of the residual stream (SmolLM2-135M: 576).
    pub width: usize,
    pub blocks: usize,
    /// Query heads (9) and key/value heads (3); `width / heads` is the head size (64).
    pub heads: usize,
    pub kv_heads: usize,
    /// Inner size of the feed-forward layer (1536).
    pub ff_dim: usize,
    /// RoPE base (SmolLM2: 100,000).
    #[config(default = 10000.0)]
    pub rope_base: f64,
    #[config(default = 1e-5)]
    pub rms_epsilon: f64,
    /// Longest sequence the model was trained on; longer inputs are the caller's to cut.
    #[config(default = 2048)]
    pub context_length: usize,
}

impl LlamaConfig {
    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }

    /// Checks that the sizes fit together (heads divide the width, key/value heads divide the heads, the
    /// head size is even for the rotation).
    pub fn check(&self) -> Result<(), String> {
        if self.heads == 0 || self.kv_heads == 0 || self.width % self.heads != 0 {
            return Err(format!("{} heads do not divide the width {}", self.heads, self.width));
        }
        if self.heads % self.kv_heads != 0 {
            return Err(format!("{} key/value heads do not divide {} query heads", self.kv_heads, self.heads));
        }
        if self.head_dim() % 2 != 0 {
            return Err(format!("head size {} is odd", self.head_dim()));
        }
        Ok(())
    }

    /// The sizes of its attention.
    pub fn shape(&self) -> AttentionShape {
        AttentionShape {
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim(),
            rope_base: self.rope_base,
        }
    }

    /// A model with random weights, for tests and for shapes.
    pub fn init(&self, device: &Device) -> LanguageModel {
        let kv_width = self.kv_heads * self.head_dim();
        let linear = |input, output| {
            LinearConfig::new(input, output)
                .with_bias(false)
                .with_initializer(Initializer::Normal { mean: 0.0, std: 0.05 })
                .init(device)
        };
        let norm = || RmsNormConfig::new(self.width).with_epsilon(self.rms_epsilon).init(device);
        let blocks = (0..self.blocks)
            .map(|_| Block {
                attention_norm: norm(),
                query: linear(self.width, self.width),
                key: linear(self.width, kv_width),
                value: linear(self.width, kv_width),
                output: linear(self.width, self.width),
                ffn_norm: norm(),
                gate: linear(self.width, self.ff_dim),
                up: linear(self.width, self.ff_dim),
                down: linear(self.ff_dim, self.width),
            })
            .collect();
        LanguageModel {
            embedding: EmbeddingConfig::new(self.vocab_size, self.width)
                .with_initializer(Initializer::Normal { mean: 0.0, std: 0.05 })
                .init(device),
            blocks,
            norm: norm(),
            heads: self.heads,
            kv_heads: self.kv_heads,
            rope_base: self.rope_base,
        }
    }
}

/// One transformer block. Linear weights are `[input, output]` (burn's layout), without biases.
#[derive(Module, Debug)]
pub struct Block {
    pub attention_norm: RmsNorm,
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub output: Linear,
    pub ffn_norm: RmsNorm,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

#[derive(Module, Debug)]
pub struct LanguageModel {
    /// `[vocab, width]`; also the output layer (tied).
    pub embedding: Embedding,
    pub blocks: Vec<Block>,
    pub norm: RmsNorm,
    pub heads: usize,
    pub kv_heads: usize,
    pub rope_base: f64,
}

/// Keys and values of the positions read so far, per block: `[batch, kv_heads, positions, head_dim]`.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<(Tensor<4>, Tensor<4>)>,
}

impl KvCache {
    pub fn new() -> KvCache {
        KvCache::default()
    }

    /// Positions cached (0 for an empty cache).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, |(keys, _)| keys.dims()[2])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows of the batch in a new order (`rows[i]` is the old row that becomes row i), as beam search needs
    /// when hypotheses are extended from their parents; a row may be taken several times.
    pub fn select_rows(&self, rows: &[usize]) -> KvCache {
        let Some((keys, _)) = self.layers.first() else {
            return self.clone();
        };
        let device = keys.device();
        let ids: Vec<i64> = rows.iter().map(|&row| row as i64).collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(ids, [rows.len()]), &device);
        let layers = self
            .layers
            .iter()
            .map(|(keys, values)| (keys.clone().select(0, index.clone()), values.clone().select(0, index.clone())))
            .collect();
        KvCache { layers }
    }
}

impl LanguageModel {
    pub fn width(&self) -> usize {
        self.embedding.weight.dims()[1]
    }

    pub fn vocab_size(&self) -> usize {
        self.embedding.weight.dims()[0]
    }

    fn head_dim(&self) -> usize {
        self.width() / self.heads
    }

    /// `[batch, positions]` token ids into `[batch, positions, width]` input vectors.
    pub fn embed(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.embedding.forward(tokens)
    }

    /// `[batch, positions, width]` inputs after the positions in `cache` (if any; the cache then holds
    /// these positions too) into `[batch, positions, width]` final hidden states (after the last norm).
    pub fn forward_embeddings(&self, inputs: Tensor<3>, cache: Option<&mut KvCache>) -> Tensor<3> {
        self.forward_adapted(inputs, cache, None)
    }

    /// [`forward_embeddings`](Self::forward_embeddings) with low-rank updates of each block's query and
    /// value projections beside the frozen weights (training; decoding merges them into the weights).
    pub fn forward_adapted(
        &self,
        inputs: Tensor<3>,
        cache: Option<&mut KvCache>,
        lora: Option<(&[BlockLora], f64)>,
    ) -> Tensor<3> {
        self.norm.forward(run_blocks(&self.blocks, self.shape(), inputs, cache, lora))
    }

    /// `[batch, positions, width]` hidden states into `[batch, positions, vocab]` logits (the tied layer).
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [batch, positions, width] = hidden.dims();
        let weight = self.embedding.weight.val();
        let vocab = weight.dims()[0];
        hidden.reshape([batch * positions, width]).matmul(weight.transpose()).reshape([batch, positions, vocab])
    }

    /// `[batch, positions]` token ids into `[batch, positions, vocab]` logits of each next token.
    pub fn forward(&self, tokens: Tensor<2, Int>, cache: Option<&mut KvCache>) -> Tensor<3> {
        self.logits(self.forward_embeddings(self.embed(tokens), cache))
    }

    /// The sizes of its attention.
    pub fn shape(&self) -> AttentionShape {
        AttentionShape {
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim(),
            rope_base: self.rope_base,
        }
    }
}

/// One of a block's seven weight matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    Query,
    Key,
    Value,
    Output,
    Gate,
    Up,
    Down,
}

impl Projection {
    pub const ALL: [Projection; 7] = [
        Projection::Query,
        Projection::Key,
        Projection::Value,
        Projection::Output,
        Projection::Gate,
        Projection::Up,
        Projection::Down,
    ];

    /// Its `(input, output)` sizes in a model of `config`'s sizes.
    pub fn dims(self, config: &LlamaConfig) -> (usize, usize) {
        let (width, kv_width, ff) = (config.width, config.kv_heads * config.head_dim(), config.ff_dim);
        match self {
            Projection::Query | Projection::Output => (width, width),
            Projection::Key | Projection::Value => (width, kv_width),
            Projection::Gate | Projection::Up => (width, ff),
            Projection::Down => (ff, width),
        }
    }
}

/// What a block computes with: burn's modules ([`Block`]: any device, trainable) or its weights packed for
/// decoding on the CPU ([`super::packed::PackedBlock`]). The block's arithmetic is written once, over this.
pub trait BlockParts {
    fn attention_norm(&self) -> &RmsNorm;
    fn ffn_norm(&self) -> &RmsNorm;
    /// `[batch, positions, input]` through one of the matrices.
    fn project(&self, projection: Projection, x: Tensor<3>) -> Tensor<3>;
}

impl BlockParts for Block {
    fn attention_norm(&self) -> &RmsNorm {
        &self.attention_norm
    }

    fn ffn_norm(&self) -> &RmsNorm {
        &self.ffn_norm
    }

    fn project(&self, projection: Projection, x: Tensor<3>) -> Tensor<3> {
        let linear = match projection {
            Projection::Query => &self.query,
            Projection::Key => &self.key,
            Projection::Value => &self.value,
            Projection::Output => &self.output,
            Projection::Gate => &self.gate,
            Projection::Up => &self.up,
            Projection::Down => &self.down,
        };
        linear.forward(x)
    }
}

/// The sizes attention needs: query and key/value heads, head size, RoPE base.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub rope_base: f64,
}

/// `[batch, positions, width]` inputs after the positions in `cache` (if any; the cache then holds these
/// positions too) through every block, before the final norm.
pub(crate) fn run_blocks<B: BlockParts>(
    blocks: &[B],
    shape: AttentionShape,
    inputs: Tensor<3>,
    mut cache: Option<&mut KvCache>,
    lora: Option<(&[BlockLora], f64)>,
) -> Tensor<3> {
    let start = cache.as_ref().map_or(0, |cache| cache.len());
    let [_, positions, _] = inputs.dims();
    let (cos, sin) = rotation(shape, start, positions, &inputs.device());
    let mut hidden = inputs;
    for (index, block) in blocks.iter().enumerate() {
        let past = cache.as_ref().and_then(|cache| cache.layers.get(index).cloned());
        let adapter = lora.and_then(|(blocks, scale)| blocks.get(index).map(|block| (block, scale)));
        let (output, keys, values) = block_forward(block, shape, hidden, &cos, &sin, past, adapter);
        hidden = output;
        if let Some(cache) = cache.as_deref_mut() {
            if index < cache.layers.len() {
                cache.layers[index] = (keys, values);
            } else {
                cache.layers.push((keys, values));
            }
        }
    }
    hidden
}

/// Cosines and sines `[positions, head_dim / 2]` of the rotation of positions `start..start + positions`.
fn rotation(shape: AttentionShape, start: usize, positions: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let pairs = shape.head_dim / 2;
    let mut cos = Vec::with_capacity(positions * pairs);
    let mut sin = Vec::with_capacity(positions * pairs);
    for position in start..start + positions {
        for pair in 0..pairs {
            let frequency = shape.rope_base.powf(-2.0 * pair as f64 / shape.head_dim as f64);
            let angle = position as f64 * frequency;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (
        Tensor::from_data(TensorData::new(cos, [positions, pairs]), device),
        Tensor::from_data(TensorData::new(sin, [positions, pairs]), device),
    )
}

/// One block over `[batch, positions, width]`, given the block's cached keys and values; returns the
/// output and the keys and values of every position so far.
fn block_forward<B: BlockParts>(
    block: &B,
    shape: AttentionShape,
    x: Tensor<3>,
    cos: &Tensor<2>,
    sin: &Tensor<2>,
    past: Option<(Tensor<4>, Tensor<4>)>,
    lora: Option<(&BlockLora, f64)>,
) -> (Tensor<3>, Tensor<4>, Tensor<4>) {
    let [batch, positions, width] = x.dims();
    let head_dim = shape.head_dim;
    let normed = block.attention_norm().forward(x.clone());
    let heads =
        |projected: Tensor<3>, count: usize| projected.reshape([batch, positions, count, head_dim]).swap_dims(1, 2);
    let mut query = block.project(Projection::Query, normed.clone());
    let mut value = block.project(Projection::Value, normed.clone());
    if let Some((lora, scale)) = lora {
        query = query + lora.query.forward(normed.clone(), scale);
        value = value + lora.value.forward(normed.clone(), scale);
    }
    let query = rotate(heads(query, shape.heads), cos, sin);
    let mut keys = rotate(heads(block.project(Projection::Key, normed), shape.kv_heads), cos, sin);
    let mut values = heads(value, shape.kv_heads);
    if let Some((past_keys, past_values)) = past {
        keys = Tensor::cat(vec![past_keys, keys], 2);
        values = Tensor::cat(vec![past_values, values], 2);
    }
    let group = shape.heads / shape.kv_heads;
    let mixed = attention(
        query,
        repeat_heads(keys.clone(), group),
        repeat_heads(values.clone(), group),
        None,
        None,
        AttentionModuleOptions { scale: None, softcap: None, is_causal: true },
    );
    let mixed = mixed.swap_dims(1, 2).reshape([batch, positions, width]);
    let x = x + block.project(Projection::Output, mixed);
    let normed = block.ffn_norm().forward(x.clone());
    let inner = silu(block.project(Projection::Gate, normed.clone())) * block.project(Projection::Up, normed);
    (x + block.project(Projection::Down, inner), keys, values)
}

/// Rotates adjacent pairs of `[batch, heads, positions, head_dim]` by the angles whose cosines and sines
/// are `[positions, head_dim / 2]`.
fn rotate(x: Tensor<4>, cos: &Tensor<2>, sin: &Tensor<2>) -> Tensor<4> {
    let [batch, heads, positions, head_dim] = x.dims();
    let pairs: Tensor<5> = x.reshape([batch, heads, positions, head_dim / 2, 2]);
    let even = pairs.clone().narrow(4, 0, 1);
    let odd = pairs.narrow(4, 1, 1);
    let cos: Tensor<5> = cos.clone().reshape([1, 1, positions, head_dim / 2, 1]);
    let sin: Tensor<5> = sin.clone().reshape([1, 1, positions, head_dim / 2, 1]);
    let rotated_even = even.clone() * cos.clone() - odd.clone() * sin.clone();
    let rotated_odd = even * sin + odd * cos;
    Tensor::cat(vec![rotated_even, rotated_odd], 4).reshape([batch, heads, positions, head_dim])
}

/// `[batch, kv_heads, positions, head_dim]` with each head repeated `group` times in a row, to
/// `[batch, kv_heads * group, positions, head_dim]` (query head h reads key/value head h / group).
fn repeat_heads(x: Tensor<4>, group: usize) -> Tensor<4> {
    if group == 1 {
        return x;
    }
    let [batch, kv_heads, positions, head_dim] = x.dims();
    x.reshape([batch, kv_heads, 1, positions, head_dim])
        .expand([batch, kv_heads, group, positions, head_dim])
        .reshape([batch, kv_heads * group, positions, head_dim])
}

/// One block's weights as a GGUF file holds them, in f32: each matrix `[output, input]` row-major (an
/// output's weights are a row: the layout the packed model multiplies with), in the order of [`Projection`].
#[derive(Debug, Clone, PartialEq)]
pub struct FileBlock {
    pub attention_norm: Vec<f32>,
    pub ffn_norm: Vec<f32>,
    pub matrices: [Vec<f32>; 7],
}

/// An RMS norm with the gains `gamma`.
pub fn rms_norm(gamma: Tensor<1>, epsilon: f64) -> RmsNorm {
    let mut norm = RmsNormConfig::new(gamma.dims()[0]).with_epsilon(epsilon).init(&gamma.device());
    norm.gamma = Param::from_tensor(gamma);
    norm
}

/// Weights of one block, each linear one `[input, output]`, as a loader hands them over.
pub struct BlockWeights {
    pub attention_norm: Tensor<1>,
    pub query: Tensor<2>,
    pub key: Tensor<2>,
    pub value: Tensor<2>,
    pub output: Tensor<2>,
    pub ffn_norm: Tensor<1>,
    pub gate: Tensor<2>,
    pub up: Tensor<2>,
    pub down: Tensor<2>,
}

impl LanguageModel {
    /// A model with the given weights (the config's sizes must match them; the loader checks each).
    pub fn from_weights(
        config: &LlamaConfig,
        embedding: Tensor<2>,
        blocks: Vec<BlockWeights>,
        norm: Tensor<1>,
    ) -> LanguageModel {
        let linear = |weight: Tensor<2>| Linear { weight: Param::from_tensor(weight), bias: None };
        let rms = |gamma: Tensor<1>| rms_norm(gamma, config.rms_epsilon);
        LanguageModel {
            embedding: Embedding { weight: Param::from_tensor(embedding) },
            blocks: blocks
                .into_iter()
                .map(|weights| Block {
                    attention_norm: rms(weights.attention_norm),
                    query: linear(weights.query),
                    key: linear(weights.key),
                    value: linear(weights.value),
                    output: linear(weights.output),
                    ffn_norm: rms(weights.ffn_norm),
                    gate: linear(weights.gate),
                    up: linear(weights.up),
                    down: linear(weights.down),
                })
                .collect(),
            norm: rms(norm),
            heads: config.heads,
            kv_heads: config.kv_heads,
            rope_base: config.rope_base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> LlamaConfig {
        LlamaConfig::new(50, 32, 2, 4, 2, 48)
    }

    fn values(tensor: Tensor<3>) -> Vec<f32> {
        tensor.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn decoding_with_the_cache_matches_the_whole_sequence() {
        let device = Device::flex();
        let model = tiny().init(&device);
        let ids = [3i64, 17, 5, 42, 8, 1];
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids.to_vec(), [1, 6]), &device);
        let whole = values(model.forward(tokens.clone(), None));
        let mut cache = KvCache::new();
        // Three positions at once, then one at a time.
        let mut stepped = values(model.forward(tokens.clone().narrow(1, 0, 3), Some(&mut cache)));
        for position in 3..6 {
            stepped.extend(values(model.forward(tokens.clone().narrow(1, position, 1), Some(&mut cache))));
        }
        assert_eq!(cache.len(), 6);
        for (a, b) in whole.iter().zip(&stepped) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn a_later_position_cannot_change_an_earlier_one() {
        let device = Device::flex();
        let model = tiny().init(&device);
        let first = Tensor::<2, Int>::from_data(TensorData::new(vec![3i64, 17, 5, 42], [1, 4]), &device);
        let second = Tensor::<2, Int>::from_data(TensorData::new(vec![3i64, 17, 5, 9], [1, 4]), &device);
        let a = values(model.forward(first, None));
        let b = values(model.forward(second, None));
        let vocab = 50;
        for i in 0..3 * vocab {
            assert!((a[i] - b[i]).abs() < 1e-5);
        }
        assert!((3 * vocab..4 * vocab).any(|i| (a[i] - b[i]).abs() > 1e-4));
    }

    #[test]
    fn rotation_turns_adjacent_pairs() {
        // One head of size 4 at position 1 with base 100: pair 0 turns by 1 radian, pair 1 by 1/10.
        let device = Device::flex();
        let x = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0], [1, 1, 1, 4]), &device);
        let cos = Tensor::<2>::from_data(TensorData::new(vec![1f32.cos(), 0.1f32.cos()], [1, 2]), &device);
        let sin = Tensor::<2>::from_data(TensorData::new(vec![1f32.sin(), 0.1f32.sin()], [1, 2]), &device);
        let out = rotate(x, &cos, &sin).into_data().try_to_vec::<f32>().unwrap();
        let want = [1f32.cos(), 1f32.sin(), -(0.1f32.sin()), 0.1f32.cos()];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn beam_rows_reorder_the_cache() {
        let device = Device::flex();
        let model = tiny().init(&device);
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![3i64, 4, 5, 6], [2, 2]), &device);
        let mut cache = KvCache::new();
        model.forward(tokens, Some(&mut cache));
        let swapped = cache.select_rows(&[1, 0, 1]);
        let next = Tensor::<2, Int>::from_data(TensorData::new(vec![7i64, 7, 7], [3, 1]), &device);
        let mut swapped_cache = swapped;
        let out = values(model.forward(next, Some(&mut swapped_cache)));
        // Rows 0 and 2 both continue the old row 1.
        let vocab = 50;
        assert_eq!(&out[..vocab], &out[2 * vocab..]);
        assert!(out[..vocab].iter().zip(&out[vocab..2 * vocab]).any(|(a, b)| (a - b).abs() > 1e-5));
    }
}
