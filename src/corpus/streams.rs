//! Token streams on disk: flat little-endian arrays that later stages memory-map.
//!
//! A split folder (`train/`, `valid/`) holds four files:
//! - `tokens.u32`: every token id of every sentence, concatenated (no `<eos>`; readers add it);
//! - `sentences.u64`: `n_sentences + 1` offsets into `tokens.u32`;
//! - `paragraphs.u64`: `n_paragraphs + 1` offsets into the sentences;
//! - `books.u64`: `n_books + 1` offsets into the paragraphs.
//!
//! So sentence `i` is `tokens[sentences[i]..sentences[i + 1]]`, and neighbouring sentences of one book (the
//! encoder's previous/current/next triples) and runs of sentences inside a paragraph (the decoder's passages)
//! are found without parsing anything.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use memmap2::Mmap;

use crate::util::Cause;
use crate::util::{IoContext, PathError};

pub const TOKENS_FILE: &str = "tokens.u32";
pub const SENTENCES_FILE: &str = "sentences.u64";
pub const PARAGRAPHS_FILE: &str = "paragraphs.u64";
pub const BOOKS_FILE: &str = "books.u64";

#[cfg(target_endian = "big")]
compile_error!("token streams are little-endian and memory-mapped as native arrays");

/// Token bytes written between early syncs of `tokens.u32` ([`EarlySync`]).
const SYNC_EVERY: u64 = 16 << 20;

/// Syncs a file on a thread of its own each time its writer asks, while the writer goes on. By the end most
/// of a large file is on disk, so its last sync, which the folder's rename must wait for, has little left to
/// write: the device's writing overlaps the copying instead of following it.
struct EarlySync {
    requests: mpsc::Sender<()>,
    thread: JoinHandle<std::io::Result<()>>,
}

