//! Paragraphs into sentences.
//!
//! A sentence ends at `.`, `?` or `!` (runs of them, `...` included), followed by any closing quotes or
//! brackets, then whitespace, then a capital letter or digit (possibly behind an opening quote). So
//! `"Who is it?" said he.` stays whole while `"Who is it?" He left.` splits, and an ellipsis before a
//! lower-case word does not end the sentence. A period after a known abbreviation (`Mr.`, `St.`, `e.g.`)
//! or a single capital (an initial, `J. R. R. Tolkien`) does not end one either. Dashes never end a sentence.
//! The input is expected to be normalised ([`super::normalise`]): straight quotes and `...` for ellipses.

use std::sync::LazyLock;

use super::interner::{INLINE, pack};
use super::paragraphs::trim;

/// Abbreviations whose period does not end a sentence. Compared case-sensitively, without the period.
const ABBREVIATIONS: &[&str] = &[
    "Mr", "Mrs", "Ms", "Messrs", "Mme", "Mlle", "Dr", "St", "Ste", "Jr", "Sr", "Mt", "Ft", "Rev", "Revd", "Col", "Gen",
    "Capt", "Cpt", "Lt", "Sgt", "Maj", "Adm", "Cmdr", "Prof", "Hon", "Gov", "Pres", "Esq", "Bros", "Co", "Corp", "Inc",
    "Ltd", "vs", "viz", "cf", "al", "Vol", "vol", "Ch", "ch", "No", "no", "pp", "Fig", "fig", "Sq", "Ave", "Rd", "Jan",
    "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec", "i.e", "e.g", "ie", "eg", "p",
    "ibid", "op", "ca", "approx",
];

/// Whether `word` is one of [`ABBREVIATIONS`]: each packed as the interner packs words, looked up by binary
/// search (this runs at most sentence ends, and comparing against each string in turn showed in profiles).
fn is_abbreviation(word: &str) -> bool {
    static PACKED: LazyLock<Vec<u128>> = LazyLock::new(|| {
        let mut packed: Vec<u128> = ABBREVIATIONS.iter().map(|word| pack(word.as_bytes())).collect();
        packed.sort_unstable();
        packed
    });
    // Zero padding is unambiguous here: these words hold only letters, digits and periods.
    word.len() <= INLINE && PACKED.binary_search(&pack(word.as_bytes())).is_ok()
}

/// Splits one paragraph into trimmed sentences.
pub fn split_sentences(paragraph: &str) -> Vec<&str> {
    let mut sentences = Vec::new();
    for_each_sentence(paragraph, |sentence| sentences.push(sentence));
    sentences
}

/// Calls `visit` with each trimmed sentence of `paragraph`, in order: [`split_sentences`] without a vector
/// per paragraph, for ingest.
pub fn for_each_sentence<'a>(paragraph: &'a str, mut visit: impl FnMut(&'a str)) {
    let bytes = paragraph.as_bytes();
    let mut visit_trimmed = |sentence: &'a str| {
        let sentence = trim(sentence.trim_start_matches('—'));
        if !sentence.is_empty() {
            visit(sentence);
        }
    };
    let mut start = 0;
    let mut position = 0;
    while let Some(found) = memchr::memchr3(b'.', b'?', b'!', &bytes[position..]) {
        position += found;
        let terminator_start = position;
        while position < bytes.len() && matches!(bytes[position], b'.' | b'?' | b'!') {
            position += 1;
        }
        let terminators = &bytes[terminator_start..position];
        while position < bytes.len() && matches!(bytes[position], b'"' | b'\'' | b')' | b']') {
            position += 1;
        }
        let end = position;
        // Austen's `concerned.—Colonel` joins two sentences with a dash.
        let dash_joined = paragraph[end..].starts_with('—');
        if end < bytes.len() && !bytes[end].is_ascii_whitespace() && !dash_joined {
            continue;
        }
        let next = paragraph[end..].trim_start_matches('—').trim_start();
        if !next.is_empty() && !starts_sentence(next) {
            continue;
        }
        if terminators == b"." && is_abbreviation_or_initial(&paragraph[start..terminator_start]) {
            continue;
        }
        visit_trimmed(&paragraph[start..end]);
        start = end;
    }
    visit_trimmed(&paragraph[start..]);
}

/// A capital or digit, possibly behind opening quotes or brackets.
fn starts_sentence(text: &str) -> bool {
    let first = text.trim_start_matches(['"', '\'', '(', '[']).chars().next();
    first.is_some_and(|char| char.is_uppercase() || char.is_ascii_digit())
}

