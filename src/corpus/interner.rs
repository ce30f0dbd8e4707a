//! A word table that stores every distinct word once, in one growing buffer.
//!
//! Tokenizing a book looks up each of its tokens; a `HashMap<String, u32>` would allocate a `String` per
//! distinct word. Here words live in one arena `String`, so a new word costs an append and a lookup costs a
//! hash and one comparison.
//!
//! Lookups are the hottest part of ingest, so the common cases skip the general path: a one-byte ASCII token
//! (punctuation, `a`, `i`: about a fifth of all tokens) is a direct table index, and a word of at most 16
//! bytes (nearly all others) is packed into a `u128` that is hashed, and compared as two machine words with
//! the packed word its table slot holds, without touching the arena.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::text::tokenize::lowercase_into;

/// Words up to this many bytes are compared as a packed `u128`.
pub(crate) const INLINE: usize = 16;
/// No id yet (in the one-byte table).
const NONE: u32 = u32::MAX;
/// The top bit of each byte of a packed word: none is set when the word is ASCII.
const HIGH_BITS: u128 = u128::from_le_bytes([0x80; 16]);
/// One in each byte of a packed word.
const ONES: u128 = u128::from_le_bytes([0x01; 16]);

/// Where word `id` is, in `Interner::keys[id]`: its byte range in the arena.
#[derive(Debug, Clone, Copy)]
struct Key {
    start: u32,
    end: u32,
}

/// One place of [`Interner::slots`]: a word of at most [`INLINE`] bytes, its first eight packed bytes, length
/// and id, in 16 bytes.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(16))]
struct Slot {
    /// The first eight packed bytes: the whole word up to eight bytes; the rest is in `Interner::highs`.
    low: u64,
    len: u32,
    /// [`NONE`] for an empty slot.
    id: u32,
}

impl Slot {
    const EMPTY: Slot = Slot { low: 0, len: u32::MAX, id: NONE };
}

impl Key {
    fn len(&self) -> u32 {
        self.end - self.start
    }
}

/// Distinct words (of the books one ingest worker reads) with dense ids in order of first appearance.
///
/// Short words sit in a table of near-whole entries (16-byte slots holding a word's first eight bytes, its
/// length and id; bytes 8 to 15 of the few longer ones in `highs`), long ones in a table of bare ids whose
/// words are compared in the arena. With one table per book, a table of bare ids beside a vector of keys
/// was as fast and smaller; a worker's table holds some 60,000 words, and there reading the slot and then
/// the key it names cost 1.5-2% more ingest time than reading one 32-byte slot, which in turn cost 1-3% more
/// CPU than 16-byte slots in a table half the size (measured on the shared books, 2026-12-01).
#[derive(Debug, Clone)]
pub struct Interner {
    arena: String,
    /// Word id -> its key.
    keys: Vec<Key>,
    /// Word id -> its hash, read only when the table grows.
    hashes: Vec<u64>,
    /// Words longer than [`INLINE`] bytes, by id.
    table: HashTable<u32>,
    /// Shorter words, open addressing with linear probing: each slot holds the packed word itself (up to
    /// eight bytes; the rest in `highs`), so most lookups read one slot and nothing else. Kept at most half
    /// full.
    slots: Vec<Slot>,
    /// Word id -> packed bytes 8 to 15 of a short word (else 0), compared only for words of over 8 bytes.
    highs: Vec<u64>,
    /// ASCII byte -> id of the one-byte word, or [`NONE`].
    one_byte: Box<[u32; 128]>,
}

impl Default for Interner {
    fn default() -> Interner {
        Interner::with_capacity(0)
    }
}

impl Interner {
    /// An empty table with room for `words` distinct words, so that a book's table need not regrow.
    pub fn with_capacity(words: usize) -> Interner {
        Interner {
            arena: String::with_capacity(words * 8),
            keys: Vec::with_capacity(words),
            hashes: Vec::with_capacity(words),
            table: HashTable::new(),
            slots: vec![Slot::EMPTY; (words * 2).next_power_of_two().max(16)],
            highs: Vec::with_capacity(words),
            one_byte: Box::new([NONE; 128]),
        }
    }

    /// The id of `word`, adding it when new.
    #[inline]
    pub fn intern(&mut self, word: &str) -> u32 {
        let bytes = word.as_bytes();
        if bytes.len() > INLINE {
            return self.intern_long(word);
        }
        let packed = pack(bytes);
        if let [byte] = bytes
            && byte.is_ascii()
        {
            return self.intern_one_byte(packed);
        }
        self.intern_short(packed, bytes.len())
    }

