//! Beam search over a word-by-word model, with the constraints neural-storyteller and Pix2Story applied:
//! banned words (`<unk>`), a minimum length (the end is forbidden before it), a maximum length (only the
//! end is allowed at it), optionally no word right after itself (the clean-up would drop it, making the story shorter
//! than counted), no repeated n-grams, and length-normalised scores (`log p / length^alpha`) to
//! pick among finished hypotheses. With a temperature above zero, each candidate's score for ranking gets
//! Gumbel noise from a seeded generator (stochastic beam search): different seeds give different stories,
//! the same seed the same one.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::util::cancel::CancelFlag;

/// What the search asks of a model.
pub trait Scorer {
    /// Log-probabilities of the next word for each live hypothesis. `parents[i]` is the row of the previous
    /// call's hypotheses that hypothesis `i` extends (`[0]` on the first call) and `last_words[i]` the word it
    /// just added (`None` on the first call).
    fn next(&mut self, parents: &[usize], last_words: Option<&[u32]>) -> Vec<Vec<f32>>;
}

/// A scorer that shows `show` the words every live hypothesis starts with, each time they grow (for a story
/// shown as it is written): every hypothesis the search will make extends one of these, so what is shown
/// is taken back only when a hypothesis that finished earlier wins in the end. The best line alone would
/// jump from course to course at every step.
pub struct Watched<'a, S> {
    pub inner: S,
    histories: Vec<Vec<u32>>,
    shown: usize,
    show: &'a mut dyn FnMut(&[u32]),
}

