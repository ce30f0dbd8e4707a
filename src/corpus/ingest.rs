//! `storytool ingest`: books on disk into a corpus folder.
//!
//! Reads every book in parallel (decode, clean, split, tokenize against its worker's word table), drops
//! duplicates, holds a few books out for validation, builds the vocabulary from the training books, remaps
//! each book to it and writes the folder. Everything is written into a staging folder that is renamed into
//! place at the end, so an interrupted run leaves nothing that looks like a corpus.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use hashbrown::HashTable;
use rayon::prelude::*;

use super::book::{BookTokens, WordTable, tokenize_book_into};
use super::decode::{Encoding, NotText, decode};
use super::discover::{BookSource, DiscoverError, Shelf, ShelvesFound, Skipped, discover_shelves};
use super::interner::Interner;
use super::manifest::*;
use super::stats::{StatsError, write_stats};
use super::streams::SplitWriter;
use crate::config::Config;
use crate::progress::Progress;
use crate::text::{UNK_ID, Vocabulary, VocabularyError};
use crate::util::atomic::{StagingDir, StagingError, write_json};
use crate::util::cancel::{CancelFlag, Interrupted};
use crate::util::{IoContext, PathError, hash};

/// What to ingest and where to put it.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    /// The book folders, each with its catalogue: one corpus of them all, books named from the folder
    /// they share.
    pub shelves: Vec<Shelf>,
    pub out: PathBuf,
    pub force: bool,
    pub config: Config,
    /// The command line, recorded in the manifest.
    pub command: Vec<String>,
    /// Set to stop early (Ctrl-C); ingest then returns [`Interrupted`] and writes nothing.
    pub cancel: CancelFlag,
    /// A model's `tokenizer.json` to tokenize with instead of building a vocabulary from the books: novels
    /// it never saw become a corpus an existing encoder or decoder can read (words it lacks are `<unk>`).
    pub vocabulary: Option<PathBuf>,
}

impl IngestRequest {
    /// The books of `books_dir` (genre folders, no catalogue) into a new corpus at `out`, with a vocabulary
    /// of their own: the plainest request; the other fields can be set on the result.
    pub fn new(books_dir: PathBuf, out: PathBuf, config: Config) -> IngestRequest {
        IngestRequest {
            shelves: vec![Shelf { books_dir, catalogue: None }],
            out,
            force: false,
            config,
            command: Vec::new(),
            cancel: CancelFlag::new(),
            vocabulary: None,
        }
    }
}

/// Why ingest failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Output(#[from] StagingError),
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Vocabulary(#[from] VocabularyError),
    #[error(transparent)]
    Stats(#[from] StatsError),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
    #[error("no book could be read from `{books_dir}` ({skipped} files skipped)")]
    NoBooks { books_dir: PathBuf, skipped: usize },
}

/// Counts for one row of the summary table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryRow {
    pub books: u64,
    pub sentences: u64,
    pub tokens: u64,
}

