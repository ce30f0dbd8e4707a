//! Whether a JPEG file is whole: its marker segments and entropy-coded scans are walked to the end-of-image
//! marker. The decoder fills a truncated scan with grey and reports success, so a photo cut off in transfer
//! would otherwise be described as if it were a picture; this check turns it into an error.

/// Why the bytes are not a complete JPEG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JpegError {
    #[error("the file is truncated: it ends at byte {0} before the JPEG end-of-image marker")]
    Truncated(usize),
    #[error("a marker segment at byte {0} is malformed")]
    Malformed(usize),
}

/// Walks `bytes` (which start with the JPEG start-of-image marker) to the end-of-image marker.
pub fn check_complete(bytes: &[u8]) -> Result<(), JpegError> {
    let mut at = 2; // after FF D8
    loop {
        // A marker: one or more 0xFF fill bytes, then the code.
        if at >= bytes.len() {
            return Err(JpegError::Truncated(bytes.len()));
        }
        if bytes[at] != 0xFF {
            return Err(JpegError::Malformed(at));
        }
        while at < bytes.len() && bytes[at] == 0xFF {
            at += 1;
        }
        let Some(&code) = bytes.get(at) else {
            return Err(JpegError::Truncated(bytes.len()));
        };
        at += 1;
        match code {
            0xD9 => return Ok(()),
            0xD0..=0xD7 | 0x01 => continue,
            0x00 => return Err(JpegError::Malformed(at - 1)),
            _ => {}
        }
        let Some(length) = bytes.get(at..at + 2).map(|pair| usize::from(u16::from_be_bytes([pair[0], pair[1]]))) else {
            return Err(JpegError::Truncated(bytes.len()));
        };
        if length < 2 {
            return Err(JpegError::Malformed(at));
        }
        at += length;
        if at > bytes.len() {
            return Err(JpegError::Truncated(bytes.len()));
        }
        if code == 0xDA {
            at = end_of_scan(bytes, at)?;
        }
    }
}

/// The position of the marker that ends the entropy-coded data starting at `at`: the first 0xFF not
/// followed by a stuffed zero, a restart marker or another fill byte.
fn end_of_scan(bytes: &[u8], mut at: usize) -> Result<usize, JpegError> {
    loop {
        let Some(offset) = memchr::memchr(0xFF, &bytes[at..]) else {
            return Err(JpegError::Truncated(bytes.len()));
        };
        let marker = at + offset;
        match bytes.get(marker + 1) {
            None => return Err(JpegError::Truncated(bytes.len())),
            Some(0x00 | 0xD0..=0xD7) => at = marker + 2,
            Some(0xFF) => at = marker + 1,
            Some(_) => return Ok(marker),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(progressive_scans: usize) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xD8];
        bytes.extend([0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB]); // APP0 with two payload bytes
        for _ in 0..progressive_scans.max(1) {
            bytes.extend([0xFF, 0xDA, 0x00, 0x03, 0x01]); // SOS header
            bytes.extend([0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56]); // data, a stuffed byte, a restart
        }
        bytes.extend([0xFF, 0xD9]);
        bytes
    }

    #[test]
    fn whole_files_pass_and_every_cut_fails() {
        for scans in [1, 3] {
            let whole = jpeg(scans);
            assert_eq!(check_complete(&whole), Ok(()));
            for cut in 2..whole.len() {
                assert!(check_complete(&whole[..cut]).is_err(), "{scans} scans cut at {cut}");
            }
        }
    }

    #[test]
    fn a_bad_segment_length_is_malformed() {
        assert_eq!(check_complete(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01, 0xFF, 0xD9]), Err(JpegError::Malformed(4)));
        assert_eq!(check_complete(&[0xFF, 0xD8, 0x12]), Err(JpegError::Malformed(2)));
    }
}
