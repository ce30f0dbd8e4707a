//! Property tests: every parser of user input takes arbitrary bytes, and mutations of valid files, without
//! panicking or aborting, and within a memory bound. A counting allocator measures the peak of each case.
//!
//! Parsers: books (decode, clean-up, tokenizing), the catalogue, COCO JSON, Flickr8k CSV, word vectors in
//! every format, images, model folders (safetensors + manifest + tokenizer), multipart story requests, GGUF
//! language models.

use burn::tensor::Device;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use storytool::captions::{read_coco, read_flickr8k};
use storytool::corpus::book::tokenize_book;
use storytool::corpus::decode::decode;
use storytool::corpus::discover::discover;
use storytool::vectors::readers::{VectorFormat, open_vectors};
use storytool::vision::decode_image;

mod support;

/// Counts live bytes and remembers the peak since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        pointer
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            if new_size >= layout.size() {
                let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most any one parse may allocate beyond what was live before it. Inputs here are at most a few
/// kilobytes; 256 MB is what a header that sizes a table unchecked would blow through first.
const MEMORY_BOUND: usize = 256 << 20;

/// Runs `parse` and fails if it allocated more than [`MEMORY_BOUND`] at its peak. Tests run one at a time
/// in this file (`cases` below run sequentially inside one test each, and the file's tests share a lock).
fn within_memory_bound<T>(what: &str, parse: impl FnOnce() -> T) -> T {
    let _serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let result = parse();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    assert!(peak < MEMORY_BOUND, "{what} allocated {peak} bytes at its peak");
    result
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A valid input with some bytes replaced, inserted or cut: the shape of real damage.
fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    (prop::collection::vec((0..len.max(1), any::<u8>(), 0..3u8), 0..8), 0..=len).prop_map(move |(edits, cut)| {
        let mut bytes = valid.clone();
        for (at, byte, kind) in edits {
            let at = at.min(bytes.len().saturating_sub(1));
            match kind {
                0 if !bytes.is_empty() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ if !bytes.is_empty() => {
                    bytes.remove(at);
                }
                _ => {}
            }
        }
        if cut < bytes.len() && cut % 3 == 0 {
            bytes.truncate(cut);
        }
        bytes
    })
}

/// The tiny llama model of `tests/fixtures/lm` (82 KB, its header and tokenizer in the first 6 KB).
fn tiny_gguf() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm/tiny-llama.gguf")).unwrap()
}

/// Edits only in the header of a GGUF file (counts, lengths, types, dimensions, offsets), where random
/// edits over the whole file would mostly land in the tensor data.
fn header_mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let header = valid.len().min(6000);
    prop::collection::vec((0..header, any::<u8>()), 1..6).prop_map(move |edits| {
        let mut bytes = valid.clone();
        for (at, byte) in edits {
            bytes[at] = byte;
        }
        bytes
    })
}

fn bytes_or_mutated(valid: &[u8]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..2048), mutated(valid.to_vec())]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

const BOOK: &[u8] = b"\xef\xbb\xbfThe Project Gutenberg EBook of A Tale\r\n\r\n*** START OF THIS PROJECT GUTENBERG EBOOK ***\r\n\r\nCHAPTER I\r\n\r\nIt was at night. The captain sailed the sea, and \"the crew\" sang.\r\nHe said: Mr. Smith went home.\r\n\r\n*** END OF THIS PROJECT GUTENBERG EBOOK ***\r\n";
const CATALOGUE: &[u8] = b"file,title,author,year,genres,source\na.txt,A,Ann,1900,adventure;mystery,x\nb.txt,\"B, the second\",Bo,,horror,y\n";
const COCO: &[u8] = br#"{"info": {}, "images": [{"id": 7, "file_name": "a.jpg"}, {"id": 9, "file_name": "b.jpg"}], "annotations": [{"image_id": 7, "id": 1, "caption": "A dog runs."}, {"image_id": 9, "id": 2, "caption": "Two cats."}]}"#;
const FLICKR: &[u8] = b"image,caption\na.jpg,A dog runs .\na.jpg,\"A dog, brown, runs .\"\nb.jpg,Two kids .\n";
const WORD2VEC_TEXT: &[u8] = b"3 4\nthe 0.1 0.2 0.3 0.4\ndog -1 2 3e-2 4\ncat 1 1 1 1\n";
const GLOVE: &[u8] = b"the 0.1 0.2 0.3\ndog -1 2 3e-2\n";

