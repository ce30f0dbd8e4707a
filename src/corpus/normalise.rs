//! Typographic normalisation before paragraphs and sentences are found.
//!
//! Books spell the same punctuation many ways: curly and straight quotes, `--` and `—`, `…` and `...`,
//! `_italics_`, non-breaking spaces. Mapping them to one form keeps the vocabulary small and lets the
//! sentence splitter look at ASCII only. Line breaks are kept: paragraphs are found afterwards.

/// Returns `text` with quotes, dashes, ellipses, spaces and italics markers in one form each.
pub fn normalise_typography(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(char) = chars.next() {
        match char {
            '“' | '”' | '„' | '‟' | '«' | '»' | '″' => out.push('"'),
            '‘' | '’' | '‚' | '‛' | '′' | '`' => out.push('\''),
            '–' | '‐' | '‑' => out.push('-'),
            '—' | '―' => out.push('—'),
            '-' if chars.peek() == Some(&'-') => {
                while chars.peek() == Some(&'-') {
                    chars.next();
                }
                out.push('—');
            }
            '…' => out.push_str("..."),
            '_' => {}
            '\u{AD}' | '\u{FEFF}' | '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' => {}
            '\t' | '\u{A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => {
                out.push(' ')
            }
            '\u{0C}' | '\u{0B}' | '\u{2028}' | '\u{2029}' => out.push('\n'),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_has_one_spelling() {
        assert_eq!(
            normalise_typography("“Well—” he said--‘_no_’…\u{A0}end---now"),
            "\"Well—\" he said—'no'... end—now"
        );
    }

    #[test]
    fn line_breaks_survive() {
        assert_eq!(normalise_typography("a\nb\u{0C}c"), "a\nb\nc");
    }
}
