//! The language model packed for writing on the CPU: its matrices in bfloat16, multiplied by a kernel of
//! our own, everything else (norms, rotation, attention, the cache) the same burn code as the module's.
//!
//! Writing a token at a time reads every weight once per token and does two operations with it, so on a
//! CPU the speed is the memory's: f32 weights (540 MB for SmolLM2-135M) are read at about the bus's rate
//! and llama.cpp, reading the file's 4- and 8-bit weights, wrote 2.7x faster. Packed as bfloat16 (the top
//! half of an f32: widening is a shift, so the kernel vectorises without special instructions) the
//! weights are half the bytes and the model half the memory; the tied embedding is packed once and serves
//! both as the input table and as the output layer. Rounding to bfloat16 (8 significant bits) moves the
//! logits by far less than the file's own 4-bit quantisation did (a test bounds the difference).
//!
//! Training never uses this: it needs burn's modules for gradients and for other devices.

use burn::nn::RmsNorm;
use burn::tensor::{Device, Int, Tensor, TensorData};
use half::bf16;
use rayon::prelude::*;

use super::llama::{
    AttentionShape, BlockParts, FileBlock, KvCache, LanguageModel, LlamaConfig, Projection, rms_norm, run_blocks,
};

/// A `[rows, cols]` matrix in bfloat16, row-major: each output's weights are one row.
#[derive(Debug, Clone)]
pub struct Bf16Matrix {
    rows: usize,
    cols: usize,
    values: Vec<u16>,
}

/// Rows of the matrix one task of the kernel computes: enough to outweigh the task's cost.
const ROWS_PER_TASK: usize = 64;

impl Bf16Matrix {
    /// From `[rows, cols]` values, rounded to the nearest bfloat16.
    pub fn from_rows(values: &[f32], rows: usize, cols: usize) -> Bf16Matrix {
        assert_eq!(values.len(), rows * cols, "a [{rows}, {cols}] matrix");
        let values = values.par_iter().map(|&value| bf16::from_f32(value).to_bits()).collect();
        Bf16Matrix { rows, cols, values }
    }

    /// From a `[rows, cols]` tensor (the embedding table, whose rows are also the tied output layer's).
    #[cfg(test)]
    pub fn of_table(table: Tensor<2>) -> Bf16Matrix {
        let [rows, cols] = table.dims();
        Bf16Matrix::from_rows(&values_of(table), rows, cols)
    }

    /// From burn's `[input, output]` linear weight, transposed so that an output's weights are a row.
    #[cfg(test)]
    pub fn of_linear(weight: Tensor<2>) -> Bf16Matrix {
        Bf16Matrix::of_table(weight.transpose())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Row `row`, widened to f32, appended to `out`.
    pub fn widen_row(&self, row: usize, out: &mut Vec<f32>) {
        out.extend(self.values[row * self.cols..(row + 1) * self.cols].iter().map(|&bits| widen(bits)));
    }

    /// `inputs` (`n` rows of `cols` values) times the matrix transposed: `n` rows of `rows` values.
    pub fn apply(&self, inputs: &[f32]) -> Vec<f32> {
        let n = inputs.len() / self.cols.max(1);
        if n == 0 || self.rows == 0 {
            return Vec::new();
        }
        // Computed by weight rows (each read once, for all n inputs), so output-major; turned after.
        let mut by_row = vec![0f32; self.rows * n];
        by_row.par_chunks_mut(ROWS_PER_TASK * n).enumerate().for_each(|(task, out)| {
            let first = task * ROWS_PER_TASK;
            let weights = &self.values[first * self.cols..(first + out.len() / n) * self.cols];
            dot_rows(weights, self.cols, inputs, out);
        });
        if n == 1 {
            return by_row;
        }
        let mut out = vec![0f32; self.rows * n];
        for (row, values) in by_row.chunks_exact(n).enumerate() {
            for (input, &value) in values.iter().enumerate() {
                out[input * self.rows + row] = value;
            }
        }
        out
    }
}

fn widen(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// Every weight row of `weights` against every input: `out[row * n + input]`.
fn dot_rows(weights: &[u16], cols: usize, inputs: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, the only feature the function is compiled for.
        return unsafe { dot_rows_avx2(weights, cols, inputs, out) };
    }
    dot_rows_portable(weights, cols, inputs, out);
}

/// [`dot_rows_portable`] compiled for AVX2 (eight lanes where the baseline has four).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_rows_avx2(weights: &[u16], cols: usize, inputs: &[f32], out: &mut [f32]) {
    dot_rows_portable(weights, cols, inputs, out);
}

#[inline(always)]
fn dot_rows_portable(weights: &[u16], cols: usize, inputs: &[f32], out: &mut [f32]) {
    let n = inputs.len() / cols;
    for (row, out) in weights.chunks_exact(cols).zip(out.chunks_exact_mut(n)) {
        for (input, out) in inputs.chunks_exact(cols).zip(out.iter_mut()) {
            *out = dot(row, input);
        }
    }
}

