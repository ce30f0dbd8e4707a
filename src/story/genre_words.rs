//! A genre's words: the content words its training books use more often than the other genres' books
//! do, counted when a language-model decoder is trained and written beside it (`genre_words.json`).
//!
//! A decoder trained on three-sentence passages learns almost nothing from a genre label (its genre gain is
//! within noise: a passage's next words depend on its book and scene far more than on its shelf), so the
//! genre reaches the story at decoding time instead, as a product of experts: each of the genre's words
//! gains `generate.genre_words` times its log-ratio, i.e. its probability is multiplied by how many times
//! more often the genre's books use it, raised to that weight (weighted decoding; Ghazvininejad et al.
//! 2017, and the bag-of-words control of Dathathri et al. 2020). The language model still chooses where
//! such a word fits, which pushing words into a GRU's beam could not.
//!
//! Only words that a quarter of the genre's books use count, so a single book's character names never
//! become a genre's voice; frequencies are averaged per book, so one long book does not speak for its
//! shelf. The words come from the decoder's training books only: the judges of `evaluate story` read
//! held-out books.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::text::content::{is_content_word, is_slur};
use crate::text::tokenize::for_each_word;
use crate::util::atomic::write_json;
use crate::util::{Cause, PathError};

pub const GENRE_WORDS_FILE: &str = "genre_words.json";
pub const GENRE_WORDS_FORMAT: &str = "storytool-genre-words";

/// A word counts for a genre when at least this share of the genre's books use it ...
const MIN_BOOK_SHARE: f64 = 0.25;
/// ... and at least this many of them.
const MIN_BOOKS: usize = 3;
/// Added to both frequencies of the ratio (per word of text): ten in a million, so that a word rare
/// everywhere cannot reach a large ratio from a handful of uses.
const SMOOTHING: f64 = 1e-5;
/// Only words used at least twice as often (log-ratio ln 2) as by the other genres' books are kept ...
const MIN_LOG_RATIO: f64 = std::f64::consts::LN_2;
/// ... their log-ratio capped here (a factor of 7.4: a few police words must not outweigh the rest) ...
const MAX_LOG_RATIO: f64 = 2.0;
/// ... and at most this many per genre, the highest ratios first.
const MAX_WORDS: usize = 400;

/// Shorter words are left out: a token of two letters (`en`, `ye`) starts many longer words, and pulling
/// it writes their beginnings (`enquiry`, `enclosing`).
const MIN_LETTERS: usize = 3;

/// Old function words and adverbs of direction that the stopword list does not know: frequent in some
/// shelves' older books, they carry the period, not the genre, and pulled into a story they make it
/// ungrammatical ("she upward climbed unto the sidewalk").
const NOT_GENRE_WORDS: &[&str] = &[
    "unto",
    "hath",
    "doth",
    "thee",
    "thou",
    "thy",
    "thine",
    "hast",
    "wilt",
    "shalt",
    "art",
    "nay",
    "yea",
    "ere",
    "tis",
    "twas",
    "whilst",
    "amongst",
    "upon",
    "onto",
    "upward",
    "upwards",
    "downward",
    "downwards",
    "onward",
    "onwards",
    "northward",
    "southward",
    "eastward",
    "westward",
    "thence",
    "hence",
    "whence",
    "thither",
    "hither",
    "wherefore",
    "quoth",
    "saith",
    "spake",
    "methinks",
    "perchance",
    "yon",
    "yonder",
];

/// A word written with a capital this often is a name (of a person, a place, a people, a feast), which a
/// genre's voice does not need; common words are capitalised only at a sentence's start.
const MAX_CAPITALISED_SHARE: f64 = 0.5;

/// The content words of one book, counted, with its genres (indices into the genre list).
#[derive(Debug, Clone, Default)]
pub struct BookWords {
    /// Per lower-cased word: uses, and uses written with a capital.
    pub counts: HashMap<String, (u32, u32)>,
    pub total: u64,
    pub genres: Vec<usize>,
}

