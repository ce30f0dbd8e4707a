//! Skip-thought vectors (Kiros et al. 2015, "Skip-Thought Vectors", arXiv:1506.06726): a GRU encoder
//! reads a sentence; two GRU decoders, started from the encoder's final state, reconstruct the previous
//! and the next sentence. The encoder's state is the sentence vector.
//!
//! This is the uni-skip model with the released code's conditioning (the decoders' initial state) and an
//! output layer shared by both decoders. Training can use the full softmax over the vocabulary or a sampled
//! one (Jean et al. 2015): each batch scores only its own target words plus uniformly drawn others, which
//! removes most of the work at a 10k-20k vocabulary; or an adaptive softmax (Grave et al. 2017, see
//! [`super::adaptive_softmax`]), exact over the whole vocabulary but cheap for frequent words. The decoders may also see the sentence vector at every
//! step (`per_step_context`). Bi-skip (`bidirectional`) splits the vector between a forward and a backward
//! encoder GRU. Combine-skip, the paper's concatenation of separately trained uni- and bi-skip encoders, is
//! not built.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Gru, GruConfig, Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;

use crate::model::adaptive_softmax::{self, AdaptiveTail, weighted_nll_adaptive};
use crate::model::batch::PaddedBatch;
use crate::model::gru;
use crate::model::output_loss::{RowTargets, weighted_nll_optional_bias};
use crate::text::{EOS_ID, UNK_ID};

/// Sizes of the model. The paper: vocabulary 20,000, words 620, GRU 2400.
#[derive(Config, Debug)]
pub struct SkipThoughtConfig {
    pub vocab_size: usize,
    pub word_dim: usize,
    pub hidden_dim: usize,
    /// Feed the sentence vector to the decoders at every step, beside the previous word (the released
    /// code's conditional GRU), instead of only as their initial state.
    #[config(default = false)]
    pub per_step_context: bool,
    /// Bi-skip: a forward and a backward encoder of `hidden_dim / 2` each, their final states concatenated.
    #[config(default = false)]
    pub bidirectional: bool,
    /// Adaptive softmax cutoffs in the frequency-ranked vocabulary (e.g. `[2000, 6000]`: a head of the
    /// 2,000 most frequent words and tails 2,000-5,999 and 6,000 on); empty for a full output layer.
    #[config(default = "Vec::new()")]
    pub adaptive_cutoffs: Vec<usize>,
}

/// Embedding, encoder, two decoders and the shared output layer.
#[derive(Module, Debug)]
pub struct SkipThought {
    embedding: Embedding,
    /// The forward encoder: the whole sentence vector (uni-skip) or its first half (bi-skip).
    encoder: Gru,
    /// Bi-skip only: reads the sentence backwards; its final state is the vector's second half.
    encoder_backward: Option<Gru>,
    decoder_previous: Gru,
    decoder_next: Gru,
    /// The output layer over the vocabulary, or with an adaptive softmax its head.
    output: Linear,
    /// Adaptive softmax only: its tail clusters (none for a full output layer, so older checkpoints load).
    tails: Vec<AdaptiveTail>,
}

/// One batch of (previous, current, next) sentences as tensors on a device.
#[derive(Debug, Clone)]
pub struct TripleTensors {
    /// `[batch, current_len]` ids of the current sentences, each closed by `<eos>`.
    pub current: Tensor<2, Int>,
    /// Position of each current sentence's last real token (its `<eos>`): `[batch, 1, hidden]`, repeated.
    pub current_last: Tensor<3, Int>,
    pub previous: DecoderTargets,
    pub next: DecoderTargets,
    /// With a sampled softmax: the `[candidates]` word ids scored for this batch.
    pub candidates: Option<Tensor<1, Int>>,
    /// The real target tokens of both neighbours (`<eos>` included): what [`SkipThought::loss`] averages
    /// over, known before the forward pass so that data-parallel shares can be weighted.
    pub target_tokens: usize,
}

