//! The body of a book into clean prose paragraphs.
//!
//! Paragraphs are separated by blank lines; hard-wrapped lines inside one are joined. What is not prose is
//! dropped: chapter headings and titles, tables of contents, `[Illustration]` and `[Footnote]` blocks,
//! production credits and any Gutenberg licence paragraph that survived marker stripping.
//!
//! A heading is recognised by shape rather than by a list of spellings: a short block (at most
//! [`HEADING_MAX_WORDS`] words) that has no lower-case letters, that opens with a chapter word and a number,
//! or that does not end in punctuation (prose does; `CHAPTER IV`, `The Lost World` and `Release Date: 1884` do
//! not). A block of three or more lines that are mostly such headings is a table of contents. Short poems
//! whose lines end without punctuation are dropped by the same rule: the models are trained on prose.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::{gutenberg, normalise};
use crate::util::swar::{HIGH, bytes_equal};

/// The longest block, in words, that can be taken for a heading.
pub const HEADING_MAX_WORDS: usize = 12;

/// How many blocks an unclosed `[Transcriber's note` may swallow looking for its `]`.
const MAX_NOTE_BLOCKS: usize = 40;

/// Paragraphs at each end of a body that are always checked for licence text; elsewhere only paragraphs
/// that name Gutenberg are (licence text sits at the edges, and the full check is the costliest one).
const EDGE_PARAGRAPHS: usize = 40;

/// How many paragraphs at the start of a body are checked for production credits.
const CREDIT_WINDOW: usize = 12;

static CHAPTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^\W*(
            (chapter|book|part|volume|vol\.|act|scene|stave|canto|section|letter|chap\.)\s+
                ([ivxlcdm]+|\d+|the\s+\w+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|
                 first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last)\b
            | (preface|contents|table\s+of\s+contents|introduction|epilogue|prologue|appendix|the\s+end|finis|footnotes?)\W*$
        )",
    )
    .unwrap()
});
static NUMBERED_HEADING: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\W*([IVXLCDM]+|\d+)\.(\s+\S.*)?$").unwrap());
static PAGE_NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(\s|\.)\d{1,4}$").unwrap());
static NUMBER_WITH_PERIOD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\W*(([IVXLCDM]+|\d+)\.?\W*$|([IVXLCDM]+|\d+)\.\s)").unwrap());
static EDITORIAL_OPENING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\[\s*(illustration|footnote|sidenote|transcriber|note|frontispiece|decoration)").unwrap()
});
static EDITORIAL_BLOCK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?is)\[\s*(illustration|footnote|sidenote|transcriber|note|frontispiece|decoration)[^\]]*\]").unwrap()
});

/// A book's prose paragraphs, each one line of single-spaced, normalised text, held in one string: a book
/// has thousands of paragraphs, and a string of their own for each cost 3% of ingest time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraphs {
    text: String,
    ranges: Vec<Range<usize>>,
}

impl Paragraphs {
    /// The paragraphs in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.ranges.iter().map(|range| &self.text[range.clone()])
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The paragraphs as strings of their own.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(String::from).collect()
    }
}

