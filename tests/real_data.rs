//! Tests on the real books in `../shared/data` (158 Gutenberg novels and their catalogue).
//!
//! They are `#[ignore]`d so that `cargo test` needs only what the project ships; `.ci/run` runs them with
//! `--ignored`. When the data is missing they fail with a message saying where it was looked for: they never
//! pass by skipping. Set `STORYTOOL_SHARED_DATA` to use another copy.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use regex::Regex;
use storytool::corpus::{Corpus, book, decode, sentences};

fn shared_data() -> PathBuf {
    let path = std::env::var_os("STORYTOOL_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    assert!(
        path.join("books.csv").is_file() && path.join("books").is_dir(),
        "the shared data is missing: expected books/ and books.csv under `{}` (set STORYTOOL_SHARED_DATA)",
        path.display()
    );
    path
}

/// Catalogue tags per file, read independently of storytool's catalogue parser.
fn catalogue_tags(data: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    let mut reader = csv::Reader::from_path(data.join("books.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let file_column = headers.iter().position(|header| header == "file").unwrap();
    let genre_column = headers.iter().position(|header| header == "genres").unwrap();
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            let mut tags: Vec<String> =
                record[genre_column].split(';').filter(|tag| !tag.is_empty()).map(String::from).collect();
            tags.sort();
            (record[file_column].to_string(), tags)
        })
        .collect()
}

#[test]
#[ignore = "needs ../shared/data; run by .ci/run with --ignored"]
fn all_158_books_are_ingested_with_their_catalogue_genres() {
    let data = shared_data();
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("corpus");
    let output = Command::new(env!("CARGO_BIN_EXE_storytool"))
        .args(["ingest", "--books"])
        .arg(data.join("books"))
        .arg("--catalog")
        .arg(data.join("books.csv"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("Ingested 158 books"), "{stdout}");

    let corpus = Corpus::open(&out).unwrap();
    assert_eq!(corpus.books.len(), 158);
    assert!(corpus.manifest.skipped.is_empty(), "{:?}", corpus.manifest.skipped);
    let expected = catalogue_tags(&data);
    let found: BTreeMap<String, Vec<String>> =
        corpus.books.iter().map(|book| (book.file.clone(), book.tags.clone())).collect();
    assert_eq!(found, expected);
    for book in &corpus.books {
        // Cleaning drops packaging and headings, not prose: a book keeps about as many tokens (words and
        // punctuation) as its raw file has whitespace-separated words, more when it is punctuated.
        let raw = std::fs::read(data.join("books").join(&book.file)).unwrap();
        let raw_words = String::from_utf8_lossy(&raw).split_whitespace().count() as u64;
        assert!(
            book.tokens * 100 >= raw_words * 97,
            "{}: {} tokens from {raw_words} raw words",
            book.file,
            book.tokens
        );
        assert!(book.sentences > 300, "{} has only {} sentences", book.file, book.sentences);
        assert!(book.unknown_rate() < 0.2, "{} is {:.0}% unknown", book.file, 100.0 * book.unknown_rate());
    }
    assert_eq!(corpus.vocabulary.len(), 10_000);
    assert_eq!(corpus.train.n_books() + corpus.valid.n_books(), 158);

    // The saved tokenizer file and storytool's scanner agree on real sentences.
    let tokenizer = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let text = std::fs::read_to_string(data.join("books/austen_emma.txt")).unwrap();
    for paragraph in book::clean_paragraphs(&text).iter().take(300) {
        for sentence in sentences::split_sentences(paragraph) {
            let expected = tokenizer.encode(sentence, false).unwrap().get_ids().to_vec();
            assert_eq!(corpus.vocabulary.encode(sentence), expected, "{sentence}");
        }
    }
}

#[test]
#[ignore = "needs ../shared/data; run by .ci/run with --ignored"]
fn no_sentence_holds_gutenberg_packaging_or_licence_text() {
    let data = shared_data();
    let boilerplate = Regex::new(
        r"(?i)gutenberg|\bebook|\be-?text\b|small print!|www\.|\blicen[cs]e\s+(agreement|terms)|terms of use|^produced by|transcriber|\*\*\*\s*(start|end)",
    )
    .unwrap();
    let mut n_sentences = 0;
    for file in catalogue_tags(&data).keys() {
        let bytes = std::fs::read(data.join("books").join(file)).unwrap();
        let (text, _) = decode::decode(bytes).unwrap();
        for paragraph in book::clean_paragraphs(&text) {
            for sentence in sentences::split_sentences(&paragraph) {
                n_sentences += 1;
                assert!(!boilerplate.is_match(sentence), "{file}: {sentence}");
            }
        }
    }
    assert!(n_sentences > 700_000, "only {n_sentences} sentences");
}