/// Sentences a decoder must write, with the mask that hides padding from the loss.
#[derive(Debug, Clone)]
pub struct DecoderTargets {
    /// `[batch, len]` ids, each sentence closed by `<eos>`.
    pub ids: Tensor<2, Int>,
    /// `[batch, len]`: 1.0 on real positions, 0.0 on padding.
    pub mask: Tensor<2>,
    /// With a sampled softmax: each target's position among the batch's candidates, `[batch, len]`.
    pub candidate_positions: Option<Tensor<2, Int>>,
    /// The words fed as inputs when they differ from the targets (word dropout replaces some by `<unk>`),
    /// `[batch, len]`; the input at step `t` is word `t - 1` of these.
    pub inputs: Option<Tensor<2, Int>>,
}

impl SkipThoughtConfig {
    /// State size of each encoder GRU.
    fn encoder_dim(&self) -> usize {
        if self.bidirectional { self.hidden_dim / 2 } else { self.hidden_dim }
    }

    pub fn init(&self, device: &Device) -> SkipThought {
        assert!(!self.bidirectional || self.hidden_dim % 2 == 0, "bi-skip needs an even hidden_dim");
        let decoder_input = self.word_dim + if self.per_step_context { self.hidden_dim } else { 0 };
        let decoder = || GruConfig::new(decoder_input, self.hidden_dim, true).init(device);
        let (output, tails) = if self.adaptive_cutoffs.is_empty() {
            (LinearConfig::new(self.hidden_dim, self.vocab_size).init(device), Vec::new())
        } else {
            adaptive_softmax::init(self.hidden_dim, self.vocab_size, &self.adaptive_cutoffs, device)
        };
        SkipThought {
            // N(0, 0.1²) like the released code's `norm_weight`: burn's default N(0, 1) is so large that
            // training barely moves it, leaving word embeddings nearly random (vocabulary expansion then has
            // nothing to fit: R² 0.006 on the first demo encoder).
            embedding: EmbeddingConfig::new(self.vocab_size, self.word_dim)
                .with_initializer(Initializer::Normal { mean: 0.0, std: 0.1 })
                .init(device),
            encoder: GruConfig::new(self.word_dim, self.encoder_dim(), true).init(device),
            encoder_backward: self
                .bidirectional
                .then(|| GruConfig::new(self.word_dim, self.encoder_dim(), true).init(device)),
            decoder_previous: decoder(),
            decoder_next: decoder(),
            output,
            tails,
        }
    }
}

impl TripleTensors {
    /// Moves padded batches to `device`; `hidden_dim` shapes the index used to pick the final states.
    pub fn new(
        current: &PaddedBatch,
        previous: &PaddedBatch,
        next: &PaddedBatch,
        hidden_dim: usize,
        device: &Device,
    ) -> TripleTensors {
        let last: Vec<i64> =
            current.lengths.iter().flat_map(|&length| std::iter::repeat_n(length as i64 - 1, hidden_dim)).collect();
        TripleTensors {
            current: ids_tensor(current, device),
            current_last: Tensor::from_data(TensorData::new(last, [current.rows, 1, hidden_dim]), device),
            previous: DecoderTargets::new(previous, device),
            next: DecoderTargets::new(next, device),
            candidates: None,
            target_tokens: previous.lengths.iter().chain(&next.lengths).sum(),
        }
    }

    /// Switches this batch to a sampled softmax over `n_candidates` words of a `vocab_size` vocabulary: every
    /// target word of the batch plus words drawn uniformly from `rng` (more when the targets alone exceed
    /// `n_candidates`); see [`sample_candidates`].
    pub fn with_sampled_softmax(
        mut self,
        previous: &PaddedBatch,
        next: &PaddedBatch,
        vocab_size: usize,
        n_candidates: usize,
        rng: &mut impl Rng,
        device: &Device,
    ) -> TripleTensors {
        let (candidates, positions) = sample_candidates(&[previous, next], vocab_size, n_candidates, rng, device);
        let [previous_positions, next_positions]: [Tensor<2, Int>; 2] =
            positions.try_into().expect("one position tensor per batch");
        self.previous.candidate_positions = Some(previous_positions);
        self.next.candidate_positions = Some(next_positions);
        self.candidates = Some(candidates);
        self
    }
}