/// What ingest did, for the CLI to print.
#[derive(Debug, Clone)]
pub struct IngestReport {
    pub out: PathBuf,
    pub manifest: CorpusManifest,
    /// Per catalogue tag; books without tags under `(none)`.
    pub by_tag: BTreeMap<String, SummaryRow>,
    /// Per configured genre.
    pub by_genre: BTreeMap<String, SummaryRow>,
    pub total: SummaryRow,
    /// Configured genre tags that no book carries.
    pub unused_tags: Vec<String>,
    pub input_bytes: u64,
    pub elapsed: Duration,
    /// Wall time of each phase, in order.
    pub timings: Vec<(&'static str, Duration)>,
}

/// A book that was read, before it is placed in a split.
struct ReadBook {
    source: BookSource,
    input: InputFile,
    encoding: Encoding,
    /// Its text as ids of the word table of the worker that read it, `tables[table]`.
    tokens: BookTokens,
    table: usize,
}

/// Words a worker is ready for before its table grows: about what two novels bring.
const WORKER_TABLE_WORDS: usize = 1 << 16;

/// Builds the corpus folder described by `request`.
pub fn ingest(request: &IngestRequest, progress: &dyn Progress) -> Result<IngestReport, IngestError> {
    let started = Instant::now();
    let given_vocabulary = request.vocabulary.as_deref().map(Vocabulary::load).transpose()?;
    let staging = StagingDir::new(&request.out, request.force)?;
    let ShelvesFound { root, discovery: found } = discover_shelves(&request.shelves)?;
    let mut skipped = found.skipped;

    let sizes: Vec<u64> = found.books.iter().map(|book| book.path.metadata().map_or(0, |meta| meta.len())).collect();
    let total_bytes: u64 = sizes.iter().sum();
    progress.set_total(total_bytes);
    progress.set_message("reading books");
    let lowercase = given_vocabulary.as_ref().map_or(request.config.corpus.lowercase, Vocabulary::lowercase);
    let cancel = &request.cancel;
    // The largest books first, so that no thread is left with a long book at the end while the others idle;
    // the results go back into the catalogue's order, which later steps (duplicates, splits) follow.
    let mut by_size: Vec<(usize, BookSource)> = found.books.into_iter().enumerate().collect();
    by_size.sort_by_key(|(index, _)| std::cmp::Reverse(sizes[*index]));
    let (mut tables, mut in_size_order) = read_books(by_size, lowercase, cancel, progress);
    in_size_order.sort_by_key(|(index, _)| *index);
    let results = in_size_order.into_iter().map(|(_, result)| result);
    progress.finish();
    cancel.check()?;
    let mut timings = vec![("read, clean and tokenize books", started.elapsed())];
    let mut phase_started = Instant::now();
    let mut phase = |name: &'static str| {
        timings.push((name, phase_started.elapsed()));
        phase_started = Instant::now();
    };

    let mut books = Vec::new();
    let mut by_hash: HashMap<String, usize> = HashMap::new();
    for result in results.flatten() {
        let book = match result {
            Ok(book) => book,
            Err(skip) => {
                skipped.push(skip);
                continue;
            }
        };
        if let Some(&first) = by_hash.get(&book.input.blake3) {
            let kept: &mut ReadBook = &mut books[first];
            let mut reason = format!("duplicate content of `{}`", kept.source.file);
            let new_tags: Vec<String> =
                book.source.tags.iter().filter(|tag| !kept.source.tags.contains(tag)).cloned().collect();
            if !new_tags.is_empty() {
                reason.push_str(&format!("; its tags ({}) were added to that book", new_tags.join(", ")));
                kept.source.tags.extend(new_tags);
                kept.source.tags.sort();
            }
            // Its words were counted in its worker's table: a duplicate must not count twice.
            tables[book.table].uncount(&book.tokens.tokens);
            skipped.push(Skipped { file: book.source.file, reason });
            continue;
        }
        by_hash.insert(book.input.blake3.clone(), books.len());
        books.push(book);
    }
    if books.is_empty() {
        return Err(IngestError::NoBooks { books_dir: root, skipped: skipped.len() });
    }

    phase("remove duplicates");
    let valid = choose_validation_books(&books, request.config.corpus.valid_books);
    let vocabulary = match given_vocabulary {
        Some(vocabulary) => vocabulary,
        None => {
            // The tables counted every book read; the vocabulary is the training books'.
            for (book, _) in books.iter().zip(&valid).filter(|(_, valid)| **valid) {
                tables[book.table].uncount(&book.tokens.tokens);
            }
            build_vocabulary(&tables, request.config.corpus.vocab_size, lowercase)
        }
    };

    phase("build the vocabulary");
    let vocabulary_ids = VocabularyIds::new(&vocabulary);
    let to_vocabulary: Vec<Vec<u32>> = tables.par_iter().map(|table| vocabulary_ids.ids_of(table)).collect();
    drop(tables);
    let members_of_splits: Vec<(&str, Vec<usize>)> = SPLITS
        .iter()
        .map(|&split| (split, (0..books.len()).filter(|&index| valid[index] == (split == "valid")).collect()))
        .collect();

