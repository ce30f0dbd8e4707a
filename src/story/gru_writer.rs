//! The GRU story decoder (`[decoder] kind = "gru"`, the paper's) behind the writer seam: its condition
//! (vector, keywords as word ids, genre as a multi-hot input scaled by `genre_strength`), the beam search
//! over its words with the keyword pull, repetition penalty and bag-of-words steering, and the clean-up of
//! its lowercased tokens into prose.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::cleanup::{clean_up, clean_up_so_far};
use super::decoder::{ContextCentre, DecoderError, DecoderManifest, load_decoder};
use super::generate::StoryOptions;
use super::writer::{StoryEvent, Watch, Written};
use crate::model::beam::{BeamSettings, Scorer, Watched, beam_search};
use crate::model::story_decoder::{ConditionInputs, StoryDecoder};
use crate::text::content::{content_ids, keywords};
use crate::text::vocab::{EOS_ID, UNK_ID, Vocabulary};
use crate::util::cancel::{CancelFlag, Interrupted};
use crate::util::values::f32_values;

/// A trained GRU decoder and what its search needs about its vocabulary.
#[derive(Debug)]
pub struct GruWriter {
    pub decoder: StoryDecoder,
    pub vocabulary: Vocabulary,
    pub manifest: DecoderManifest,
    /// Per word id: true for punctuation, which does not count toward a story's length.
    non_word: Vec<bool>,
    /// Per word id: true for content words (what the repetition penalty counts).
    content: Vec<bool>,
    device: Device,
}

impl GruWriter {
    pub fn load(dir: &Path, device: &Device) -> Result<GruWriter, DecoderError> {
        let (decoder, vocabulary, manifest) = load_decoder(dir, device)?;
        let non_word = vocabulary.words().iter().map(|word| !word.chars().any(char::is_alphanumeric)).collect();
        let content = content_ids(&vocabulary);
        Ok(GruWriter { decoder, vocabulary, manifest, non_word, content, device: device.clone() })
    }

    pub fn context_dim(&self) -> usize {
        self.manifest.context_dim
    }

    pub fn context_centre(&self) -> Option<&ContextCentre> {
        self.manifest.context_centre.as_ref()
    }

    /// A story from the decoder's input vector (style-shifted, centred) and the captions' content words:
    /// beam search (retried wider when nothing finishes), cut to its last full sentence, cleaned up.
    pub fn write(
        &self,
        vector: Vec<f32>,
        caption_words: &[Vec<String>],
        options: &StoryOptions,
        cancel: &CancelFlag,
        watch: &mut Watch<'_>,
    ) -> Result<Written, Interrupted> {
        let vector = Tensor::<2>::from_data(TensorData::new(vector, [1, self.context_dim()]), &self.device);
        // Chosen for a decoder that reads them, and for the keyword pull, which works with any decoder.
        let keywords = if options.keywords > 0 && (self.decoder.keyword_input || options.keyword_bonus > 0.0) {
            keywords(caption_words, &self.vocabulary, options.keywords)
        } else {
            Vec::new()
        };
        let genre: Vec<f32> = self
            .manifest
            .genres
            .iter()
            .map(|name| if *name == options.genre { options.genre_strength } else { 0.0 })
            .collect();
        let inputs = ConditionInputs { keywords: vec![keywords.clone()], genres: vec![genre] };
        let context = self.decoder.condition(vector, &inputs);
        let mut settings = BeamSettings {
            beam: options.beam,
            max_words: options.max_words,
            min_words: options.min_words,
            no_repeat_ngram: options.no_repeat_ngram,
            length_penalty: options.length_penalty,
            end: EOS_ID,
            banned: vec![UNK_ID],
            non_word: self.non_word.clone(),
            temperature: options.temperature,
            seed: options.seed,
            no_immediate_repeat: true,
            cancel: Some(cancel.clone()),
        };
        let steering = (options.bag_of_words > 0.0).then(|| self.steering(&context, options.bag_of_words));
        let pull = KeywordPull {
            keywords: keywords.clone(),
            bonus: options.keyword_bonus,
            repetition: options.repetition_penalty,
            content: &self.content,
        };
        let keyword_words: Vec<String> =
            keywords.iter().filter_map(|&id| self.vocabulary.word(id)).map(String::from).collect();
        watch(StoryEvent::Keywords(&keyword_words));
        let mut show = |words: &[u32]| {
            let tokens: Vec<&str> = words.iter().filter_map(|&id| self.vocabulary.word(id)).collect();
            watch(StoryEvent::Text(&clean_up_so_far(&tokens)));
        };
        let scorer = DecoderScorer::new(&self.decoder, context.clone(), steering.clone(), pull.clone());
        let mut found = beam_search(&mut Watched::new(scorer, &mut show), &settings);
        if found.is_none() && options.fallback_beam > options.beam {
            settings.beam = options.fallback_beam;
            let scorer = DecoderScorer::new(&self.decoder, context, steering, pull);
            found = beam_search(&mut Watched::new(scorer, &mut show), &settings);
        }
        cancel.check()?;
        let words = found.map(|finished| finished.words).unwrap_or_default();
        let mut tokens: Vec<&str> = words.iter().filter_map(|&id| self.vocabulary.word(id)).collect();
        cut_to_last_sentence(&mut tokens, options.min_words);
        Ok(Written { story: clean_up(&tokens), beam: settings.beam, keywords: keyword_words })
    }

