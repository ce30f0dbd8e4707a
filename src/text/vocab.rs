//! The vocabulary: word <-> id, with `<eos>` = 0 and `<unk>` = 1 reserved as skip-thoughts did.
//!
//! Built from word counts (most frequent first, ties by spelling so builds are reproducible), saved and
//! loaded as a `tokenizers` JSON file. A corpus with fewer distinct words than the configured size simply
//! gets a smaller vocabulary: every consumer asks [`Vocabulary::len`] instead of trusting the config, which
//! is what crashed the old tools with a `KeyError`.

use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use tokenizers::models::wordlevel::WordLevel;
use tokenizers::normalizers::Lowercase;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::{PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use super::tokenize::{WORD_PATTERN, for_each_word};
use crate::util::Cause;
use crate::util::{PathError, atomic, hash};

/// End of sentence; also the padding id.
pub const EOS: &str = "<eos>";
pub const EOS_ID: u32 = 0;
/// Any word outside the vocabulary.
pub const UNK: &str = "<unk>";
pub const UNK_ID: u32 = 1;

/// Why a vocabulary file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum VocabularyError {
    #[error("cannot read tokenizer file `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("tokenizer file `{path}` is not a storytool vocabulary: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error(transparent)]
    Write(#[from] PathError),
}

/// Words and their ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocabulary {
    words: Vec<String>,
    ids: FxHashMap<String, u32>,
    lowercase: bool,
}