    /// The id of `word` lowercased (per character, as [`lowercase_into`] does), adding it when new.
    ///
    /// A short ASCII word, nearly every word of a book, is lowercased inside its packed form; others go through
    /// `buffer`. This spares lowercasing each sentence into a copy before splitting it.
    #[inline]
    pub fn intern_lowercased(&mut self, word: &str, buffer: &mut String) -> u32 {
        self.intern_lowercased_in(word, None, buffer)
    }

    /// [`Interner::intern_lowercased`] for a word whose text goes on for at least 16 bytes from its start
    /// (`window`): a short word is then packed by one load and a mask instead of by its length's case.
    #[inline]
    pub fn intern_lowercased_in(&mut self, word: &str, window: Option<&[u8; INLINE]>, buffer: &mut String) -> u32 {
        let bytes = word.as_bytes();
        if bytes.len() <= INLINE {
            let packed = match window {
                Some(window) => u128::from_le_bytes(*window) & (u128::MAX >> (128 - 8 * bytes.len())),
                None => pack(bytes),
            };
            if packed & HIGH_BITS == 0 {
                let lowered = ascii_lowercase_packed(packed);
                return if bytes.len() == 1 {
                    self.intern_one_byte(lowered)
                } else {
                    self.intern_short(lowered, bytes.len())
                };
            }
        }
        lowercase_into(buffer, word);
        self.intern(buffer)
    }

    /// A one-byte ASCII word, packed: a direct table index.
    #[inline]
    fn intern_one_byte(&mut self, packed: u128) -> u32 {
        let byte = packed as u8 as usize;
        let id = self.one_byte[byte];
        if id != NONE {
            return id;
        }
        let id = self.intern_short(packed, 1);
        self.one_byte[byte] = id;
        id
    }

    /// A word of at most [`INLINE`] bytes, given packed: hashed and compared as two machine words.
    #[inline(always)]
    fn intern_short(&mut self, packed: u128, len: usize) -> u32 {
        let hash = hash_packed(packed, len);
        let len = len as u32;
        let (low, high) = (packed as u64, (packed >> 64) as u64);
        let mask = self.slots.len() - 1;
        let mut index = hash as usize & mask;
        loop {
            let slot = &self.slots[index];
            if slot.low == low && slot.len == len && (len <= 8 || self.highs[slot.id as usize] == high) {
                return slot.id;
            }
            if slot.id == NONE {
                break;
            }
            index = (index + 1) & mask;
        }
        self.insert_short(index, packed, len, hash)
    }

    #[cold]
    fn insert_short(&mut self, index: usize, packed: u128, len: u32, hash: u64) -> u32 {
        let bytes = packed.to_le_bytes();
        let word = std::str::from_utf8(&bytes[..len as usize]).expect("packed from a word's bytes");
        let id = self.push_word(word, hash);
        self.highs[id as usize] = (packed >> 64) as u64;
        self.slots[index] = Slot { low: packed as u64, len, id };
        // Every word is in `slots` or, when long, in `table`.
        let n_short = self.keys.len() - self.table.len();
        if n_short * 2 > self.slots.len() {
            self.grow_slots();
        }
        id
    }

    /// Doubles `slots`, placing each short word again by its hash.
    fn grow_slots(&mut self) {
        let doubled = vec![Slot::EMPTY; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        let mask = self.slots.len() - 1;
        for slot in old.into_iter().filter(|slot| slot.id != NONE) {
            let mut index = self.hashes[slot.id as usize] as usize & mask;
            while self.slots[index].id != NONE {
                index = (index + 1) & mask;
            }
            self.slots[index] = slot;
        }
    }

    /// A word longer than [`INLINE`] bytes: hashed whole and compared with its copy in the arena.
    fn intern_long(&mut self, word: &str) -> u32 {
        let hash = FxBuildHasher.hash_one(word);
        let Interner { arena, keys, table, .. } = self;
        let len = word.len() as u32;
        let found = table.find(hash, |&id| {
            let key = &keys[id as usize];
            key.len() == len && &arena.as_bytes()[key.start as usize..key.end as usize] == word.as_bytes()
        });
        if let Some(&id) = found {
            return id;
        }
        let id = self.push_word(word, hash);
        let hashes = &self.hashes;
        self.table.insert_unique(hash, id, |&id| hashes[id as usize]);
        id
    }

    /// Gives `word` the next id.
    #[cold]
    fn push_word(&mut self, word: &str, hash: u64) -> u32 {
        let id = self.keys.len() as u32;
        let start = self.arena.len() as u32;
        self.arena.push_str(word);
        self.keys.push(Key { start, end: self.arena.len() as u32 });
        self.hashes.push(hash);
        self.highs.push(0);
        id
    }

    /// The word with `id`.
    pub fn word(&self, id: u32) -> &str {
        let key = self.keys[id as usize];
        &self.arena[key.start as usize..key.end as usize]
    }

    /// Every word in id order.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        (0..self.keys.len() as u32).map(|id| self.word(id))
    }