    /// The bag-of-words steering of a story whose decoder condition is `condition` (`[1, dim]`): `weight`
    /// times `log p_bow(w | condition) - log p_bow(w | mean passage)`, per word.
    fn steering(&self, condition: &Tensor<2>, weight: f32) -> Vec<f32> {
        // A centred decoder reads the mean passage as zero (for one trained without centring, zero is the
        // origin of the style shift: the comparison is then with a vector of no content at all), with no
        // keywords and no genre.
        let zero = Tensor::<2>::zeros([1, self.context_dim()], &self.device);
        let mean = self.decoder.condition(zero, &ConditionInputs::default());
        let own = f32_values(self.decoder.bag_of_words(condition.clone()));
        let base = f32_values(self.decoder.bag_of_words(mean));
        own.iter().zip(&base).map(|(own, base)| weight * (own - base)).collect()
    }
}

/// A story stopped by the length limit ends mid-sentence: cut it after its last full sentence, when enough
/// words are left.
fn cut_to_last_sentence(tokens: &mut Vec<&str>, min_words: usize) {
    if tokens.last().is_some_and(|token| matches!(*token, "." | "!" | "?" | "\"")) {
        return;
    }
    let Some(end) = tokens.iter().rposition(|token| matches!(*token, "." | "!" | "?")) else { return };
    let words = tokens[..=end].iter().filter(|token| token.chars().any(char::is_alphanumeric)).count();
    if words >= min_words {
        tokens.truncate(end + 1);
    }
}

/// Weighted decoding: each keyword's log-probability gains `bonus` until the hypothesis has written it, so
/// a story is pulled to use every keyword once; and each content word (`content[id]`) loses `repetition`
/// for every time the hypothesis has already written it (the small decoder otherwise loops on one noun).
#[derive(Debug, Clone, Default)]
struct KeywordPull<'a> {
    keywords: Vec<u32>,
    bonus: f32,
    repetition: f32,
    content: &'a [bool],
}

/// The story decoder behind the beam search's [`Scorer`], with an optional per-word bonus added to every
/// step's log-probabilities, and the keyword pull.
struct DecoderScorer<'a> {
    decoder: &'a StoryDecoder,
    context: Tensor<2>,
    state: Option<Tensor<2>>,
    steering: Option<Vec<f32>>,
    pull: KeywordPull<'a>,
    /// Per live hypothesis: the content words it has written.
    written: Vec<Vec<u32>>,
}

impl<'a> DecoderScorer<'a> {
    fn new(
        decoder: &'a StoryDecoder,
        context: Tensor<2>,
        steering: Option<Vec<f32>>,
        pull: KeywordPull<'a>,
    ) -> DecoderScorer<'a> {
        DecoderScorer { decoder, context, state: None, steering, pull, written: vec![Vec::new()] }
    }

    /// Follows the hypotheses to their new rows and records the content words (and keywords) they just wrote.
    fn track_words(&mut self, parents: &[usize], last_words: Option<&[u32]>) {
        self.written = parents
            .iter()
            .enumerate()
            .map(|(row, &parent)| {
                let mut written = self.written.get(parent).cloned().unwrap_or_default();
                if let Some(&word) = last_words.and_then(|words| words.get(row)) {
                    let content = self.pull.content.get(word as usize).copied().unwrap_or(false);
                    if content || self.pull.keywords.contains(&word) {
                        written.push(word);
                    }
                }
                written
            })
            .collect();
    }

    /// Adds the keyword bonus and the repetition penalty to one hypothesis's scores.
    fn pull(&self, row: &mut [f32], written: &[u32]) {
        if self.pull.bonus > 0.0 {
            for &keyword in self.pull.keywords.iter().filter(|keyword| !written.contains(keyword)) {
                if let Some(value) = row.get_mut(keyword as usize) {
                    *value += self.pull.bonus;
                }
            }
        }
        if self.pull.repetition > 0.0 {
            for &word in written {
                if let Some(value) = row.get_mut(word as usize) {
                    *value -= self.pull.repetition;
                }
            }
        }
    }
}

