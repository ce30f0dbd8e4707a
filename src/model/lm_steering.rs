//! What the `lm` story decoder trains on top of a frozen pretrained language model, to make it write a
//! passage from a skip-thought vector in a genre's voice.
//!
//! - A *prefix* (ClipCap, Mokady et al. 2021): an MLP maps the vector to `prefix_len` input vectors that
//!   stand before the prompt, as if they were the embeddings of words that say what the passage is about.
//! - *Genre tokens*: `genre_tokens` learned input vectors per genre after the prefix (a passage of a book
//!   without a genre, or with its genre dropped, gets those of no genre), so the genre's style has a place
//!   to live that the vector need not carry.
//! - *LoRA* (Hu et al. 2021) on every block's query and value projections: `W + (alpha / rank) D U` with `U`
//!   starting at zero, so training starts from the pretrained model exactly and moves its prose toward the
//!   novels'. For decoding, [`LmSteering::merge_lora`] folds the product into the weights once.
//!
//! Keywords are not learned vectors: they are plain text in the prompt, which the model already reads.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig};
use burn::tensor::activation::tanh;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::llama::{FileBlock, Projection};

#[derive(Config, Debug, PartialEq)]
pub struct LmSteeringConfig {
    /// Size of the skip-thought vector.
    pub context_dim: usize,
    /// The language model's width, blocks, and key/value width (`kv_heads * head_dim`).
    pub width: usize,
    pub blocks: usize,
    pub kv_width: usize,
    /// Input vectors made from the skip-thought vector (ClipCap: 10).
    #[config(default = 8)]
    pub prefix_len: usize,
    #[config(default = 1024)]
    pub mapper_hidden: usize,
    /// Genres with tokens of their own (0: none); one more row set stands for "no genre".
    #[config(default = 0)]
    pub genres: usize,
    #[config(default = 2)]
    pub genre_tokens: usize,
    /// LoRA rank (0: no LoRA) and scale numerator.
    #[config(default = 8)]
    pub lora_rank: usize,
    #[config(default = 16.0)]
    pub lora_alpha: f64,
}

/// A low-rank update of one `[input, output]` weight: `x D U * scale`.
#[derive(Module, Debug)]
pub struct LoraPair {
    pub down: Linear,
    pub up: Linear,
}

impl LoraPair {
    fn new(input: usize, rank: usize, output: usize, device: &Device) -> LoraPair {
        LoraPair {
            down: LinearConfig::new(input, rank)
                .with_bias(false)
                .with_initializer(Initializer::Normal { mean: 0.0, std: 1.0 / (input as f64).sqrt() })
                .init(device),
            up: LinearConfig::new(rank, output).with_bias(false).with_initializer(Initializer::Zeros).init(device),
        }
    }

    pub fn forward(&self, x: Tensor<3>, scale: f64) -> Tensor<3> {
        self.up.forward(self.down.forward(x)) * scale
    }

    /// The update as a dense `[input, output]` matrix.
    fn delta(&self, scale: f64) -> Tensor<2> {
        self.down.weight.val().matmul(self.up.weight.val()) * scale
    }
}

/// LoRA of one block: its query and value projections.
#[derive(Module, Debug)]
pub struct BlockLora {
    pub query: LoraPair,
    pub value: LoraPair,
}

#[derive(Module, Debug)]
pub struct LmSteering {
    /// `context_dim -> mapper_hidden -> prefix_len * width`, tanh between.
    pub mapper_in: Linear,
    pub mapper_out: Linear,
    /// `[(genres + 1) * genre_tokens, width]`; the last `genre_tokens` rows are "no genre". `None` without genres.
    pub genre: Option<Embedding>,
    pub lora: Vec<BlockLora>,
    pub prefix_len: usize,
    pub genre_tokens: usize,
    pub genres: usize,
    pub lora_scale: f64,
}