/// Splits a book body into prose paragraphs.
pub fn prose_paragraphs(body: &str) -> Paragraphs {
    let mut text = String::with_capacity(body.len());
    // Each candidate paragraph's place in `text`, and whether it is too long for a heading.
    let mut candidates: Vec<(Range<usize>, bool)> = Vec::new();
    let mut open_note_blocks = 0;
    let mut lines: Vec<&str> = Vec::new();
    let mut blocks = Blocks { body, position: 0 };
    for index in 0.. {
        let Some(block) = blocks.next_into(&mut lines) else {
            break;
        };
        // An editorial note (`[Transcriber's note: ...`) that runs over several blocks, up to its `]`.
        if open_note_blocks > 0 {
            open_note_blocks -= 1;
            if block.contains(']') {
                open_note_blocks = 0;
            }
            continue;
        }
        if block.trim_start().starts_with('[') && EDITORIAL_OPENING.is_match(block.trim_start()) && !block.contains(']')
        {
            open_note_blocks = MAX_NOTE_BLOCKS;
            continue;
        }
        if lines.is_empty() || is_table_of_contents(&lines) {
            continue;
        }
        // A heading line glued to the first line of prose (`CHAPTER SEVEN` then `Mrs. Gould was...`).
        let first_prose_line = lines.iter().take(lines.len() - 1).take_while(|line| is_heading_line(line)).count();
        let start = text.len();
        push_joined_lines(&mut text, &lines[first_prose_line..]);
        remove_editorial_blocks(&mut text, start);
        let paragraph = &text[start..];
        if paragraph.is_empty() || (index < CREDIT_WINDOW && gutenberg::is_production_credit(paragraph)) {
            text.truncate(start);
            continue;
        }
        // Whether it is too long for a heading, counted once: both tests below need it.
        let long = word_count_exceeds(paragraph, HEADING_MAX_WORDS);
        candidates.push((start..text.len(), long));
    }
    let punctuated = is_punctuated(candidates.iter().map(|(range, long)| (&text[range.clone()], *long)));
    let n_candidates = candidates.len();
    let mut ranges = Vec::with_capacity(n_candidates);
    for (position, (range, long)) in candidates.into_iter().enumerate() {
        let paragraph = &text[range.clone()];
        let near_edge = position < EDGE_PARAGRAPHS || position + EDGE_PARAGRAPHS >= n_candidates;
        let heading = !long && is_short_heading(paragraph, punctuated);
        if !heading && !gutenberg::is_boilerplate_at(paragraph, near_edge) {
            ranges.push(range);
        }
    }
    Paragraphs { text, ranges }
}

/// Whether the book's long paragraphs (marked `true`) end in punctuation. Some copies circulate with their
/// punctuation stripped; in those, a short paragraph without a final stop is dialogue, not a heading.
fn is_punctuated<'a>(paragraphs: impl Iterator<Item = (&'a str, bool)>) -> bool {
    let long = paragraphs.filter(|(_, long)| *long);
    let (n_long, n_punctuated) = long.fold((0, 0), |(n_long, n_punctuated), (text, _)| {
        (n_long + 1, n_punctuated + ends_in_punctuation(text) as usize)
    });
    n_long == 0 || n_punctuated * 2 >= n_long
}

/// Whether `text` has more than `limit` whitespace-separated words, counting no further than needed.
///
/// Eight bytes at a time: a word starts at a byte that is not ASCII whitespace after one that is (or at the
/// start), and those starts are counted by a population count. Every candidate paragraph goes through this,
/// and the byte-by-byte loop it replaces was a fiftieth of ingest.
fn word_count_exceeds(text: &str, limit: usize) -> bool {
    let bytes = text.as_bytes();
    let mut words = 0;
    // The top bit of the previous chunk's last byte, moved to where a byte before this chunk's first would
    // be: set when that byte was not whitespace. Before the text, as after whitespace: clear.
    let mut previous_word = 0u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let in_word = !ascii_whitespace_bytes(u64::from_le_bytes(chunk.try_into().expect("8 bytes"))) & HIGH;
        let starts = in_word & !(in_word << 8 | previous_word);
        words += starts.count_ones() as usize;
        if words > limit {
            return true;
        }
        previous_word = in_word >> 56;
    }
    let mut in_word = previous_word != 0;
    for &byte in chunks.remainder() {
        let space = byte.is_ascii_whitespace();
        if !space && !in_word {
            words += 1;
        }
        in_word = !space;
    }
    words > limit
}

/// The top bit of each byte of `word` that is ASCII whitespace as [`u8::is_ascii_whitespace`] has it
/// (space, tab, line feed, form feed, carriage return), exactly.
fn ascii_whitespace_bytes(word: u64) -> u64 {
    [b' ', b'\t', b'\n', 0x0C, b'\r'].into_iter().fold(0, |spaces, byte| spaces | bytes_equal(word, byte))
}

