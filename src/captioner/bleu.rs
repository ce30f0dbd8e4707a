//! Corpus BLEU-1..4 (Papineni et al. 2002) as the COCO caption evaluation computes it: n-gram counts clipped
//! by the most any one reference holds, precisions summed over the whole corpus before dividing, and one
//! brevity penalty from the total hypothesis length against the total of each hypothesis's closest
//! reference length (the shorter one on a tie).
//!
//! Text is compared as lowercase words with punctuation dropped, as the COCO evaluation's tokenizer does.

use std::collections::HashMap;

use serde::Serialize;

use crate::text::tokenize::for_each_word;

/// The words BLEU compares: lowercase, punctuation-only tokens dropped.
pub fn bleu_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for_each_word(text, true, &mut String::new(), |word| {
        if word.chars().any(char::is_alphanumeric) {
            words.push(word.to_string());
        }
    });
    words
}

/// BLEU-1..4 of a corpus, each in [0, 1], with the counts behind them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BleuScores {
    /// `bleu[n - 1]` is BLEU-n.
    pub bleu: [f64; 4],
    /// Modified n-gram precisions.
    pub precisions: [f64; 4],
    pub brevity_penalty: f64,
    pub hypothesis_words: usize,
    pub reference_words: usize,
}

/// Accumulates hypothesis / references pairs; [`BleuCorpus::scores`] gives corpus BLEU.
#[derive(Debug, Clone, Default)]
pub struct BleuCorpus {
    matched: [usize; 4],
    total: [usize; 4],
    hypothesis_words: usize,
    reference_words: usize,
}

fn ngram_counts(words: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    for gram in words.windows(n) {
        *counts.entry(gram).or_insert(0) += 1;
    }
    counts
}

impl BleuCorpus {
    /// Adds one hypothesis and its references (already split with [`bleu_words`]).
    pub fn add(&mut self, hypothesis: &[String], references: &[Vec<String>]) {
        for n in 1..=4 {
            let hypothesis_counts = ngram_counts(hypothesis, n);
            let mut most: HashMap<&[String], usize> = HashMap::new();
            for reference in references {
                for (gram, count) in ngram_counts(reference, n) {
                    let entry = most.entry(gram).or_insert(0);
                    *entry = (*entry).max(count);
                }
            }
            self.matched[n - 1] += hypothesis_counts
                .iter()
                .map(|(gram, &count)| count.min(most.get(gram).copied().unwrap_or(0)))
                .sum::<usize>();
            self.total[n - 1] += hypothesis.len().saturating_sub(n - 1);
        }
        let length = hypothesis.len();
        let closest = references
            .iter()
            .map(Vec::len)
            .min_by_key(|&reference| (reference.abs_diff(length), reference))
            .unwrap_or(0);
        self.hypothesis_words += length;
        self.reference_words += closest;
    }

    pub fn scores(&self) -> BleuScores {
        let precisions: [f64; 4] =
            std::array::from_fn(
                |n| if self.total[n] == 0 { 0.0 } else { self.matched[n] as f64 / self.total[n] as f64 },
            );
        let brevity_penalty = if self.hypothesis_words == 0 {
            0.0
        } else if self.hypothesis_words > self.reference_words {
            1.0
        } else {
            (1.0 - self.reference_words as f64 / self.hypothesis_words as f64).exp()
        };
        let bleu = std::array::from_fn(|n| {
            let used = &precisions[..=n];
            if used.contains(&0.0) {
                return 0.0;
            }
            brevity_penalty * (used.iter().map(|p| p.ln()).sum::<f64>() / (n + 1) as f64).exp()
        });
        BleuScores {
            bleu,
            precisions,
            brevity_penalty,
            hypothesis_words: self.hypothesis_words,
            reference_words: self.reference_words,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(pairs: &[(&str, &[&str])]) -> BleuScores {
        let mut corpus = BleuCorpus::default();
        for (hypothesis, references) in pairs {
            let references: Vec<Vec<String>> = references.iter().map(|text| bleu_words(text)).collect();
            corpus.add(&bleu_words(hypothesis), &references);
        }
        corpus.scores()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn one_sentence_by_hand() {
        // 1-grams: the x2 (clipped at 2), cat, on, mat match, sat does not: 5/6. 2-grams: the cat, on the,
        // the mat of 5: 3/5. 3-grams: on the mat of 4: 1/4. 4-grams: none of 3. Closest reference length 6 =
        // hypothesis length: no penalty.
        let scores = corpus(&[("The cat sat on the mat.", &["the cat is on the mat", "there is a cat on the mat"])]);
        assert_eq!(scores.precisions, [5.0 / 6.0, 3.0 / 5.0, 1.0 / 4.0, 0.0]);
        assert!(close(scores.brevity_penalty, 1.0));
        assert!(close(scores.bleu[0], 5.0 / 6.0));
        assert!(close(scores.bleu[1], 0.5f64.sqrt()));
        assert!(close(scores.bleu[2], 0.5));
        assert_eq!(scores.bleu[3], 0.0);
    }

    #[test]
    fn short_hypotheses_pay_the_brevity_penalty_over_the_corpus() {
        // Alone: "the cat" is all correct but 2 words against 6: BP = exp(1 - 6/2).
        let alone = corpus(&[("the cat", &["the cat is on the mat"])]);
        assert!(close(alone.bleu[0], (-2.0f64).exp()));
        assert!(close(alone.bleu[1], (-2.0f64).exp()));
        // With the sentence above: p1 = (5 + 2) / (6 + 2), p2 = (3 + 1) / (5 + 1), c = 8, r = 12.
        let both = corpus(&[
            ("The cat sat on the mat.", &["the cat is on the mat", "there is a cat on the mat"]),
            ("the cat", &["the cat is on the mat"]),
        ]);
        let penalty = (1.0f64 - 12.0 / 8.0).exp();
        assert!(close(both.brevity_penalty, penalty));
        assert!(close(both.bleu[0], penalty * 7.0 / 8.0));
        assert!(close(both.bleu[1], penalty * (7.0f64 / 8.0 * 4.0 / 6.0).sqrt()));
    }

    #[test]
    fn counts_are_clipped_and_ties_take_the_shorter_reference() {
        let clipped = corpus(&[("the the the the", &["the cat"])]);
        assert_eq!(clipped.precisions[0], 0.25);
        // Hypothesis of 5 words, references of 4 and 6: the closest is 4 (the shorter on a tie), so c > r.
        let tie = corpus(&[("a b c d e", &["a b c d", "a b c d e f"])]);
        assert_eq!(tie.reference_words, 4);
        assert_eq!(tie.brevity_penalty, 1.0);
        assert_eq!(tie.bleu[3], 1.0);
    }
}
