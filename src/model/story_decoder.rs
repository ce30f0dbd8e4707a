//! The story decoder (neural-storyteller / Pix2Story): a GRU language model conditioned on a skip-thought
//! vector. Trained to write a passage of a novel back from the vector of that passage; at generation time
//! it is given a style-shifted vector made from a photo's captions and writes a passage in the genre.
//!
//! The initial state is `tanh(W c + b)` of the condition `c` (so the decoder's size need not be the
//! encoder's); with `per_step_context`, `c` is also fed beside each input word. The condition is the
//! skip-thought vector, followed, for a decoder trained so, by the mean embedding of a few *keywords* (content
//! words the passage must use: a photo's caption words at generation time) and the passage's genres as a
//! multi-hot vector. The skip-thought vector of a small encoder carries little of a sentence's words and the
//! style shift little of a genre; keywords and genres give the decoder both explicitly.

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
    /// Read the mean embedding of keywords after the vector.
    #[config(default = false)]
    pub keyword_input: bool,
    /// Number of genres read as a multi-hot vector after the vector (and keywords); 0: none.
    #[config(default = 0)]
    pub genres: usize,
}

#[derive(Module, Debug)]
pub struct StoryDecoder {
    pub embedding: Embedding,
    pub initial_state: Linear,
    pub gru: Gru,
    pub output: Linear,
    /// Whether [`condition`](Self::condition) appends keywords, and how many genres (from the config; not
    /// stored in the weights).
    pub keyword_input: bool,
    pub genres: usize,
}

impl StoryDecoderConfig {
    /// Size of the condition: vector, keyword embedding, genres.
    fn condition_dim(&self) -> usize {
        self.context_dim + if self.keyword_input { self.word_dim } else { 0 } + self.genres
    }