/// The blocks of a body: runs of non-blank lines, separated by blank lines.
struct Blocks<'a> {
    body: &'a str,
    /// Where the next line starts.
    position: usize,
}

impl<'a> Blocks<'a> {
    /// The next block as a slice of the body, with its lines, trimmed, in `lines` (replacing what was there):
    /// each line is found (with the SIMD `memchr`; most are 60-80 bytes) and trimmed once.
    fn next_into(&mut self, lines: &mut Vec<&'a str>) -> Option<&'a str> {
        lines.clear();
        let body = self.body;
        let mut start = None;
        while self.position < body.len() {
            let rest = &body.as_bytes()[self.position..];
            let end = memchr::memchr(b'\n', rest).map_or(body.len(), |newline| self.position + newline + 1);
            let line = trim(&body[self.position..end]);
            if line.is_empty() {
                if start.is_some() {
                    break;
                }
            } else {
                start.get_or_insert(self.position);
                lines.push(line);
            }
            self.position = end;
        }
        start.map(|start| &body[start..self.position])
    }
}

/// [`str::trim`], the ASCII whitespace at the ends first taken off byte by byte: the lines of a book nearly
/// always begin and end in ASCII, and every line of every block is trimmed (the `char` decoding of
/// `str::trim` on each was a seventieth of ingest). An end left on a non-ASCII byte, or on the vertical tab
/// (whitespace to `str::trim`, not to `trim_ascii`), goes through `str::trim` as well.
pub(super) fn trim(text: &str) -> &str {
    let trimmed = text.trim_ascii();
    let settled = |byte: Option<&u8>| byte.is_some_and(|&byte| byte.is_ascii() && !char::from(byte).is_whitespace());
    if settled(trimmed.as_bytes().first()) && settled(trimmed.as_bytes().last()) { trimmed } else { trimmed.trim() }
}

/// Joins wrapped lines with single spaces, normalising typography; a line ending in a hyphen joins the next
/// without one (`to-morrow`).
fn push_joined_lines(text: &mut String, lines: &[&str]) {
    let start = text.len();
    for line in lines {
        let joined = &text[start..];
        let ends_with_word_hyphen = joined.ends_with('-') && {
            let before = joined[..joined.len() - 1].chars().next_back();
            before.is_some_and(char::is_alphabetic)
        };
        if !joined.is_empty() && !ends_with_word_hyphen {
            text.push(' ');
        }
        normalise::push_normalised_to(text, start, line);
    }
    let trimmed_len = start + text[start..].trim_end().len();
    text.truncate(trimmed_len);
}

/// Removes `[Illustration: ...]` and similar blocks from the paragraph at `start..` of `text`, then the
/// spaces they leave.
fn remove_editorial_blocks(text: &mut String, start: usize) {
    let paragraph = &text[start..];
    if !paragraph.contains('[') {
        return;
    }
    if let std::borrow::Cow::Owned(removed) = EDITORIAL_BLOCK.replace_all(paragraph, "") {
        let respaced = removed.split_whitespace().collect::<Vec<_>>().join(" ");
        text.truncate(start);
        text.push_str(&respaced);
    }
}

/// True for a chapter heading, a title, a part number or similar short non-prose block.
pub fn is_heading(text: &str) -> bool {
    is_heading_in(text, true)
}

/// [`is_heading`] for a book whose prose is `punctuated` or not (then a missing final stop proves nothing).
fn is_heading_in(text: &str, punctuated: bool) -> bool {
    !word_count_exceeds(text, HEADING_MAX_WORDS) && is_short_heading(text, punctuated)
}

/// [`is_heading_in`] for a text already known to have at most [`HEADING_MAX_WORDS`] words.
fn is_short_heading(text: &str, punctuated: bool) -> bool {
    (punctuated && !ends_in_punctuation(text))
        || is_shouting(text)
        || (may_be_numbered_or_chapter(text) && (CHAPTER.is_match(text) || NUMBER_WITH_PERIOD.is_match(text)))
}

/// A cheap test that must hold before the chapter and numbering regexes can match: the first word is a
/// heading keyword, a number or a Roman numeral. Most prose lines fail it at once.
fn may_be_numbered_or_chapter(line: &str) -> bool {
    let word = first_word(line);
    word.bytes().all(|byte| byte.is_ascii_digit())
        || word.bytes().all(|byte| b"IVXLCDM".contains(&byte))
        || is_heading_keyword(word)
}

/// The first run of alphanumeric characters of `line` (empty if it has none).
///
/// Most lines open with an ASCII letter: their word is found byte by byte, and only a line that opens
/// otherwise or whose first word meets a non-ASCII byte goes through the `char` tests.
fn first_word(line: &str) -> &str {
    let bytes = line.as_bytes();
    if bytes.first().is_some_and(u8::is_ascii_alphanumeric) {
        let end = bytes.iter().position(|byte| !byte.is_ascii_alphanumeric()).unwrap_or(bytes.len());
        if bytes.get(end).is_none_or(u8::is_ascii) {
            return &line[..end];
        }
    }
    let start = line.trim_start_matches(|char: char| !char.is_alphanumeric());
    &start[..start.find(|char: char| !char.is_alphanumeric()).unwrap_or(start.len())]
}

/// Whether `word` is, in any ASCII case, a word that opens a heading. The word is lowercased into a small
/// buffer and matched once: this runs for most lines of every multi-line block (the table-of-contents check),
/// and comparing it with each keyword in turn was a fortieth of ingest.
fn is_heading_keyword(word: &str) -> bool {
    const LONGEST: usize = "introduction".len();
    if word.len() > LONGEST {
        return false;
    }
    let mut lowered = [0u8; LONGEST];
    let lowered = &mut lowered[..word.len()];
    lowered.copy_from_slice(word.as_bytes());
    lowered.make_ascii_lowercase();
    matches!(
        &*lowered,
        b"chapter"
            | b"book"
            | b"part"
            | b"volume"
            | b"vol"
            | b"act"
            | b"scene"
            | b"stave"
            | b"canto"
            | b"section"
            | b"letter"
            | b"chap"
            | b"preface"
            | b"contents"
            | b"table"
            | b"introduction"
            | b"epilogue"
            | b"prologue"
            | b"appendix"
            | b"the"
            | b"finis"
            | b"footnote"
            | b"footnotes"
    )
}

/// Letters, none of them lower-case.
fn is_shouting(text: &str) -> bool {
    !text.chars().any(char::is_lowercase) && text.chars().any(char::is_alphabetic)
}

/// A line that is a heading by its own shape, whatever follows it: a chapter word with a number, a numbered
/// title (`IV. The Storm`), or a line without lower-case letters. Line ends prove nothing here: wrapped
/// prose lines end without punctuation too.
fn is_heading_line(line: &str) -> bool {
    // The cheap tests first: a prose line fails both within its first word or two.
    let shouting = is_shouting(line);
    (shouting || may_be_numbered_or_chapter(line))
        && !word_count_exceeds(line, HEADING_MAX_WORDS)
        && (shouting || CHAPTER.is_match(line) || NUMBERED_HEADING.is_match(line))
}

/// True when at least 60% of a block's lines are headings or end in page numbers: a table of contents.
fn is_table_of_contents(lines: &[&str]) -> bool {
    if lines.len() < 3 {
        return false;
    }
    let allowed_prose_lines = lines.len() * 4 / 10;
    let mut prose_lines = 0;
    for line in lines {
        let ends_in_digit = line.as_bytes().last().is_some_and(u8::is_ascii_digit);
        if !(is_heading_line(line) || (ends_in_digit && PAGE_NUMBER.is_match(line))) {
            prose_lines += 1;
            if prose_lines > allowed_prose_lines {
                return false;
            }
        }
    }
    true
}

/// Prose ends in punctuation, perhaps followed by closing quotes or brackets.
fn ends_in_punctuation(text: &str) -> bool {
    let last = text.trim_end_matches(|char: char| matches!(char, '"' | '\'' | ')' | ']' | '*') || char.is_whitespace());
    last.chars().next_back().is_some_and(|char| !char.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_equals_str_trim() {
        let ends =
            ["", " ", "\t", "\r", "\x0B", "\x0C", "\u{A0}", "\u{2003}", "\u{85}", " \u{A0} ", "x", "é", "\u{3000}"];
        for start in ends {
            for middle in ["", "a", "a b", "é", "\x0B", " "] {
                for end in ends {
                    let text = format!("{start}{middle}{end}");
                    assert_eq!(trim(&text), text.trim(), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn first_words_are_those_the_char_tests_find() {
        let by_chars = |line: &str| -> String {
            let start = line.trim_start_matches(|char: char| !char.is_alphanumeric());
            start[..start.find(|char: char| !char.is_alphanumeric()).unwrap_or(start.len())].to_string()
        };
        let openings =
            ["", "CHAPTER", "chapter", "12", "IV", "Über", "Café", "naïve", "x\u{301}y", "ab1", "_ab", "«Où"];
        let rests = ["", " IV.", ".", "-x", "é", "\u{301}", "1", "—the", " ", "ß", "_x"];
        for opening in openings {
            for rest in rests {
                for lead in ["", "  ", "\"", "[", "é"] {
                    let line = format!("{lead}{opening}{rest}");
                    assert_eq!(first_word(&line), by_chars(&line), "{line:?}");
                }
            }
        }
    }

    #[test]
    fn word_counts_eight_bytes_at_a_time_agree_with_counting_bytes() {
        let by_bytes = |text: &str| {
            let (mut words, mut in_word) = (0, false);
            for byte in text.bytes() {
                let space = byte.is_ascii_whitespace();
                words += usize::from(!space && !in_word);
                in_word = !space;
            }
            words
        };
        let pieces = ["a", "bb", " ", "  ", "\t", "\n", "\x0B", "\x0C", "\r", "é", "word", "x y", "\u{A0}"];
        for text in crate::corpus::test_texts::random_texts(&pieces, 23, 20_000, 7) {
            let count = by_bytes(&text);
            for limit in [0, 1, 2, 5, 12] {
                assert_eq!(word_count_exceeds(&text, limit), count > limit, "{text:?} limit {limit}");
            }
        }
    }

    #[test]
    fn wrapped_lines_join_into_one_paragraph() {
        let body = "It was a dark and stormy\nnight;  the rain fell in\ntorrents.\n\nTo-\nmorrow he would go.\n";
        assert_eq!(
            prose_paragraphs(body).to_vec(),
            vec!["It was a dark and stormy night; the rain fell in torrents.", "To-morrow he would go."]
        );
    }

    /// A book's paragraphs share one string; each still begins as if it were alone in it.
    #[test]
    fn paragraphs_start_alike_wherever_they_stand() {
        let body = "It rained.\n\n_\u{A0}Then it snowed.\n\n\u{200B}\tAnd it thawed.";
        assert_eq!(prose_paragraphs(body).to_vec(), ["It rained.", "Then it snowed.", "And it thawed."]);
        for (alone, expected) in
            [("_\u{A0}Then it snowed.", "Then it snowed."), ("\u{200B}\tAnd it thawed.", "And it thawed.")]
        {
            assert_eq!(prose_paragraphs(alone).to_vec(), [expected]);
        }
    }

    /// Away from the edges, licence text is looked for only in paragraphs that name Gutenberg, each by itself:
    /// a name split between two paragraphs (which share one string) names it in neither.
    #[test]
    fn licence_text_inside_a_body_is_dropped_where_it_names_gutenberg() {
        let prose = "It was a dark and stormy night, and the rain fell in torrents upon the town.";
        let licence = "This eBook is for the use of anyone anywhere, see the Project Gutenberg License.";
        let unnamed = "This eBook is for the use of anyone anywhere, as the old lawyer said to me then.";
        let split = [
            "He kept his ebooks in a box on the shelf and called the box Gute",
            "nberg ebooks, he said, were what he liked to read on long dark winter nights.",
        ];
        let middle = [licence, unnamed, split[0], split[1]];
        let edge = vec![prose; EDGE_PARAGRAPHS + 1];
        let body = [&edge[..], &middle, &edge].concat().join("\n\n");
        let kept = prose_paragraphs(&body).to_vec();
        assert_eq!(kept.len(), 2 * edge.len() + 3, "only the licence is dropped");
        assert!(!kept.iter().any(|paragraph| paragraph == licence));
        assert!(
            kept.iter().any(|paragraph| paragraph == unnamed) && kept.iter().any(|paragraph| paragraph == split[1])
        );
    }

    #[test]
    fn headings_and_titles_are_dropped() {
        for heading in [
            "CHAPTER IV",
            "Chapter 12. The Return.",
            "CHAPTER I.\nTHE ARRIVAL",
            "I.",
            "XIV",
            "The Lost World",
            "\"There Are Heroisms All Round Us\"",
            "THE END.",
            "Release Date: October 2, 2004 [EBook #35]",
            "BOOK THE FIRST",
            "Preface.",
            "12",
        ] {
            assert!(prose_paragraphs(heading).is_empty(), "kept heading {heading:?}");
        }
    }

    #[test]
    fn heading_lines_glued_to_prose_are_removed() {
        assert_eq!(
            prose_paragraphs("CHAPTER SEVEN\nMrs. Gould was too\nsympathetic not to share that feeling.").to_vec(),
            vec!["Mrs. Gould was too sympathetic not to share that feeling."]
        );
        assert_eq!(prose_paragraphs("I saw\nhim go.").to_vec(), vec!["I saw him go."]);
        let wrapped = "It was I who saw\nhim go, and I\nwho stayed behind\nin 1850.";
        assert_eq!(
            prose_paragraphs(wrapped).to_vec(),
            vec!["It was I who saw him go, and I who stayed behind in 1850."]
        );
    }

    #[test]
    fn books_without_punctuation_keep_their_short_paragraphs() {
        let long = "It is Porlock s writing said he thoughtfully I can hardly doubt that it is Porlock s writing";
        let body = format!("CHAPTER I\n\n{long}\n\nWho then is Porlock I asked\n\n{long}");
        assert_eq!(prose_paragraphs(&body).to_vec(), vec![long, "Who then is Porlock I asked", long]);
    }

    #[test]
    fn short_prose_is_kept() {
        for prose in
            ["\"Come here!\"", "Part of me wanted to go.", "I went home.", "\"But—\"", "Yes, sir.", "My dear Emma,"]
        {
            assert_eq!(prose_paragraphs(prose).to_vec(), vec![prose.to_string()], "dropped prose {prose:?}");
        }
    }

    #[test]
    fn tables_of_contents_are_dropped() {
        let contents = "CONTENTS\n\nCHAPTER\n\n    I.  \"THERE ARE HEROISMS ALL ROUND US\"\n   II.  \"TRY YOUR LUCK\"\n  III.  \"HE IS A PERFECTLY IMPOSSIBLE PERSON\"\n   IV.  WHO COULD HAVE FORESEEN IT?\n\nChapter 1. Down the Rabbit-Hole\nChapter 2. The Pool of Tears\nChapter 3. A Caucus-Race and a Long Tale\n\nThe Storm ....... 12\nThe Calm ....... 30\nHome ..... 45\n\nMr. Hungerton was the most tactless person upon earth.";
        assert_eq!(prose_paragraphs(contents).to_vec(), vec!["Mr. Hungerton was the most tactless person upon earth."]);
    }

    #[test]
    fn illustrations_credits_and_licence_are_dropped() {
        let body = "Produced by Judy Boss\n\n[Illustration: The house\non the hill]\n\n[Transcriber's note: changes:\n\n 75  later  latter\n\n 108  in  is]\n\nShe looked up. [Illustration] It rained.\n\nThis eBook is made available at no cost under the Project Gutenberg License.";
        assert_eq!(prose_paragraphs(body).to_vec(), vec!["She looked up. It rained."]);
    }
}