impl BookWords {
    pub fn count(text: &str, genres: Vec<usize>) -> BookWords {
        let mut counts: HashMap<String, (u32, u32)> = HashMap::new();
        let mut total = 0u64;
        let mut buffer = String::new();
        for_each_word(text, false, &mut buffer, |word| {
            let lower = word.to_lowercase();
            if is_content_word(&lower) {
                let entry = counts.entry(lower).or_default();
                entry.0 += 1;
                entry.1 += u32::from(word.starts_with(char::is_uppercase));
                total += 1;
            }
        });
        BookWords { counts, total, genres }
    }

    fn uses(&self, word: &str) -> u32 {
        self.counts.get(word).map_or(0, |&(uses, _)| uses)
    }
}

/// One genre's words with their log-ratios, highest first, and the number of books they were counted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenreWordList {
    pub genre: String,
    pub books: usize,
    pub other_books: usize,
    pub words: Vec<(String, f32)>,
}

/// `genre_words.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenreWords {
    pub format: String,
    pub genres: Vec<GenreWordList>,
}

#[derive(Debug, thiserror::Error)]
pub enum GenreWordsError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("`{path}` is not a genre word list")]
    Invalid {
        path: std::path::PathBuf,
        #[source]
        source: Cause,
    },
}

impl GenreWords {
    /// The words of each of `genres` from the counted books.
    pub fn of_books(books: &[BookWords], genres: &[String]) -> GenreWords {
        let lists = genres
            .iter()
            .enumerate()
            .map(|(genre, name)| {
                let (inside, outside): (Vec<&BookWords>, Vec<&BookWords>) =
                    books.iter().filter(|book| book.total > 0).partition(|book| book.genres.contains(&genre));
                GenreWordList {
                    genre: name.clone(),
                    books: inside.len(),
                    other_books: outside.len(),
                    words: distinctive_words(&inside, &outside),
                }
            })
            .collect();
        GenreWords { format: GENRE_WORDS_FORMAT.into(), genres: lists }
    }

    /// The list of `genre`, if it has one.
    pub fn of_genre(&self, genre: &str) -> Option<&[(String, f32)]> {
        self.genres.iter().find(|list| list.genre == genre).map(|list| list.words.as_slice())
    }

    pub fn write(&self, dir: &Path) -> Result<(), PathError> {
        write_json(&dir.join(GENRE_WORDS_FILE), self)
    }

    /// The folder's list; `None` when it has none (decoders trained before the lists were counted).
    pub fn read(dir: &Path) -> Result<Option<GenreWords>, GenreWordsError> {
        let path = dir.join(GENRE_WORDS_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(PathError::new("read", &path, error).into()),
        };
        let words: GenreWords = serde_json::from_slice(&bytes)
            .map_err(|error| GenreWordsError::Invalid { path: path.clone(), source: error.into() })?;
        if words.format != GENRE_WORDS_FORMAT {
            let found = format!("its format is `{}`, expected `{GENRE_WORDS_FORMAT}`", words.format);
            return Err(GenreWordsError::Invalid { path, source: Cause::from(found) });
        }
        Ok(Some(words))
    }
}