impl LmSteeringConfig {
    pub fn init(&self, device: &Device) -> LmSteering {
        let lora = if self.lora_rank == 0 {
            Vec::new()
        } else {
            (0..self.blocks)
                .map(|_| BlockLora {
                    query: LoraPair::new(self.width, self.lora_rank, self.width, device),
                    value: LoraPair::new(self.width, self.lora_rank, self.kv_width, device),
                })
                .collect()
        };
        LmSteering {
            mapper_in: LinearConfig::new(self.context_dim, self.mapper_hidden).init(device),
            // Small outputs: the prefix starts near the scale of word embeddings (SmolLM2's are about 0.1).
            mapper_out: LinearConfig::new(self.mapper_hidden, self.prefix_len * self.width)
                .with_initializer(Initializer::Normal { mean: 0.0, std: 0.02 })
                .init(device),
            genre: (self.genres > 0).then(|| {
                EmbeddingConfig::new((self.genres + 1) * self.genre_tokens, self.width)
                    .with_initializer(Initializer::Normal { mean: 0.0, std: 0.05 })
                    .init(device)
            }),
            lora,
            prefix_len: self.prefix_len,
            genre_tokens: self.genre_tokens,
            genres: self.genres,
            lora_scale: if self.lora_rank == 0 { 0.0 } else { self.lora_alpha / self.lora_rank as f64 },
        }
    }
}

impl LmSteering {
    /// The input vectors before the prompt: `[rows, prefix_len (+ genre_tokens), width]` for vectors
    /// `[rows, context_dim]` and each row's genre (`None`: no genre; ignored without genre tokens).
    pub fn prefix(&self, vectors: Tensor<2>, genres: &[Option<usize>]) -> Tensor<3> {
        self.prefix_with_strength(vectors, genres, 1.0)
    }

    /// [`prefix`](Self::prefix) with each genre's tokens moved `strength` times their offset from the
    /// tokens of no genre (1: as trained; above 1 pushes the genre harder, as `generate.genre_strength`).
    pub fn prefix_with_strength(&self, vectors: Tensor<2>, genres: &[Option<usize>], strength: f32) -> Tensor<3> {
        let [rows, _] = vectors.dims();
        let hidden = tanh(self.mapper_in.forward(vectors));
        let prefix = self.mapper_out.forward(hidden);
        let width = prefix.dims()[1] / self.prefix_len;
        let prefix: Tensor<3> = prefix.reshape([rows, self.prefix_len, width]);
        let Some(genre) = &self.genre else {
            return prefix;
        };
        let ids: Vec<i64> = (0..rows)
            .flat_map(|row| {
                let genre = genres.get(row).copied().flatten().filter(|&g| g < self.genres).unwrap_or(self.genres);
                (0..self.genre_tokens).map(move |token| (genre * self.genre_tokens + token) as i64)
            })
            .collect();
        let device = prefix.device();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [rows, self.genre_tokens]), &device);
        let mut tokens = genre.forward(ids);
        if strength != 1.0 {
            let none: Vec<i64> = (0..rows)
                .flat_map(|_| (0..self.genre_tokens).map(|token| (self.genres * self.genre_tokens + token) as i64))
                .collect();
            let none =
                genre.forward(Tensor::<2, Int>::from_data(TensorData::new(none, [rows, self.genre_tokens]), &device));
            tokens = none.clone() + (tokens - none) * strength;
        }
        Tensor::cat(vec![prefix, tokens], 1)
    }

    /// Input vectors the prefix adds before the prompt.
    pub fn prefix_positions(&self) -> usize {
        self.prefix_len + if self.genre.is_some() { self.genre_tokens } else { 0 }
    }
}

impl LmSteering {
    /// Folds block `index`'s LoRA update into its query and value weights (`block` as its file holds it),
    /// for decoding: the model then writes with no LoRA arithmetic.
    pub fn merge_lora(&self, index: usize, block: &mut FileBlock) {
        let Some(lora) = self.lora.get(index) else {
            return;
        };
        for (pair, projection) in [(&lora.query, Projection::Query), (&lora.value, Projection::Value)] {
            // The update is `[input, output]`; the file's rows are outputs.
            let delta = pair.delta(self.lora_scale).transpose().into_data().convert::<f32>();
            let delta = delta.as_slice::<f32>().unwrap_or_default();
            let weights = &mut block.matrices[projection as usize];
            debug_assert_eq!(weights.len(), delta.len());
            weights.iter_mut().zip(delta).for_each(|(weight, change)| *weight += change);
        }
    }
}
