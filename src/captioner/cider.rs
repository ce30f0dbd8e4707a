//! CIDEr-D (Vedantam, Zitnick & Parikh 2015) as the COCO caption evaluation computes it: each sentence is
//! a TF-IDF vector of its 1- to 4-grams, the document frequency of an n-gram being the number of photos
//! whose references hold it; a hypothesis scores, for each n, the cosine with each reference, with the
//! hypothesis's weights clipped by the reference's and a Gaussian penalty (sigma 6) on the length
//! difference; the mean over n and over references, times 10, is the photo's score, and the corpus score
//! is the mean over photos.
//!
//! Checked against the `pycocoevalcap` package (`scripts/oracle/cider.py` writes the reference figures the
//! tests compare with). As there, the length difference is taken between bigram counts, and a corpus of one
//! photo scores 0 (every n-gram is in every photo's references, so every weight is 0).

use std::collections::{HashMap, HashSet};

/// Largest n-gram and the length penalty's width.
const N: usize = 4;
const SIGMA: f64 = 6.0;

type Counts<'a> = HashMap<&'a [String], f64>;

fn counts(words: &[String]) -> Counts<'_> {
    let mut counts = HashMap::new();
    for n in 1..=N {
        for gram in words.windows(n) {
            *counts.entry(gram).or_insert(0.0) += 1.0;
        }
    }
    counts
}

/// A sentence's TF-IDF weights by n-gram (split by order), their norms per order, and its bigram count.
struct Weighted<'a> {
    weights: [HashMap<&'a [String], f64>; N],
    norms: [f64; N],
    bigrams: f64,
}

fn weigh<'a>(counts: &Counts<'a>, document_frequency: &HashMap<&[String], f64>, log_photos: f64) -> Weighted<'a> {
    let mut weights: [HashMap<&[String], f64>; N] = Default::default();
    let mut norms = [0.0; N];
    let mut bigrams = 0.0;
    for (&gram, &count) in counts {
        let order = gram.len() - 1;
        let frequency = document_frequency.get(gram).copied().unwrap_or(0.0).max(1.0);
        let weight = count * (log_photos - frequency.ln());
        weights[order].insert(gram, weight);
        norms[order] += weight * weight;
        if order == 1 {
            bigrams += count;
        }
    }
    Weighted { weights, norms: norms.map(f64::sqrt), bigrams }
}

/// The clipped cosine per order between a hypothesis and one reference, with the length penalty.
fn similarity(hypothesis: &Weighted, reference: &Weighted) -> [f64; N] {
    let delta = hypothesis.bigrams - reference.bigrams;
    let penalty = (-(delta * delta) / (2.0 * SIGMA * SIGMA)).exp();
    std::array::from_fn(|order| {
        let mut value: f64 = hypothesis.weights[order]
            .iter()
            .map(|(gram, &weight)| {
                let other = reference.weights[order].get(gram).copied().unwrap_or(0.0);
                weight.min(other) * other
            })
            .sum();
        if hypothesis.norms[order] != 0.0 && reference.norms[order] != 0.0 {
            value /= hypothesis.norms[order] * reference.norms[order];
        }
        value * penalty
    })
}

/// CIDEr-D of `hypotheses[i]` against `references[i]` (words as [`super::bleu::bleu_words`] splits them):
/// the corpus score and each photo's.
pub fn cider_d(hypotheses: &[Vec<String>], references: &[Vec<Vec<String>>]) -> (f64, Vec<f64>) {
    assert_eq!(hypotheses.len(), references.len(), "one set of references per hypothesis");
    if hypotheses.is_empty() {
        return (0.0, Vec::new());
    }
    let reference_counts: Vec<Vec<Counts>> =
        references.iter().map(|refs| refs.iter().map(|words| counts(words)).collect()).collect();
    let mut document_frequency: HashMap<&[String], f64> = HashMap::new();
    for refs in &reference_counts {
        let grams: HashSet<&[String]> = refs.iter().flat_map(|counts| counts.keys().copied()).collect();
        for gram in grams {
            *document_frequency.entry(gram).or_insert(0.0) += 1.0;
        }
    }
    let log_photos = (hypotheses.len() as f64).ln();
    let scores: Vec<f64> = hypotheses
        .iter()
        .zip(&reference_counts)
        .map(|(hypothesis, refs)| {
            if refs.is_empty() {
                return 0.0;
            }
            let hypothesis = weigh(&counts(hypothesis), &document_frequency, log_photos);
            let mut total = [0.0; N];
            for reference in refs {
                let reference = weigh(reference, &document_frequency, log_photos);
                for (sum, value) in total.iter_mut().zip(similarity(&hypothesis, &reference)) {
                    *sum += value;
                }
            }
            total.iter().sum::<f64>() / N as f64 / refs.len() as f64 * 10.0
        })
        .collect();
    (scores.iter().sum::<f64>() / scores.len() as f64, scores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::captioner::bleu::bleu_words;

    /// Sentences and the scores `pycocoevalcap` gives them (`scripts/oracle/cider.py`).
    #[derive(serde::Deserialize)]
    struct Reference {
        hypotheses: Vec<String>,
        references: Vec<Vec<String>>,
        corpus: f64,
        photos: Vec<f64>,
    }

    #[test]
    fn agrees_with_the_coco_evaluation_code() {
        let reference: Reference =
            serde_json::from_str(include_str!("../../tests/fixtures/cider_reference.json")).unwrap();
        let hypotheses: Vec<Vec<String>> = reference.hypotheses.iter().map(|text| bleu_words(text)).collect();
        let references: Vec<Vec<Vec<String>>> =
            reference.references.iter().map(|refs| refs.iter().map(|text| bleu_words(text)).collect()).collect();
        let (corpus, photos) = cider_d(&hypotheses, &references);
        assert!((corpus - reference.corpus).abs() < 1e-9, "{corpus} vs {}", reference.corpus);
        for (index, (ours, theirs)) in photos.iter().zip(&reference.photos).enumerate() {
            assert!((ours - theirs).abs() < 1e-9, "photo {index}: {ours} vs {theirs}");
        }
    }

    #[test]
    fn one_photo_scores_zero_and_a_copy_beats_a_stranger() {
        let words = |text: &str| bleu_words(text);
        let single = cider_d(&[words("a dog runs")], &[vec![words("a dog runs")]]);
        assert_eq!(single.0, 0.0);
        let references = vec![vec![words("a dog runs on grass")], vec![words("two cats sleep on a sofa")]];
        let copy = cider_d(&[words("a dog runs on grass"), words("two cats sleep on a sofa")], &references);
        let stranger = cider_d(&[words("two cats sleep on a sofa"), words("a dog runs on grass")], &references);
        assert!(copy.0 > 1.0 && stranger.0 < copy.0 / 5.0, "{copy:?} vs {stranger:?}");
    }
}