fn word2vec_binary() -> Vec<u8> {
    let mut bytes = b"2 3\n".to_vec();
    for (word, values) in [("the", [0.5f32, -1.0, 2.0]), ("dog", [1.0, 0.0, 3.5])] {
        bytes.extend(word.as_bytes());
        bytes.push(b' ');
        for value in values {
            bytes.extend(value.to_le_bytes());
        }
        bytes.push(b'\n');
    }
    bytes
}

fn npy() -> Vec<u8> {
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    let mut header = header.to_string();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for value in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0] {
        bytes.extend(value.to_le_bytes());
    }
    bytes
}

fn png() -> Vec<u8> {
    let image = image::RgbImage::from_fn(12, 9, |x, y| image::Rgb([x as u8 * 20, y as u8 * 25, 99]));
    let mut bytes = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    bytes
}

fn jpeg() -> Vec<u8> {
    let image = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, 40]));
    let mut bytes = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg).unwrap();
    bytes
}

fn drain_vectors(path: &Path, format: VectorFormat, words: Option<&Path>) -> Result<usize, String> {
    let mut reader = open_vectors(path, format, words).map_err(|error| error.to_string())?;
    let mut vector = Vec::new();
    let mut count = 0;
    while let Some(_word) = reader.next_into(&mut vector).map_err(|error| error.to_string())? {
        count += 1;
    }
    Ok(count)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn books_never_panic(bytes in bytes_or_mutated(BOOK)) {
        within_memory_bound("a book", || {
            if let Ok((text, _)) = decode(bytes) {
                let tokens = tokenize_book(&text, true);
                drop(tokens);
            }
        });
    }

    #[test]
    fn catalogues_never_panic(bytes in bytes_or_mutated(CATALOGUE)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "It was at night.").unwrap();
        let catalogue = write(dir.path(), "books.csv", &bytes);
        within_memory_bound("a catalogue", || {
            if let Ok(found) = discover(dir.path(), Some(&catalogue)) {
                for book in &found.books {
                    assert!(book.path.starts_with(dir.path()), "{} escapes the books folder", book.path.display());
                }
            }
        });
    }

    #[test]
    fn coco_files_never_panic(bytes in bytes_or_mutated(COCO)) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "captions.json", &bytes);
        within_memory_bound("a COCO file", || drop(read_coco(&path)));
    }

    #[test]
    fn flickr_files_never_panic(bytes in bytes_or_mutated(FLICKR)) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "captions.txt", &bytes);
        within_memory_bound("a Flickr8k file", || {
            if let Ok(dataset) = read_flickr8k(&path) {
                assert!(dataset.images.iter().flat_map(|image| &image.captions).all(|caption| !caption.text.contains('\n')));
            }
        });
    }

    #[test]
    fn word_vectors_never_panic(
        text in bytes_or_mutated(WORD2VEC_TEXT),
        binary in bytes_or_mutated(&word2vec_binary()),
        glove in bytes_or_mutated(GLOVE),
        table in bytes_or_mutated(&npy()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let text = write(dir.path(), "v.txt", &text);
        let binary = write(dir.path(), "v.bin", &binary);
        let glove = write(dir.path(), "g.txt", &glove);
        let table = write(dir.path(), "t.npy", &table);
        write(dir.path(), "t.words.txt", b"the\ndog\n");
        within_memory_bound("word vectors", || {
            for (path, format) in [
                (&text, VectorFormat::Word2vecText),
                (&binary, VectorFormat::Word2vecBin),
                (&glove, VectorFormat::Glove),
                (&table, VectorFormat::Npy),
            ] {
                let _ = drain_vectors(path, format, None);
            }
        });
    }

    #[test]
    fn gguf_models_never_panic(bytes in prop_oneof![bytes_or_mutated(&tiny_gguf()), header_mutated(tiny_gguf())]) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "model.gguf", &bytes);
        within_memory_bound("a GGUF model", || {
            if let Ok(lm) = storytool::language_model::PretrainedLm::load(&path, &Device::flex()) {
                // Whatever loads must also run.
                let tokens = burn::tensor::Tensor::<2, burn::tensor::Int>::from_data(
                    burn::tensor::TensorData::new(vec![1i64, 2, 3], [1, 3]),
                    &Device::flex(),
                );
                drop(lm.model.forward(tokens, None));
            }
        });
    }

    #[test]
    fn images_never_panic(bytes in prop_oneof![bytes_or_mutated(&png()), mutated(jpeg())]) {
        within_memory_bound("an image", || {
            if let Ok(image) = decode_image(&bytes, "fuzz") {
                drop(storytool::vision::preprocess(&image, 32));
            }
        });
    }
}

