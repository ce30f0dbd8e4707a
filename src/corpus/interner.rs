//! A per-book word table that stores every distinct word once, in one growing buffer.
//!
//! Tokenizing a book looks up each of its tokens; a `HashMap<String, u32>` would allocate a `String` per
//! distinct word per book (millions across a library). Here words live in one arena `String` and the hash
//! table holds small entries, so a new word costs an append and a lookup costs a hash and one comparison.
//!
//! Lookups are the hottest part of ingest, so the common cases skip the general path: a one-byte ASCII token
//! (punctuation, `a`, `i`: about a fifth of all tokens) is a direct table index, and a word of at most 16
//! bytes (nearly all others) is packed into a `u128` that is both hashed and compared as two machine words,
//! without touching the arena.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// Words up to this many bytes are compared as a packed `u128`.
pub(crate) const INLINE: usize = 16;
/// No id yet (in the one-byte table).
const NONE: u32 = u32::MAX;

/// One table entry: the word's hash, its packed bytes when short (else 0), its length and id.
#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u64,
    /// The packed bytes as two words rather than a `u128`, whose 16-byte alignment would pad entries to 32.
    packed: [u64; 2],
    len: u32,
    id: u32,
}

/// Distinct words of one book with dense ids in order of first appearance.
#[derive(Debug, Clone)]
pub struct Interner {
    arena: String,
    /// Word id -> its byte range in `arena`.
    spans: Vec<(u32, u32)>,
    table: HashTable<Entry>,
    /// ASCII byte -> id of the one-byte word, or [`NONE`].
    one_byte: Box<[u32; 128]>,
}

impl Default for Interner {
    fn default() -> Interner {
        Interner { arena: String::new(), spans: Vec::new(), table: HashTable::new(), one_byte: Box::new([NONE; 128]) }
    }
}

impl Interner {
    /// The id of `word`, adding it when new.
    #[inline]
    pub fn intern(&mut self, word: &str) -> u32 {
        let bytes = word.as_bytes();
        if let [byte] = bytes
            && byte.is_ascii()
        {
            let id = self.one_byte[*byte as usize];
            if id != NONE {
                return id;
            }
            let id = self.intern_general(word);
            self.one_byte[*byte as usize] = id;
            return id;
        }
        self.intern_general(word)
    }

    fn intern_general(&mut self, word: &str) -> u32 {
        let bytes = word.as_bytes();
        let (packed, hash) = if bytes.len() <= INLINE {
            let packed = pack(bytes);
            (packed, hash_packed(packed, bytes.len()))
        } else {
            (0, FxBuildHasher.hash_one(word))
        };
        let packed_words = [packed as u64, (packed >> 64) as u64];
        let Interner { arena, spans, table, .. } = self;
        let len = bytes.len() as u32;
        let found = table.find(hash, |entry| {
            entry.len == len
                && entry.packed == packed_words
                && (bytes.len() <= INLINE || {
                    let (start, end) = spans[entry.id as usize];
                    &arena.as_bytes()[start as usize..end as usize] == bytes
                })
        });
        if let Some(entry) = found {
            return entry.id;
        }
        let id = spans.len() as u32;
        let start = arena.len() as u32;
        arena.push_str(word);
        spans.push((start, arena.len() as u32));
        table.insert_unique(hash, Entry { hash, packed: packed_words, len, id }, |entry| entry.hash);
        id
    }

    /// The word with `id`.
    pub fn word(&self, id: u32) -> &str {
        let (start, end) = self.spans[id as usize];
        &self.arena[start as usize..end as usize]
    }

    /// Every word in id order.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        (0..self.spans.len() as u32).map(|id| self.word(id))
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// Up to 16 bytes, little-endian, zero-padded (lengths are compared separately, so padding is unambiguous).
///
/// Built from two overlapping loads OR-ed together (the overlap holds the same bytes twice) rather than by
/// copying into a zeroed buffer: a variable-length copy followed by a 16-byte load stalls store forwarding,
/// which made that copy the single costliest instruction of ingest.
#[inline]
pub(crate) fn pack(bytes: &[u8]) -> u128 {
    let len = bytes.len();
    let read_u64 = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let read_u32 = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    match len {
        0 => 0,
        1..=3 => {
            let middle = len / 2;
            u128::from(bytes[0])
                | u128::from(bytes[middle]) << (8 * middle)
                | u128::from(bytes[len - 1]) << (8 * (len - 1))
        }
        4..=7 => u128::from(read_u32(0)) | u128::from(read_u32(len - 4)) << (8 * (len - 4)),
        8..=16 => u128::from(read_u64(0)) | u128::from(read_u64(len - 8)) << (8 * (len - 8)),
        _ => unreachable!("only words of at most {INLINE} bytes are packed"),
    }
}

/// A hash of a packed word: both halves and the length mixed by multiplication, folded so that the high
/// bits (hashbrown's tag) and the low bits (its bucket) both depend on every byte.
#[inline]
fn hash_packed(packed: u128, len: usize) -> u64 {
    const K1: u64 = 0x9E37_79B9_7F4A_7C15;
    const K2: u64 = 0xD6E8_FEB8_6659_FD93;
    let low = packed as u64;
    let high = (packed >> 64) as u64;
    let mixed = (low ^ (len as u64).rotate_left(56)).wrapping_mul(K1) ^ high.wrapping_mul(K2);
    let product = u128::from(mixed) * u128::from(K1);
    product as u64 ^ (product >> 64) as u64
}

impl PartialEq for Interner {
    fn eq(&self, other: &Self) -> bool {
        self.words().eq(other.words())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_equals_zero_padding() {
        let text = b"abcdefghijklmnopq";
        for len in 0..=INLINE {
            let mut padded = [0u8; INLINE];
            padded[..len].copy_from_slice(&text[..len]);
            assert_eq!(pack(&text[..len]), u128::from_le_bytes(padded), "length {len}");
        }
    }

    #[test]
    fn ids_are_dense_and_stable() {
        let mut interner = Interner::default();
        let words = ["the", "cat", "the", "sat", "cat", "é"];
        let ids: Vec<u32> = words.iter().map(|word| interner.intern(word)).collect();
        assert_eq!(ids, [0, 1, 0, 2, 1, 3]);
        assert_eq!(interner.words().collect::<Vec<_>>(), ["the", "cat", "sat", "é"]);
        for index in 0..10_000 {
            interner.intern(&format!("w{index}"));
        }
        assert_eq!(interner.intern("sat"), 2, "ids survive the table growing");
        assert_eq!(interner.len(), 10_004);
        let long = "incomprehensibilities";
        assert_eq!(interner.intern(long), 10_004);
        assert_eq!(interner.intern("incomprehensibilitiez"), 10_005, "long words differing at the end");
        assert_eq!(interner.intern(long), 10_004);
        assert_eq!(interner.intern("a"), 10_006);
        assert_eq!(interner.intern("a\0"), 10_007, "zero padding is not a word's own zero byte");
        assert_eq!(interner.intern("."), 10_008);
        assert_eq!((interner.intern("a"), interner.intern(".")), (10_006, 10_008));
        assert_eq!(interner.word(10_007), "a\0");
    }
}