impl DecoderTargets {
    pub fn new(batch: &PaddedBatch, device: &Device) -> DecoderTargets {
        DecoderTargets {
            ids: ids_tensor(batch, device),
            mask: Tensor::from_data(TensorData::new(batch.mask(), [batch.rows, batch.width]), device),
            candidate_positions: None,
            inputs: None,
        }
    }

    /// Word dropout (Bowman et al. 2016): each input word of `batch` is replaced by `<unk>` with
    /// probability `rate`, so that the decoder cannot write the passage from the words before alone and has
    /// to read its conditioning vector. The targets stay whole.
    pub fn with_word_dropout(mut self, batch: &PaddedBatch, rate: f32, rng: &mut impl Rng, device: &Device) -> Self {
        if rate > 0.0 {
            let ids: Vec<i64> = batch
                .ids
                .iter()
                .map(|&id| if id != EOS_ID && rng.random::<f32>() < rate { i64::from(UNK_ID) } else { i64::from(id) })
                .collect();
            self.inputs = Some(Tensor::from_data(TensorData::new(ids, [batch.rows, batch.width]), device));
        }
        self
    }
}

/// Each row of `embedded` (`[batch, len, word]`) with its first `last + 1` positions in reverse order and its
/// padding left in place, so a GRU reading it starts at the sentence's last word and ends at its first.
fn reverse_within_lengths(embedded: Tensor<3>, last: &Tensor<3, Int>) -> Tensor<3> {
    let [batch, len, word] = embedded.shape().dims();
    let device = embedded.device();
    let ends: Tensor<2, Int> = last.clone().slice([0..batch, 0..1, 0..1]).reshape([batch, 1]).repeat_dim(1, len);
    let positions: Tensor<2, Int> = Tensor::arange(0..len as i64, &device).reshape([1, len]).repeat_dim(0, batch);
    let inside = positions.clone().lower_equal(ends.clone());
    let index = positions.clone().mask_where(inside, ends - positions); // [batch, len]
    embedded.gather(1, index.unsqueeze_dim::<3>(2).repeat_dim(2, word))
}

fn ids_tensor(batch: &PaddedBatch, device: &Device) -> Tensor<2, Int> {
    let ids: Vec<i64> = batch.ids.iter().map(|&id| i64::from(id)).collect();
    Tensor::from_data(TensorData::new(ids, [batch.rows, batch.width]), device)
}

impl SkipThought {
    /// The word embedding table `[vocab, word_dim]` (the story decoder starts from it).
    pub fn word_embeddings(&self) -> Tensor<2> {
        self.embedding.weight.val()
    }

    /// Sentence vectors: the encoder's state at each sentence's last real position.
    ///
    /// `ids`: `[batch, len]`; `last`: `[batch, 1, hidden]` holding that position. Returns `[batch, hidden]`.
    /// burn's GRU has no length masking, so the state is read at the true end instead of after padding.
    pub fn encode(&self, ids: Tensor<2, Int>, last: Tensor<3, Int>) -> Tensor<2> {
        self.encode_embedded(self.embedding.forward(ids), last)
    }

    /// [`encode`](Self::encode) from word embeddings given directly, `[batch, len, word]`: how words from an
    /// expanded vocabulary, which have no row in this model's table, are encoded.
    pub fn encode_embedded(&self, embedded: Tensor<3>, last: Tensor<3, Int>) -> Tensor<2> {
        let [batch, _, hidden] = last.shape().dims();
        let Some(backward) = &self.encoder_backward else {
            return gru::run(&self.encoder, embedded, None).gather(1, last).squeeze_dim(1);
        };
        let half = hidden / 2;
        let last_half = last.clone().slice([0..batch, 0..1, 0..half]);
        let forward: Tensor<2> =
            gru::run(&self.encoder, embedded.clone(), None).gather(1, last_half.clone()).squeeze_dim(1);
        let reversed = reverse_within_lengths(embedded, &last);
        let backward: Tensor<2> = gru::run(backward, reversed, None).gather(1, last_half).squeeze_dim(1);
        Tensor::cat(vec![forward, backward], 1)
    }