/// Sixteen independent sums, so the loop vectorises (a single sum would fix the order of additions).
#[inline(always)]
fn dot(weights: &[u16], input: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut sums = [0f32; LANES];
    let (whole, rest) = (weights.len() / LANES * LANES, weights.len() % LANES);
    for (weights, input) in weights[..whole].chunks_exact(LANES).zip(input[..whole].chunks_exact(LANES)) {
        for lane in 0..LANES {
            sums[lane] += widen(weights[lane]) * input[lane];
        }
    }
    for lane in 0..rest {
        sums[lane] += widen(weights[whole + lane]) * input[whole + lane];
    }
    sums.iter().sum()
}

fn vector(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let len = values.len();
    Tensor::from_data(TensorData::new(values, [len]), device)
}

fn values_of<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default()
}

/// A block with its seven matrices packed.
#[derive(Debug)]
pub struct PackedBlock {
    attention_norm: RmsNorm,
    ffn_norm: RmsNorm,
    /// In the order of [`Projection`].
    matrices: [Bf16Matrix; 7],
}

impl PackedBlock {
    /// Packs a block as its file holds it (each output's weights a row already).
    pub fn of_file(block: FileBlock, config: &LlamaConfig, device: &Device) -> PackedBlock {
        let pack = |values: Vec<f32>, projection: Projection| {
            let (input, output) = projection.dims(config);
            Bf16Matrix::from_rows(&values, output, input)
        };
        let [query, key, value, output, gate, up, down] = block.matrices;
        PackedBlock {
            matrices: [
                pack(query, Projection::Query),
                pack(key, Projection::Key),
                pack(value, Projection::Value),
                pack(output, Projection::Output),
                pack(gate, Projection::Gate),
                pack(up, Projection::Up),
                pack(down, Projection::Down),
            ],
            attention_norm: rms_norm(vector(block.attention_norm, device), config.rms_epsilon),
            ffn_norm: rms_norm(vector(block.ffn_norm, device), config.rms_epsilon),
        }
    }

    #[cfg(test)]
    fn of(block: super::llama::Block) -> PackedBlock {
        let pack = |linear: burn::nn::Linear| Bf16Matrix::of_linear(linear.weight.val());
        PackedBlock {
            matrices: [
                pack(block.query),
                pack(block.key),
                pack(block.value),
                pack(block.output),
                pack(block.gate),
                pack(block.up),
                pack(block.down),
            ],
            attention_norm: block.attention_norm,
            ffn_norm: block.ffn_norm,
        }
    }
}

impl BlockParts for PackedBlock {
    fn attention_norm(&self) -> &RmsNorm {
        &self.attention_norm
    }

    fn ffn_norm(&self) -> &RmsNorm {
        &self.ffn_norm
    }

    fn project(&self, projection: Projection, x: Tensor<3>) -> Tensor<3> {
        let matrix = &self.matrices[projection as usize];
        let [batch, positions, _] = x.dims();
        let device = x.device();
        let out = matrix.apply(&values_of(x));
        Tensor::from_data(TensorData::new(out, [batch, positions, matrix.rows()]), &device)
    }
}

/// The language model with its matrices packed (see the module's documentation).
#[derive(Debug)]
pub struct PackedLm {
    /// `[vocab, width]`: the input table and the tied output layer.
    embedding: Bf16Matrix,
    blocks: Vec<PackedBlock>,
    norm: RmsNorm,
    shape: AttentionShape,
    device: Device,
}

impl PackedLm {
    /// Packs `model` (its f32 matrices are freed as they are packed): the module's arithmetic, to compare.
    #[cfg(test)]
    pub fn pack(model: LanguageModel) -> PackedLm {
        let shape = model.shape();
        let device = crate::device::of_module(&model);
        let LanguageModel { embedding, blocks, norm, .. } = model;
        PackedLm {
            embedding: Bf16Matrix::of_table(embedding.weight.val()),
            blocks: blocks.into_iter().map(PackedBlock::of).collect(),
            norm,
            shape,
            device,
        }
    }

    /// The model from its file's weights: the embedding table (`[vocab, width]` f32), the blocks packed
    /// as they were read ([`PackedBlock::of_file`]), the final norm's gains.
    pub fn of_parts(
        embedding: &[f32],
        blocks: Vec<PackedBlock>,
        norm: Vec<f32>,
        config: &LlamaConfig,
        device: &Device,
    ) -> PackedLm {
        PackedLm {
            embedding: Bf16Matrix::from_rows(embedding, config.vocab_size, config.width),
            blocks,
            norm: rms_norm(vector(norm, device), config.rms_epsilon),
            shape: config.shape(),
            device: device.clone(),
        }
    }

    /// `[batch, positions]` token ids into `[batch, positions, width]` input vectors.
    pub fn embed(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let [batch, positions] = tokens.dims();
        let ids = tokens.into_data().convert::<i64>().try_into_vec::<i64>().unwrap_or_default();
        let width = self.embedding.cols;
        let mut values = Vec::with_capacity(ids.len() * width);
        for id in ids {
            self.embedding.widen_row((id.max(0) as usize).min(self.embedding.rows - 1), &mut values);
        }
        Tensor::from_data(TensorData::new(values, [batch, positions, width]), &self.device)
    }

