//! `storytool ingest` end to end: the real binary on books this test writes itself, in both layouts, with
//! the awkward files users really have (BOM, CRLF, Latin-1, Gutenberg packaging, empty, binary, duplicate).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use storytool::corpus::Corpus;

const GUTENBERG_BOOK: &str = "\u{feff}The Project Gutenberg EBook of Night Sea, by Ann Author\r\n\r\nTitle: Night Sea\r\n\r\n*** START OF THIS PROJECT GUTENBERG EBOOK NIGHT SEA ***\r\n\r\nProduced by Some Volunteers\r\n\r\nCONTENTS\r\n\r\nCHAPTER I. The Ship\r\nCHAPTER II. The Storm\r\nCHAPTER III. The Shore\r\n\r\nCHAPTER I\r\n\r\nThe ship sailed at dawn. Mr. Grey stood at the\r\nwheel and watched the sea.\r\n\r\n\"Where are we going?\" asked the boy. \"South,\" said Mr. Grey.\r\n\r\nCHAPTER II\r\n\r\nThe storm came at night... It was terrible! The mast broke.\r\n\r\nEnd of the Project Gutenberg EBook of Night Sea\r\n\r\n*** END OF THIS PROJECT GUTENBERG EBOOK NIGHT SEA ***\r\n\r\nSection 1. General Terms of Use and Redistributing Project Gutenberg-tm electronic works\r\n";

const PLAIN_BOOK: &str =
    "The detective looked at the body. He said nothing.\n\nThe maid screamed. Nobody knew who had done it.\n";

