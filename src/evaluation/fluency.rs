//! A fluency judge that shares nothing with any story decoder: an interpolated Kneser-Ney word n-gram
//! model (Chen & Goodman 1998, one discount per order) counted from held-out books.
//!
//! A story's cross-entropy under it (nats per word) means little alone, so it is read beside two
//! references: real passages of books the judge did not count, and the same passages with their words
//! shuffled, which keep every word and lose every order. Prose a reader would want scores near the real
//! passages; word salad near the shuffled ones. The *word-order gain* (shuffled minus unshuffled
//! cross-entropy) says how much of a text's score comes from its words being in an order the books use; a
//! text that only strings likely words together gains little. The decoder's own perplexity of its stories
//! would not do: a decoder rates its own repetitions highly.
//!
//! Words are lower-cased tokens of `evaluation::text::all_words`; a word the judge never counted is
//! `<unk>`, whose probability is the share of words seen once (so rare names cost what rare words cost).

use std::collections::HashMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// The longest n-gram the judge counts.
pub const ORDER: usize = 4;
/// The absolute discount of every order.
const DISCOUNT: f64 = 0.75;
const UNKNOWN: u32 = 0;
const START: u32 = 1;

/// Bits of a word id in a packed n-gram key: a vocabulary of up to 16 M words.
const ID_BITS: u32 = 24;

/// An n-gram of up to [`ORDER`] ids packed into one integer, with its length in the top bits (an n-gram
/// held as a `Vec` costs a heap allocation and about 60 bytes more per entry).
fn key(ids: &[u32]) -> u128 {
    let mut packed = (ids.len() as u128) << (ID_BITS * ORDER as u32);
    for (at, &id) in ids.iter().enumerate() {
        packed |= u128::from(id & ((1 << ID_BITS) - 1)) << (ID_BITS * at as u32);
    }
    packed
}

/// Counts of one order: per n-gram its (continuation) count; per context its total and how many words
/// followed it.
#[derive(Debug, Default)]
struct OrderCounts {
    grams: HashMap<u128, u32>,
    contexts: HashMap<u128, (u32, u32)>,
}

#[derive(Debug)]
pub struct FluencyJudge {
    words: HashMap<String, u32>,
    /// `orders[n - 1]`: counts of n-grams.
    orders: Vec<OrderCounts>,
    /// Total of the unigram continuation counts.
    unigram_total: f64,
    unknown_share: f64,
}

impl FluencyJudge {
    /// Counts every text (each a sequence of words, e.g. a book's sentences).
    pub fn train(texts: &[Vec<String>]) -> FluencyJudge {
        let mut frequency: HashMap<&str, u32> = HashMap::new();
        for text in texts {
            for word in text {
                *frequency.entry(word).or_default() += 1;
            }
        }
        let singletons = frequency.values().filter(|&&count| count == 1).count();
        let total: usize = frequency.values().map(|&count| count as usize).sum();
        let mut words = HashMap::new();
        for (word, &count) in &frequency {
            if count > 1 {
                let id = words.len() as u32 + 2;
                words.insert(word.to_string(), id);
            }
        }
        let mut judge = FluencyJudge {
            words,
            orders: (0..ORDER).map(|_| OrderCounts::default()).collect(),
            unigram_total: 0.0,
            unknown_share: (singletons as f64 / total.max(1) as f64).clamp(1e-4, 0.5),
        };
        // Highest order: plain counts. Lower orders: continuation counts (how many distinct words precede).
        let mut highest: HashMap<Vec<u32>, u32> = HashMap::new();
        for text in texts {
            let ids = judge.ids(text);
            for end in ORDER - 1..ids.len() {
                *highest.entry(ids[end + 1 - ORDER..=end].to_vec()).or_default() += 1;
            }
        }
        let mut lower: Vec<HashMap<Vec<u32>, u32>> = (0..ORDER - 1).map(|_| HashMap::new()).collect();
        for gram in highest.keys() {
            // Every shorter suffix of a distinct n-gram gains one continuation.
            for suffix in 1..gram.len() {
                let shorter = &gram[suffix..];
                *lower[shorter.len() - 1].entry(shorter.to_vec()).or_default() += 1;
            }
        }
        let mut grams_by_order: Vec<HashMap<Vec<u32>, u32>> = lower;
        grams_by_order.push(highest);
        for (order, grams) in grams_by_order.into_iter().enumerate() {
            let counts = &mut judge.orders[order];
            counts.grams.reserve(grams.len());
            for (gram, count) in grams {
                let context = counts.contexts.entry(key(&gram[..gram.len() - 1])).or_default();
                context.0 += count;
                context.1 += 1;
                if order == 0 && gram[0] != UNKNOWN {
                    // The unknown word has its own share; the known words divide the rest.
                    judge.unigram_total += f64::from(count);
                }
                counts.grams.insert(key(&gram), count);
            }
        }
        judge
    }