    /// See [`LanguageModel::forward_embeddings`].
    pub fn forward_embeddings(&self, inputs: Tensor<3>, cache: Option<&mut KvCache>) -> Tensor<3> {
        self.norm.forward(run_blocks(&self.blocks, self.shape, inputs, cache, None))
    }

    /// See [`LanguageModel::logits`].
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [batch, positions, _] = hidden.dims();
        let out = self.embedding.apply(&values_of(hidden));
        Tensor::from_data(TensorData::new(out, [batch, positions, self.embedding.rows]), &self.device)
    }
}

/// The model a story is written with: packed where that is faster (the CPU), burn's module elsewhere.
#[derive(Debug)]
pub enum DecodingLm {
    Module(LanguageModel),
    Packed(PackedLm),
}

impl DecodingLm {
    /// Whether a story is written with the packed model on `device`: on the CPU, unless
    /// `STORYTOOL_PACKED_LM=0` (which keeps f32 matrices, to compare).
    pub fn packs_on(device: &Device) -> bool {
        let wanted = std::env::var("STORYTOOL_PACKED_LM").map_or(true, |value| value != "0");
        wanted && *device == Device::flex()
    }

    pub fn embed(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        match self {
            DecodingLm::Module(model) => model.embed(tokens),
            DecodingLm::Packed(model) => model.embed(tokens),
        }
    }

    pub fn forward_embeddings(&self, inputs: Tensor<3>, cache: Option<&mut KvCache>) -> Tensor<3> {
        match self {
            DecodingLm::Module(model) => model.forward_embeddings(inputs, cache),
            DecodingLm::Packed(model) => model.forward_embeddings(inputs, cache),
        }
    }

    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        match self {
            DecodingLm::Module(model) => model.logits(hidden),
            DecodingLm::Packed(model) => model.logits(hidden),
        }
    }

    /// `[batch, positions]` token ids into `[batch, positions, vocab]` logits of each next token.
    pub fn forward(&self, tokens: Tensor<2, Int>, cache: Option<&mut KvCache>) -> Tensor<3> {
        self.logits(self.forward_embeddings(self.embed(tokens), cache))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::llama::LlamaConfig;

    #[test]
    fn the_kernel_multiplies_like_f32_arithmetic_on_the_rounded_weights() {
        // 3 rows of 37 columns (two whole 16-lane chunks and a rest), 2 inputs.
        let (rows, cols) = (3, 37);
        let weights: Vec<f32> = (0..rows * cols).map(|i| ((i * 7 % 23) as f32 - 11.0) / 8.0).collect();
        let inputs: Vec<f32> = (0..2 * cols).map(|i| ((i * 5 % 13) as f32 - 6.0) / 4.0).collect();
        let matrix = Bf16Matrix::from_rows(&weights, rows, cols);
        let out = matrix.apply(&inputs);
        assert_eq!(out.len(), 2 * rows);
        for input in 0..2 {
            for row in 0..rows {
                // These weights are exact in bfloat16.
                let want: f32 = (0..cols).map(|col| weights[row * cols + col] * inputs[input * cols + col]).sum();
                let got = out[input * rows + row];
                assert!((got - want).abs() < 1e-4, "row {row} input {input}: {got} vs {want}");
            }
        }
        assert_eq!(Bf16Matrix::from_rows(&weights, rows, cols).apply(&inputs[..cols]), {
            let mut first = Vec::new();
            (0..rows).for_each(|row| first.push(out[row]));
            first
        });
    }

    #[test]
    fn the_packed_model_writes_what_the_module_writes() {
        let device = Device::flex();
        let model = LlamaConfig::new(300, 64, 2, 4, 2, 96).init(&device);
        let ids = [3i64, 17, 5, 42, 8, 1, 250, 99];
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids.to_vec(), [2, 4]), &device);
        let want = values_of(model.forward(tokens.clone(), None));
        let packed = DecodingLm::Packed(PackedLm::pack(model));
        // Two positions at once, then one at a time with the cache.
        let mut cache = KvCache::new();
        let first = packed.forward(tokens.clone().narrow(1, 0, 2), Some(&mut cache));
        let mut got: Vec<Vec<f32>> = vec![values_of(first)];
        for position in 2..4 {
            got.push(values_of(packed.forward(tokens.clone().narrow(1, position, 1), Some(&mut cache))));
        }
        let vocab = 300;
        let scale = want.iter().fold(0f32, |top, value| top.max(value.abs()));
        for (step, values) in got.iter().enumerate() {
            let (from, count) = if step == 0 { (0, 2) } else { (step + 1, 1) };
            for row in 0..2 {
                for position in 0..count {
                    for token in 0..vocab {
                        let a = values[(row * count + position) * vocab + token];
                        let b = want[(row * 4 + from + position) * vocab + token];
                        assert!((a - b).abs() < 0.02 * scale, "{a} vs {b} (scale {scale})");
                    }
                }
            }
        }
    }
}