    /// The hash [`Interner::words_with_hashes`] gives `word`.
    pub fn hash_of(word: &str) -> u64 {
        let bytes = word.as_bytes();
        if bytes.len() <= INLINE { hash_packed(pack(bytes), bytes.len()) } else { FxBuildHasher.hash_one(word) }
    }

    /// Every word in id order with its hash, which depends on the word alone (not on the book), so that
    /// tables merging many books' words can reuse it instead of hashing each word again.
    pub fn words_with_hashes(&self) -> impl Iterator<Item = (&str, u64)> {
        self.words().zip(self.hashes.iter().copied())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
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

/// A packed ASCII word with `A`-`Z` lowercased, all bytes at once. Adding `0x80 - b'A'` to a byte below 0x80
/// sets its top bit exactly when the byte is at least `A` (and carries into no other byte); likewise for the
/// byte after `Z`; where the first is set and the second is not, the byte is a capital and gains 0x20.
#[inline]
fn ascii_lowercase_packed(packed: u128) -> u128 {
    let at_least_a = packed + ONES * u128::from(0x80 - b'A');
    let after_z = packed + ONES * u128::from(0x80 - b'Z' - 1);
    let capitals = at_least_a & !after_z & HIGH_BITS;
    packed | capitals >> 2
}

/// A hash of a packed word: the high half scrambled by one multiplication and combined with the low half
/// and the length, then one full 64x64-bit product folded, so that the high bits (hashbrown's tag) and the
/// low bits (its bucket) both depend on every byte. One product on the lookup's critical path, not two:
/// a lookup waits on its hash.
#[inline]
fn hash_packed(packed: u128, len: usize) -> u64 {
    const K1: u64 = 0x9E37_79B9_7F4A_7C15;
    const K2: u64 = 0xD6E8_FEB8_6659_FD93;
    let low = packed as u64;
    let high = (packed >> 64) as u64;
    let product = u128::from(low ^ high.wrapping_mul(K2) ^ len as u64) * u128::from(K1);
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
    fn packed_lowercasing_equals_lowercasing_the_word() {
        let text: Vec<u8> = (0u8..0x80).collect();
        for window in text.windows(INLINE).chain(text.windows(3)) {
            let lowered = window.to_ascii_lowercase();
            assert_eq!(ascii_lowercase_packed(pack(window)), pack(&lowered), "{window:?}");
        }
    }

    #[test]
    fn lowercased_interning_equals_interning_the_lowercased_word() {
        let words = ["The", "THE", "the", "A", "a", "Éte", "éTE", "MacDonald-Smithsonianisms", "İ", "Z@[`{", "x"];
        let (mut direct, mut lowered) = (Interner::default(), Interner::default());
        let mut buffer = String::new();
        for word in words {
            let mut lower = String::new();
            lowercase_into(&mut lower, word);
            assert_eq!(lowered.intern_lowercased(word, &mut buffer), direct.intern(&lower), "{word}");
        }
        assert_eq!(lowered, direct);
        assert_eq!(lowered.words().collect::<Vec<_>>()[..3], ["the", "a", "éte"]);
        // Packed from a 16-byte window of the text that follows, the same ids.
        let mut windowed = Interner::default();
        for word in words {
            let text = format!("{word} AND MORE TEXT AFTER IT");
            let window = text.as_bytes()[..INLINE].try_into().ok();
            assert_eq!(
                windowed.intern_lowercased_in(&text[..word.len()], window, &mut buffer),
                direct.intern_lowercased(word, &mut buffer),
                "{word}"
            );
        }
        assert_eq!(windowed, direct);
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
        for index in 0..10_000 {
            assert_eq!(interner.intern(&format!("w{index}")), index + 4, "w{index} after growing");
        }
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

    /// Words of 9 to 16 bytes that agree in the eight bytes their slot holds are told apart by the rest.
    #[test]
    fn words_sharing_their_first_eight_bytes_stay_apart() {
        let mut interner = Interner::default();
        let words = ["abcdefgh", "abcdefghi", "abcdefghj", "abcdefghij", "abcdefghijklmnop", "abcdefghijklmnoq"];
        let ids: Vec<u32> = words.iter().map(|word| interner.intern(word)).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4, 5]);
        for index in 0..5_000 {
            interner.intern(&format!("abcdefgh{index}"));
        }
        for (id, word) in words.iter().enumerate() {
            assert_eq!(interner.intern(word), id as u32, "{word} after growing");
            assert_eq!(interner.word(id as u32), *word);
        }
        assert_eq!(interner.intern("abcdefgh4999"), 5_005);
    }
}
