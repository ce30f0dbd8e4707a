//! Byte tests on eight bytes at once ("SWAR": SIMD within a register), for the text scanners of ingest.
//!
//! Each test gives the top bit of every byte of a `u64` (read little-endian from the text) for which it
//! holds, exactly: the arithmetic never carries from one byte into the next.

/// The top bit of each byte.
pub const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
/// One in each byte: `ONES * b` repeats byte `b` eight times.
pub const ONES: u64 = u64::from_le_bytes([0x01; 8]);

/// The top bit of each byte of `value` that is zero.
#[inline]
pub fn zero_bytes(value: u64) -> u64 {
    !(((value & !HIGH) + !HIGH) | value | !HIGH)
}

/// The top bit of each byte of `word` equal to `byte`.
#[inline]
pub fn bytes_equal(word: u64, byte: u8) -> u64 {
    zero_bytes(word ^ ONES * u64::from(byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_value_in_every_position() {
        for byte in 0..=255u8 {
            for position in 0..8 {
                let mut chunk = [0x41u8; 8];
                chunk[position] = byte;
                let word = u64::from_le_bytes(chunk);
                let expected = |matches: &dyn Fn(u8) -> bool| {
                    chunk.iter().enumerate().fold(0, |bits, (at, &b)| bits | (u64::from(matches(b)) << (8 * at + 7)))
                };
                assert_eq!(zero_bytes(word), expected(&|b| b == 0), "{chunk:?}");
                assert_eq!(bytes_equal(word, b'_'), expected(&|b| b == b'_'), "{chunk:?}");
                assert_eq!(bytes_equal(word, 0xC3), expected(&|b| b == 0xC3), "{chunk:?}");
            }
        }
    }
}