/// Words that `inside` books use more often than `outside` books, by the ratio of their mean per-book
/// frequencies; none when either side has no books.
fn distinctive_words(inside: &[&BookWords], outside: &[&BookWords]) -> Vec<(String, f32)> {
    if inside.is_empty() || outside.is_empty() {
        return Vec::new();
    }
    let min_books = MIN_BOOKS.max((MIN_BOOK_SHARE * inside.len() as f64).ceil() as usize);
    // Per word: books using it, mean frequency, uses, uses with a capital.
    let mut used_by: HashMap<&str, (usize, f64, u64, u64)> = HashMap::new();
    for book in inside {
        for (word, &(uses, capitalised)) in &book.counts {
            let entry = used_by.entry(word).or_default();
            entry.0 += 1;
            entry.1 += f64::from(uses) / book.total as f64 / inside.len() as f64;
            entry.2 += u64::from(uses);
            entry.3 += u64::from(capitalised);
        }
    }
    let mut words: Vec<(String, f32)> = used_by
        .into_iter()
        .filter(|&(word, (books, _, uses, capitalised))| {
            books >= min_books
                && word.chars().count() >= MIN_LETTERS
                && (capitalised as f64) <= MAX_CAPITALISED_SHARE * uses as f64
                && !is_slur(word)
                && !NOT_GENRE_WORDS.contains(&word)
        })
        .filter_map(|(word, (_, frequency, _, _))| {
            let elsewhere: f64 = outside.iter().map(|book| f64::from(book.uses(word)) / book.total as f64).sum::<f64>()
                / outside.len() as f64;
            let ratio = ((frequency + SMOOTHING) / (elsewhere + SMOOTHING)).ln();
            (ratio >= MIN_LOG_RATIO).then(|| (word.to_string(), ratio.min(MAX_LOG_RATIO) as f32))
        })
        .collect();
    words.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    words.truncate(MAX_WORDS);
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(text: &str, genres: &[usize]) -> BookWords {
        BookWords::count(text, genres.to_vec())
    }

    #[test]
    fn a_genre_word_is_one_its_books_share_and_the_others_use_less() {
        let sea = "the captain sailed the ship to the island and the injun crew cheered. Jim went ashore";
        let space = "the rocket left the planet and the crew watched the stars";
        let books = vec![
            book(&format!("{sea} nemo"), &[0]),
            book(&format!("{sea} aronnax. Ashore they went, Jim and Jim"), &[0]),
            book(sea, &[0]),
            book(&format!("{space} zorg"), &[1]),
            book(space, &[1]),
            book(space, &[1]),
        ];
        let words = GenreWords::of_books(&books, &["adventure".into(), "sci-fi".into()]);
        let adventure: Vec<&str> = words.of_genre("adventure").unwrap().iter().map(|(w, _)| w.as_str()).collect();
        assert!(adventure.contains(&"ship") && adventure.contains(&"island"), "{adventure:?}");
        // Shared by both shelves: no genre's word. One book's name: not its shelf's.
        assert!(!adventure.contains(&"crew") && !adventure.contains(&"nemo"), "{adventure:?}");
        // A name (written with a capital, wherever it stands) and a slur: never a genre's word. A word
        // capitalised at a sentence's start now and then still is.
        assert!(!adventure.contains(&"jim") && !adventure.contains(&"injun"), "{adventure:?}");
        assert!(adventure.contains(&"ashore"), "{adventure:?}");
        let sci_fi = words.of_genre("sci-fi").unwrap();
        assert!(sci_fi.iter().any(|(word, _)| word == "planet"));
        assert!(sci_fi.iter().all(|(word, ratio)| word != "zorg" && *ratio <= MAX_LOG_RATIO as f32));
        assert_eq!(words.genres[0].books, 3);
        assert!(words.of_genre("horror").is_none());
    }

    #[test]
    fn a_genre_without_books_or_without_others_has_no_words() {
        let books = vec![book("ship island ship", &[0]), book("ship island", &[0]), book("island", &[0])];
        let words = GenreWords::of_books(&books, &["adventure".into(), "horror".into()]);
        assert!(words.genres.iter().all(|list| list.words.is_empty()));
    }

    #[test]
    fn the_list_is_written_and_read_back_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(GenreWords::read(dir.path()).unwrap(), None);
        let books = vec![book("ship", &[0]), book("ship", &[0]), book("ship", &[0]), book("rocket", &[1])];
        let words = GenreWords::of_books(&books, &["adventure".into(), "sci-fi".into()]);
        words.write(dir.path()).unwrap();
        assert_eq!(GenreWords::read(dir.path()).unwrap(), Some(words));
        std::fs::write(dir.path().join(GENRE_WORDS_FILE), "{\"format\": \"x\", \"genres\": []}").unwrap();
        let error = GenreWords::read(dir.path()).unwrap_err().to_string();
        assert!(error.contains(GENRE_WORDS_FILE), "{error}");
    }
}