impl Vocabulary {
    /// The `max_size - 2` most frequent words after the two reserved ones.
    pub fn from_counts<'a>(counts: impl IntoIterator<Item = (&'a str, u64)>, max_size: usize, lowercase: bool) -> Self {
        let mut ranked: Vec<(&str, u64)> =
            counts.into_iter().filter(|(word, _)| *word != EOS && *word != UNK).collect();
        let order = |a: &(&str, u64), b: &(&str, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0));
        let kept = max_size.saturating_sub(2);
        // Only the kept words need sorting: partition them off first (a corpus has far more distinct words).
        if kept < ranked.len() {
            ranked.select_nth_unstable_by(kept, order);
            ranked.truncate(kept);
        }
        ranked.sort_unstable_by(order);
        let words = [EOS, UNK].into_iter().chain(ranked.into_iter().map(|(word, _)| word)).map(String::from);
        Vocabulary::from_words(words.collect(), lowercase)
    }

    /// The lowercased words of `texts` (caption files): those seen at least `min_count` times, the
    /// `max_size - 2` most frequent of them after the two reserved ids.
    pub fn from_texts<'a>(texts: impl IntoIterator<Item = &'a str>, max_size: usize, min_count: u64) -> Self {
        let mut counts: FxHashMap<String, u64> = FxHashMap::default();
        let mut buffer = String::new();
        for text in texts {
            for_each_word(text, true, &mut buffer, |word| match counts.get_mut(word) {
                Some(count) => *count += 1,
                None => {
                    counts.insert(word.to_string(), 1);
                }
            });
        }
        let kept = counts.iter().filter(|&(_, &count)| count >= min_count).map(|(word, &count)| (word.as_str(), count));
        Vocabulary::from_counts(kept, max_size, true)
    }

    fn from_words(words: Vec<String>, lowercase: bool) -> Self {
        let ids = words.iter().enumerate().map(|(id, word)| (word.clone(), id as u32)).collect();
        Vocabulary { words, ids, lowercase }
    }

    /// Number of ids, reserved ones included.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Whether text is lowercased before lookup.
    pub fn lowercase(&self) -> bool {
        self.lowercase
    }

    /// The id of an already-split word, [`UNK_ID`] when unknown.
    pub fn id(&self, word: &str) -> u32 {
        self.ids.get(word).copied().unwrap_or(UNK_ID)
    }

    /// Whether the word (already split and cased) is in the vocabulary.
    pub fn contains(&self, word: &str) -> bool {
        self.ids.contains_key(word)
    }

    /// The word for `id`, or `None` past the end.
    pub fn word(&self, id: u32) -> Option<&str> {
        self.words.get(id as usize).map(String::as_str)
    }

    /// All words in id order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Ids of the words of `text` (no `<eos>` appended).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        for_each_word(text, self.lowercase, &mut String::new(), |word| ids.push(self.id(word)));
        ids
    }

    /// Words of `ids` joined by spaces; ids past the end show as `<unk>`.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|&id| self.word(id).unwrap_or(UNK)).collect::<Vec<_>>().join(" ")
    }

    /// A hash of the words in id order and the casing rule: artifacts built on different vocabularies differ.
    pub fn content_hash(&self) -> String {
        let mut text = String::from(if self.lowercase { "lowercase\n" } else { "cased\n" });
        for word in &self.words {
            text.push_str(word);
            text.push('\n');
        }
        hash::content_hash(text.as_bytes())
    }

    /// The equivalent `tokenizers` pipeline.
    pub fn to_tokenizer(&self) -> Tokenizer {
        let model = WordLevel::builder()
            .vocab(self.ids.iter().map(|(word, &id)| (word.clone(), id)).collect())
            .unk_token(UNK.to_string())
            .build()
            .expect("an in-memory WordLevel vocabulary always builds");
        let mut tokenizer = Tokenizer::new(model);
        if self.lowercase {
            tokenizer.with_normalizer(Some(Lowercase));
        }
        tokenizer.with_pre_tokenizer(Some(pre_tokenizer()));
        tokenizer
    }

    /// Writes the vocabulary as a `tokenizers` JSON file, atomically.
    pub fn save(&self, path: &Path) -> Result<(), VocabularyError> {
        let json = self
            .to_tokenizer()
            .to_string(true)
            .map_err(|error| VocabularyError::Read { path: path.to_path_buf(), source: error.into() })?;
        atomic::write_file(path, json.as_bytes())?;
        Ok(())
    }

    /// Reads a vocabulary written by [`Vocabulary::save`]; other tokenizer files are refused with the reason.
    pub fn load(path: &Path) -> Result<Self, VocabularyError> {
        let read_error = |source: Cause| VocabularyError::Read { path: path.to_path_buf(), source };
        let text = std::fs::read_to_string(path).map_err(|error| read_error(error.into()))?;
        // The tokenizers crate panics (`expect("Helper")`) on some damaged files instead of returning an error:
        // a JSON syntax error is found here first, and any panic left is caught and reported as unreadable.
        serde_json::from_str::<serde_json::Value>(&text).map_err(|error| read_error(error.into()))?;
        let tokenizer = std::panic::catch_unwind(|| text.parse::<Tokenizer>())
            .map_err(|_| read_error("the tokenizers crate could not read it (it panicked)".into()))?
            .map_err(|error| read_error(error.into()))?;
        let unsupported = |reason: String| VocabularyError::Unsupported { path: path.to_path_buf(), reason };
        let expected = serde_json::to_value(pre_tokenizer()).expect("pre-tokenizer serializes");
        let found = serde_json::to_value(tokenizer.get_pre_tokenizer()).expect("pre-tokenizer serializes");
        if found != expected {
            return Err(unsupported(format!("its pre-tokenizer is {found}, expected {expected}")));
        }
        let lowercase = match tokenizer.get_normalizer() {
            None => false,
            Some(normalizer) if serde_json::to_value(normalizer).ok() == serde_json::to_value(Lowercase).ok() => true,
            Some(_) => return Err(unsupported("its normalizer is not `Lowercase`".into())),
        };
        let vocab = tokenizer.get_vocab(false);
        let mut words = vec![None; vocab.len()];
        for (word, id) in vocab {
            match words.get_mut(id as usize) {
                Some(slot) => *slot = Some(word),
                None => {
                    return Err(unsupported(format!("id {id} of `{word}` leaves a gap in the ids")));
                }
            }
        }
        let words: Vec<String> = words.into_iter().map(|word| word.expect("ids are dense")).collect();
        if words.get(EOS_ID as usize).map(String::as_str) != Some(EOS)
            || words.get(UNK_ID as usize).map(String::as_str) != Some(UNK)
        {
            return Err(unsupported(format!("ids 0 and 1 must be `{EOS}` and `{UNK}`")));
        }
        Ok(Vocabulary::from_words(words, lowercase))
    }
}

