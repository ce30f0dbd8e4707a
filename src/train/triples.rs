//! Skip-thought training examples: (previous, current, next) sentences inside one book.
//!
//! The encoder reads the current sentence; two decoders reconstruct its neighbours (Kiros et al. 2015).
//! Neighbours never cross a book boundary; inside a book they may cross paragraphs, as BookCorpus's
//! contiguous sentences did.

use crate::corpus::streams::SplitStreams;

/// Sentence indices of one training example in a split's token streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Triple {
    pub previous: usize,
    pub current: usize,
    pub next: usize,
}

/// Every triple of consecutive sentences inside each book of `split`, in book order.
pub fn sentence_triples(split: &SplitStreams) -> Vec<Triple> {
    let mut triples = Vec::new();
    for book in 0..split.n_books() {
        let sentences = split.book_sentences(book);
        if sentences.len() < 3 {
            continue;
        }
        triples.extend((sentences.start + 1..sentences.end - 1).map(|current| Triple {
            previous: current - 1,
            current,
            next: current + 1,
        }));
    }
    triples
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::streams::SplitWriter;

    #[test]
    fn triples_stay_inside_books() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SplitWriter::create(dir.path()).unwrap();
        // Book 0: 4 sentences in 2 paragraphs; book 1: 2 sentences (too short); book 2: 3 sentences.
        writer.add_book(&[1, 2, 3, 4], &[1, 1, 1, 1], &[2, 2]).unwrap();
        writer.add_book(&[5, 6], &[1, 1], &[2]).unwrap();
        writer.add_book(&[7, 8, 9], &[1, 1, 1], &[3]).unwrap();
        writer.finish().unwrap();
        let split = SplitStreams::open(dir.path()).unwrap();
        let triples = sentence_triples(&split);
        let as_tuples: Vec<(usize, usize, usize)> =
            triples.iter().map(|triple| (triple.previous, triple.current, triple.next)).collect();
        assert_eq!(as_tuples, [(0, 1, 2), (1, 2, 3), (6, 7, 8)]);
    }
}