    // Each split's token streams are written on a thread of their own as this one remaps the split's books
    // to the vocabulary, a book at a time in the split's order: copying into the files and syncing them, the
    // longest part, start with the first book instead of after the last, and the remapped book is still in
    // the cache when its writer reads it. The vocabulary, index and statistics follow on this thread.
    cancel.check()?;
    let out = staging.path();
    // The tokens are taken out of the books: the writers borrow them while this thread reads the rest.
    let mut tokens: Vec<BookTokens> = books.iter_mut().map(|book| std::mem::take(&mut book.tokens)).collect();
    let books = &books;
    let (records, splits, genres) = std::thread::scope(|scope| -> Result<_, IngestError> {
        let mut senders = Vec::with_capacity(members_of_splits.len());
        let mut writers = Vec::with_capacity(members_of_splits.len());
        for (split, _) in &members_of_splits {
            let (sender, received) = mpsc::channel::<&BookTokens>();
            writers.push(scope.spawn(move || write_split(&out.join(split), received)));
            senders.push(sender);
        }
        let remapped = remap_for_writers(&mut tokens, books, &to_vocabulary, &members_of_splits, &senders);
        drop(senders);
        let (records, splits) = book_records(books, &remapped, &members_of_splits);
        let genres = GenreIndex::build(&records, &request.config.genres);
        vocabulary.save(&out.join(TOKENIZER_FILE))?;
        write_json(&out.join(BOOKS_FILE), &records)?;
        write_json(&out.join(GENRES_FILE), &genres)?;
        write_stats(&out.join(STATS_FILE), &records)?;
        for writer in writers {
            writer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        }
        Ok((records, splits, genres))
    })?;
    phase("remap and write token streams, vocabulary, index and statistics");

    let mut shelves = Vec::with_capacity(request.shelves.len());
    for shelf in &request.shelves {
        let catalogue = match &shelf.catalogue {
            Some(path) => {
                let bytes = std::fs::read(path).path_context("read", path)?;
                Some(InputFile {
                    path: path.display().to_string(),
                    bytes: bytes.len() as u64,
                    blake3: hash::content_hash(&bytes),
                })
            }
            None => None,
        };
        shelves.push(ShelfInput { books_dir: shelf.books_dir.display().to_string(), catalogue });
    }
    // One folder keeps the manifest as it always was; several are listed.
    let (catalogue, shelves) = match shelves.len() {
        1 => (shelves.pop().and_then(|shelf| shelf.catalogue), Vec::new()),
        _ => (None, shelves),
    };
    let mut files: Vec<InputFile> = books.iter().map(|book| book.input.clone()).collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = CorpusManifest {
        format: CORPUS_FORMAT.into(),
        format_version: CORPUS_FORMAT_VERSION,
        created_by: CreatedBy::now(request.command.clone()),
        config: request.config.clone(),
        inputs: CorpusInputs { books_dir: root.display().to_string(), catalogue, shelves, files },
        vocabulary: VocabularyInfo {
            file: TOKENIZER_FILE.into(),
            size: vocabulary.len(),
            requested_size: request.config.corpus.vocab_size,
            lowercase,
            hash: vocabulary.content_hash(),
        },
        splits,
        skipped,
    };
    write_json(&out.join(MANIFEST_FILE), &manifest)?;
    cancel.check()?;
    let out = staging.commit()?;
    phase("write manifest and move into place");

    let (by_tag, by_genre, total, unused_tags) = summarise(&records, &genres);
    Ok(IngestReport {
        out,
        manifest,
        by_tag,
        by_genre,
        total,
        unused_tags,
        input_bytes: total_bytes,
        elapsed: started.elapsed(),
        timings,
    })
}