    /// Mean negative log-likelihood per real target token of both neighbours.
    pub fn loss(&self, batch: &TripleTensors) -> Tensor<1> {
        let (nll, count) = self.summed_loss(batch);
        nll / count
    }

    /// Summed negative log-likelihood of both neighbours' real target tokens: the loss of one share of a
    /// batch in data-parallel training, where the shares are divided by the whole batch's token count.
    pub fn loss_sum(&self, batch: &TripleTensors) -> Tensor<1> {
        self.summed_loss(batch).0
    }

    /// The summed loss and the token count it sums over.
    fn summed_loss(&self, batch: &TripleTensors) -> (Tensor<1>, Tensor<1>) {
        let thought = self.encode(batch.current.clone(), batch.current_last.clone());
        let candidates = batch.candidates.as_ref();
        let previous = self.decoder_states(&self.decoder_previous, &batch.previous, &thought);
        let next = self.decoder_states(&self.decoder_next, &batch.next, &thought);
        let parts = [(previous, &batch.previous), (next, &batch.next)];
        if self.tails.is_empty() {
            return output_nll(&self.output, &parts, candidates);
        }
        let (states, targets) = scored_rows(&parts, None);
        let count = targets.weights.iter().sum::<f32>();
        let device = states.device();
        let nll = weighted_nll_adaptive(&self.output, &self.tails, states, &targets);
        (nll, Tensor::from_data(TensorData::new(vec![count], [1]), &device))
    }

    /// Every step's state of `decoder` writing `targets` from `thought`.
    fn decoder_states(&self, decoder: &Gru, targets: &DecoderTargets, thought: &Tensor<2>) -> Tensor<3> {
        // Per-step context shows in the decoder's input size: word_dim + hidden_dim instead of word_dim.
        let [decoder_input, _] = decoder.update_gate.input_transform.weight.dims();
        let [_, word_dim] = self.embedding.weight.dims();
        let context = (decoder_input > word_dim).then(|| thought.clone());
        decoder_states(&self.embedding, decoder, targets, thought.clone(), context)
    }
}

/// Summed negative log-likelihood of `targets` written by `decoder` started from `initial`, and the token
/// count: the conditional decoder of skip-thoughts and of the story decoder. See [`decoder_states`] and
/// [`output_nll`].
pub(crate) fn decoder_nll(
    embedding: &Embedding,
    output: &Linear,
    decoder: &Gru,
    targets: &DecoderTargets,
    initial: Tensor<2>,
    context: Option<Tensor<2>>,
    candidates: Option<&Tensor<1, Int>>,
) -> (Tensor<1>, Tensor<1>) {
    let states = decoder_states(embedding, decoder, targets, initial, context);
    output_nll(output, &[(states, targets)], candidates)
}

/// Every step's state, `[batch, len, hidden]`, of `decoder` writing `targets` from `initial`.
///
/// Teacher forcing: the input at step `t` is the embedding of target `t - 1` (zeros at `t = 0`), followed by
/// `context` when given (the vector fed at every step).
pub(crate) fn decoder_states(
    embedding: &Embedding,
    decoder: &Gru,
    targets: &DecoderTargets,
    initial: Tensor<2>,
    context: Option<Tensor<2>>,
) -> Tensor<3> {
    let [batch, len] = targets.ids.shape().dims();
    let embedded = embedding.forward(targets.inputs.clone().unwrap_or_else(|| targets.ids.clone())); // [batch, len, word]
    let [_, _, word_dim] = embedded.shape().dims();
    let start = Tensor::zeros([batch, 1, word_dim], &embedded.device());
    let mut inputs = Tensor::cat(vec![start, embedded.slice([0..batch, 0..len - 1, 0..word_dim])], 1);
    if let Some(context) = context {
        inputs = Tensor::cat(vec![inputs, context.unsqueeze_dim::<3>(1).repeat_dim(1, len)], 2);
    }
    gru::run(decoder, inputs, Some(initial))
}