impl EarlySync {
    fn start(file: &File) -> std::io::Result<EarlySync> {
        let file = file.try_clone()?;
        let (requests, received) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while received.recv().is_ok() {
                // Requests made during a sync are served by the next one.
                while received.try_recv().is_ok() {}
                file.sync_data()?;
            }
            Ok(())
        });
        Ok(EarlySync { requests, thread })
    }

    /// Asks for a sync of what has been written so far (a failed thread reports at [`EarlySync::finish`]).
    fn request(&self) {
        let _ = self.requests.send(());
    }

    /// Waits for the syncs asked for and returns the first error.
    fn finish(self) -> std::io::Result<()> {
        let EarlySync { requests, thread } = self;
        // Closing the channel ends the thread once it has served what was asked.
        drop(requests);
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// Appends books to a split folder.
pub struct SplitWriter {
    dir: PathBuf,
    tokens: BufWriter<File>,
    /// Token bytes written since the last early sync was asked for.
    unsynced_token_bytes: u64,
    tokens_sync: EarlySync,
    sentences: BufWriter<File>,
    paragraphs: BufWriter<File>,
    books: BufWriter<File>,
    n_tokens: u64,
    n_sentences: u64,
    n_paragraphs: u64,
    /// Scratch space for one book's offsets.
    offsets: Vec<u64>,
}

impl SplitWriter {
    /// Creates `dir` and its four files.
    pub fn create(dir: &Path) -> Result<SplitWriter, PathError> {
        std::fs::create_dir_all(dir).path_context("create folder", dir)?;
        let open = |name: &str| -> Result<BufWriter<File>, PathError> {
            let path = dir.join(name);
            let file = File::create(&path).path_context("create", &path)?;
            Ok(BufWriter::with_capacity(1 << 20, file))
        };
        let tokens = open(TOKENS_FILE)?;
        let tokens_path = dir.join(TOKENS_FILE);
        let tokens_sync = EarlySync::start(tokens.get_ref()).path_context("open a second handle on", &tokens_path)?;
        let mut writer = SplitWriter {
            dir: dir.to_path_buf(),
            tokens,
            unsynced_token_bytes: 0,
            tokens_sync,
            sentences: open(SENTENCES_FILE)?,
            paragraphs: open(PARAGRAPHS_FILE)?,
            books: open(BOOKS_FILE)?,
            n_tokens: 0,
            n_sentences: 0,
            n_paragraphs: 0,
            offsets: Vec::new(),
        };
        for name in [SENTENCES_FILE, PARAGRAPHS_FILE, BOOKS_FILE] {
            writer.write_offsets(name, &[0])?;
        }
        Ok(writer)
    }

    /// Appends one book given as global token ids and its sentence and paragraph lengths.
    pub fn add_book(
        &mut self,
        tokens: &[u32],
        sentence_lengths: &[u32],
        paragraph_lengths: &[u32],
    ) -> Result<(), PathError> {
        self.tokens.write_all(bytemuck::cast_slice(tokens)).map_err(|error| self.write_error(TOKENS_FILE, error))?;
        self.unsynced_token_bytes += std::mem::size_of_val(tokens) as u64;
        if self.unsynced_token_bytes >= SYNC_EVERY {
            self.tokens.flush().map_err(|error| self.write_error(TOKENS_FILE, error))?;
            self.tokens_sync.request();
            self.unsynced_token_bytes = 0;
        }
        // Offsets go out a book at a time: a write per sentence was a fifth of writing a corpus.
        let mut offsets = std::mem::take(&mut self.offsets);
        offsets.clear();
        offsets.extend(sentence_lengths.iter().map(|&length| {
            self.n_tokens += u64::from(length);
            self.n_tokens
        }));
        self.write_offsets(SENTENCES_FILE, &offsets)?;
        offsets.clear();
        offsets.extend(paragraph_lengths.iter().map(|&length| {
            self.n_sentences += u64::from(length);
            self.n_sentences
        }));
        self.write_offsets(PARAGRAPHS_FILE, &offsets)?;
        self.offsets = offsets;
        self.n_paragraphs += paragraph_lengths.len() as u64;
        self.write_offsets(BOOKS_FILE, &[self.n_paragraphs])
    }

    fn write_offsets(&mut self, name: &'static str, offsets: &[u64]) -> Result<(), PathError> {
        let writer = match name {
            SENTENCES_FILE => &mut self.sentences,
            PARAGRAPHS_FILE => &mut self.paragraphs,
            _ => &mut self.books,
        };
        let bytes: &[u8] = bytemuck::cast_slice(offsets);
        writer.write_all(bytes).map_err(|error| self.write_error(name, error))
    }

    /// The error for a failed write to `name`, its path built only then.
    fn write_error(&self, name: &str, error: std::io::Error) -> PathError {
        PathError::new("write", &self.dir.join(name), error)
    }

    /// Flushes and syncs every file.
    pub fn finish(self) -> Result<(), PathError> {
        let tokens_path = self.dir.join(TOKENS_FILE);
        self.tokens_sync.finish().path_context("sync", &tokens_path)?;
        for (name, writer) in [
            (TOKENS_FILE, self.tokens),
            (SENTENCES_FILE, self.sentences),
            (PARAGRAPHS_FILE, self.paragraphs),
            (BOOKS_FILE, self.books),
        ] {
            let path = self.dir.join(name);
            let file = writer.into_inner().map_err(|error| PathError::new("flush", &path, error.into_error()))?;
            file.sync_all().path_context("sync", &path)?;
        }
        Ok(())
    }
}

/// Why a split folder could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("`{path}` is damaged")]
    Damaged {
        path: PathBuf,
        #[source]
        source: Cause,
    },
}

/// A memory-mapped split: nothing is read until asked for.
#[derive(Debug)]
pub struct SplitStreams {
    tokens: Mmap,
    sentences: Mmap,
    paragraphs: Mmap,
    books: Mmap,
}

impl SplitStreams {
    /// Maps the four files of `dir` and checks that their offsets agree.
    pub fn open(dir: &Path) -> Result<SplitStreams, StreamError> {
        let map = |name: &str| -> Result<Mmap, PathError> {
            let path = dir.join(name);
            let file = File::open(&path).path_context("open", &path)?;
            // SAFETY: the corpus folder is written once and never modified in place; a concurrent writer
            // would build a new folder and rename it, which leaves this mapping intact.
            unsafe { Mmap::map(&file) }.path_context("memory-map", &path)
        };
        let streams = SplitStreams {
            tokens: map(TOKENS_FILE)?,
            sentences: map(SENTENCES_FILE)?,
            paragraphs: map(PARAGRAPHS_FILE)?,
            books: map(BOOKS_FILE)?,
        };
        let damaged = |name: &str, source: Cause| StreamError::Damaged { path: dir.join(name), source };
        for (name, bytes, width) in [
            (TOKENS_FILE, &streams.tokens, 4),
            (SENTENCES_FILE, &streams.sentences, 8),
            (PARAGRAPHS_FILE, &streams.paragraphs, 8),
            (BOOKS_FILE, &streams.books, 8),
        ] {
            if bytes.len() % width != 0 || (width == 8 && bytes.is_empty()) {
                return Err(damaged(
                    name,
                    format!("its size, {} bytes, is not a whole number of entries", bytes.len()).into(),
                ));
            }
        }
        let checks = [
            (SENTENCES_FILE, streams.sentence_offsets(), streams.tokens().len() as u64),
            (PARAGRAPHS_FILE, streams.paragraph_offsets(), streams.n_sentences() as u64),
            (BOOKS_FILE, streams.book_offsets(), streams.n_paragraphs() as u64),
        ];
        for (name, offsets, end) in checks {
            if offsets[0] != 0 || offsets[offsets.len() - 1] != end || offsets.windows(2).any(|pair| pair[0] > pair[1])
            {
                return Err(damaged(name, Cause::from(format!("offsets must rise from 0 to {end}"))));
            }
        }
        Ok(streams)
    }