fn pre_tokenizer() -> PreTokenizerWrapper {
    let split = Split::new(SplitPattern::Regex(WORD_PATTERN.to_string()), SplitDelimiterBehavior::Isolated, false)
        .expect("the word pattern is a valid regex");
    PreTokenizerWrapper::Sequence(Sequence::new(vec![WhitespaceSplit.into(), split.into()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vocabulary {
        Vocabulary::from_counts([("the", 10), ("cat", 3), ("sat", 3), ("'", 1), ("mat", 1)], 5, true)
    }

    #[test]
    fn most_frequent_first_ties_by_spelling_and_reserved_ids() {
        let vocab = sample();
        assert_eq!(vocab.words(), ["<eos>", "<unk>", "the", "cat", "sat"]);
        assert_eq!(vocab.encode("The cat sat on the mat."), [2, 3, 4, UNK_ID, 2, UNK_ID, UNK_ID]);
        assert_eq!(vocab.decode(&[2, 3, 99]), "the cat <unk>");
    }

    #[test]
    fn smaller_corpus_than_size_gives_smaller_vocabulary() {
        let vocab = Vocabulary::from_counts([("a", 1)], 20_000, true);
        assert_eq!(vocab.len(), 3);
    }

    #[test]
    fn saved_file_round_trips_and_agrees_with_tokenizers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let vocab = Vocabulary::from_counts(
            [("don't", 5), ("o'brien", 4), ("...", 4), ("\"", 3), ("café", 2), ("—", 2), ("said", 2), ("!", 1)],
            100,
            true,
        );
        vocab.save(&path).unwrap();
        let loaded = Vocabulary::load(&path).unwrap();
        assert_eq!(loaded, vocab);
        assert_eq!(loaded.content_hash(), vocab.content_hash());

        let tokenizer = Tokenizer::from_file(&path).unwrap();
        for text in
            ["\"Don't!\" said O'Brien... CAFÉ—x'y'", "  tabs\tand\nnewlines  ", "a....b 'tis 3.50 naïve_word ¿qué? ²"]
        {
            let expected = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
            assert_eq!(vocab.encode(text), expected, "tokenizing {text:?}");
        }
    }

    #[test]
    fn foreign_tokenizer_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let mut tokenizer = sample().to_tokenizer();
        tokenizer.with_pre_tokenizer(Some(WhitespaceSplit));
        tokenizer.save(&path, false).unwrap();
        let error = Vocabulary::load(&path).unwrap_err().to_string();
        assert!(error.contains("pre-tokenizer"), "{error}");
        assert!(Vocabulary::load(&dir.path().join("missing.json")).is_err());
    }

    #[test]
    fn a_damaged_tokenizer_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        sample().save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"decoder\": null") || text.contains("\"decoder\":null"), "{text}");
        // Valid JSON whose decoder the tokenizers crate cannot read (it panics on this), and a syntax error there.
        for damaged in ["\"decoder\": 5", "\"decoder\": xull"] {
            std::fs::write(&path, text.replace("\"decoder\": null", damaged).replace("\"decoder\":null", damaged))
                .unwrap();
            let error = crate::util::error_chain(&Vocabulary::load(&path).unwrap_err());
            assert!(error.contains("tokenizer.json"), "{damaged}: {error}");
        }
    }
}
