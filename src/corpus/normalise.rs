//! Typographic normalisation of paragraph text.
//!
//! Books spell the same punctuation many ways: curly and straight quotes, `--` and `—`, `…` and `...`,
//! `_italics_`, non-breaking spaces. Mapping them to one form keeps the vocabulary small and lets the
//! sentence splitter look at ASCII only. This runs while wrapped lines are joined into a paragraph, so it
//! also collapses runs of whitespace into one space; plain ASCII runs are copied in bulk.

/// Appends `text` to `out` with quotes, dashes, ellipses, spaces and italics markers in one form each and
/// whitespace runs collapsed to a single space.
pub fn push_normalised(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let mut position = 0;
    let mut run_start = 0;
    while position < bytes.len() {
        let byte = bytes[position];
        let ordinary = match byte {
            // A space is copied with its run unless more whitespace follows or one was just written.
            b' ' => {
                !bytes.get(position + 1).is_some_and(|next| is_ascii_space(*next))
                    && (position > run_start || !out.ends_with(' '))
            }
            b'-' | b'_' | b'`' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C => false,
            _ => byte.is_ascii(),
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
                    push_space(out);
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
                other if other.is_whitespace() => push_space(out),
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

fn is_ascii_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C)
}

fn push_space(out: &mut String) {
    if !out.is_empty() && !out.ends_with(' ') {
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
    fn whitespace_runs_become_one_space() {
        assert_eq!(normalise_typography("a  b\t\tc \u{A0} d\u{2003}e"), "a b c d e");
        let mut out = String::from("end ");
        push_normalised(&mut out, " \u{A0}start");
        assert_eq!(out, "end start");
    }
}
