//! Bytes of a book file into text: encoding, byte-order marks, line endings, and files that are not text.
//!
//! Books arrive as UTF-8 (with or without a BOM), as UTF-16 with a BOM (Windows editors), or in a legacy
//! 8-bit encoding. Anything that is not valid UTF-8 is read as Windows-1252, the superset of Latin-1 that
//! old Gutenberg files and Windows editors really used (0x80-0x9F are quotes and dashes, never controls).

/// The encoding a file was read with, recorded in the corpus statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    Utf8,
    Utf8Bom,
    Utf16Le,
    Utf16Be,
    Latin1,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Utf8Bom => "utf-8-bom",
            Encoding::Utf16Le => "utf-16le",
            Encoding::Utf16Be => "utf-16be",
            Encoding::Latin1 => "latin-1",
        }
    }
}

/// Why a file was not read as a book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotText {
    /// Zero bytes, or only whitespace.
    Empty,
    /// NUL bytes or many control characters: an image, an archive, a PDF.
    Binary,
}

/// Decodes a whole file, with line endings normalised to `\n` and any byte-order mark removed.
/// Takes the bytes by value so that valid UTF-8, the common case, is not copied.
pub fn decode(mut bytes: Vec<u8>) -> Result<(String, Encoding), NotText> {
    let (text, encoding) = if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
        (decode_utf8_or_latin1(bytes).0, Encoding::Utf8Bom)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        (decode_utf16(rest, u16::from_le_bytes), Encoding::Utf16Le)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        (decode_utf16(rest, u16::from_be_bytes), Encoding::Utf16Be)
    } else {
        if looks_binary(&bytes) {
            return Err(NotText::Binary);
        }
        decode_utf8_or_latin1(bytes)
    };
    if text.trim().is_empty() {
        return Err(NotText::Empty);
    }
    Ok((normalise_line_endings(text), encoding))
}

fn decode_utf8_or_latin1(bytes: Vec<u8>) -> (String, Encoding) {
    // The SIMD validator checks a book several times faster than `String::from_utf8`, whose check was a
    // fiftieth of ingest.
    if simdutf8::basic::from_utf8(&bytes).is_ok() {
        // SAFETY: `simdutf8` has just found `bytes` to be valid UTF-8.
        return (unsafe { String::from_utf8_unchecked(bytes) }, Encoding::Utf8);
    }
    (bytes.iter().map(|&byte| windows_1252(byte)).collect(), Encoding::Latin1)
}

fn decode_utf16(bytes: &[u8], from_bytes: fn([u8; 2]) -> u16) -> String {
    let units = bytes.chunks_exact(2).map(|pair| from_bytes([pair[0], pair[1]]));
    char::decode_utf16(units).map(|unit| unit.unwrap_or(char::REPLACEMENT_CHARACTER)).collect()
}

/// A file is binary when its first 8 KiB hold a NUL or more than 1 control character in 100.
fn looks_binary(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        return true;
    }
    let controls = head.iter().filter(|&&byte| byte < 0x20 && !matches!(byte, b'\t' | b'\n' | b'\r' | 0x0C)).count();
    controls * 100 > head.len()
}

/// `\r\n` and lone `\r` to `\n`, in place: most Gutenberg files are CRLF, and a copy per book was a
/// measurable part of ingest.
fn normalise_line_endings(text: String) -> String {
    let Some(first) = memchr::memchr(b'\r', text.as_bytes()) else {
        return text;
    };
    let mut bytes = text.into_bytes();
    let (mut read, mut write) = (first, first);
    while read < bytes.len() {
        // `bytes[read]` is a `\r`.
        bytes[write] = b'\n';
        write += 1;
        read += 1;
        if bytes.get(read) == Some(&b'\n') {
            read += 1;
        }
        let next = memchr::memchr(b'\r', &bytes[read..]).map_or(bytes.len(), |offset| read + offset);
        bytes.copy_within(read..next, write);
        write += next - read;
        read = next;
    }
    bytes.truncate(write);
    // Validating the whole book again took as long as the rewrite (and half the books are CRLF).
    // SAFETY: `bytes` held a `String`, and the only changes are ASCII `\r` bytes (never part of a multi-byte
    // character) replaced by `\n` or removed, which leaves every character whole.
    unsafe { String::from_utf8_unchecked(bytes) }
}

/// Windows-1252: Latin-1 except 0x80-0x9F, which hold typographic punctuation.
fn windows_1252(byte: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}', '\u{90}', '‘',
        '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
    ];
    match byte {
        0x80..=0x9F => HIGH[(byte - 0x80) as usize],
        _ => byte as char,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_bom_is_dropped_and_crlf_normalised() {
        let (text, encoding) = decode(b"\xEF\xBB\xBFIt was.\r\nA night.\rEnd\r\n".to_vec()).unwrap();
        assert_eq!(text, "It was.\nA night.\nEnd\n");
        assert_eq!(encoding, Encoding::Utf8Bom);
        for (raw, expected) in
            [("a\r\r\nb\r", "a\n\nb\n"), ("\r\n\r\nx\n\ry é\r\n", "\n\nx\n\ny é\n"), ("no returns\n", "no returns\n")]
        {
            assert_eq!(normalise_line_endings(raw.to_string()), expected, "{raw:?}");
        }
    }

    /// Every mix of line endings with one- to four-byte characters next to them comes out as the plain
    /// replacement would have it, and valid (the rewrite skips re-validating it).
    #[test]
    fn line_endings_are_rewritten_around_any_character() {
        let pieces = ["\r", "\n", "\r\n", "a", "é", "—", "𝄞", "\r\r"];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let raw = format!("{a}{b}{c}{a}");
                    let rewritten = normalise_line_endings(raw.clone());
                    assert!(std::str::from_utf8(rewritten.as_bytes()).is_ok(), "{raw:?}");
                    assert_eq!(rewritten, raw.replace("\r\n", "\n").replace('\r', "\n"), "{raw:?}");
                }
            }
        }
    }

    #[test]
    fn invalid_utf8_falls_back_to_windows_1252() {
        // "café" in Latin-1 and curly quotes from Windows-1252.
        let (text, encoding) = decode(b"caf\xE9 \x93quoted\x94".to_vec()).unwrap();
        assert_eq!(text, "café “quoted”");
        assert_eq!(encoding, Encoding::Latin1);
    }

    #[test]
    fn utf16_with_bom_decodes() {
        let mut bytes = vec![0xFF, 0xFE];
        for unit in "Hi é\r\n".encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(decode(bytes).unwrap(), ("Hi é\n".to_string(), Encoding::Utf16Le));
    }

    #[test]
    fn empty_and_binary_files_are_refused() {
        assert_eq!(decode(b"".to_vec()), Err(NotText::Empty));
        assert_eq!(decode(b" \n\r\n\t".to_vec()), Err(NotText::Empty));
        assert_eq!(decode(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec()), Err(NotText::Binary));
        assert_eq!(decode(vec![0x01; 200]), Err(NotText::Binary));
    }
}