/// Reads, decodes and tokenizes the books of `queue` on every thread of the current pool, in the queue's
/// order, each thread against a word table of its own: the tables, indexed by thread, and each book with its
/// place in the catalogue. Once `cancel` is set, the books not yet started come back as `None`.
fn read_books(
    queue: Vec<(usize, BookSource)>,
    lowercase: bool,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> (Vec<WordTable>, Vec<(usize, Option<Result<ReadBook, Skipped>>)>) {
    let queue = Mutex::new(queue.into_iter());
    let next = || queue.lock().unwrap_or_else(PoisonError::into_inner).next();
    let workers: Vec<_> = rayon::broadcast(|context| {
        // Made at the first book, not before: on a machine with more threads than books some get none.
        let mut table: Option<WordTable> = None;
        let mut read = Vec::new();
        while let Some((index, source)) = next() {
            let book = (!cancel.is_cancelled()).then(|| {
                let table = table.get_or_insert_with(|| WordTable::with_capacity(WORKER_TABLE_WORDS));
                read_book(source, lowercase, table, context.index(), progress)
            });
            read.push((index, book));
        }
        (table.unwrap_or_default(), read)
    });
    let mut tables = Vec::with_capacity(workers.len());
    let mut books = Vec::new();
    for (table, read) in workers {
        tables.push(table);
        books.extend(read);
    }
    (tables, books)
}

fn read_book(
    source: BookSource,
    lowercase: bool,
    table: &mut WordTable,
    table_index: usize,
    progress: &dyn Progress,
) -> Result<ReadBook, Skipped> {
    let skip = |reason: String| Skipped { file: source.file.clone(), reason };
    let bytes = std::fs::read(&source.path).map_err(|error| skip(format!("cannot be read: {error}")))?;
    progress.advance(bytes.len() as u64);
    let input = InputFile { path: source.file.clone(), bytes: bytes.len() as u64, blake3: hash::content_hash(&bytes) };
    let (text, encoding) = decode(bytes).map_err(|reason| match reason {
        NotText::Empty => skip("empty".into()),
        NotText::Binary => skip("binary, not text".into()),
    })?;
    let tokens = tokenize_book_into(&text, lowercase, table);
    if tokens.n_sentences() == 0 {
        return Err(skip("no prose left after removing headers, headings and licence text".into()));
    }
    Ok(ReadBook { source, input, encoding, tokens, table: table_index })
}

/// Remaps the books of each split (`members_of_splits`: indices into `books` and `tokens`) to the vocabulary
/// in the split's order, handing each to its split's writer (`senders`, in the same order) once it is done.
/// Returns every book's tokens and how many of them became `<unk>`, by index.
fn remap_for_writers<'t>(
    tokens: &'t mut [BookTokens],
    books: &[ReadBook],
    to_vocabulary: &[Vec<u32>],
    members_of_splits: &[(&str, Vec<usize>)],
    senders: &[mpsc::Sender<&'t BookTokens>],
) -> Vec<(&'t BookTokens, u64)> {
    let mut to_remap: Vec<Option<&mut BookTokens>> = tokens.iter_mut().map(Some).collect();
    let mut remapped = vec![None; books.len()];
    for ((_, members), sender) in members_of_splits.iter().zip(senders) {
        for &index in members {
            let book = to_remap[index].take().expect("a book is in one split");
            let unknown = remap_to_vocabulary(book, &to_vocabulary[books[index].table]);
            let book: &BookTokens = book;
            remapped[index] = Some((book, unknown));
            // A writer that stopped has its error reported when it is joined.
            let _ = sender.send(book);
        }
    }
    remapped.into_iter().map(|book| book.expect("every book is in a split")).collect()
}

/// The record of every book, sorted by file and numbered, and the counts of each split.
fn book_records(
    books: &[ReadBook],
    remapped: &[(&BookTokens, u64)],
    members_of_splits: &[(&str, Vec<usize>)],
) -> (Vec<BookRecord>, BTreeMap<String, SplitCounts>) {
    let mut records = Vec::with_capacity(books.len());
    let mut splits: BTreeMap<String, SplitCounts> = BTreeMap::new();
    for (split, members) in members_of_splits {
        let counts = splits.entry(split.to_string()).or_default();
        for (index_in_split, &index) in members.iter().enumerate() {
            let (tokens, unknown_tokens) = remapped[index];
            let book = &books[index];
            let n_tokens = tokens.n_tokens() as u64;
            counts.books += 1;
            counts.paragraphs += tokens.n_paragraphs() as u64;
            counts.sentences += tokens.n_sentences() as u64;
            counts.tokens += n_tokens;
            counts.unknown_tokens += unknown_tokens;
            records.push(BookRecord {
                id: 0,
                file: book.source.file.clone(),
                title: book.source.title.clone(),
                author: book.source.author.clone(),
                year: book.source.year.clone(),
                tags: book.source.tags.clone(),
                split: split.to_string(),
                index_in_split,
                encoding: book.encoding,
                bytes: book.input.bytes,
                blake3: book.input.blake3.clone(),
                paragraphs: tokens.n_paragraphs() as u64,
                sentences: tokens.n_sentences() as u64,
                tokens: n_tokens,
                unknown_tokens,
            });
        }
    }
    records.sort_by(|a, b| a.file.cmp(&b.file));
    for (id, record) in records.iter_mut().enumerate() {
        record.id = id;
    }
    (records, splits)
}

/// Writes the token streams of one split's books, as they are received, in that order.
fn write_split(dir: &Path, books: mpsc::Receiver<&BookTokens>) -> Result<(), PathError> {
    let mut writer = SplitWriter::create(dir)?;
    for tokens in books {
        writer.add_book(&tokens.tokens, &tokens.sentence_lengths, &tokens.paragraph_lengths)?;
    }
    writer.finish()
}

/// Marks `count` books (at most half) as validation books: those with the smallest content hashes, so the
/// choice depends on the books alone and survives renames and reordering.
fn choose_validation_books(books: &[ReadBook], count: usize) -> Vec<bool> {
    let count = count.min(books.len() / 2);
    let mut by_hash: Vec<usize> = (0..books.len()).collect();
    by_hash.sort_by(|&a, &b| books[a].input.blake3.cmp(&books[b].input.blake3));
    let mut valid = vec![false; books.len()];
    for &index in &by_hash[..count] {
        valid[index] = true;
    }
    valid
}

/// The vocabulary of the words counted in `tables` (a word whose count went back to zero is not one).
fn build_vocabulary(tables: &[WordTable], size: usize, lowercase: bool) -> Vocabulary {
    // The workers' tables merged by the hash their interners hold, so no word is hashed again, into a table
    // of the size a library's vocabulary reaches (the shared books: 87,000 words), so it never rehashes.
    let mut counts = WordCounts::with_capacity(1 << 17);
    for table in tables {
        for ((word, hash), &count) in table.words.words_with_hashes().zip(&table.counts) {
            if count > 0 {
                counts.add(word, hash, count);
            }
        }
    }
    Vocabulary::from_counts(counts.0.into_iter().map(|(word, _, count)| (word, count)), size, lowercase)
}

/// Values by word, keyed by the hash the workers' tables give each word ([`Interner::words_with_hashes`]),
/// so that merging their words and remapping them to the vocabulary hash no word again.
struct HashedWords<'a, V>(HashTable<(&'a str, u64, V)>);

