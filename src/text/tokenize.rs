//! Sentence text into words.
//!
//! A word is a run of word characters with inner apostrophes (`don't`, `o'clock`), an ellipsis `...`, or any
//! other single non-space character (punctuation). This is the regular expression [`WORD_PATTERN`], which is
//! also written into the saved tokenizer; [`for_each_word`] scans for the same tokens without a regex engine.

/// The pre-tokenizer pattern, matched after splitting on whitespace (Unicode `\w` and `\s`).
pub const WORD_PATTERN: &str = r"\w+(?:'\w+)*|\.\.\.|[^\w\s]";

/// Calls `visit` with each word of `text`, lowercased first when `lowercase` is set.
///
/// `buffer` is scratch space reused between calls to avoid allocating per sentence.
pub fn for_each_word(text: &str, lowercase: bool, buffer: &mut String, mut visit: impl FnMut(&str)) {
    let text = if lowercase {
        buffer.clear();
        if text.is_ascii() {
            buffer.push_str(text);
            buffer.make_ascii_lowercase();
        } else {
            // Per character, like the `tokenizers` Lowercase normalizer (no final-sigma rule).
            buffer.extend(text.chars().flat_map(char::to_lowercase));
        }
        buffer.as_str()
    } else {
        text
    };
    let bytes = text.as_bytes();
    let mut position = 0;
    while position < bytes.len() {
        let (class, width) = classify(text, position);
        match class {
            CharClass::Space => position += width,
            CharClass::Word => {
                let start = position;
                position = skip_word_chars(text, position);
                while position + 1 < bytes.len() && bytes[position] == b'\'' {
                    let after = skip_word_chars(text, position + 1);
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

/// The class of the character at byte `position` and its width in bytes.
#[inline]
fn classify(text: &str, position: usize) -> (CharClass, usize) {
    let byte = text.as_bytes()[position];
    if byte.is_ascii() {
        let class = if byte.is_ascii_alphanumeric() || byte == b'_' {
            CharClass::Word
        } else if matches!(byte, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r') {
            CharClass::Space
        } else {
            CharClass::Other
        };
        return (class, 1);
    }
    let char = text[position..].chars().next().expect("position is on a char boundary");
    let class = if char.is_whitespace() {
        CharClass::Space
    } else if regex_syntax::is_word_character(char) {
        CharClass::Word
    } else {
        CharClass::Other
    };
    (class, char.len_utf8())
}

#[inline]
fn skip_word_chars(text: &str, mut position: usize) -> usize {
    let bytes = text.as_bytes();
    while position < bytes.len() {
        if bytes[position].is_ascii_alphanumeric() || bytes[position] == b'_' {
            position += 1;
            continue;
        }
        match classify(text, position) {
            (CharClass::Word, width) => position += width,
            _ => break,
        }
    }
    position
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn unicode_words_and_case() {
        assert_eq!(words("Café NAÏVE straße ÉTÉ", true), ["café", "naïve", "straße", "été"]);
        assert_eq!(words("Café", false), ["Café"]);
        assert_eq!(words("a....b", true), ["a", "...", ".", "b"]);
    }
}