/// A header of a word-vector file whose dimension would size a huge regression is refused before any
/// table is allocated (the regression needs `(dim + 1)^2` doubles).
#[test]
fn word_vector_headers_cannot_size_huge_tables() {
    let dir = tempfile::tempdir().unwrap();
    for (header, expected) in [("3500 100000\n", "100000 values per word"), ("1 1000000000000\n", "values per word")] {
        let path = write(dir.path(), "v.txt", format!("{header}the 1 2 3\n").as_bytes());
        let error = within_memory_bound("a huge header", || drain_vectors(&path, VectorFormat::Word2vecText, None))
            .unwrap_err();
        assert!(error.contains(expected) && error.contains("v.txt"), "{error}");
    }
    let path = write(dir.path(), "nan.txt", b"2 3\nthe 1 2 3\ndog 1 NaN 3\n");
    let error = drain_vectors(&path, VectorFormat::Word2vecText, None).unwrap_err();
    assert!(error.contains("entry 2 (`dog`)") && error.contains("NaN"), "{error}");
    let path = write(dir.path(), "inf.txt", b"the 1 inf 3\n");
    let error = drain_vectors(&path, VectorFormat::Glove, None).unwrap_err();
    assert!(error.contains("entry 1 (`the`)") && error.contains("inf"), "{error}");
}

/// Model folders: a mutated manifest, tokenizer or weights file is an error, never a panic.
mod model_folders {
    use super::*;
    use storytool::encoder::SentenceEncoder;

    /// A tiny trained encoder folder, made once (training takes a second).
    fn encoder_folder() -> &'static Path {
        static FOLDER: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
        FOLDER
            .get_or_init(|| {
                let root = tempfile::tempdir().unwrap();
                let corpus = crate::support::tiny_corpus(root.path(), 60);
                let binary = env!("CARGO_BIN_EXE_storytool");
                let status = std::process::Command::new(binary)
                    .args([
                        "train-encoder",
                        "--steps",
                        "2",
                        "--set",
                        "encoder.word_dim=8",
                        "--set",
                        "encoder.hidden_dim=8",
                    ])
                    .arg("--corpus")
                    .arg(&corpus)
                    .arg("--out")
                    .arg(root.path().join("encoder"))
                    .output()
                    .unwrap();
                assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
                root
            })
            .path()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 60, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn encoder_folders_never_panic(which in 0..3usize, seed in any::<u64>()) {
            let source = encoder_folder().join("encoder");
            let dir = tempfile::tempdir().unwrap();
            let names = ["manifest.json", "tokenizer.json", "encoder.safetensors"];
            for name in names {
                std::fs::copy(source.join(name), dir.path().join(name)).unwrap();
            }
            let path = dir.path().join(names[which]);
            let mut bytes = std::fs::read(&path).unwrap();
            // A deterministic mutation from the seed: flip, cut or overwrite.
            let at = (seed as usize) % bytes.len().max(1);
            match seed % 3 {
                0 => bytes[at] ^= (seed >> 8) as u8 | 1,
                1 => bytes.truncate(at),
                _ => bytes[at..].iter_mut().take(8).for_each(|byte| *byte = (seed >> 16) as u8),
            }
            std::fs::write(&path, &bytes).unwrap();
            within_memory_bound("an encoder folder", || drop(SentenceEncoder::load(dir.path(), &Device::flex())));
        }
    }
}
