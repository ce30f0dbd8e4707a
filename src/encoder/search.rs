//! Nearest corpus sentences of encoded sentences (`storytool encode --neighbours`): a look at what a vector
//! space holds, by cosine over an evenly spread sample of the corpus's training sentences.

use super::{CombinedEncoder, Encoded, cosine};
use crate::corpus::Corpus;

/// Why the corpus could not be searched.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("corpus `{corpus}` has vocabulary {found}, but the encoder was trained on {expected}")]
    OtherVocabulary { corpus: String, expected: String, found: String },
}

/// One sentence of the corpus and its cosine to a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    pub score: f32,
    pub sentence: String,
}

/// The corpus sentences a search runs over: at most `count`, evenly spread over the training split.
pub fn sample_sentences(corpus: &Corpus, count: usize) -> Vec<usize> {
    let split = &corpus.train;
    let stride = (split.n_sentences() / count.max(1)).max(1);
    (0..split.n_sentences()).step_by(stride).take(count).collect()
}

/// For each of `queries`, the `n` nearest of the corpus sentences `indices` (from [`sample_sentences`]),
/// nearest first.
pub fn nearest_sentences(
    encoder: &CombinedEncoder,
    corpus: &Corpus,
    indices: &[usize],
    queries: &[Encoded],
    n: usize,
) -> Result<Vec<Vec<Neighbour>>, SearchError> {
    let expected = &encoder.first().manifest().vocabulary_hash;
    if corpus.manifest.vocabulary.hash != *expected {
        return Err(SearchError::OtherVocabulary {
            corpus: corpus.dir.display().to_string(),
            expected: expected.clone(),
            found: corpus.manifest.vocabulary.hash.clone(),
        });
    }
    let split = &corpus.train;
    let vectors = encoder.encode_ids(indices.iter().map(|&index| split.sentence(index)));
    Ok(queries
        .iter()
        .map(|query| {
            let mut scored: Vec<(f32, usize)> =
                vectors.iter().zip(indices).map(|(vector, &index)| (cosine(&query.vector, vector), index)).collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            scored
                .into_iter()
                .take(n)
                .map(|(score, index)| Neighbour { score, sentence: corpus.vocabulary.decode(split.sentence(index)) })
                .collect()
        })
        .collect())
}
