//! Typographic normalisation of paragraph text.
//!
//! Books spell the same punctuation many ways: curly and straight quotes, `--` and `—`, `…` and `...`,
//! `_italics_`, non-breaking spaces. Mapping them to one form keeps the vocabulary small and lets the
//! sentence splitter look at ASCII only. This runs while wrapped lines are joined into a paragraph, so it
//! also collapses runs of whitespace into one space; plain ASCII runs are copied in bulk.

use crate::util::swar::{HIGH, ONES, bytes_equal};

/// Appends `text` to `out` with quotes, dashes, ellipses, spaces and italics markers in one form each and
/// whitespace runs collapsed to a single space.
pub fn push_normalised(out: &mut String, text: &str) {
    push_normalised_to(out, 0, text);
}

/// [`push_normalised`] for a paragraph that begins at `out[paragraph_start..]`, behind other text (ingest
/// keeps a book's paragraphs in one string): whitespace at its start is dropped as at the start of `out`.
pub fn push_normalised_to(out: &mut String, paragraph_start: usize, text: &str) {
    let ends_in_space = |out: &String| out.len() > paragraph_start && out.ends_with(' ');
    let bytes = text.as_bytes();
    let mut position = 0;
    let mut run_start = 0;
    while position < bytes.len() {
        // Eight plain bytes at a time; a space at a run's start may need dropping, so that one is checked alone.
        if let Some(chunk) = bytes.get(position..position + 8)
            && (position > run_start || chunk[0] != b' ' || !ends_in_space(out))
            && is_plain_chunk(chunk, bytes.get(position + 8).copied())
        {
            position += 8;
            continue;
        }
        let byte = bytes[position];
        let ordinary = match BYTE_KINDS[byte as usize] {
            COPIED => true,
            // A space is copied with its run unless more whitespace follows or one was just written.
            SPACE => {
                !bytes.get(position + 1).is_some_and(|next| is_ascii_space(*next))
                    && (position > run_start || !ends_in_space(out))
            }
            _ => false,
        };
        if ordinary {
            position += 1;
            continue;
        }
        out.push_str(&text[run_start..position]);
        if byte.is_ascii() {
            match byte {
                b'-' if bytes.get(position + 1) == Some(&b'-') => {
                    while bytes.get(position) == Some(&b'-') {
                        position += 1;
                    }
                    out.push('—');
                }
                b'-' => {
                    out.push('-');
                    position += 1;
                }
                b'_' => position += 1,
                b'`' => {
                    out.push('\'');
                    position += 1;
                }
                _ => {
                    while bytes.get(position).is_some_and(|byte| is_ascii_space(*byte)) {
                        position += 1;
                    }
                    push_space(out, paragraph_start);
                }
            }
        } else {
            let char = text[position..].chars().next().expect("position is on a char boundary");
            position += char.len_utf8();
            match char {
                '“' | '”' | '„' | '‟' | '«' | '»' | '″' => out.push('"'),
                '‘' | '’' | '‚' | '‛' | '′' => out.push('\''),
                '–' | '‐' | '‑' => out.push('-'),
                '—' | '―' => out.push('—'),
                '…' => out.push_str("..."),
                '\u{AD}' | '\u{FEFF}' | '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' => {}
                other if other.is_whitespace() => push_space(out, paragraph_start),
                other => out.push(other),
            }
        }
        run_start = position;
    }
    out.push_str(&text[run_start..]);
}

/// Returns `text` normalised as by [`push_normalised`].
pub fn normalise_typography(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_normalised(&mut out, text);
    out
}

/// True when all eight bytes are copied as they are: printable ASCII other than `-`, `_` and a backtick, and no
/// space followed by another (`next` is the byte after the chunk). Word-parallel ("SWAR") tests, so the common
/// case costs a few instructions per eight bytes instead of a branch per byte.
#[inline]
fn is_plain_chunk(chunk: &[u8], next: Option<u8>) -> bool {
    let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    if word & HIGH != 0 {
        return false;
    }
    // ASCII bytes below 0x20 (controls, tabs, newlines) stay below 0x80 after adding 0x60.
    let controls = !(word + 0x60 * ONES) & HIGH;
    let rewritten = bytes_equal(word, b'-') | bytes_equal(word, b'_') | bytes_equal(word, b'`');
    let spaces = bytes_equal(word, b' ');
    let space_then_whitespace =
        (spaces & (spaces >> 8)) != 0 || (spaces >> 56 != 0 && next.is_some_and(is_ascii_space));
    controls | rewritten == 0 && !space_then_whitespace
}

/// How [`push_normalised`] treats each byte: copied as it is, a space (copied unless whitespace is next or
/// a space was just written), or rewritten (dashes, italics markers, backticks, other whitespace, and every
/// byte of a non-ASCII character). A table lookup is what keeps the copying loop fast.
const BYTE_KINDS: [u8; 256] = {
    let mut kinds = [REWRITTEN; 256];
    let mut byte = 0;
    while byte < 128 {
        kinds[byte] = match byte as u8 {
            b' ' => SPACE,
            b'-' | b'_' | b'`' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C => REWRITTEN,
            _ => COPIED,
        };
        byte += 1;
    }
    kinds
};
const COPIED: u8 = 0;
const SPACE: u8 = 1;
const REWRITTEN: u8 = 2;

fn is_ascii_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C)
}

fn push_space(out: &mut String, paragraph_start: usize) {
    if out.len() > paragraph_start && !out.ends_with(' ') {
        out.push(' ');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_has_one_spelling() {
        assert_eq!(
            normalise_typography("“Well—” he said--‘_no_’…\u{A0}end---now `ok' a – b"),
            "\"Well—\" he said—'no'... end—now 'ok' a - b"
        );
    }

    #[test]
    fn every_rewrite_is_found_at_every_offset_of_the_eight_byte_scan() {
        // From offset 1: leading whitespace of a paragraph's first line is dropped, a different rule.
        for offset in 1..20 {
            let lead = "abcdefghijklmnopqrstuvwxyz"[..offset].to_string();
            for (raw, expected) in [
                ("  b", " b"),
                (" \tb", " b"),
                ("--b", "—b"),
                ("-b", "-b"),
                ("_b_", "b"),
                ("`b", "'b"),
                ("\u{201C}b\u{201D}", "\"b\""),
                ("\u{A0}b", " b"),
                (" b\x7F~", " b\x7F~"),
            ] {
                let text = format!("{lead}{raw} and the rest of a long enough line");
                let wanted = format!("{lead}{expected} and the rest of a long enough line");
                assert_eq!(normalise_typography(&text), wanted, "{text:?}");
            }
        }
        let mut out = String::from("end ");
        push_normalised(&mut out, " leading space after a written one");
        assert_eq!(out, "end leading space after a written one");
    }

    #[test]
    fn whitespace_runs_become_one_space() {
        assert_eq!(normalise_typography("a  b\t\tc \u{A0} d\u{2003}e"), "a b c d e");
        let mut out = String::from("end ");
        push_normalised(&mut out, " \u{A0}start");
        assert_eq!(out, "end start");
    }
}
