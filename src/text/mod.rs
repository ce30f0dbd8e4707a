//! Words and their ids: the word-level tokenizer and the vocabulary every model shares.
//!
//! The vocabulary is saved as a `tokenizers` JSON file (WordLevel model, optional Lowercase normalizer,
//! whitespace + [`tokenize::WORD_PATTERN`] pre-tokenizer), so any `tokenizers` user can load it. Inside
//! storytool the same splitting runs through [`tokenize::for_each_word`], a hand-rolled scanner that agrees
//! with the `tokenizers` pipeline token for token (tested) and is several times faster on whole books.

pub mod content;
pub mod tokenize;
pub mod vocab;

pub use vocab::{EOS, EOS_ID, UNK, UNK_ID, Vocabulary, VocabularyError};
