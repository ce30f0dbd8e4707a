//! Passages of novels and their skip-thought vectors: what the story decoder learns to write, and what the
//! genre biases average.
//!
//! A passage's vector is the mean of its sentences' skip-thought vectors: the encoder reads one sentence
//! at a time (up to its `max_tokens`), and captions, the other side of the style shift, are single
//! sentences, so both live in the same space.

use std::ops::Range;

use crate::corpus::streams::SplitStreams;
use crate::encoder::SentenceEncoder;

/// Consecutive non-overlapping runs of `sentences` sentences inside each book of `split`.
pub fn sentence_windows(split: &SplitStreams, sentences: usize) -> Vec<Range<usize>> {
    let mut windows = Vec::new();
    for book in 0..split.n_books() {
        let range = split.book_sentences(book);
        let mut start = range.start;
        while start + sentences <= range.end {
            windows.push(start..start + sentences);
            start += sentences;
        }
    }
    windows
}

/// Paragraphs of the books `books` (indices in `split`) holding at least `min_tokens` tokens.
pub fn long_paragraphs(split: &SplitStreams, books: &[usize], min_tokens: usize) -> Vec<Range<usize>> {
    let mut paragraphs = Vec::new();
    for &book in books {
        for paragraph in split.book_paragraphs(book) {
            let sentences = split.paragraph_sentences(paragraph);
            let tokens: usize = sentences.clone().map(|sentence| split.sentence(sentence).len()).sum();
            if tokens >= min_tokens {
                paragraphs.push(sentences);
            }
        }
    }
    paragraphs
}

/// At most `limit` items, taken evenly across `items` (the first, then every `len / limit`-th).
pub fn evenly<T: Clone>(items: &[T], limit: usize) -> Vec<T> {
    if items.len() <= limit {
        return items.to_vec();
    }
    (0..limit).map(|index| items[index * items.len() / limit].clone()).collect()
}

/// The tokens of a passage, its sentences concatenated, cut to `max_tokens`.
pub fn passage_tokens(split: &SplitStreams, sentences: &Range<usize>, max_tokens: usize) -> Vec<u32> {
    let mut tokens = Vec::new();
    for sentence in sentences.clone() {
        tokens.extend_from_slice(split.sentence(sentence));
        if tokens.len() >= max_tokens {
            tokens.truncate(max_tokens);
            break;
        }
    }
    tokens
}

/// The vector of each passage: the mean of its sentences' vectors. `progress` is told the passages done.
pub fn passage_vectors(
    encoder: &SentenceEncoder,
    split: &SplitStreams,
    passages: &[Range<usize>],
    mut progress: impl FnMut(usize),
) -> Vec<Vec<f32>> {
    let mut out = Vec::with_capacity(passages.len());
    // A few hundred passages at a time, so the encoder sees full batches.
    for chunk in passages.chunks(256) {
        let sentences: Vec<Vec<&[u32]>> =
            chunk.iter().map(|passage| passage.clone().map(|sentence| split.sentence(sentence)).collect()).collect();
        out.extend(mean_sentence_vectors(encoder, &sentences));
        progress(chunk.len());
    }
    out
}

/// Each passage's vector: the mean of its sentences' vectors (sentences given as token ids).
pub fn mean_sentence_vectors(encoder: &SentenceEncoder, passages: &[Vec<&[u32]>]) -> Vec<Vec<f32>> {
    let dim = encoder.dim();
    let vectors = encoder.encode_ids(passages.iter().flat_map(|sentences| sentences.iter().copied()));
    let mut next = vectors.into_iter();
    passages
        .iter()
        .map(|sentences| {
            let mut mean = vec![0.0f32; dim];
            for vector in next.by_ref().take(sentences.len()) {
                for (sum, value) in mean.iter_mut().zip(vector) {
                    *sum += value;
                }
            }
            let count = sentences.len().max(1) as f32;
            mean.iter_mut().for_each(|value| *value /= count);
            mean
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evenly_spreads_and_keeps_short_lists() {
        assert_eq!(evenly(&[1, 2, 3], 5), vec![1, 2, 3]);
        assert_eq!(evenly(&(0..10).collect::<Vec<_>>(), 5), vec![0, 2, 4, 6, 8]);
    }
}