    pub fn init(&self, device: &Device) -> StoryDecoder {
        let condition = self.condition_dim();
        let input = self.word_dim + if self.per_step_context { condition } else { 0 };
        StoryDecoder {
            embedding: EmbeddingConfig::new(self.vocab_size, self.word_dim)
                .with_initializer(Initializer::Normal { mean: 0.0, std: 0.1 })
                .init(device),
            initial_state: LinearConfig::new(condition, self.hidden_dim).init(device),
            gru: GruConfig::new(input, self.hidden_dim, true).init(device),
            output: LinearConfig::new(self.hidden_dim, self.vocab_size).init(device),
            keyword_input: self.keyword_input,
            genres: self.genres,
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

/// What a decoder is conditioned on, per row, before [`StoryDecoder::condition`] joins it into one tensor.
#[derive(Debug, Clone, Default)]
pub struct ConditionInputs {
    /// Keyword ids per row (may be empty; ignored by a decoder without keyword input).
    pub keywords: Vec<Vec<u32>>,
    /// Genre weights per row, `genres` values each (all zero: no genre; ignored by a decoder without genres).
    pub genres: Vec<Vec<f32>>,
}

impl StoryDecoder {
    /// The condition `[rows, condition]` for skip-thought vectors `[rows, context_dim]`: the vectors, then
    /// (if the decoder reads them) the mean embedding of each row's keywords (zero for none) and its genres.
    /// Rows missing from `inputs` get no keywords and no genre.
    pub fn condition(&self, vectors: Tensor<2>, inputs: &ConditionInputs) -> Tensor<2> {
        let [rows, _] = vectors.dims();
        let device = vectors.device();
        let mut parts = vec![vectors];
        if self.keyword_input {
            let [_, word_dim] = self.embedding.weight.dims();
            let width = inputs.keywords.iter().map(Vec::len).max().unwrap_or(0).max(1);
            let mut ids = vec![0i64; rows * width];
            let mut weights = vec![0.0f32; rows * width];
            for (row, keywords) in inputs.keywords.iter().take(rows).enumerate() {
                for (column, &id) in keywords.iter().enumerate() {
                    ids[row * width + column] = i64::from(id);
                    weights[row * width + column] = 1.0 / keywords.len() as f32;
                }
            }
            let embedded = self.embedding.forward(Tensor::from_data(TensorData::new(ids, [rows, width]), &device));
            let weights = Tensor::<3>::from_data(TensorData::new(weights, [rows, width, 1]), &device);
            let mean: Tensor<2> = (embedded * weights).sum_dim(1).reshape([rows, word_dim]);
            parts.push(mean);
        }
        if self.genres > 0 {
            let mut values = vec![0.0f32; rows * self.genres];
            for (row, genres) in inputs.genres.iter().take(rows).enumerate() {
                for (column, &value) in genres.iter().take(self.genres).enumerate() {
                    values[row * self.genres + column] = value;
                }
            }
            parts.push(Tensor::from_data(TensorData::new(values, [rows, self.genres]), &device));
        }
        if parts.len() == 1 { parts.pop().expect("one part") } else { Tensor::cat(parts, 1) }
    }

    fn per_step_context(&self) -> bool {
        let [input, _] = self.gru.update_gate.input_transform.weight.dims();
        let [_, word_dim] = self.embedding.weight.dims();
        input > word_dim
    }

    /// Bag-of-words loss (Zhao et al. 2017): the mean negative log-likelihood of the passage's words under
    /// one softmax of the output layer over the starting state. The starting state alone must then say
    /// which words the passage holds, so the vector it is made from cannot be ignored.
    pub fn bag_of_words_loss(&self, condition: Tensor<2>, targets: &DecoderTargets) -> Tensor<1> {
        let log_probs = self.bag_of_words(condition); // [batch, vocab]
        let picked = log_probs.gather(1, targets.ids.clone()); // [batch, len]
        (picked * targets.mask.clone()).sum().neg() / targets.mask.clone().sum()
    }

    /// `[rows, vocab]` log-probabilities of the bag of words that the starting state predicts (the head the
    /// bag-of-words loss trains).
    pub fn bag_of_words(&self, condition: Tensor<2>) -> Tensor<2> {
        log_softmax(self.output.forward(self.start(condition)), 1)
    }

    /// The decoder's starting state for conditions `[rows, condition]` (see [`condition`](Self::condition)).
    pub fn start(&self, condition: Tensor<2>) -> Tensor<2> {
        self.initial_state.forward(condition).tanh()
    }

    /// Mean negative log-likelihood per real target token of `targets` given `condition`; with `candidates`,
    /// over a sampled softmax.
    pub fn loss(
        &self,
        condition: Tensor<2>,
        targets: &DecoderTargets,
        candidates: Option<&Tensor<1, Int>>,
    ) -> Tensor<1> {
        let initial = self.start(condition.clone());
        let step_context = self.per_step_context().then_some(condition);
        let (nll, count) =
            decoder_nll(&self.embedding, &self.output, &self.gru, targets, initial, step_context, candidates);
        nll / count
    }

    /// Reads `previous` (one word id per row, `None` for the first step: a zero input, as in training) and
    /// returns the next word's log-probabilities and the new state.
    pub fn step(&self, previous: Option<&[u32]>, state: Tensor<2>, condition: &Tensor<2>) -> DecoderStep {
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
            input = Tensor::cat(vec![input, condition.clone().unsqueeze_dim::<3>(1)], 2);
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
    use crate::model::batch::PaddedBatch;

    #[test]
    fn a_tiny_decoder_memorises_two_passages_and_steps_agree_with_training() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let config = StoryDecoderConfig::new(12, 8, 16, 4).with_per_step_context(true);
        assert_eq!(config.condition_dim(), 4);
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

    #[test]
    fn keywords_and_genres_decide_what_a_decoder_writes_when_the_vector_does_not() {
        // Two passages with the same vector: only their keyword and genre tell them apart.
        let device = Device::flex().autodiff();
        device.seed(5);
        let config =
            StoryDecoderConfig::new(12, 8, 16, 2).with_per_step_context(true).with_keyword_input(true).with_genres(2);
        assert_eq!(config.condition_dim(), 2 + 8 + 2);
        let mut model = config.init(&device);
        let vectors = Tensor::<2>::from_data(TensorData::new(vec![0.5, 0.5, 0.5, 0.5], [2, 2]), &device);
        let inputs =
            ConditionInputs { keywords: vec![vec![4], vec![7, 8]], genres: vec![vec![1.0, 0.0], vec![0.0, 1.0]] };
        let batch = PaddedBatch::new([&[2, 3, 4][..], &[6, 7, 8][..]], 10);
        let targets = DecoderTargets::new(&batch, &device);
        let mut optimizer = AdamConfig::new().init();
        for _ in 0..200 {
            let condition = model.condition(vectors.clone(), &inputs);
            let loss = model.loss(condition, &targets, None);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(1e-2, model, grads);
        }
        let condition = model.condition(vectors.clone(), &inputs);
        assert_eq!(condition.dims(), [2, 12]);
        let last: f32 = model.loss(condition, &targets, None).into_scalar();
        assert!(last < 0.05, "{last}");
        // Without them the two rows are the same input, and the decoder cannot write both passages.
        let bare = model.condition(vectors, &ConditionInputs::default());
        let bare_loss: f32 = model.loss(bare, &targets, None).into_scalar();
        assert!(bare_loss > 0.3, "{bare_loss}");
    }
}