/// True when the text before a period ends in an abbreviation or a single capital letter.
fn is_abbreviation_or_initial(before: &str) -> bool {
    // Byte by byte while the word is ASCII, as it nearly always is; by `char` from a non-ASCII byte on.
    let ascii_start = before.bytes().rposition(|byte| !(byte.is_ascii_alphanumeric() || byte == b'.'));
    let word_start = match ascii_start {
        Some(index) if !before.as_bytes()[index].is_ascii() => before[..=index]
            .char_indices()
            .rev()
            .find(|&(_, char)| !(char.is_alphanumeric() || char == '.'))
            .map_or(0, |(index, char)| index + char.len_utf8()),
        Some(index) => index + 1,
        None => 0,
    };
    let word = before[word_start..].trim_start_matches('.');
    if word.is_empty() {
        return false;
    }
    let mut chars = word.chars();
    let single_capital = chars.next().is_some_and(char::is_uppercase) && chars.next().is_none();
    single_capital || is_abbreviation(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(paragraph: &str, expected: &[&str]) {
        assert_eq!(split_sentences(paragraph), expected, "splitting {paragraph:?}");
    }

    #[test]
    fn plain_sentences() {
        check("It rained. We stayed in! Did you? Yes.", &["It rained.", "We stayed in!", "Did you?", "Yes."]);
    }

    #[test]
    fn abbreviations_and_initials_do_not_split() {
        check(
            "Mr. and Mrs. Bennet met Dr. Watson at St. Paul's. J. R. R. Tolkien wrote, e.g. this. Then he left.",
            &[
                "Mr. and Mrs. Bennet met Dr. Watson at St. Paul's.",
                "J. R. R. Tolkien wrote, e.g. this.",
                "Then he left.",
            ],
        );
    }

    #[test]
    fn quotes_close_sentences_and_lowercase_continues_them() {
        check(
            "\"Who is it?\" said he. \"I know!\" She smiled. 'Stop!' cried Tom.",
            &["\"Who is it?\" said he.", "\"I know!\"", "She smiled.", "'Stop!' cried Tom."],
        );
    }

    #[test]
    fn ellipses_and_runs_of_marks() {
        check(
            "Well... perhaps. I wonder... No! What?! Really?!? Fine.",
            &["Well... perhaps.", "I wonder...", "No!", "What?!", "Really?!?", "Fine."],
        );
    }

    #[test]
    fn dashes_and_decimals_do_not_split() {
        check(
            "He said—Then stopped. It cost 3.50 dollars. Stop!—he cried.",
            &["He said—Then stopped.", "It cost 3.50 dollars.", "Stop!—he cried."],
        );
        check(
            "Every body was concerned.—Colonel Brandon rose. Café—Él. Yes—tomorrow.",
            &["Every body was concerned.", "Colonel Brandon rose.", "Café—Él.", "Yes—tomorrow."],
        );
    }

    #[test]
    fn words_before_a_period_may_hold_any_letters() {
        check(
            "É. Zola wrote. Señor Dr. Ávila came. Ça va. Ünal Sr. left. 東京 St. Ives.",
            &["É. Zola wrote.", "Señor Dr. Ávila came.", "Ça va.", "Ünal Sr. left. 東京 St. Ives."],
        );
        check("The naïveté. Then Mrs. Öz ran. Xé. Yes.", &["The naïveté.", "Then Mrs. Öz ran.", "Xé.", "Yes."]);
    }

    /// The byte-wise search for the word before a period finds the word the `char` search finds.
    #[test]
    fn abbreviation_check_matches_the_char_by_char_one() {
        fn by_chars(before: &str) -> bool {
            let word_start = before
                .char_indices()
                .rev()
                .find(|&(_, char)| !(char.is_alphanumeric() || char == '.'))
                .map_or(0, |(index, char)| index + char.len_utf8());
            let word = before[word_start..].trim_start_matches('.');
            let mut chars = word.chars();
            let single_capital = chars.next().is_some_and(char::is_uppercase) && chars.next().is_none();
            !word.is_empty() && (single_capital || is_abbreviation(word))
        }
        let pieces = ["Mr", "e.g", "J", "É", "é", "Ö", "東", " ", "—", ".", "\"", "x", "St", "7", "'", "ñ"];
        for before in crate::corpus::test_texts::random_texts(&pieces, 7, 20_000, 11) {
            assert_eq!(is_abbreviation_or_initial(&before), by_chars(&before), "{before:?}");
        }
    }

    #[test]
    fn brackets_and_digits_start_sentences() {
        check("It ended. (Nobody cared.) 1850 came.", &["It ended.", "(Nobody cared.)", "1850 came."]);
    }

    #[test]
    fn no_terminal_punctuation_and_empty() {
        check("and so it goes", &["and so it goes"]);
        check("   ", &[]);
    }
}