    /// Every token of the split.
    pub fn tokens(&self) -> &[u32] {
        bytemuck::cast_slice(&self.tokens)
    }

    fn sentence_offsets(&self) -> &[u64] {
        bytemuck::cast_slice(&self.sentences)
    }

    fn paragraph_offsets(&self) -> &[u64] {
        bytemuck::cast_slice(&self.paragraphs)
    }

    fn book_offsets(&self) -> &[u64] {
        bytemuck::cast_slice(&self.books)
    }

    pub fn n_sentences(&self) -> usize {
        self.sentence_offsets().len() - 1
    }

    pub fn n_paragraphs(&self) -> usize {
        self.paragraph_offsets().len() - 1
    }

    pub fn n_books(&self) -> usize {
        self.book_offsets().len() - 1
    }

    /// The token ids of sentence `index`.
    pub fn sentence(&self, index: usize) -> &[u32] {
        let offsets = self.sentence_offsets();
        &self.tokens()[offsets[index] as usize..offsets[index + 1] as usize]
    }

    /// The sentence indices of paragraph `index`.
    pub fn paragraph_sentences(&self, index: usize) -> Range<usize> {
        let offsets = self.paragraph_offsets();
        offsets[index] as usize..offsets[index + 1] as usize
    }

    /// The paragraph indices of book `index` (books in this split's order).
    pub fn book_paragraphs(&self, index: usize) -> Range<usize> {
        let offsets = self.book_offsets();
        offsets[index] as usize..offsets[index + 1] as usize
    }

    /// The sentence indices of book `index`.
    pub fn book_sentences(&self, index: usize) -> Range<usize> {
        let paragraphs = self.book_paragraphs(index);
        let offsets = self.paragraph_offsets();
        offsets[paragraphs.start] as usize..offsets[paragraphs.end] as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_books_read_back_with_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let split = dir.path().join("train");
        let mut writer = SplitWriter::create(&split).unwrap();
        writer.add_book(&[5, 6, 7, 8, 9], &[2, 3], &[1, 1]).unwrap();
        writer.add_book(&[10], &[1], &[1]).unwrap();
        writer.finish().unwrap();

        let streams = SplitStreams::open(&split).unwrap();
        assert_eq!((streams.n_books(), streams.n_paragraphs(), streams.n_sentences()), (2, 3, 3));
        assert_eq!(streams.sentence(1), [7, 8, 9]);
        assert_eq!(streams.book_sentences(0), 0..2);
        assert_eq!(streams.book_sentences(1), 2..3);
        assert_eq!(streams.paragraph_sentences(2), 2..3);
        assert_eq!(streams.sentence(2), [10]);
    }

    /// Books past [`SYNC_EVERY`] bytes are synced early, on the side, and read back whole.
    #[test]
    fn large_splits_are_synced_early_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SplitWriter::create(dir.path()).unwrap();
        let book: Vec<u32> = (0..(SYNC_EVERY / 4 * 3 / 2) as u32).collect();
        for _ in 0..3 {
            writer.add_book(&book, &[book.len() as u32], &[1]).unwrap();
        }
        writer.finish().unwrap();
        let streams = SplitStreams::open(dir.path()).unwrap();
        assert_eq!(streams.n_books(), 3);
        assert_eq!(streams.tokens().len(), 3 * book.len());
        assert_eq!(streams.sentence(2), &book[..]);
    }

    #[test]
    fn damaged_offsets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SplitWriter::create(dir.path()).unwrap();
        writer.add_book(&[1, 2], &[2], &[1]).unwrap();
        writer.finish().unwrap();
        std::fs::write(dir.path().join(TOKENS_FILE), [1u8, 0, 0, 0]).unwrap();
        let error = crate::util::error_chain(&SplitStreams::open(dir.path()).unwrap_err());
        assert!(error.contains("sentences.u64") && error.contains("rise from 0 to 1"), "{error}");
    }
}