/// Summed negative log-likelihood of each part's targets given its decoder states (`[batch, len, hidden]`)
/// under the shared `output` layer, and the token count. All parts go through one product. With
/// `candidates`, the softmax runs over those words only (sampled softmax) and each part's
/// `candidate_positions` say where its targets are among them.
pub(crate) fn output_nll(
    output: &Linear,
    parts: &[(Tensor<3>, &DecoderTargets)],
    candidates: Option<&Tensor<1, Int>>,
) -> (Tensor<1>, Tensor<1>) {
    let (states, targets) = scored_rows(parts, candidates);
    let device = states.device();
    let (weight, bias) = match candidates {
        Some(candidates) => (
            output.weight.val().select(1, candidates.clone()),
            output.bias.as_ref().map(|bias| bias.val().select(0, candidates.clone())),
        ),
        None => (output.weight.val(), output.bias.as_ref().map(|bias| bias.val())),
    };
    let count: f32 = targets.weights.iter().sum();
    let nll = weighted_nll_optional_bias(states, weight, bias, &targets);
    (nll, Tensor::from_data(TensorData::new(vec![count], [1]), &device))
}

/// All parts' decoder states as rows, `[rows, hidden]`, with each row's target (the word id, or with
/// `candidates` its position among them) and weight (0 on padding).
fn scored_rows(parts: &[(Tensor<3>, &DecoderTargets)], candidates: Option<&Tensor<1, Int>>) -> (Tensor<2>, RowTargets) {
    let mut rows = Vec::with_capacity(parts.len());
    let mut targets = RowTargets { classes: Vec::new(), weights: Vec::new() };
    for (states, part) in parts {
        let [batch, len, hidden] = states.shape().dims();
        rows.push(states.clone().reshape([batch * len, hidden]));
        let classes = match (candidates, &part.candidate_positions) {
            (Some(_), Some(positions)) => positions.clone(),
            _ => part.ids.clone(),
        };
        let classes: Vec<i64> = classes.into_data().convert::<i64>().try_into_vec().expect("int ids");
        targets.classes.extend(classes.iter().map(|&class| class as u32));
        targets
            .weights
            .extend(part.mask.clone().into_data().convert::<f32>().try_into_vec::<f32>().expect("mask values"));
    }
    (Tensor::cat(rows, 0), targets)
}

/// A sampled softmax's candidate words for target batches: every target word plus words drawn uniformly
/// from `rng` up to `n_candidates` (of a `vocab_size` vocabulary), and for each batch the position of each
/// of its targets among the candidates. Uniform draws make sampled softmax's correction term a constant, so
/// it is omitted.
pub(crate) fn sample_candidates(
    batches: &[&PaddedBatch],
    vocab_size: usize,
    n_candidates: usize,
    rng: &mut impl Rng,
    device: &Device,
) -> (Tensor<1, Int>, Vec<Tensor<2, Int>>) {
    let mut position = vec![u32::MAX; vocab_size];
    let mut candidates: Vec<i64> = Vec::with_capacity(n_candidates);
    for &id in batches.iter().flat_map(|batch| batch.ids.iter()) {
        if position[id as usize] == u32::MAX {
            position[id as usize] = candidates.len() as u32;
            candidates.push(i64::from(id));
        }
    }
    let wanted = n_candidates.min(vocab_size);
    while candidates.len() < wanted {
        let id = rng.random_range(0..vocab_size);
        if position[id] == u32::MAX {
            position[id] = candidates.len() as u32;
            candidates.push(id as i64);
        }
    }
    let positions = batches
        .iter()
        .map(|batch| {
            let data: Vec<i64> = batch.ids.iter().map(|&id| i64::from(position[id as usize])).collect();
            Tensor::from_data(TensorData::new(data, [batch.rows, batch.width]), device)
        })
        .collect();
    let n = candidates.len();
    (Tensor::from_data(TensorData::new(candidates, [n]), device), positions)
}

#[cfg(test)]
mod tests {
    use burn::optim::{AdamConfig, GradientsParams};

    use super::*;