fn storytool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_storytool")).args(args).output().expect("storytool runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A catalogue layout: three books, an empty file, a binary file, a duplicate and a missing row.
fn catalogue_layout(root: &Path) -> (PathBuf, PathBuf) {
    let books = root.join("books");
    write(&books.join("night_sea.txt"), GUTENBERG_BOOK.as_bytes());
    write(&books.join("maid.txt"), PLAIN_BOOK.as_bytes());
    // Latin-1: "Café" and "naïve" as single bytes.
    write(&books.join("cafe.txt"), b"The caf\xe9 was quiet. A na\xefve waiter smiled at us.\n");
    write(&books.join("empty.txt"), b"");
    write(&books.join("image.txt"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0");
    write(&books.join("maid_copy.txt"), PLAIN_BOOK.as_bytes());
    let catalogue = root.join("books.csv");
    write(
        &catalogue,
        b"file,title,author,year,genres,source\nnight_sea.txt,Night Sea,Author,1900,adventure;sci-fi,x\nmaid.txt,The Maid,Writer,1920,mystery,x\ncafe.txt,Cafe,Someone,1930,,x\nempty.txt,Empty,,,,x\nimage.txt,Image,,,,x\nmaid_copy.txt,The Maid Again,Writer,1920,thriller,x\nlost.txt,Lost,,,,x\n",
    );
    (books, catalogue)
}

#[test]
fn catalogue_layout_ingests_and_reports_what_it_skipped() {
    let root = tempfile::tempdir().unwrap();
    let (books, catalogue) = catalogue_layout(root.path());
    let out = root.path().join("corpus");
    let output = storytool(&[
        "ingest",
        "--books",
        books.to_str().unwrap(),
        "--catalog",
        catalogue.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--valid-books",
        "0",
    ]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "stdout:\n{stdout}\nstderr:\n{}", text(&output.stderr));
    assert!(stdout.starts_with("Ingested 3 books"), "{stdout}");
    for expected in [
        "empty.txt: empty",
        "image.txt: binary, not text",
        "maid_copy.txt: duplicate content of `maid.txt`; its tags (thriller) were added to that book",
        "lost.txt: catalogue row (line 8) names a file that does not exist",
        "skipped 4 files:",
    ] {
        assert!(stdout.contains(expected), "missing `{expected}` in:\n{stdout}");
    }
    let row = |label: &str| stdout.lines().find(|line| line.starts_with(label)).map(str::split_whitespace);
    let adventure: Vec<&str> = row("adventure ").expect("an adventure row").collect();
    assert_eq!(adventure[1], "1", "{stdout}");

    let corpus = Corpus::open(&out).unwrap();
    assert_eq!(corpus.books.len(), 3);
    let maid = corpus.books.iter().find(|book| book.file == "maid.txt").unwrap();
    assert_eq!(maid.tags, ["mystery", "thriller"]);
    let cafe = corpus.books.iter().find(|book| book.file == "cafe.txt").unwrap();
    assert_eq!(cafe.encoding.name(), "latin-1");
    assert_eq!(corpus.genres.genres["thriller"].books, [maid.id]);

    let night = corpus.books.iter().find(|book| book.file == "night_sea.txt").unwrap();
    let split = corpus.split(&night.split).unwrap();
    let sentences: Vec<String> = split
        .book_sentences(night.index_in_split)
        .map(|index| corpus.vocabulary.decode(split.sentence(index)))
        .collect();
    assert_eq!(
        sentences,
        [
            "the ship sailed at dawn .",
            "mr . grey stood at the wheel and watched the sea .",
            "\" where are we going ? \" asked the boy .",
            "\" south , \" said mr . grey .",
            "the storm came at night ...",
            "it was terrible !",
            "the mast broke ."
        ]
    );
    assert_eq!((corpus.train.n_books(), corpus.valid.n_books()), (3, 0));
    let files = storytool::corpus::stats::read_stats_files(&out.join("stats.parquet")).unwrap();
    assert_eq!(files, ["cafe.txt", "maid.txt", "night_sea.txt"]);
}

#[test]
fn genre_folders_are_tags_and_output_is_never_overwritten_silently() {
    let root = tempfile::tempdir().unwrap();
    let books = root.path().join("books");
    write(&books.join("adventure/sea.txt"), GUTENBERG_BOOK.as_bytes());
    write(&books.join("thriller/maid.txt"), PLAIN_BOOK.as_bytes());
    write(&books.join("mystery/maid.txt"), PLAIN_BOOK.as_bytes());
    write(&books.join("README.md"), b"notes");
    let out = root.path().join("corpus");
    let args = ["ingest", "--books", books.to_str().unwrap(), "--out", out.to_str().unwrap(), "--vocab-size", "8"];

    let first = storytool(&args);
    let stdout = text(&first.stdout);
    assert!(first.status.success(), "{stdout}{}", text(&first.stderr));
    assert!(stdout.contains("README.md: not a .txt file"), "{stdout}");
    assert!(stdout.contains("thriller/maid.txt: duplicate content of `mystery/maid.txt`"), "{stdout}");
    assert!(stdout.contains("vocabulary: 8 words (requested 8)"), "{stdout}");
    let corpus = Corpus::open(&out).unwrap();
    assert_eq!(corpus.vocabulary.len(), 8);
    assert_eq!((corpus.train.n_books(), corpus.valid.n_books()), (1, 1), "half the books at most are held out");
    let tags: Vec<(&str, &[String])> = corpus.books.iter().map(|book| (book.file.as_str(), &book.tags[..])).collect();
    assert_eq!(
        tags,
        [
            ("adventure/sea.txt", &["adventure".to_string()][..]),
            ("mystery/maid.txt", &["mystery".into(), "thriller".into()][..])
        ]
    );

    let again = storytool(&args);
    assert!(!again.status.success());
    let stderr = text(&again.stderr);
    assert!(stderr.contains("already exists") && stderr.contains("--force"), "{stderr}");

    let mut forced = args.to_vec();
    forced.push("--force");
    assert!(storytool(&forced).status.success());
    let leftovers: Vec<_> = std::fs::read_dir(root.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "only books/ and corpus/ remain: {leftovers:?}");
}

#[test]
fn a_vocabulary_larger_than_the_corpus_is_fine() {
    let root = tempfile::tempdir().unwrap();
    let books = root.path().join("books");
    write(&books.join("a.txt"), PLAIN_BOOK.as_bytes());
    let out = root.path().join("corpus");
    let output = storytool(&[
        "ingest",
        "--books",
        books.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        "corpus.vocab_size=20000",
    ]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("(requested 20000): the corpus has fewer distinct words"), "{stdout}");
    let corpus = Corpus::open(&out).unwrap();
    assert!(corpus.vocabulary.len() < 30);
    assert_eq!(corpus.manifest.vocabulary.requested_size, 20000);
    assert!(corpus.train.tokens().iter().all(|&id| (id as usize) < corpus.vocabulary.len()));
}

#[test]
fn bad_input_fails_with_a_message_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let (books, catalogue) = catalogue_layout(root.path());
    let out = root.path().join("corpus");
    let books = books.to_str().unwrap();
    let out = out.to_str().unwrap();

    let config = root.path().join("bad.toml");
    write(&config, b"[corpus]\nvocab_size = 100\nwords = 3\n");
    let output = storytool(&["ingest", "--books", books, "--out", out, "--config", config.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("bad.toml") && stderr.contains("line 3") && stderr.contains("unknown field `words`"),
        "{stderr}"
    );

    let output = storytool(&["ingest", "--books", books, "--out", out, "--set", "corpus.vocab_size=two"]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success() && stderr.contains("corpus.vocab_size=two"), "{stderr}");

    write(&catalogue, b"file,title,genres\nmaid.txt,The Maid\n");
    let output = storytool(&["ingest", "--books", books, "--catalog", catalogue.to_str().unwrap(), "--out", out]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("books.csv") && stderr.contains("line 2") && stderr.contains("expected 3 fields"),
        "{stderr}"
    );

    let output = storytool(&["ingest", "--books", "/nonexistent/books", "--out", out]);
    assert!(text(&output.stderr).contains("does not exist or is not a folder"));
    assert!(!Path::new(out).exists(), "no corpus after failures");
}

#[test]
fn print_config_shows_resolved_settings() {
    let output = storytool(&["ingest", "--books", ".", "--out", "x", "--vocab-size", "123", "--print-config"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success());
    assert!(stdout.contains("vocab_size = 123"), "{stdout}");
    assert!(stdout.contains("thriller = ["), "{stdout}");
}

#[test]
fn several_books_folders_make_one_corpus() {
    let root = tempfile::tempdir().unwrap();
    let (books, catalogue) = catalogue_layout(root.path());
    let library = root.path().join("library").join("books");
    write(&library.join("horror/crypt.txt"), b"The crypt was cold. Something moved in the dark below.\n");
    // The same book as one of the catalogue's: read once, its tag added.
    write(&library.join("thriller/maid.txt"), PLAIN_BOOK.as_bytes());
    let out = root.path().join("corpus");
    let (books, library, catalogue, out) =
        (books.to_str().unwrap(), library.to_str().unwrap(), catalogue.to_str().unwrap(), out.to_str().unwrap());

    // A catalogue for one folder but not the other cannot be paired.
    let unpaired = storytool(&["ingest", "--books", books, "--books", library, "--catalog", catalogue, "--out", out]);
    assert!(!unpaired.status.success());
    assert!(text(&unpaired.stderr).contains("2 --books folders and 1 --catalog files"), "{}", text(&unpaired.stderr));

    let output = storytool(&["ingest", "--books", library, "--books", books, "--out", out, "--valid-books", "0"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    // crypt, maid (the library's, first given), night_sea and cafe; the rest skipped or duplicates.
    assert!(stdout.starts_with("Ingested 4 books"), "{stdout}");
    let corpus = Corpus::open(Path::new(out)).unwrap();
    let root_dir = Path::new(&corpus.manifest.inputs.books_dir);
    assert_eq!(root_dir, root.path());
    let files: Vec<&str> = corpus.books.iter().map(|book| book.file.as_str()).collect();
    assert!(files.contains(&"library/books/horror/crypt.txt"), "{files:?}");
    assert!(files.contains(&"books/night_sea.txt"), "{files:?}");
    for book in &corpus.books {
        assert!(root_dir.join(&book.file).is_file(), "{} is found from the corpus's books folder", book.file);
    }
    assert_eq!(corpus.manifest.inputs.shelves.len(), 2);
}