impl<'a, V> HashedWords<'a, V> {
    fn with_capacity(words: usize) -> Self {
        HashedWords(HashTable::with_capacity(words))
    }

    fn get(&self, word: &str, hash: u64) -> Option<&V> {
        self.0.find(hash, |&(other, other_hash, _)| other_hash == hash && other == word).map(|(_, _, value)| value)
    }

    /// The value of `word`, which is `value` if the word is new.
    fn get_or_insert(&mut self, word: &'a str, hash: u64, value: V) -> &mut V {
        let entry = self.0.entry(hash, |&(other, other_hash, _)| other_hash == hash && other == word, |entry| entry.1);
        &mut entry.or_insert((word, hash, value)).into_mut().2
    }
}

/// Word counts of the training books.
type WordCounts<'a> = HashedWords<'a, u64>;

impl<'a> WordCounts<'a> {
    fn add(&mut self, word: &'a str, hash: u64, count: u64) {
        *self.get_or_insert(word, hash, 0) += count;
    }
}

/// The vocabulary's ids.
struct VocabularyIds<'a>(HashedWords<'a, u32>);

impl<'a> VocabularyIds<'a> {
    fn new(vocabulary: &'a Vocabulary) -> Self {
        let mut ids = HashedWords::with_capacity(vocabulary.len());
        for (id, word) in vocabulary.words().iter().enumerate() {
            ids.get_or_insert(word, Interner::hash_of(word), id as u32);
        }
        VocabularyIds(ids)
    }

    /// The id of `word` (whose hash is `hash`), or `<unk>`.
    fn id(&self, word: &str, hash: u64) -> u32 {
        self.0.get(word, hash).copied().unwrap_or(UNK_ID)
    }

    /// The vocabulary id of each local id of `table`.
    fn ids_of(&self, table: &WordTable) -> Vec<u32> {
        table.words.words_with_hashes().map(|(word, hash)| self.id(word, hash)).collect()
    }
}