impl Scorer for DecoderScorer<'_> {
    fn next(&mut self, parents: &[usize], last_words: Option<&[u32]>) -> Vec<Vec<f32>> {
        let device = self.context.device();
        let rows = parents.len();
        let state = match self.state.take() {
            None => self.decoder.start(self.context.clone()).repeat_dim(0, rows),
            Some(state) => {
                let index: Vec<i64> = parents.iter().map(|&parent| parent as i64).collect();
                state.select(0, Tensor::<1, Int>::from_data(TensorData::new(index, [rows]), &device))
            }
        };
        let context = self.context.clone().repeat_dim(0, rows);
        let step = self.decoder.step(last_words, state, &context);
        self.state = Some(step.state);
        let [_, vocab] = step.log_probs.dims();
        let values = f32_values(step.log_probs);
        self.track_words(parents, last_words);
        values
            .chunks(vocab)
            .zip(&self.written)
            .map(|(row, written)| {
                let mut row = match &self.steering {
                    Some(bonus) => row.iter().zip(bonus).map(|(log_prob, bonus)| log_prob + bonus).collect(),
                    None => row.to_vec(),
                };
                self.pull(&mut row, written);
                row
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::story_decoder::StoryDecoderConfig;

    #[test]
    fn the_keyword_pull_lasts_until_a_hypothesis_writes_the_keyword() {
        let device = Device::flex();
        let decoder = StoryDecoderConfig::new(12, 4, 8, 3).with_per_step_context(true).init(&device);
        let context = Tensor::<2>::zeros([1, 3], &device);
        let pull = KeywordPull { keywords: vec![5, 7], bonus: 50.0, repetition: 0.0, content: &[false; 12] };
        let mut pulled = DecoderScorer::new(&decoder, context.clone(), None, pull);
        let mut plain = DecoderScorer::new(&decoder, context, None, KeywordPull::default());
        let gain =
            |pulled: &[Vec<f32>], plain: &[Vec<f32>], row: usize, word: usize| pulled[row][word] - plain[row][word];

        let (first, base) = (pulled.next(&[0], None), plain.next(&[0], None));
        assert!((gain(&first, &base, 0, 5) - 50.0).abs() < 1e-3 && (gain(&first, &base, 0, 7) - 50.0).abs() < 1e-3);
        assert!(gain(&first, &base, 0, 6).abs() < 1e-3);

        // Two hypotheses from the same parent: one wrote keyword 5, the other a plain word.
        let (second, base) = (pulled.next(&[0, 0], Some(&[5, 3])), plain.next(&[0, 0], Some(&[5, 3])));
        assert!(gain(&second, &base, 0, 5).abs() < 1e-3, "5 is used up in row 0");
        assert!((gain(&second, &base, 0, 7) - 50.0).abs() < 1e-3);
        assert!((gain(&second, &base, 1, 5) - 50.0).abs() < 1e-3, "row 1 has not written 5");

        // Rows follow their parents: row 0 now extends old row 1 (5 still open), row 1 extends old row 0.
        let (third, base) = (pulled.next(&[1, 0], Some(&[2, 7])), plain.next(&[1, 0], Some(&[2, 7])));
        assert!((gain(&third, &base, 0, 5) - 50.0).abs() < 1e-3 && (gain(&third, &base, 0, 7) - 50.0).abs() < 1e-3);
        assert!(gain(&third, &base, 1, 5).abs() < 1e-3 && gain(&third, &base, 1, 7).abs() < 1e-3);
    }

    #[test]
    fn each_earlier_use_of_a_content_word_costs_the_repetition_penalty() {
        let device = Device::flex();
        let decoder = StoryDecoderConfig::new(12, 4, 8, 3).init(&device);
        let context = Tensor::<2>::zeros([1, 3], &device);
        let mut content = vec![false; 12];
        content[3] = true;
        let pull = KeywordPull { keywords: Vec::new(), bonus: 0.0, repetition: 2.0, content: &content };
        let mut penalised = DecoderScorer::new(&decoder, context.clone(), None, pull);
        let mut plain = DecoderScorer::new(&decoder, context, None, KeywordPull::default());
        penalised.next(&[0], None);
        plain.next(&[0], None);
        // Row 0 wrote the content word 3, then 3 again; word 4 is not a content word and costs nothing.
        penalised.next(&[0], Some(&[3]));
        plain.next(&[0], Some(&[3]));
        let (after, base) = (penalised.next(&[0], Some(&[3])), plain.next(&[0], Some(&[3])));
        assert!((after[0][3] - base[0][3] + 4.0).abs() < 1e-3, "two earlier uses cost 2 x 2");
        let (after, base) = (penalised.next(&[0], Some(&[4])), plain.next(&[0], Some(&[4])));
        assert!((after[0][4] - base[0][4]).abs() < 1e-3 && (after[0][3] - base[0][3] + 4.0).abs() < 1e-3);
    }
}
