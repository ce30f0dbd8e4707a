//! Sentence text into words.
//!
//! A word is a run of word characters with inner apostrophes (`don't`, `o'clock`), an ellipsis `...`, or any
//! other single non-space character (punctuation). This is the regular expression [`WORD_PATTERN`], which is
//! also written into the saved tokenizer; [`for_each_word`] scans for the same tokens without a regex engine.

use crate::util::swar::{HIGH, ONES, bytes_equal};

/// The pre-tokenizer pattern, matched after splitting on whitespace (Unicode `\w` and `\s`).
pub const WORD_PATTERN: &str = r"\w+(?:'\w+)*|\.\.\.|[^\w\s]";

/// Calls `visit` with each word of `text`, lowercased first when `lowercase` is set.
///
/// `buffer` is scratch space reused between calls to avoid allocating per sentence.
pub fn for_each_word(text: &str, lowercase: bool, buffer: &mut String, visit: impl FnMut(&str)) {
    if lowercase {
        lowercase_into(buffer, text);
        for_each_word_as_written(buffer, false, visit);
    } else {
        for_each_word_as_written(text, false, visit);
    }
}

/// Calls `visit` with each word of `text` as it is written, in its own case. With `for_lowercase`, the words
/// are split where those of the lowercased text would be, for the caller to lowercase each word itself (as
/// ingest does while packing a word for its table, [`crate::corpus::interner`]), sparing a lowercased copy.
///
/// That split differs only where a character's class (word, space, other) differs from its lowercase's: a
/// few letters newer than the Unicode tables of `\w`, such as `U+A7D2`. Each non-ASCII character is then
/// classified by its lowercase; lowercasing never turns one into ASCII punctuation (tested below), so `'`
/// and `...` are found in the written text just as in the lowercased one.
pub fn for_each_word_as_written(text: &str, for_lowercase: bool, mut visit: impl FnMut(&str)) {
    let bytes = text.as_bytes();
    let mut position = 0;
    while position < bytes.len() {
        let (class, width) = classify(text, position, for_lowercase);
        match class {
            CharClass::Space => position += width,
            CharClass::Word => {
                let start = position;
                position = skip_word_chars(text, position, for_lowercase);
                while position + 1 < bytes.len() && bytes[position] == b'\'' {
                    let after = skip_word_chars(text, position + 1, for_lowercase);
                    if after == position + 1 {
                        break;
                    }
                    position = after;
                }
                visit(&text[start..position]);
            }
            CharClass::Other => {
                let width = if bytes[position..].starts_with(b"...") { 3 } else { width };
                visit(&text[position..position + width]);
                position += width;
            }
        }
    }
}

/// `text` lowercased per character, like the `tokenizers` Lowercase normalizer (no final-sigma rule), into
/// `buffer`. ASCII runs are copied and lowercased in bulk: most sentences hold a non-ASCII character or two
/// (a dash, a quote), and lowercasing them a character at a time was a twentieth of ingest.
pub fn lowercase_into(buffer: &mut String, text: &str) {
    buffer.clear();
    if text.is_ascii() {
        buffer.push_str(text);
        buffer.make_ascii_lowercase();
        return;
    }
    let mut start = 0;
    while start < text.len() {
        let run_end =
            text.as_bytes()[start..].iter().position(|byte| !byte.is_ascii()).map_or(text.len(), |at| start + at);
        let at = buffer.len();
        buffer.push_str(&text[start..run_end]);
        buffer[at..].make_ascii_lowercase();
        let Some(char) = text[run_end..].chars().next() else {
            break;
        };
        buffer.extend(char.to_lowercase());
        start = run_end + char.len_utf8();
    }
}

