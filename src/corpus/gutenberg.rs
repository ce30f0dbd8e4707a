//! Project Gutenberg packaging: the header before the book, the footer and licence after it.
//!
//! Gutenberg files have used several markers over the years: `*** START OF THIS PROJECT GUTENBERG EBOOK X ***`,
//! `***START OF THE PROJECT GUTENBERG EBOOK X***`, the 1990s `*END*THE SMALL PRINT!` header (`*END THE SMALL PRINT!` in 2001), and for the end
//! `*** END OF ...`, `End of the Project Gutenberg EBook of X` and `End of Project Gutenberg's X`, with the licence
//! after it. The body is what lies between the last start marker and the first end marker. Files without
//! markers are kept whole; the paragraph filter ([`is_boilerplate`]) still drops any stray licence paragraph.

use std::sync::LazyLock;

use memchr::memmem;
use regex::Regex;

static GUTENBERG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)project\s+gutenberg").unwrap());
static SMALL_PRINT_END: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\*\s*END\s*\*?\s*THE\s+SMALL\s+PRINT").unwrap());
static START_LINE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\bstart\s+of\b").unwrap());
static END_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\bend\s+of\s+(the\s+|this\s+)?project\s+gutenberg").unwrap());
static BOILERPLATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)project\s+gutenberg|gutenberg\.(org|net)|gutenberg-tm|\betexts?\b|\bebooks?\b|this\s+e-?book\s+is\s+for\s+the\s+use\s+of|small\s+print!",
    )
    .unwrap()
});
static PRODUCTION_CREDIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\W*(produced\s+by|prepared\s+by|e-?text\s+prepared|transcribed\s+(by|from)|transcriber'?s\s+note|this\s+e-?(text|book)\s+was|html\s+version|scanned\s+by|proofread)",
    )
    .unwrap()
});

/// The part of `text` that is the book: between the Gutenberg start and end markers when there are any.
pub fn strip_packaging(text: &str) -> &str {
    let mut body_start = 0;
    let mut body_end = text.len();
    let mut end_candidates = Vec::new();
    for found in GUTENBERG.find_iter(text) {
        let line = line_around(text, found.start());
        let line_text = &text[line.clone()];
        if END_LINE.is_match(line_text) {
            end_candidates.push(line.start);
        } else if START_LINE.is_match(line_text) && line.start < text.len() / 2 {
            body_start = body_start.max(line.end);
        }
    }
    if body_start == 0
        && let Some(found) = SMALL_PRINT_END.find(text)
        && found.start() < text.len() / 2
    {
        body_start = line_around(text, found.start()).end;
    }
    if let Some(&end) = end_candidates.iter().find(|&&end| end >= body_start) {
        body_end = end;
    }
    &text[body_start..body_end]
}

/// Words one of which every match of [`BOILERPLATE`] holds, in the same (Unicode) case-insensitivity. Without
/// the word boundaries of the full pattern, which send the regex engine off its fast path on any non-ASCII
/// text, this rules out nearly every paragraph at a fraction of the cost.
static BOILERPLATE_WORDS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)gutenberg|etext|e-?book|small\s+print").unwrap());

/// True for a paragraph that is Gutenberg packaging or licence text wherever it stands.
pub fn is_boilerplate(paragraph: &str) -> bool {
    BOILERPLATE_WORDS.is_match(paragraph) && BOILERPLATE.is_match(paragraph)
}

/// [`is_boilerplate`] for a paragraph `near_edge` of the body (checked fully) or inside it (checked only
/// when it names Gutenberg, which licence text always does; this keeps the cost of the check off the bulk).
pub fn is_boilerplate_at(paragraph: &str, near_edge: bool) -> bool {
    static LOWER: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"utenberg"));
    static UPPER: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"UTENBERG"));
    let names_gutenberg = || {
        let bytes = paragraph.as_bytes();
        LOWER.find(bytes).is_some() || UPPER.find(bytes).is_some()
    };
    (near_edge || names_gutenberg()) && is_boilerplate(paragraph)
}

/// True for "Produced by ..." and similar credits that open a Gutenberg body.
pub fn is_production_credit(paragraph: &str) -> bool {
    PRODUCTION_CREDIT.is_match(paragraph)
}

/// The byte range of the line holding `position`, without its newline.
fn line_around(text: &str, position: usize) -> std::ops::Range<usize> {
    let start = text[..position].rfind('\n').map_or(0, |newline| newline + 1);
    let end = text[position..].find('\n').map_or(text.len(), |newline| position + newline);
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "It was a dark night.\n\nThe end came.\n";

    #[test]
    fn modern_markers() {
        let text = format!(
            "The Project Gutenberg EBook of Night, by A\n\nTitle: Night\n\n*** START OF THIS PROJECT GUTENBERG EBOOK NIGHT ***\n\n{BODY}\nEnd of the Project Gutenberg EBook of Night\n\n*** END OF THIS PROJECT GUTENBERG EBOOK NIGHT ***\n\nSection 1. General Terms of Use\nlicence text\n"
        );
        assert_eq!(strip_packaging(&text).trim(), BODY.trim());
    }

    #[test]
    fn markers_without_spaces_and_the_possessive_end_line() {
        let text = format!(
            "***START OF THE PROJECT GUTENBERG EBOOK NIGHT***\n{BODY}End of Project Gutenberg's Night, by A\n***END OF THE PROJECT GUTENBERG EBOOK NIGHT***\nlicence\n"
        );
        assert_eq!(strip_packaging(&text).trim(), BODY.trim());
    }

    #[test]
    fn old_small_print_header() {
        let text = format!(
            "**The Project Gutenberg Etext of Night**\nlegal words\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\n{BODY}\nEnd of The Project Gutenberg Etext of Night\n"
        );
        assert_eq!(strip_packaging(&text).trim(), BODY.trim());
        // The 2001 version lost the second asterisk.
        let text =
            text.replace("*END*THE SMALL PRINT!", "*END THE SMALL PRINT!").replace("Ver.04.29.93", "Ver.05/20/01");
        assert_eq!(strip_packaging(&text).trim(), BODY.trim());
    }

    #[test]
    fn text_without_markers_is_whole() {
        assert_eq!(strip_packaging(BODY), BODY);
    }

    #[test]
    fn boilerplate_and_credits_are_recognised() {
        assert!(is_boilerplate("This eBook is for the use of anyone anywhere at no cost"));
        assert!(is_boilerplate("see www.gutenberg.org for details"));
        assert!(!is_boilerplate("The gutter ran with rain."));
        // Every form the full pattern knows, in odd cases and with the Kelvin sign and long s that Unicode
        // case folding equates with `k` and `s`, passes the cheap test too.
        for text in [
            "PROJECT  GUTENBERG",
            "see gutenberg.NET",
            "Gutenberg-tm",
            "an Etexts list",
            "EBOO\u{212A}",
            "this e-book is for the use of all",
            "\u{17F}mall print!",
        ] {
            assert!(BOILERPLATE.is_match(text) && is_boilerplate(text), "{text}");
        }
        assert!(is_production_credit("Produced by Judy Boss and David Widger"));
        assert!(is_production_credit("E-text prepared by the volunteers"));
        assert!(!is_production_credit("He produced by magic a rabbit."));
    }
}
