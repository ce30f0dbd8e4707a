//! A per-book word table that stores every distinct word once, in one growing buffer.
//!
//! Tokenizing a book looks up each of its tokens; a `HashMap<String, u32>` would allocate a `String` per
//! distinct word per book (millions across a library). Here words live in one arena `String` and the hash
//! table holds only ids, so a new word costs an append and a lookup costs a hash and one comparison.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// Distinct words of one book with dense ids in order of first appearance.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    arena: String,
    /// Word id -> its byte range in `arena`.
    spans: Vec<(u32, u32)>,
    table: HashTable<u32>,
}

impl Interner {
    /// The id of `word`, adding it when new.
    pub fn intern(&mut self, word: &str) -> u32 {
        let hash = FxBuildHasher.hash_one(word);
        let Interner { arena, spans, table } = self;
        let text = |id: u32| {
            let (start, end) = spans[id as usize];
            &arena[start as usize..end as usize]
        };
        if let Some(&id) = table.find(hash, |&id| text(id) == word) {
            return id;
        }
        let id = spans.len() as u32;
        let start = arena.len() as u32;
        arena.push_str(word);
        spans.push((start, arena.len() as u32));
        let (arena, spans) = (&*arena, &*spans);
        table.insert_unique(hash, id, |&id| {
            let (start, end) = spans[id as usize];
            FxBuildHasher.hash_one(&arena[start as usize..end as usize])
        });
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

impl PartialEq for Interner {
    fn eq(&self, other: &Self) -> bool {
        self.words().eq(other.words())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