/// Collects the words of `text`; a convenience over [`for_each_word`] for short inputs.
pub fn words(text: &str, lowercase: bool) -> Vec<String> {
    let mut words = Vec::new();
    for_each_word(text, lowercase, &mut String::new(), |word| words.push(word.to_string()));
    words
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CharClass {
    Space,
    Word,
    Other,
}

/// Each byte's class when it is a whole ASCII character; [`WIDE`] for the bytes of longer UTF-8 characters.
const ASCII_CLASSES: [u8; 256] = {
    let mut classes = [WIDE; 256];
    let mut byte = 0;
    while byte < 128 {
        let ascii = byte as u8;
        classes[byte] = if ascii.is_ascii_alphanumeric() || ascii == b'_' {
            WORD
        } else if matches!(ascii, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r') {
            SPACE
        } else {
            OTHER
        };
        byte += 1;
    }
    classes
};
const SPACE: u8 = 0;
const WORD: u8 = 1;
const OTHER: u8 = 2;
const WIDE: u8 = 3;

/// The class of the character at byte `position` (of its lowercase, with `lowercased`) and its width in
/// bytes.
#[inline]
fn classify(text: &str, position: usize, lowercased: bool) -> (CharClass, usize) {
    match ASCII_CLASSES[text.as_bytes()[position] as usize] {
        SPACE => (CharClass::Space, 1),
        WORD => (CharClass::Word, 1),
        OTHER => (CharClass::Other, 1),
        _ => classify_wide(text, position, lowercased),
    }
}

#[cold]
fn classify_wide(text: &str, position: usize, lowercased: bool) -> (CharClass, usize) {
    let written = text[position..].chars().next().expect("position is on a char boundary");
    let char = if lowercased { written.to_lowercase().next().unwrap_or(written) } else { written };
    (class_of(char), written.len_utf8())
}

fn class_of(char: char) -> CharClass {
    if char.is_whitespace() {
        CharClass::Space
    } else if regex_syntax::is_word_character(char) {
        CharClass::Word
    } else {
        CharClass::Other
    }
}

#[inline]
fn skip_word_chars(text: &str, mut position: usize, lowercased: bool) -> usize {
    let bytes = text.as_bytes();
    // Eight bytes at a time while they are ASCII word characters: most words end in their first eight, and
    // finding the end with one bit scan spares the loop's unpredictable exit at each word's own length.
    while let Some(chunk) = bytes.get(position..position + 8) {
        let not_word = !ascii_word_bytes(u64::from_le_bytes(chunk.try_into().expect("8 bytes"))) & HIGH;
        if not_word != 0 {
            position += not_word.trailing_zeros() as usize / 8;
            break;
        }
        position += 8;
    }
    while position < bytes.len() {
        match ASCII_CLASSES[bytes[position] as usize] {
            WORD => position += 1,
            WIDE => match classify_wide(text, position, lowercased) {
                (CharClass::Word, width) => position += width,
                _ => break,
            },
            _ => break,
        }
    }
    position
}

/// The top bit of each byte of `word` that is an ASCII word character (`0-9`, `A-Z`, `a-z`, `_`), exactly:
/// the range tests add to bytes below 0x80 only, so no carry crosses into the next byte.
#[inline]
fn ascii_word_bytes(word: u64) -> u64 {
    let ascii = !word & HIGH;
    let low7 = word & !HIGH;
    // The top bit is set where `lo <= byte <= hi`, for a byte below 0x80.
    let in_range =
        |value: u64, lo: u8, hi: u8| (value + ONES * u64::from(0x80 - lo)) & !(value + ONES * u64::from(0x7F - hi));
    let letters = in_range(low7 | ONES * 0x20, b'a', b'z');
    let digits = in_range(low7, b'0', b'9');
    (letters | digits | bytes_equal(low7, b'_')) & ascii
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_bytes_at_a_time_agree_with_the_byte_table() {
        for first in 0..=255u8 {
            for second in [0u8, b'_', b'a', b'Z', b'0', b'9', b'@', b'[', b'`', b'{', b'/', b':', 0x7F, 0x80, 0xFF] {
                let chunk = [first, second, b'x', first, 0xC3, second, first, b' '];
                let mask = ascii_word_bytes(u64::from_le_bytes(chunk));
                for (index, byte) in chunk.iter().enumerate() {
                    let expected = ASCII_CLASSES[*byte as usize] == WORD;
                    assert_eq!(mask >> (8 * index + 7) & 1 == 1, expected, "byte {byte:#x} at {index} of {chunk:?}");
                }
            }
        }
    }

    #[test]
    fn words_apostrophes_ellipses_and_punctuation() {
        assert_eq!(
            words("\"Don't,\" said O'Brien... at 5 o'clock—rock'n'roll! 'Tis x'", true),
            [
                "\"",
                "don't",
                ",",
                "\"",
                "said",
                "o'brien",
                "...",
                "at",
                "5",
                "o'clock",
                "—",
                "rock'n'roll",
                "!",
                "'",
                "tis",
                "x",
                "'"
            ]
        );
    }

    /// What lets ingest lowercase word by word ([`for_each_word_as_written`]): the characters a character
    /// lowercases to share one class, so classifying by the first is exact; and none but ASCII letters
    /// lowercases to ASCII (which could make `'` or `...` appear where the text had none).
    #[test]
    fn lowercasing_is_classified_by_its_first_character() {
        let mut changes_class = Vec::new();
        for char in (0..=char::MAX as u32).filter_map(char::from_u32) {
            let mut lower = char.to_lowercase();
            let first = lower.next().expect("a character lowercases to at least one");
            for next in lower {
                assert_eq!(class_of(next), class_of(first), "{char:?} lowercases to {first:?} and {next:?}");
            }
            for lower in char.to_lowercase() {
                assert!(!lower.is_ascii() || lower.is_ascii_alphanumeric() || lower == char, "{char:?} to {lower:?}");
            }
            if class_of(first) != class_of(char) {
                changes_class.push(char);
            }
        }
        // Letters whose class changes (those `\w` does not know yet while their lowercase it does, such as
        // U+A7D2 today) split as in the lowercased text, inside words and alone.
        let mut buffer = String::new();
        let changing: String = changes_class.iter().map(|char| format!("a{char}b {char}'{char} ")).collect();
        for text in [format!("{changing} İ'S x\u{212A}..."), "É...È'È a\u{A7D2}b".to_string()] {
            let text = text.as_str();
            let mut split = Vec::new();
            for_each_word_as_written(text, true, |word| {
                lowercase_into(&mut buffer, word);
                split.push(buffer.clone());
            });
            assert_eq!(split, words(text, true), "{text:?}");
        }
    }

    #[test]
    fn unicode_words_and_case() {
        assert_eq!(words("Café NAÏVE straße ÉTÉ", true), ["café", "naïve", "straße", "été"]);
        assert_eq!(words("Café", false), ["Café"]);
        assert_eq!(words("ÀB—CD É", true), ["àb", "—", "cd", "é"]);
        assert_eq!(words("İSTANBUL ΣΑΣ", true), ["i̇stanbul", "σασ"]);
        assert_eq!(words("a....b", true), ["a", "...", ".", "b"]);
    }
}
