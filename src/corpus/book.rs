//! One decoded book into tokens: clean, split into paragraphs and sentences, tokenize.
//!
//! Each book is tokenized against its own small word table ("local ids") so that books can be processed in
//! parallel without sharing a map; the corpus-wide vocabulary is chosen afterwards from the merged counts and
//! each book's local ids are remapped to it in one pass over a lookup table.

use super::interner::Interner;
use super::{gutenberg, paragraphs, sentences};
use crate::text::tokenize::for_each_word;

/// A book's text as local token ids with its sentence and paragraph boundaries.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BookTokens {
    /// Local id <-> word.
    pub words: Interner,
    /// Local id -> occurrences in this book.
    pub counts: Vec<u64>,
    /// Local ids of every sentence, concatenated.
    pub tokens: Vec<u32>,
    /// Tokens in each sentence, in order.
    pub sentence_lengths: Vec<u32>,
    /// Sentences in each paragraph, in order.
    pub paragraph_lengths: Vec<u32>,
}

impl BookTokens {
    pub fn n_tokens(&self) -> usize {
        self.tokens.len()
    }

    pub fn n_sentences(&self) -> usize {
        self.sentence_lengths.len()
    }

    pub fn n_paragraphs(&self) -> usize {
        self.paragraph_lengths.len()
    }
}

/// The prose paragraphs of a decoded book, packaging and headings removed, typography normalised.
pub fn clean_paragraphs(text: &str) -> Vec<String> {
    paragraphs::prose_paragraphs(gutenberg::strip_packaging(text))
}

/// Cleans, splits and tokenizes a decoded book.
pub fn tokenize_book(text: &str, lowercase: bool) -> BookTokens {
    let mut book = BookTokens::default();
    // English prose runs at about five bytes a token: reserving up front spares the copies of regrowth.
    book.tokens.reserve(text.len() / 5);
    let mut buffer = String::new();
    for paragraph in clean_paragraphs(text) {
        let mut n_sentences = 0;
        for sentence in sentences::split_sentences(&paragraph) {
            let start = book.tokens.len();
            for_each_word(sentence, lowercase, &mut buffer, |word| {
                let id = book.words.intern(word) as usize;
                if id == book.counts.len() {
                    book.counts.push(0);
                }
                book.counts[id] += 1;
                book.tokens.push(id as u32);
            });
            let length = book.tokens.len() - start;
            if length > 0 {
                book.sentence_lengths.push(length as u32);
                n_sentences += 1;
            }
        }
        if n_sentences > 0 {
            book.paragraph_lengths.push(n_sentences);
        }
    }
    book
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn book_becomes_sentences_of_local_ids() {
        let text = "*** START OF THE PROJECT GUTENBERG EBOOK X ***\n\nCHAPTER I\n\nThe cat sat.  The cat\nran!\n\n\"Why?\" said Mr. Fox.\n\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\nlicence";
        let book = tokenize_book(text, true);
        assert_eq!(book.sentence_lengths, [4, 4, 9]);
        assert_eq!(book.paragraph_lengths, [2, 1]);
        let words: Vec<&str> = book.tokens.iter().map(|&id| book.words.word(id)).collect();
        assert_eq!(words.join(" "), "the cat sat . the cat ran ! \" why ? \" said mr . fox .");
        assert_eq!(book.counts[0], 2, "`the` occurs twice");
    }
}