impl<'a, S: Scorer> Watched<'a, S> {
    pub fn new(inner: S, show: &'a mut dyn FnMut(&[u32])) -> Watched<'a, S> {
        Watched { inner, histories: Vec::new(), shown: 0, show }
    }
}

impl<S: Scorer> Scorer for Watched<'_, S> {
    fn next(&mut self, parents: &[usize], last_words: Option<&[u32]>) -> Vec<Vec<f32>> {
        self.histories = match last_words {
            None => vec![Vec::new(); parents.len()],
            Some(last) => parents
                .iter()
                .zip(last)
                .map(|(&parent, &word)| {
                    let mut history = self.histories.get(parent).cloned().unwrap_or_default();
                    history.push(word);
                    history
                })
                .collect(),
        };
        if let Some((first, others)) = self.histories.split_first() {
            let shared = others.iter().fold(first.len(), |shared, other| {
                shared.min(first.iter().zip(other).take_while(|(a, b)| a == b).count())
            });
            if shared > self.shown {
                self.shown = shared;
                (self.show)(&first[..shared]);
            }
        }
        self.inner.next(parents, last_words)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BeamSettings {
    pub beam: usize,
    pub max_words: usize,
    pub min_words: usize,
    pub no_repeat_ngram: usize,
    pub length_penalty: f32,
    pub end: u32,
    pub banned: Vec<u32>,
    /// `non_word[id]`: the token does not count toward `min_words` and `max_words` (punctuation). Shorter
    /// than the vocabulary (or empty): the missing ids count.
    pub non_word: Vec<bool>,
    pub temperature: f32,
    pub seed: u64,
    /// Forbid a word right after itself (stories: the clean-up would drop the repeat).
    pub no_immediate_repeat: bool,
    /// Checked before every step: once set, the search stops and returns what has finished (a server drops
    /// the work of a request whose client is gone).
    pub cancel: Option<CancelFlag>,
}

/// A finished story's words (without the end token) and scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub words: Vec<u32>,
    /// Sum of log-probabilities, the end included.
    pub log_prob: f32,
    /// `log_prob / (words + 1)^length_penalty`.
    pub normalised: f32,
}

#[derive(Debug, Clone)]
struct Live {
    words: Vec<u32>,
    /// Tokens of `words` that count as words.
    counted: usize,
    log_prob: f32,
}

/// Words that would repeat an n-gram of `words` if added next.
pub(crate) fn repeating_words(words: &[u32], n: usize) -> Vec<u32> {
    if n == 0 || words.len() < n.saturating_sub(1) || n == 1 && words.is_empty() {
        return Vec::new();
    }
    if n == 1 {
        return words.to_vec();
    }
    let prefix = &words[words.len() - (n - 1)..];
    words.windows(n).filter(|window| &window[..n - 1] == prefix).map(|window| window[n - 1]).collect()
}

/// Runs the search; `None` when no hypothesis reached the end (the caller may retry with a wider beam).
pub fn beam_search(scorer: &mut impl Scorer, settings: &BeamSettings) -> Option<Finished> {
    beam_search_all(scorer, settings).into_iter().next()
}

/// Runs the search and returns every finished hypothesis (at most the beam width), best first.
pub fn beam_search_all(scorer: &mut impl Scorer, settings: &BeamSettings) -> Vec<Finished> {
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let mut live = vec![Live { words: Vec::new(), counted: 0, log_prob: 0.0 }];
    let counts = |word: u32| !settings.non_word.get(word as usize).copied().unwrap_or(false);
    let mut parents = vec![0usize];
    let mut last: Option<Vec<u32>> = None;
    let mut finished: Vec<Finished> = Vec::new();
    let width = settings.beam.max(1);
    // Punctuation does not count as words, so allow some extra steps for it.
    for _ in 0..=settings.max_words * 2 {
        if settings.cancel.as_ref().is_some_and(CancelFlag::is_cancelled) {
            break;
        }
        let log_probs = scorer.next(&parents, last.as_deref());
        // (ranking score, hypothesis, word, log-probability)
        let mut candidates: Vec<(f32, usize, u32, f32)> = Vec::new();
        for (index, (hypothesis, row)) in live.iter().zip(&log_probs).enumerate() {
            let length = hypothesis.counted;
            let blocked = repeating_words(&hypothesis.words, settings.no_repeat_ngram);
            let mut row_candidates: Vec<(f32, usize, u32, f32)> = row
                .iter()
                .enumerate()
                .filter_map(|(word, &log_prob)| {
                    let word = word as u32;
                    let is_end = word == settings.end;
                    let allowed = log_prob.is_finite()
                        && !settings.banned.contains(&word)
                        // Before `min_words` only when the token cap leaves nothing else.
                        && !(is_end && length < settings.min_words && hypothesis.words.len() < settings.max_words * 2)
                        && !(!is_end
                            && (length >= settings.max_words || hypothesis.words.len() >= settings.max_words * 2))
                        && !(!is_end && blocked.contains(&word))
                        && !(settings.no_immediate_repeat && hypothesis.words.last() == Some(&word));
                    allowed.then_some((hypothesis.log_prob + log_prob, index, word, hypothesis.log_prob + log_prob))
                })
                .collect();
            // Only a hypothesis's best `width` words can survive: keep the work per step small.
            if row_candidates.len() > width && settings.temperature == 0.0 {
                row_candidates.select_nth_unstable_by(width - 1, |a, b| b.0.total_cmp(&a.0));
                row_candidates.truncate(width);
            }
            candidates.extend(row_candidates);
        }
        if settings.temperature > 0.0 {
            for candidate in &mut candidates {
                let uniform: f32 = rng.random_range(f32::EPSILON..1.0);
                candidate.0 += settings.temperature * -(-uniform.ln()).ln();
            }
        }
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut next_live = Vec::new();
        let mut next_parents = Vec::new();
        let mut next_last = Vec::new();
        // As in neural-storyteller, a finished hypothesis keeps its slot: the live beam narrows by one.
        for &(_, index, word, log_prob) in candidates.iter().take(width - finished.len()) {
            let hypothesis = &live[index];
            if word == settings.end {
                let length = (hypothesis.words.len() + 1) as f32;
                finished.push(Finished {
                    words: hypothesis.words.clone(),
                    log_prob,
                    normalised: log_prob / length.powf(settings.length_penalty),
                });
            } else {
                let mut words = hypothesis.words.clone();
                words.push(word);
                let counted = hypothesis.counted + usize::from(counts(word));
                next_live.push(Live { words, counted, log_prob });
                next_parents.push(index);
                next_last.push(word);
            }
        }
        if finished.len() >= width || next_live.is_empty() {
            break;
        }
        live = next_live;
        parents = next_parents;
        last = Some(next_last);
    }
    // Stable: among equal scores the one finished first stays first.
    finished.sort_by(|a, b| b.normalised.total_cmp(&a.normalised));
    finished
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model given as a function of the words so far.
    struct Table<F: Fn(&[u32]) -> Vec<f32>> {
        model: F,
        histories: Vec<Vec<u32>>,
    }

    impl<F: Fn(&[u32]) -> Vec<f32>> Scorer for Table<F> {
        fn next(&mut self, parents: &[usize], last_words: Option<&[u32]>) -> Vec<Vec<f32>> {
            let histories: Vec<Vec<u32>> = parents
                .iter()
                .enumerate()
                .map(|(row, &parent)| {
                    let mut history = self.histories.get(parent).cloned().unwrap_or_default();
                    if let Some(words) = last_words {
                        history.push(words[row]);
                    }
                    history
                })
                .collect();
            self.histories = histories;
            self.histories.iter().map(|history| (self.model)(history)).collect()
        }
    }

    fn settings() -> BeamSettings {
        BeamSettings {
            beam: 3,
            max_words: 10,
            min_words: 0,
            no_repeat_ngram: 0,
            length_penalty: 1.0,
            end: 0,
            banned: vec![1],
            non_word: vec![],
            temperature: 0.0,
            seed: 0,
            cancel: None,
            no_immediate_repeat: true,
        }
    }

    fn log(probs: &[f32]) -> Vec<f32> {
        probs.iter().map(|p| p.ln()).collect()
    }

    #[test]
    fn finds_the_best_sequence_and_bans_words() {
        // Vocabulary: 0 end, 1 unk, 2, 3. Unk is the most likely word but banned; after "2" the end is likely.
        let mut scorer = Table {
            model: |history: &[u32]| match history {
                [] => log(&[0.01, 0.6, 0.3, 0.09]),
                [2] => log(&[0.9, 0.05, 0.03, 0.02]),
                _ => log(&[0.5, 0.3, 0.1, 0.1]),
            },
            histories: vec![],
        };
        let best = beam_search(&mut scorer, &settings()).unwrap();
        assert_eq!(best.words, vec![2]);
        assert!((best.log_prob - (0.3f32.ln() + 0.9f32.ln())).abs() < 1e-5);
    }

    #[test]
    fn a_watched_search_shows_what_every_live_hypothesis_starts_with() {
        // Beam 1: the one live line is shown as it grows, "3", then "3 2", and then it ends.
        let model = |history: &[u32]| match history {
            [] => log(&[0.01, 0.01, 0.28, 0.7]),
            [3] => log(&[0.05, 0.01, 0.9, 0.04]),
            [.., 2] => log(&[0.9, 0.01, 0.05, 0.04]),
            _ => log(&[0.25, 0.25, 0.25, 0.25]),
        };
        let mut shown: Vec<Vec<u32>> = Vec::new();
        let mut show = |words: &[u32]| shown.push(words.to_vec());
        let mut scorer = Watched::new(Table { model, histories: vec![] }, &mut show);
        let best = beam_search(&mut scorer, &BeamSettings { beam: 1, ..settings() }).unwrap();
        assert_eq!(best.words, vec![3, 2]);
        assert_eq!(shown, [vec![3], vec![3, 2]]);
        // Beam 3: the lines part at once ("3", "2", ...), so nothing is shared until they agree; what is shown
        // is always the start of the story found.
        let mut shown: Vec<Vec<u32>> = Vec::new();
        let mut show = |words: &[u32]| shown.push(words.to_vec());
        let mut scorer = Watched::new(Table { model, histories: vec![] }, &mut show);
        let best = beam_search(&mut scorer, &settings()).unwrap();
        assert!(shown.iter().all(|words| best.words.starts_with(words)), "{shown:?} vs {:?}", best.words);
    }

    #[test]
    fn minimum_length_forbids_an_early_end_and_the_maximum_forces_one() {
        let model = |_: &[u32]| log(&[0.7, 0.1, 0.1, 0.1]);
        let mut scorer = Table { model, histories: vec![] };
        let best = beam_search(&mut scorer, &BeamSettings { min_words: 4, ..settings() }).unwrap();
        assert_eq!(best.words.len(), 4);
        let model = |_: &[u32]| log(&[0.001, 0.1, 0.5, 0.399]);
        let mut scorer = Table { model, histories: vec![] };
        let best = beam_search(&mut scorer, &BeamSettings { max_words: 6, ..settings() }).unwrap();
        assert_eq!(best.words.len(), 6);
        // Word 3 is punctuation, which the model puts after every word 2: "2 3 2 3 ...". Four tokens are
        // "2 3 2 3"; four words need four 2s.
        let model = |history: &[u32]| match history.last() {
            Some(2) => log(&[0.3, 0.0, 0.1, 0.6]),
            _ => log(&[0.3, 0.0, 0.6, 0.1]),
        };
        let twos = |non_word: Vec<bool>| {
            let mut scorer = Table { model, histories: vec![] };
            let best =
                beam_search(&mut scorer, &BeamSettings { min_words: 4, non_word, length_penalty: 0.0, ..settings() })
                    .unwrap();
            best.words.iter().filter(|&&word| word == 2).count()
        };
        assert_eq!(twos(vec![]), 2);
        assert_eq!(twos(vec![false, false, false, true]), 4);
    }

    #[test]
    fn length_normalisation_prefers_the_better_per_word_story() {
        // "2" then the end: log 0.5 + log 0.5 = -1.386 (-0.69 per token). "3 4 3" then the end:
        // log 0.399 + 3 log 0.8 = -1.588 in all, worse, but -0.40 per token, better.
        let model = |history: &[u32]| match history {
            [] => log(&[0.001, 0.0, 0.5, 0.399, 0.1]),
            [2] => log(&[0.5, 0.0, 0.25, 0.125, 0.125]),
            [3] => log(&[0.05, 0.0, 0.05, 0.1, 0.8]),
            [3, 4] => log(&[0.05, 0.0, 0.05, 0.8, 0.1]),
            [3, 4, 3] => log(&[0.8, 0.0, 0.05, 0.05, 0.1]),
            _ => log(&[0.4, 0.0, 0.2, 0.2, 0.2]),
        };
        let mut scorer = Table { model, histories: vec![] };
        let plain = beam_search(&mut scorer, &BeamSettings { length_penalty: 0.0, ..settings() }).unwrap();
        assert_eq!(plain.words, vec![2], "without normalisation the short story wins");
        let mut scorer = Table { model, histories: vec![] };
        let normalised = beam_search(&mut scorer, &settings()).unwrap();
        assert_eq!(normalised.words, vec![3, 4, 3]);
        assert!((normalised.log_prob - (0.399f32.ln() + 3.0 * 0.8f32.ln())).abs() < 1e-5);
    }

    #[test]
    fn repeated_ngrams_are_blocked() {
        // The model loves "2 3 2 3 ..."; with bigram blocking "2 3" may appear once.
        let model = |history: &[u32]| match history.last() {
            Some(2) => log(&[0.01, 0.0, 0.01, 0.9]),
            _ => log(&[0.2, 0.0, 0.7, 0.1]),
        };
        let mut scorer = Table { model, histories: vec![] };
        let best = beam_search(&mut scorer, &BeamSettings { no_repeat_ngram: 2, min_words: 3, ..settings() }).unwrap();
        let pairs: Vec<_> = best.words.windows(2).collect();
        for (index, pair) in pairs.iter().enumerate() {
            assert!(!pairs[index + 1..].contains(pair), "{:?} repeats a bigram", best.words);
        }
        assert_eq!(repeating_words(&[5, 6, 7, 5, 6], 3), vec![7]);
        assert_eq!(repeating_words(&[5, 6], 3), Vec::<u32>::new());
    }

    #[test]
    fn no_finished_hypothesis_gives_none_and_noise_is_seeded() {
        // The end is banned outright: nothing can finish.
        let model = |_: &[u32]| log(&[0.5, 0.1, 0.2, 0.2]);
        let mut scorer = Table { model, histories: vec![] };
        assert!(beam_search(&mut scorer, &BeamSettings { banned: vec![0, 1], ..settings() }).is_none());

        let model = |_: &[u32]| log(&[0.2, 0.0, 0.4, 0.4]);
        let noisy = |seed| {
            let mut scorer = Table { model, histories: vec![] };
            beam_search(&mut scorer, &BeamSettings { temperature: 1.0, seed, min_words: 5, ..settings() })
                .unwrap()
                .words
        };
        assert_eq!(noisy(7), noisy(7));
        assert!((0..10).any(|seed| noisy(seed) != noisy(7)));
    }

    #[test]
    fn a_cancelled_search_scores_nothing_more() {
        let model = |_: &[u32]| log(&[0.2, 0.0, 0.4, 0.4]);
        let mut scorer = Table { model, histories: vec![] };
        assert!(beam_search(&mut scorer, &settings()).is_some());
        let cancel = CancelFlag::new();
        cancel.cancel();
        let mut scorer = Table { model, histories: vec![] };
        assert!(beam_search(&mut scorer, &BeamSettings { cancel: Some(cancel), ..settings() }).is_none());
        assert!(scorer.histories.is_empty(), "the model was never asked");
    }
}
