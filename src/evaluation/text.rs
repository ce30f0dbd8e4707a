//! What a reader notices in a set of stories, as numbers: which content words a text uses, how close a
//! story is to a photo's reference captions (TF-IDF cosine), how varied the stories are (distinct-n, the
//! most repeated opening) and how much two stories share (Jaccard over content words).

use std::collections::{BTreeSet, HashMap};

pub use crate::text::content::content_words;
use crate::text::tokenize::for_each_word;

/// TF-IDF vectors of documents (lists of content words) with the IDF of a reference collection.
#[derive(Debug, Clone)]
pub struct TfIdf {
    idf: HashMap<String, f32>,
    /// The IDF of a word no reference document has: rarest of all.
    unseen_idf: f32,
}

impl TfIdf {
    /// IDF `ln((1 + n) / (1 + df)) + 1` over `documents` (smoothed, as scikit-learn's default).
    pub fn fit(documents: &[Vec<String>]) -> TfIdf {
        let mut document_frequency: HashMap<&str, usize> = HashMap::new();
        for document in documents {
            for word in document.iter().map(String::as_str).collect::<BTreeSet<_>>() {
                *document_frequency.entry(word).or_default() += 1;
            }
        }
        let n = documents.len() as f32;
        let idf = document_frequency
            .into_iter()
            .map(|(word, df)| (word.to_string(), ((1.0 + n) / (1.0 + df as f32)).ln() + 1.0))
            .collect();
        TfIdf { idf, unseen_idf: (1.0 + n).ln() + 1.0 }
    }

    /// The unit-length TF-IDF vector of `document`, as a sparse map.
    pub fn vector(&self, document: &[String]) -> HashMap<String, f32> {
        let mut counts: HashMap<String, f32> = HashMap::new();
        for word in document {
            *counts.entry(word.clone()).or_default() += 1.0;
        }
        for (word, weight) in counts.iter_mut() {
            *weight *= self.idf.get(word).copied().unwrap_or(self.unseen_idf);
        }
        let norm = counts.values().map(|weight| weight * weight).sum::<f32>().sqrt();
        if norm > 0.0 {
            counts.values_mut().for_each(|weight| *weight /= norm);
        }
        counts
    }
}

/// Cosine of two unit sparse vectors.
pub fn cosine(a: &HashMap<String, f32>, b: &HashMap<String, f32>) -> f32 {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    small.iter().filter_map(|(word, weight)| large.get(word).map(|other| weight * other)).sum()
}

/// 1-based rank of `scores[own]` among `scores` (ties count against it: a story equally close to every
/// photo ranks last, not first).
pub fn rank_of(scores: &[f32], own: usize) -> usize {
    scores.iter().enumerate().filter(|&(index, &score)| index != own && score >= scores[own]).count() + 1
}

/// Distinct n-grams over all n-grams of `texts` (Li et al. 2016): 1 when nothing repeats.
pub fn distinct_n(texts: &[Vec<String>], n: usize) -> f32 {
    let mut total = 0usize;
    let mut seen: BTreeSet<&[String]> = BTreeSet::new();
    for words in texts {
        for gram in words.windows(n) {
            total += 1;
            seen.insert(gram);
        }
    }
    if total == 0 { 0.0 } else { seen.len() as f32 / total as f32 }
}

/// All lower-case words of a text, punctuation included as tokens (for distinct-n).
pub fn all_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut buffer = String::new();
    for_each_word(text, true, &mut buffer, |word| words.push(word.to_string()));
    words
}

/// The first sentence of a story (up to its first `.`, `!` or `?`), lower-cased.
pub fn opening(story: &str) -> String {
    let end = story.find(['.', '!', '?']).map_or(story.len(), |at| at + 1);
    story[..end].trim().to_lowercase()
}

/// The share of `stories` that open with the most common opening sentence.
pub fn top_opening_share(stories: &[&str]) -> f32 {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for story in stories {
        *counts.entry(opening(story)).or_default() += 1;
    }
    counts.values().copied().max().map_or(0.0, |top| top as f32 / stories.len().max(1) as f32)
}

/// Jaccard overlap of two texts' content-word sets.
pub fn jaccard(a: &[String], b: &[String]) -> f32 {
    let a: BTreeSet<&String> = a.iter().collect();
    let b: BTreeSet<&String> = b.iter().collect();
    let union = a.union(&b).count();
    if union == 0 { 0.0 } else { a.intersection(&b).count() as f32 / union as f32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        content_words(text)
    }

    #[test]
    fn content_words_drop_function_words_and_punctuation() {
        assert_eq!(words("The dog, and THE cat: on a red sofa!"), ["dog", "cat", "red", "sofa"]);
    }

    #[test]
    fn the_own_captions_rank_first_and_ties_rank_last() {
        let captions = [words("a dog runs on the beach"), words("a man rides a red bike"), words("snow on a mountain")];
        let model = TfIdf::fit(&captions);
        let story = model.vector(&words("The dog ran along the beach at dawn."));
        let scores: Vec<f32> = captions.iter().map(|caption| cosine(&story, &model.vector(caption))).collect();
        assert_eq!(rank_of(&scores, 0), 1);
        assert_eq!(rank_of(&scores, 1), 3, "a zero score ties with the other zero and ranks below it");
        assert!((cosine(&model.vector(&captions[0]), &model.vector(&captions[0])) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn diversity_figures_by_hand() {
        // "a b a b": bigrams ab, ba, ab -> 2 distinct of 3.
        let texts = vec![vec!["a".to_string(), "b".into(), "a".into(), "b".into()]];
        assert!((distinct_n(&texts, 2) - 2.0 / 3.0).abs() < 1e-6);
        assert!((distinct_n(&texts, 1) - 0.5).abs() < 1e-6);
        assert_eq!(top_opening_share(&["It was dark. Then", "It was dark! No", "A ship. Sailed"]), 1.0 / 3.0);
        assert_eq!(top_opening_share(&["It was dark. Then", "it was DARK. No", "A ship. Sailed"]), 2.0 / 3.0);
        assert!((jaccard(&words("dog cat bird"), &words("dog cat fish")) - 0.5).abs() < 1e-6);
    }
}