/// Rewrites a book's local token ids as vocabulary ids (`table`: local id -> vocabulary id), in place;
/// returns how many became `<unk>`.
fn remap_to_vocabulary(book: &mut BookTokens, table: &[u32]) -> u64 {
    let mut unknown = 0;
    for token in &mut book.tokens {
        *token = table[*token as usize];
        unknown += u64::from(*token == UNK_ID);
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::book::tokenize_book;
    use crate::corpus::reader::Corpus;
    use crate::progress::NoProgress;

    /// Duplicates and validation books are counted in their workers' tables like any book, then taken out
    /// again: the vocabulary is that of counting the training books alone, once each, on any number of
    /// threads.
    #[test]
    fn the_vocabulary_counts_each_training_book_once() {
        let root = tempfile::tempdir().unwrap();
        let books = root.path().join("books");
        std::fs::create_dir(&books).unwrap();
        // `zebra` three times, twice over if the copy counted; `apple` four times.
        let zebras = "The zebra ran. The zebra hid. The zebra slept.\n";
        for (file, text) in [
            ("a.txt", zebras),
            ("a_copy.txt", zebras),
            ("b.txt", "An apple fell. An apple rolled. An apple rested. An apple lay.\n"),
            ("c.txt", "Some otter swam. The otter dived.\n"),
            ("d.txt", "Some heron waded. A heron flew.\n"),
            ("e.txt", "One lynx stalked. The lynx waited.\n"),
        ] {
            std::fs::write(books.join(file), text).unwrap();
        }
        // Eight threads: more than the books, so some workers read none.
        for threads in [1, 2, 3, 8] {
            let mut config = Config::default();
            config.corpus.valid_books = 2;
            let out = root.path().join(format!("corpus-{threads}"));
            let request = IngestRequest::new(books.clone(), out.clone(), config);
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| ingest(&request, &NoProgress)).unwrap();
            let corpus = Corpus::open(&out).unwrap();
            assert_eq!((corpus.train.n_books(), corpus.valid.n_books()), (3, 2));
            let mut counts: HashMap<String, u64> = HashMap::new();
            for record in corpus.books.iter().filter(|record| record.split == "train") {
                let (table, _) = tokenize_book(&std::fs::read_to_string(books.join(&record.file)).unwrap(), true);
                for (word, &count) in table.words.words().zip(&table.counts) {
                    *counts.entry(word.to_string()).or_default() += count;
                }
            }
            let expected =
                Vocabulary::from_counts(counts.iter().map(|(word, &count)| (word.as_str(), count)), 100, true);
            assert_eq!(corpus.vocabulary.words(), expected.words(), "{threads} threads");
        }
    }

    #[test]
    fn a_cancelled_ingest_writes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let books = root.path().join("books");
        std::fs::create_dir(&books).unwrap();
        std::fs::write(books.join("a.txt"), "It was dark. The end came.\n").unwrap();
        let request = IngestRequest::new(books, root.path().join("corpus"), Config::default());
        request.cancel.cancel();
        assert!(matches!(ingest(&request, &NoProgress), Err(IngestError::Interrupted(_))));
        let names: Vec<_> = std::fs::read_dir(root.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(names, ["books"], "no corpus and no staging folder is left");

        let request = IngestRequest { cancel: CancelFlag::new(), ..request };
        let report = ingest(&request, &NoProgress).unwrap();
        assert_eq!(report.total.books, 1);
    }
}

type Summary = (BTreeMap<String, SummaryRow>, BTreeMap<String, SummaryRow>, SummaryRow, Vec<String>);

fn summarise(records: &[BookRecord], genres: &GenreIndex) -> Summary {
    let add = |row: &mut SummaryRow, book: &BookRecord| {
        row.books += 1;
        row.sentences += book.sentences;
        row.tokens += book.tokens;
    };
    let mut by_tag: BTreeMap<String, SummaryRow> = BTreeMap::new();
    let mut total = SummaryRow::default();
    for book in records {
        add(&mut total, book);
        if book.tags.is_empty() {
            add(by_tag.entry("(none)".into()).or_default(), book);
        }
        for tag in &book.tags {
            add(by_tag.entry(tag.clone()).or_default(), book);
        }
    }
    let mut by_genre = BTreeMap::new();
    let mut unused_tags = Vec::new();
    for (genre, members) in &genres.genres {
        let row = by_genre.entry(genre.clone()).or_insert_with(SummaryRow::default);
        for &id in &members.books {
            add(row, &records[id]);
        }
        unused_tags.extend(members.tags.iter().filter(|tag| !genres.tags.contains_key(*tag)).cloned());
    }
    unused_tags.sort();
    unused_tags.dedup();
    (by_tag, by_genre, total, unused_tags)
}