    fn ids(&self, text: &[String]) -> Vec<u32> {
        let mut ids = vec![START; ORDER - 1];
        ids.extend(text.iter().map(|word| self.words.get(word).copied().unwrap_or(UNKNOWN)));
        ids
    }

    /// `P(word | context)` by interpolated Kneser-Ney, recursing to shorter contexts.
    fn probability(&self, context: &[u32], word: u32) -> f64 {
        if context.is_empty() {
            let continuation = self.orders[0].grams.get(&key(&[word])).copied().unwrap_or(0);
            let seen = f64::from(continuation) / self.unigram_total.max(1.0);
            return if word == UNKNOWN { self.unknown_share } else { (1.0 - self.unknown_share) * seen.max(1e-9) };
        }
        let lower = self.probability(&context[1..], word);
        let counts = &self.orders[context.len()];
        let Some(&(total, followers)) = counts.contexts.get(&key(context)) else {
            return lower;
        };
        let mut gram = [0u32; ORDER];
        gram[..context.len()].copy_from_slice(context);
        gram[context.len()] = word;
        let count = counts.grams.get(&key(&gram[..=context.len()])).copied().unwrap_or(0);
        let total = f64::from(total);
        (f64::from(count) - DISCOUNT).max(0.0) / total + DISCOUNT * f64::from(followers) / total * lower
    }

    /// Mean negative log-probability per word of `text`, in nats (`None` for an empty text).
    pub fn cross_entropy(&self, text: &[String]) -> Option<f64> {
        if text.is_empty() {
            return None;
        }
        let ids = self.ids(text);
        let total: f64 =
            (ORDER - 1..ids.len()).map(|at| -self.probability(&ids[at + 1 - ORDER..at], ids[at]).max(1e-12).ln()).sum();
        Some(total / text.len() as f64)
    }
}

/// A text's words in a random order (seeded), which keeps its words and loses their order.
pub fn shuffled(text: &[String], seed: u64) -> Vec<String> {
    let mut words = text.to_vec();
    words.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    words
}

/// Cross-entropy of texts and of the same texts shuffled, averaged per text.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Fluency {
    pub cross_entropy: f64,
    pub shuffled_cross_entropy: f64,
}

impl Fluency {
    /// Shuffled minus unshuffled: what the texts' word order is worth to the judge.
    pub fn word_order_gain(&self) -> f64 {
        self.shuffled_cross_entropy - self.cross_entropy
    }
}

/// The judge's mean cross-entropy of `texts` and of each shuffled (seeded by its position).
pub fn fluency(judge: &FluencyJudge, texts: &[Vec<String>], seed: u64) -> Option<Fluency> {
    let mut pairs = Vec::new();
    for (index, text) in texts.iter().enumerate() {
        let plain = judge.cross_entropy(text)?;
        let mixed = judge.cross_entropy(&shuffled(text, seed.wrapping_add(index as u64)))?;
        pairs.push((plain, mixed));
    }
    if pairs.is_empty() {
        return None;
    }
    let count = pairs.len() as f64;
    Some(Fluency {
        cross_entropy: pairs.iter().map(|pair| pair.0).sum::<f64>() / count,
        shuffled_cross_entropy: pairs.iter().map(|pair| pair.1).sum::<f64>() / count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    fn corpus() -> Vec<Vec<String>> {
        let sentences = [
            "the old man walked down to the sea and looked at the boat",
            "the young woman walked down to the river and looked at the water",
            "he walked down to the harbour and looked at the ships",
            "she looked at the sea and the old boat",
            "the man and the woman walked to the town",
        ];
        (0..20).flat_map(|_| sentences.iter().map(|s| words(s))).collect()
    }

    #[test]
    fn probabilities_of_a_context_sum_to_one() {
        let judge = FluencyJudge::train(&corpus());
        for context in [words("walked down to"), words("looked at the"), words("zebra quantum the"), vec![]] {
            let mut ids = judge.ids(&context);
            ids.drain(..ids.len() - (ORDER - 1));
            let mut total = judge.probability(&ids, UNKNOWN);
            for &id in judge.words.values() {
                total += judge.probability(&ids, id);
            }
            assert!((total - 1.0).abs() < 1e-6, "{context:?}: {total}");
        }
    }

    #[test]
    fn prose_scores_below_its_shuffle_and_below_salad() {
        let judge = FluencyJudge::train(&corpus());
        let prose = words("the old woman walked down to the river and looked at the boat");
        let salad = words("boat the river looked old down the at woman the and walked to");
        let prose_ce = judge.cross_entropy(&prose).unwrap();
        let salad_ce = judge.cross_entropy(&salad).unwrap();
        assert!(prose_ce + 1.0 < salad_ce, "{prose_ce} vs {salad_ce}");
        let scores = fluency(&judge, &[prose], 7).unwrap();
        assert!(scores.word_order_gain() > 1.0, "{scores:?}");
        // Unknown words cost, but finitely.
        let odd = judge.cross_entropy(&words("the macumazahn walked")).unwrap();
        assert!(odd.is_finite() && odd > judge.cross_entropy(&words("the man walked")).unwrap());
    }
}