    fn batch(device: &Device) -> TripleTensors {
        // Three "sentences" per row: a tiny story whose neighbours are fully determined by the middle.
        let current = PaddedBatch::new([&[2, 3, 4][..], &[5, 6][..], &[7, 8, 9, 10][..]], 10);
        let previous = PaddedBatch::new([&[11, 2][..], &[4, 4, 4][..], &[3][..]], 10);
        let next = PaddedBatch::new([&[6, 7][..], &[2, 11, 9][..], &[5, 5][..]], 10);
        TripleTensors::new(&current, &previous, &next, 16, device)
    }

    /// Trains `config`'s model on the tiny batch for 150 Adam steps; returns the model, first and last loss.
    fn memorise(config: SkipThoughtConfig, device: &Device) -> (SkipThought, f32, f32) {
        let mut model = config.init(device);
        let mut optimizer = AdamConfig::new().init();
        let batch = batch(device);
        let first: f32 = model.loss(&batch).into_scalar();
        let mut last = first;
        for _ in 0..150 {
            let loss = model.loss(&batch);
            last = loss.clone().into_scalar();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(1e-2, model, grads);
        }
        (model, first, last)
    }

    #[test]
    fn a_tiny_model_memorises_a_tiny_batch() {
        let device = Device::flex().autodiff();
        let (model, first, last) = memorise(SkipThoughtConfig::new(12, 8, 16), &device);
        // A uniform guess over 12 words costs ln 12 = 2.48 per token.
        assert!((1.5..4.0).contains(&first), "initial loss {first}");
        assert!(last < 0.1, "loss fell only from {first} to {last}");

        // Vectors come out of the inference copy, one per sentence.
        let batch = batch(&device);
        let vectors = model.valid().encode(batch.current.clone(), batch.current_last.clone());
        assert_eq!(vectors.shape().dims::<2>(), [3, 16]);
    }

    #[test]
    fn a_batch_split_in_shares_sums_to_the_whole_batch_loss() {
        let device = Device::flex();
        let model = SkipThoughtConfig::new(12, 8, 16).init(&device);
        let current: [&[u32]; 3] = [&[2, 3, 4], &[5, 6], &[7, 8, 9, 10]];
        let previous: [&[u32]; 3] = [&[11, 2], &[4, 4, 4, 4, 4], &[3]];
        let next: [&[u32]; 3] = [&[6, 7], &[2, 11, 9], &[5, 5]];
        let tensors = |rows: std::ops::Range<usize>| {
            let pad = |sentences: &[&[u32]; 3]| PaddedBatch::new(sentences[rows.clone()].iter().copied(), 10);
            TripleTensors::new(&pad(&current), &pad(&previous), &pad(&next), 16, &device)
        };
        let whole = tensors(0..3);
        let (first, second) = (tensors(0..2), tensors(2..3));
        assert_eq!(whole.target_tokens, first.target_tokens + second.target_tokens);
        let sum = |batch: &TripleTensors| -> f32 { model.loss_sum(batch).into_scalar() };
        let (all, parts) = (sum(&whole), sum(&first) + sum(&second));
        assert!((all - parts).abs() < 1e-4 * all, "{all} vs {parts}");
        let mean: f32 = model.loss(&whole).into_scalar();
        assert!((mean - all / whole.target_tokens as f32).abs() < 1e-5, "{mean}");
    }

    #[test]
    fn sampled_softmax_over_every_word_equals_the_full_softmax() {
        use rand::SeedableRng;
        let device = Device::flex();
        let model = SkipThoughtConfig::new(12, 8, 16).init(&device);
        let current = PaddedBatch::new([&[2, 3, 4][..], &[5, 6][..]], 10);
        let previous = PaddedBatch::new([&[11, 2][..], &[4, 4, 4][..]], 10);
        let next = PaddedBatch::new([&[6, 7][..], &[2, 11, 9][..]], 10);
        let full = TripleTensors::new(&current, &previous, &next, 16, &device);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let sampled = full.clone().with_sampled_softmax(&previous, &next, 12, 12, &mut rng, &device);
        let full_loss: f32 = model.loss(&full).into_scalar();
        let sampled_loss: f32 = model.loss(&sampled).into_scalar();
        assert!((full_loss - sampled_loss).abs() < 1e-5, "{full_loss} vs {sampled_loss}");

        // Fewer candidates: a softmax over a subset, so each target is likelier and the loss lower.
        let few = full.with_sampled_softmax(&previous, &next, 12, 4, &mut rng, &device);
        // The targets are 11, 2, 4, 6, 7, 9 and the closing `<eos>` (0).
        assert_eq!(few.candidates.as_ref().unwrap().shape().dims::<1>(), [7], "every target word is kept");
        let few_loss: f32 = model.loss(&few).into_scalar();
        assert!(few_loss < full_loss, "{few_loss} vs {full_loss}");
    }

