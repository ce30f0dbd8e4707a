//! The Show, Attend and Tell captioner (Xu et al. 2015), soft ("deterministic") attention: an LSTM writes a
//! caption word by word while attending over a photo's annotation vectors (the CNN's last spatial map, one
//! vector per location).
//!
//! At each step, an MLP scores every location against the previous state, `alpha = softmax(scores)`, and
//! the context `z = beta * sum_i alpha_i a_i` is the weighted mean annotation scaled by a gating scalar
//! `beta = sigmoid(f(h))` (paper section 4.2.1). The LSTM reads the previous word and `z`; its first state
//! comes from the mean annotation through two MLPs. The word is predicted by the paper's deep output layer
//! `L_o(E y_{t-1} + L_h h_t + L_z z_t)`, with dropout before `L_o` during training. The loss adds the doubly
//! stochastic penalty `lambda * sum_i (1 - sum_t alpha_ti)^2`, which asks every location to be looked at
//! over the caption.
//!
//! The LSTM cell is written here with one fused gate matrix per input instead of `burn::nn::Lstm`: the
//! attention context changes the input at every step, so the sequence form cannot be used, and one step of
//! `Lstm` runs eight matrix products where this runs two.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig};
use burn::tensor::activation::{log_softmax, sigmoid, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::skip_thought::DecoderTargets;

/// Sizes of the model.
#[derive(Config, Debug)]
pub struct CaptionerModelConfig {
    pub vocab_size: usize,
    pub word_dim: usize,
    pub hidden_dim: usize,
    pub attention_dim: usize,
    /// Size of one annotation vector (1280 for EfficientNet-Lite).
    pub feature_dim: usize,
    #[config(default = 0.5)]
    pub dropout: f64,
}

#[derive(Module, Debug)]
pub struct Captioner {
    pub embedding: Embedding,
    /// Attention MLP: annotation part (computed once per photo), state part, and the score.
    pub attention_features: Linear,
    pub attention_state: Linear,
    pub attention_score: Linear,
    /// The gating scalar's `f_beta`.
    pub gate: Linear,
    /// Initial LSTM state and memory from the mean annotation.
    pub initial_hidden: Linear,
    pub initial_cell: Linear,
    /// LSTM gates (input, forget, cell, output) from `[word, context]` and from the previous state.
    pub input_gates: Linear,
    pub hidden_gates: Linear,
    /// Deep output: state and context into the word space, then to the vocabulary.
    pub output_hidden: Linear,
    pub output_context: Linear,
    pub output: Linear,
    pub dropout: Dropout,
}

impl CaptionerModelConfig {
    pub fn init(&self, device: &Device) -> Captioner {
        let linear = |input, output| LinearConfig::new(input, output).init(device);
        Captioner {
            embedding: EmbeddingConfig::new(self.vocab_size, self.word_dim)
                .with_initializer(Initializer::Normal { mean: 0.0, std: 0.1 })
                .init(device),
            attention_features: linear(self.feature_dim, self.attention_dim),
            attention_state: linear(self.hidden_dim, self.attention_dim),
            attention_score: linear(self.attention_dim, 1),
            gate: linear(self.hidden_dim, 1),
            initial_hidden: linear(self.feature_dim, self.hidden_dim),
            initial_cell: linear(self.feature_dim, self.hidden_dim),
            input_gates: linear(self.word_dim + self.feature_dim, 4 * self.hidden_dim),
            hidden_gates: LinearConfig::new(self.hidden_dim, 4 * self.hidden_dim).with_bias(false).init(device),
            output_hidden: linear(self.hidden_dim, self.word_dim),
            output_context: linear(self.feature_dim, self.word_dim),
            output: linear(self.word_dim, self.vocab_size),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// A batch of photos' annotation vectors with their attention projection, computed once.
#[derive(Debug, Clone)]
pub struct Annotations {
    /// `[batch, locations, feature_dim]`.
    pub vectors: Tensor<3>,
    /// `[batch, locations, attention_dim]`.
    pub keys: Tensor<3>,
}

impl Annotations {
    /// The same photos, each row repeated `times` (a beam's hypotheses share one photo).
    pub fn repeat(&self, times: usize) -> Annotations {
        Annotations { vectors: self.vectors.clone().repeat_dim(0, times), keys: self.keys.clone().repeat_dim(0, times) }
    }
}

/// LSTM state and memory, `[rows, hidden_dim]` each.
#[derive(Debug, Clone)]
pub struct LstmState {
    pub hidden: Tensor<2>,
    pub cell: Tensor<2>,
}

impl LstmState {
    /// The rows `index` of the state (hypotheses continuing in a beam).
    pub fn select(self, index: Tensor<1, Int>) -> LstmState {
        LstmState { hidden: self.hidden.select(0, index.clone()), cell: self.cell.select(0, index) }
    }
}

/// One step's result.
#[derive(Debug, Clone)]
pub struct CaptionStep {
    /// `[rows, vocab]` unnormalised scores of the next word.
    pub logits: Tensor<2>,
    /// `[rows, locations]` attention weights (each row sums to 1).
    pub alpha: Tensor<2>,
    pub state: LstmState,
}

/// The training objective of a batch, split into its parts.
#[derive(Debug, Clone)]
pub struct CaptionerLoss {
    /// Summed negative log-likelihood of the real target tokens.
    pub nll: Tensor<1>,
    /// Summed doubly stochastic penalty over the batch (unweighted).
    pub penalty: Tensor<1>,
    /// Real target tokens.
    pub tokens: Tensor<1>,
}

impl CaptionerLoss {
    /// What training minimises: `(nll + lambda * penalty) / tokens`, the paper's objective per token.
    pub fn objective(self, lambda: f32) -> Tensor<1> {
        (self.nll + self.penalty.mul_scalar(lambda)) / self.tokens
    }
}

impl Captioner {
    /// Annotation vectors `[batch, locations, feature_dim]` with their attention keys.
    pub fn annotate(&self, vectors: Tensor<3>) -> Annotations {
        Annotations { keys: self.attention_features.forward(vectors.clone()), vectors }
    }

    /// The first LSTM state, from the mean annotation of each photo.
    pub fn start(&self, annotations: &Annotations) -> LstmState {
        let mean: Tensor<2> = annotations.vectors.clone().mean_dim(1).squeeze_dim(1);
        LstmState {
            hidden: self.initial_hidden.forward(mean.clone()).tanh(),
            cell: self.initial_cell.forward(mean).tanh(),
        }
    }

    /// Soft attention of each row's state over its photo: the gated context `[rows, feature_dim]` and the
    /// weights `[rows, locations]`.
    pub fn attend(&self, annotations: &Annotations, hidden: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let query = self.attention_state.forward(hidden.clone()).unsqueeze_dim::<3>(1); // [rows, 1, attention]
        let scores: Tensor<2> = self.attention_score.forward((annotations.keys.clone() + query).tanh()).squeeze_dim(2);
        let alpha = softmax(scores, 1); // [rows, locations]
        let context: Tensor<2> = alpha.clone().unsqueeze_dim::<3>(1).matmul(annotations.vectors.clone()).squeeze_dim(1);
        let beta = sigmoid(self.gate.forward(hidden.clone())); // [rows, 1]
        (context * beta, alpha)
    }

    /// Reads the previous words' embeddings `[rows, word_dim]` and returns the next word's scores.
    pub fn step(&self, words: Tensor<2>, state: LstmState, annotations: &Annotations) -> CaptionStep {
        let (context, alpha) = self.attend(annotations, &state.hidden);
        let gates = self.input_gates.forward(Tensor::cat(vec![words.clone(), context.clone()], 1))
            + self.hidden_gates.forward(state.hidden);
        let [input, forget, candidate, output] = <[Tensor<2>; 4]>::try_from(gates.chunk(4, 1)).expect("four gates");
        let cell = sigmoid(forget) * state.cell + sigmoid(input) * candidate.tanh();
        let hidden = sigmoid(output) * cell.clone().tanh();
        let deep = words + self.output_hidden.forward(hidden.clone()) + self.output_context.forward(context);
        let logits = self.output.forward(self.dropout.forward(deep));
        CaptionStep { logits, alpha, state: LstmState { hidden, cell } }
    }

    /// Embeddings of the previous words, one id per row; `None` is the first step, a zero input.
    pub fn embed_previous(&self, previous: Option<&[u32]>, rows: usize, device: &Device) -> Tensor<2> {
        let [_, word_dim] = self.embedding.weight.dims();
        match previous {
            Some(ids) => {
                let ids: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
                self.embedding.forward(Tensor::from_data(TensorData::new(ids, [rows, 1]), device)).squeeze_dim(1)
            }
            None => Tensor::zeros([rows, word_dim], device),
        }
    }

    /// Teacher forcing over `targets` (each caption closed by `<eos>`): the input at step `t` is target
    /// `t - 1` (zeros at `t = 0`). Returns the loss parts and the attention weights `[batch, len, locations]`.
    pub fn forward_targets(&self, vectors: Tensor<3>, targets: &DecoderTargets) -> (CaptionerLoss, Tensor<3>) {
        let [batch, len] = targets.ids.dims();
        let annotations = self.annotate(vectors);
        let mut state = self.start(&annotations);
        let embedded = self.embedding.forward(targets.ids.clone()); // [batch, len, word]
        let [_, _, word_dim] = embedded.dims();
        let device = embedded.device();
        let mut logits = Vec::with_capacity(len);
        let mut alphas = Vec::with_capacity(len);
        for t in 0..len {
            let words = if t == 0 {
                Tensor::zeros([batch, word_dim], &device)
            } else {
                embedded.clone().slice([0..batch, t - 1..t, 0..word_dim]).squeeze_dim(1)
            };
            let step = self.step(words, state, &annotations);
            state = step.state;
            logits.push(step.logits);
            alphas.push(step.alpha);
        }
        let log_probs = log_softmax(Tensor::stack::<3>(logits, 1), 2); // [batch, len, vocab]
        let picked: Tensor<2> = log_probs.gather(2, targets.ids.clone().unsqueeze_dim(2)).squeeze_dim(2);
        let nll = (picked * targets.mask.clone()).sum().neg();
        let alpha = Tensor::stack::<3>(alphas, 1); // [batch, len, locations]
        // Only real steps attend: padding positions do not count toward a location's total.
        let attended: Tensor<2> = (alpha.clone() * targets.mask.clone().unsqueeze_dim(2)).sum_dim(1).squeeze_dim(1);
        let penalty = attended.neg().add_scalar(1.0).powi_scalar(2).sum();
        (CaptionerLoss { nll, penalty, tokens: targets.mask.clone().sum() }, alpha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(shape: [usize; 3], seed: u64) -> Tensor<3> {
        let values: Vec<f32> =
            (0..shape.iter().product::<usize>()).map(|i| ((i as u64 * 7919 + seed) % 101) as f32 / 50.0).collect();
        Tensor::from_data(TensorData::new(values, shape), &Device::flex())
    }

    #[test]
    fn attention_weights_are_a_distribution_over_locations() {
        let device = Device::flex();
        device.seed(1);
        let model = CaptionerModelConfig::new(10, 8, 12, 6, 5).init(&device);
        let annotations = model.annotate(random([3, 7, 5], 3));
        let state = model.start(&annotations);
        let (context, alpha) = model.attend(&annotations, &state.hidden);
        assert_eq!(context.dims(), [3, 5]);
        let alpha = alpha.into_data().try_to_vec::<f32>().unwrap();
        for row in alpha.chunks(7) {
            assert!(row.iter().all(|&weight| weight > 0.0), "{row:?}");
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "weights sum to {sum}");
        }
        // Also at a later step, from a state that has read a word.
        let words = model.embed_previous(Some(&[4, 5, 6]), 3, &device);
        let step = model.step(words, state, &annotations);
        for row in step.alpha.into_data().try_to_vec::<f32>().unwrap().chunks(7) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn the_penalty_counts_only_real_steps() {
        // With 2 locations, uniform attention gives 0.5 per step; a caption of 2 real steps then attends
        // each location exactly once in total: no penalty, whatever the padding after it.
        let device = Device::flex();
        let model = CaptionerModelConfig::new(6, 4, 4, 3, 2).init(&device);
        let mut model = model;
        // Zero scores: uniform attention.
        model.attention_score.weight = burn::module::Param::from_tensor(Tensor::zeros([3, 1], &device));
        let batch = crate::model::batch::PaddedBatch::new([&[2u32][..], &[2, 3, 4][..]], 10);
        let targets = DecoderTargets::new(&batch, &device);
        let (loss, alpha) = model.forward_targets(random([2, 2, 2], 5), &targets);
        assert_eq!(alpha.dims(), [2, 4, 2]);
        // Caption 0: 2 real steps -> 1.0 per location -> 0; caption 1: 4 steps -> 2.0 -> (1 - 2)^2 * 2 = 2.
        let penalty: f32 = loss.penalty.into_scalar();
        assert!((penalty - 2.0).abs() < 1e-5, "{penalty}");
        let tokens: f32 = loss.tokens.into_scalar();
        assert_eq!(tokens, 6.0);
    }
}
