//! Writing captions with a trained captioner: beam search over one photo (the search of
//! [`crate::model::beam`], without the story's constraints), batched greedy decoding over many photos (what
//! evaluation with a beam of 1 uses), and the attention weights behind a written caption.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::CaptionerConfig;
use crate::model::beam::{BeamSettings, Finished, Scorer, beam_search_all, repeating_words};
use crate::model::captioner::{Annotations, Captioner, LstmState};
use crate::text::vocab::{EOS_ID, UNK_ID};
use crate::util::values::f32_values;

/// What a written caption may be, whatever the search: at most `max_words` words, and no n-gram of
/// `no_repeat_ngram` words twice (0: allowed). Always: `<unk>` never written, at least one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptionRules {
    pub max_words: usize,
    pub no_repeat_ngram: usize,
}

impl CaptionRules {
    pub fn of(config: &CaptionerConfig) -> CaptionRules {
        CaptionRules { max_words: config.max_words, no_repeat_ngram: config.no_repeat_ngram }
    }
}

/// The beam settings of captions under `rules`, hypotheses ranked by their total log-probability.
pub fn caption_beam_settings(beam: usize, rules: &CaptionRules) -> BeamSettings {
    BeamSettings {
        beam: beam.max(1),
        max_words: rules.max_words,
        min_words: 1,
        no_repeat_ngram: rules.no_repeat_ngram,
        length_penalty: 0.0,
        end: EOS_ID,
        banned: vec![UNK_ID],
        non_word: Vec::new(),
        temperature: 0.0,
        seed: 0,
        no_immediate_repeat: false,
        cancel: None,
    }
}

/// The captioner behind the beam search's [`Scorer`], for one photo.
pub struct CaptionScorer<'a> {
    model: &'a Captioner,
    /// One row: the photo.
    annotations: Annotations,
    /// The photo repeated for the last step's number of hypotheses (it changes only when beams finish).
    repeated: Option<(usize, Annotations)>,
    state: Option<LstmState>,
    device: Device,
}

impl<'a> CaptionScorer<'a> {
    /// `vectors`: `[1, locations, feature_dim]`.
    pub fn new(model: &'a Captioner, vectors: Tensor<3>) -> CaptionScorer<'a> {
        let device = vectors.device();
        CaptionScorer { annotations: model.annotate(vectors), model, repeated: None, state: None, device }
    }
}

impl Scorer for CaptionScorer<'_> {
    fn next(&mut self, parents: &[usize], last_words: Option<&[u32]>) -> Vec<Vec<f32>> {
        let rows = parents.len();
        let state = match self.state.take() {
            None => {
                let start = self.model.start(&self.annotations);
                LstmState { hidden: start.hidden.repeat_dim(0, rows), cell: start.cell.repeat_dim(0, rows) }
            }
            Some(state) => {
                let index: Vec<i64> = parents.iter().map(|&parent| parent as i64).collect();
                state.select(Tensor::<1, Int>::from_data(TensorData::new(index, [rows]), &self.device))
            }
        };
        let words = self.model.embed_previous(last_words, rows, &self.device);
        if self.repeated.as_ref().is_none_or(|(cached, _)| *cached != rows) {
            self.repeated = Some((rows, self.annotations.repeat(rows)));
        }
        let (_, annotations) = self.repeated.as_ref().expect("just set");
        let step = self.model.step(words, state, annotations);
        self.state = Some(step.state);
        let [_, vocab] = step.logits.dims();
        let values = f32_values(log_softmax(step.logits, 1));
        values.chunks(vocab).map(<[f32]>::to_vec).collect()
    }
}

/// Every finished beam for one photo (`[1, locations, feature_dim]`), best first.
pub fn beam_captions(model: &Captioner, vectors: Tensor<3>, settings: &BeamSettings) -> Vec<Finished> {
    beam_search_all(&mut CaptionScorer::new(model, vectors), settings)
}

/// Greedy captions of a batch of photos `[photos, locations, feature_dim]` under the same rules as
/// [`caption_beam_settings`]: at each step the most likely allowed word, the end forbidden before one word
/// and forced after `max_words`, no repeated n-gram. Returns each photo's words (the end not included).
pub fn greedy_captions(model: &Captioner, vectors: Tensor<3>, rules: &CaptionRules) -> Vec<Vec<u32>> {
    let max_words = rules.max_words;
    let [photos, _, _] = vectors.dims();
    let device = vectors.device();
    let annotations = model.annotate(vectors);
    let mut state = model.start(&annotations);
    let mut written: Vec<Vec<u32>> = vec![Vec::new(); photos];
    let mut done = vec![false; photos];
    let mut previous: Option<Vec<u32>> = None;
    for t in 0..=max_words {
        let words = model.embed_previous(previous.as_deref(), photos, &device);
        let step = model.step(words, state, &annotations);
        state = step.state;
        let [_, vocab] = step.logits.dims();
        let scores = f32_values(log_softmax(step.logits, 1));
        let mut chosen = Vec::with_capacity(photos);
        for (row, scores) in scores.chunks(vocab).enumerate() {
            let blocked = repeating_words(&written[row], rules.no_repeat_ngram);
            let allowed = |word: usize| {
                let word = word as u32;
                word != UNK_ID
                    && !(word == EOS_ID && t == 0)
                    && (word == EOS_ID || t < max_words && !blocked.contains(&word))
            };
            let best = (0..vocab)
                .filter(|&word| allowed(word) && scores[word].is_finite())
                .max_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(b.cmp(&a)))
                .map_or(EOS_ID, |word| word as u32);
            if !done[row] {
                if best == EOS_ID {
                    done[row] = true;
                } else {
                    written[row].push(best);
                }
            }
            chosen.push(best);
        }
        if done.iter().all(|&finished| finished) {
            break;
        }
        previous = Some(chosen);
    }
    written
}

/// The attention weights of each step of writing `words` and then the end, `[words + 1][locations]`, for
/// one photo `[1, locations, feature_dim]`.
pub fn attention_of(model: &Captioner, vectors: Tensor<3>, words: &[u32]) -> Vec<Vec<f32>> {
    let device = vectors.device();
    let annotations = model.annotate(vectors);
    let mut state = model.start(&annotations);
    let mut maps = Vec::with_capacity(words.len() + 1);
    for t in 0..=words.len() {
        let previous = (t > 0).then(|| [words[t - 1]]);
        let input = model.embed_previous(previous.as_ref().map(|word| &word[..]), 1, &device);
        let step = model.step(input, state, &annotations);
        state = step.state;
        maps.push(f32_values(step.alpha));
    }
    maps
}
