//! One decoded book into tokens: clean, split into paragraphs and sentences, tokenize.
//!
//! Books are tokenized against word tables ("local ids"), one per ingest worker, so that workers run in
//! parallel without sharing a map; the corpus-wide vocabulary is chosen afterwards from the merged counts and
//! each book's local ids are remapped to it in one pass over its table's lookup table.

use super::interner::{INLINE, Interner};
use super::{gutenberg, paragraphs, sentences};
use crate::text::tokenize::for_each_word_as_written;

/// Words with local ids and how often each occurred, shared by the books tokenized against it.
///
/// Ingest gives each worker thread one table for all the books it reads, not one per book: a book's words
/// are then mostly known already (a novel brings a few hundred new words, not its twenty thousand), and the
/// corpus-wide counts and the remap to the vocabulary go through a few tables instead of every book's.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WordTable {
    /// Local id <-> word.
    pub words: Interner,
    /// Local id -> occurrences in the books tokenized against this table.
    pub counts: Vec<u64>,
}

impl WordTable {
    /// A table with room for `words` distinct words before it grows.
    pub fn with_capacity(words: usize) -> WordTable {
        WordTable { words: Interner::with_capacity(words), counts: Vec::with_capacity(words) }
    }

    /// Takes the occurrences of `tokens` (ids in this table) out of the counts again: for a book tokenized
    /// against the table but left out of what the counts are for (a duplicate, a validation book).
    pub fn uncount(&mut self, tokens: &[u32]) {
        for &id in tokens {
            self.counts[id as usize] -= 1;
        }
    }
}

/// A book's text as token ids of a [`WordTable`], with its sentence and paragraph boundaries.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BookTokens {
    /// The ids of every sentence, concatenated.
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
pub fn clean_paragraphs(text: &str) -> paragraphs::Paragraphs {
    paragraphs::prose_paragraphs(gutenberg::strip_packaging(text))
}

/// Cleans, splits and tokenizes a decoded book against a table of its own.
pub fn tokenize_book(text: &str, lowercase: bool) -> (WordTable, BookTokens) {
    let mut table = WordTable::with_capacity(text.len() / 64);
    let book = tokenize_book_into(text, lowercase, &mut table);
    (table, book)
}

/// Cleans, splits and tokenizes a decoded book against `table`, adding its new words and counting all.
pub fn tokenize_book_into(text: &str, lowercase: bool, table: &mut WordTable) -> BookTokens {
    // The shared books run 4.7 bytes a token, with their headers: reserving n / 3 tokens up front spares the
    // copy of regrowing, and costs nothing where it is not written (untouched pages are never mapped); the
    // excess is handed back at the end.
    let mut book = BookTokens::default();
    book.tokens.reserve(text.len() / 3);
    let BookTokens { tokens, sentence_lengths, paragraph_lengths } = &mut book;
    let WordTable { words, counts } = table;
    let mut buffer = String::new();
    for paragraph in clean_paragraphs(text).iter() {
        let mut n_sentences = 0;
        sentences::for_each_sentence(paragraph, |sentence| {
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
        });
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
        let (table, book) = tokenize_book(text, true);
        let mut expected = Vec::new();
        let mut buffer = String::new();
        for paragraph in clean_paragraphs(text).iter() {
            for sentence in sentences::split_sentences(paragraph) {
                crate::text::tokenize::for_each_word(sentence, true, &mut buffer, |word| {
                    expected.push(word.to_string())
                });
            }
        }
        let words: Vec<&str> = book.tokens.iter().map(|&id| table.words.word(id)).collect();
        assert_eq!(words, expected);
        assert!(words.contains(&"i̇stanbul") && words.contains(&"k"), "{words:?}");
        let (kept_case, _) = tokenize_book(text, false);
        assert!(kept_case.words.words().any(|word| word == "BRIEN" || word == "O'BRIEN"));
    }

    #[test]
    fn book_becomes_sentences_of_local_ids() {
        let text = "*** START OF THE PROJECT GUTENBERG EBOOK X ***\n\nCHAPTER I\n\nThe cat sat.  The cat\nran!\n\n\"Why?\" said Mr. Fox.\n\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\nlicence";
        let (table, book) = tokenize_book(text, true);
        assert_eq!(book.sentence_lengths, [4, 4, 9]);
        assert_eq!(book.paragraph_lengths, [2, 1]);
        let words: Vec<&str> = book.tokens.iter().map(|&id| table.words.word(id)).collect();
        assert_eq!(words.join(" "), "the cat sat . the cat ran ! \" why ? \" said mr . fox .");
        assert_eq!(table.counts[0], 2, "`the` occurs twice");
    }

    /// Books sharing a table read as they do alone, and the table's counts are their sum until one is
    /// taken out again.
    #[test]
    fn books_sharing_a_table_keep_their_own_words() {
        let first = "The cat sat on the mat. It was a fine day.";
        let second = "A dog ran past the cat! Nobody saw it.";
        let mut shared = WordTable::default();
        let books = [first, second].map(|text| tokenize_book_into(text, true, &mut shared));
        for (text, book) in [first, second].into_iter().zip(&books) {
            let (alone, own) = tokenize_book(text, true);
            let words = |table: &WordTable, book: &BookTokens| -> Vec<String> {
                book.tokens.iter().map(|&id| table.words.word(id).to_string()).collect()
            };
            assert_eq!(words(&shared, book), words(&alone, &own));
            assert_eq!(
                (&book.sentence_lengths, &book.paragraph_lengths),
                (&own.sentence_lengths, &own.paragraph_lengths)
            );
        }
        let count = |table: &WordTable, word: &str| {
            table.words.words().position(|known| known == word).map_or(0, |id| table.counts[id])
        };
        assert_eq!((count(&shared, "the"), count(&shared, "cat"), count(&shared, "dog")), (3, 2, 1));
        shared.uncount(&books[1].tokens);
        let (first_alone, _) = tokenize_book(first, true);
        for word in ["the", "cat", "dog", "it", ".", "!"] {
            assert_eq!(count(&shared, word), count(&first_alone, word), "{word}");
        }
    }
}
