//! The story decoder (neural-storyteller / Pix2Story): a GRU language model conditioned on a skip-thought
//! vector. Trained to write a passage of a novel back from the vector of that passage; at generation time
//! it is given a style-shifted vector made from a photo's captions and writes a passage in the genre.
//!
//! The initial state is `tanh(W v + b)` of the conditioning vector `v` (so the decoder's size need not be
//! the encoder's); with `per_step_context`, `v` is also fed beside each input word.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Gru, GruConfig, Initializer, Linear, LinearConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::skip_thought::{DecoderTargets, decoder_nll};

#[derive(Config, Debug)]
pub struct StoryDecoderConfig {
    pub vocab_size: usize,
    pub word_dim: usize,
    pub hidden_dim: usize,
    /// Size of the conditioning vector (the encoder's sentence vector).
    pub context_dim: usize,
    #[config(default = false)]
    pub per_step_context: bool,
}

#[derive(Module, Debug)]
pub struct StoryDecoder {
    pub embedding: Embedding,
    pub initial_state: Linear,
    pub gru: Gru,
    pub output: Linear,
}

impl StoryDecoderConfig {
    pub fn init(&self, device: &Device) -> StoryDecoder {
        let input = self.word_dim + if self.per_step_context { self.context_dim } else { 0 };
        StoryDecoder {
            embedding: EmbeddingConfig::new(self.vocab_size, self.word_dim)
                .with_initializer(Initializer::Normal { mean: 0.0, std: 0.1 })
                .init(device),
            initial_state: LinearConfig::new(self.context_dim, self.hidden_dim).init(device),
            gru: GruConfig::new(input, self.hidden_dim, true).init(device),
            output: LinearConfig::new(self.hidden_dim, self.vocab_size).init(device),
        }
    }
}

/// One step of decoding for a set of hypotheses.
#[derive(Debug, Clone)]
pub struct DecoderStep {
    /// `[rows, vocab]` log-probabilities of the next word.
    pub log_probs: Tensor<2>,
    /// `[rows, hidden]` states after reading the previous word.
    pub state: Tensor<2>,
}

impl StoryDecoder {
    fn per_step_context(&self) -> bool {
        let [input, _] = self.gru.update_gate.input_transform.weight.dims();
        let [_, word_dim] = self.embedding.weight.dims();
        input > word_dim
    }

    /// Bag-of-words loss (Zhao et al. 2017): the mean negative log-likelihood of the passage's words under
    /// one softmax of the output layer over the starting state. The starting state alone must then say
    /// which words the passage holds, so the vector it is made from cannot be ignored.
    pub fn bag_of_words_loss(&self, context: Tensor<2>, targets: &DecoderTargets) -> Tensor<1> {
        let log_probs = self.bag_of_words(context); // [batch, vocab]
        let picked = log_probs.gather(1, targets.ids.clone()); // [batch, len]
        (picked * targets.mask.clone()).sum().neg() / targets.mask.clone().sum()
    }

    /// `[rows, vocab]` log-probabilities of the bag of words that the starting state predicts (the head the
    /// bag-of-words loss trains).
    pub fn bag_of_words(&self, context: Tensor<2>) -> Tensor<2> {
        log_softmax(self.output.forward(self.start(context)), 1)
    }

    /// The decoder's starting state for conditioning vectors `[rows, context_dim]`.
    pub fn start(&self, context: Tensor<2>) -> Tensor<2> {
        self.initial_state.forward(context).tanh()
    }

    /// Mean negative log-likelihood per real target token of `targets` given `context`; with `candidates`,
    /// over a sampled softmax.
    pub fn loss(&self, context: Tensor<2>, targets: &DecoderTargets, candidates: Option<&Tensor<1, Int>>) -> Tensor<1> {
        let initial = self.start(context.clone());
        let step_context = self.per_step_context().then_some(context);
        let (nll, count) =
            decoder_nll(&self.embedding, &self.output, &self.gru, targets, initial, step_context, candidates);
        nll / count
    }

    /// Reads `previous` (one word id per row, `None` for the first step: a zero input, as in training) and
    /// returns the next word's log-probabilities and the new state.
    pub fn step(&self, previous: Option<&[u32]>, state: Tensor<2>, context: &Tensor<2>) -> DecoderStep {
        let [rows, _] = state.dims();
        let device = state.device();
        let [_, word_dim] = self.embedding.weight.dims();
        let mut input: Tensor<3> = match previous {
            Some(ids) => {
                let ids: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
                self.embedding.forward(Tensor::from_data(TensorData::new(ids, [rows, 1]), &device))
            }
            None => Tensor::zeros([rows, 1, word_dim], &device),
        };
        if self.per_step_context() {
            input = Tensor::cat(vec![input, context.clone().unsqueeze_dim::<3>(1)], 2);
        }
        let state: Tensor<2> = self.gru.forward(input, Some(state)).squeeze_dim(1);
        let log_probs = log_softmax(self.output.forward(state.clone()), 1);
        DecoderStep { log_probs, state }
    }
}

#[cfg(test)]
mod tests {
    use burn::optim::{AdamConfig, GradientsParams};

    use super::*;
    use crate::train::batches::PaddedBatch;

    #[test]
    fn a_tiny_decoder_memorises_two_passages_and_steps_agree_with_training() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let config = StoryDecoderConfig::new(12, 8, 16, 4).with_per_step_context(true);
        let mut model = config.init(&device);
        let contexts =
            Tensor::<2>::from_data(TensorData::new(vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0], [2, 4]), &device);
        let batch = PaddedBatch::new([&[2, 3, 4, 5][..], &[6, 7, 8][..]], 10);
        let targets = DecoderTargets::new(&batch, &device);
        let mut optimizer = AdamConfig::new().init();
        let first: f32 = model.loss(contexts.clone(), &targets, None).into_scalar();
        for _ in 0..200 {
            let loss = model.loss(contexts.clone(), &targets, None);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(1e-2, model, grads);
        }
        let last: f32 = model.loss(contexts.clone(), &targets, None).into_scalar();
        assert!(last < 0.05 && last < first / 20.0, "{first} -> {last}");

        // Greedy decoding, step by step, writes the memorised passages back.
        let model = model.valid();
        let device = Device::flex();
        let contexts = Tensor::<2>::from_data(contexts.into_data(), &device);
        let mut state = model.start(contexts.clone());
        let mut previous: Option<Vec<u32>> = None;
        let mut written = vec![Vec::new(), Vec::new()];
        for _ in 0..5 {
            let step = model.step(previous.as_deref(), state, &contexts);
            let best: Vec<u32> = step.log_probs.argmax(1).into_data().iter::<i64>().map(|id| id as u32).collect();
            for (row, &id) in best.iter().enumerate() {
                written[row].push(id);
            }
            state = step.state;
            previous = Some(best);
        }
        assert_eq!(&written[0][..5], &[2, 3, 4, 5, 0]);
        assert_eq!(&written[1][..4], &[6, 7, 8, 0]);
    }
}