    #[test]
    fn per_step_context_trains_too() {
        let device = Device::flex().autodiff();
        let (_, first, last) = memorise(SkipThoughtConfig::new(12, 8, 16).with_per_step_context(true), &device);
        assert!(last < 0.1, "loss fell only from {first} to {last}");
    }

    #[test]
    fn an_adaptive_softmax_trains_too_and_its_initial_loss_is_a_normalised_one() {
        let device = Device::flex().autodiff();
        let config = SkipThoughtConfig::new(12, 8, 16).with_adaptive_cutoffs(vec![4, 8]);
        let (model, first, last) = memorise(config, &device);
        assert_eq!(model.tails.len(), 2);
        // Near a uniform guess over 12 words at the start, like the full output layer.
        assert!((1.5..4.0).contains(&first), "initial loss {first}");
        assert!(last < 0.1, "loss fell only from {first} to {last}");
    }

    #[test]
    fn bi_skip_trains_and_reads_each_sentence_backwards_within_its_length() {
        let device = Device::flex().autodiff();
        let (_, first, last) = memorise(SkipThoughtConfig::new(12, 8, 16).with_bidirectional(true), &device);
        assert!(last < 0.1, "loss fell only from {first} to {last}");

        let device = Device::flex();
        let model = SkipThoughtConfig::new(12, 8, 16).with_bidirectional(true).init(&device);
        let encode = |batch: &PaddedBatch| -> Vec<f32> {
            let tensors = TripleTensors::new(batch, batch, batch, 16, &device);
            model.encode(tensors.current, tensors.current_last).into_data().try_to_vec().unwrap()
        };
        let alone = encode(&PaddedBatch::new([&[2, 3, 4][..]], 10));
        let padded = encode(&PaddedBatch::new([&[2, 3, 4][..], &[5, 6, 7, 8, 9, 10][..]], 10));
        for (a, b) in alone.iter().zip(&padded[..16]) {
            assert!((a - b).abs() < 1e-5, "padding changed a bi-skip vector: {a} vs {b}");
        }
        // The backward half: `[2, 3, 4, <eos>]` reversed within its length is `[<eos>, 4, 3, 2]`, and the
        // backward GRU's state after reading it is what `encode` returns.
        let embedded =
            model.embedding.forward(Tensor::from_data(TensorData::new(vec![0i64, 4, 3, 2], [1, 4]), &device));
        let expected: Vec<f32> = model
            .encoder_backward
            .as_ref()
            .unwrap()
            .forward(embedded, None)
            .slice([0..1, 3..4, 0..8])
            .into_data()
            .try_to_vec()
            .unwrap();
        for (a, b) in alone[8..].iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5, "backward half {a} vs {b}");
        }
    }

    #[test]
    fn encoding_ignores_padding_after_the_last_token() {
        let device = Device::flex();
        let model = SkipThoughtConfig::new(12, 8, 16).init(&device);
        let alone = PaddedBatch::new([&[2, 3][..]], 10);
        let padded = PaddedBatch::new([&[2, 3][..], &[4, 5, 6, 7, 8, 9][..]], 10);
        let encode = |batch: &PaddedBatch| {
            let tensors = TripleTensors::new(batch, batch, batch, 16, &device);
            model.encode(tensors.current, tensors.current_last).into_data().try_to_vec::<f32>().unwrap()
        };
        let alone = encode(&alone);
        let padded = encode(&padded);
        for (a, b) in alone.iter().zip(&padded[..16]) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
