//! One decoded book into tokens: clean, split into paragraphs and sentences, tokenize.
//!
//! Each book is tokenized against its own small word table ("local ids") so that books can be processed in
//! parallel without sharing a map; the corpus-wide vocabulary is chosen afterwards from the merged counts and
//! each book's local ids are remapped to it in one pass over a lookup table.

use super::interner::{INLINE, Interner};
use super::{gutenberg, paragraphs, sentences};
use crate::text::tokenize::for_each_word_as_written;

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
    // A book of n bytes has roughly n / 64 distinct words and n / 4.7 tokens (the shared books, with their
    // headers): reserving n / 3 tokens up front spares the copy of regrowing, and costs nothing where it is
    // not written (untouched pages are never mapped); the excess is handed back at the end.
    let mut book = BookTokens { words: Interner::with_capacity(text.len() / 64), ..BookTokens::default() };
    book.tokens.reserve(text.len() / 3);
    let BookTokens { words, counts, tokens, sentence_lengths, paragraph_lengths } = &mut book;
    let mut buffer = String::new();
    for paragraph in clean_paragraphs(text) {
        let mut n_sentences = 0;
        for sentence in sentences::split_sentences(&paragraph) {
            let start = tokens.len();
            for_each_word_as_written(sentence, lowercase, |word| {
                let id = if lowercase {
                    // The word is a slice of the paragraph: the 16 bytes from its start, where the paragraph has them.
                    let at = (word.as_ptr() as usize).wrapping_sub(paragraph.as_ptr() as usize);
                    let window =
                        paragraph.as_bytes().get(at..at.wrapping_add(INLINE)).and_then(|window| window.try_into().ok());
                    words.intern_lowercased_in(word, window, &mut buffer)
                } else {
                    words.intern(word)
                };
                match counts.get_mut(id as usize) {
                    Some(count) => *count += 1,
                    None => counts.push(1),
                }
                tokens.push(id);
            });
            let length = tokens.len() - start;
            if length > 0 {
                sentence_lengths.push(length as u32);
                n_sentences += 1;
            }
        }
        if n_sentences > 0 {
            paragraph_lengths.push(n_sentences);
        }
    }
    book.tokens.shrink_to_fit();
    book
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lowercasing word by word while interning gives the words of lowercasing each sentence first.
    #[test]
    fn words_are_those_of_the_lowercased_sentences() {
        let text = "\"İSTANBUL, Straße!\" said MR. O'BRIEN... ÉTÉ—CAFÉ, naïve ÀB.\n\nThe Kelvin \u{212A} and Ω WERE HERE, a\u{A7D2}b.";
        let book = tokenize_book(text, true);
        let mut expected = Vec::new();
        let mut buffer = String::new();
        for paragraph in clean_paragraphs(text) {
            for sentence in sentences::split_sentences(&paragraph) {
                crate::text::tokenize::for_each_word(sentence, true, &mut buffer, |word| {
                    expected.push(word.to_string())
                });
            }
        }
        let words: Vec<&str> = book.tokens.iter().map(|&id| book.words.word(id)).collect();
        assert_eq!(words, expected);
        assert!(words.contains(&"i̇stanbul") && words.contains(&"k"), "{words:?}");
        let kept_case = tokenize_book(text, false);
        assert!(kept_case.words.words().any(|word| word == "BRIEN" || word == "O'BRIEN"));
    }

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
