//! The hostile-input corpus (`tests/fixtures/hostile/`, written by its `make.py`) and the crash-consistency
//! cases of issue 13, through the real binary: each asserts the exit code, the message, and that nothing
//! the user had was lost. The server's cases are in `tests/serve.rs` and `tests/server_limits.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile").join(name)
}

fn storytool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_storytool")).args(args).output().expect("storytool runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Asserts a refusal: exit code 1 (an error, not a crash: no abort 134, no panic 101) and `words` in stderr.
fn assert_refused(output: &Output, words: &[&str]) {
    let message = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    for word in words {
        assert!(message.contains(word), "expected `{word}` in:\n{message}");
    }
}

/// A corpus to train from.
fn corpus(root: &Path) -> PathBuf {
    support::tiny_corpus(root, 40)
}

/// A finished training run's look: metrics, a manifest and a weights file whose bytes we can check later.
fn old_run(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("metrics.jsonl"), "{\"step\": 10}\n").unwrap();
    std::fs::write(dir.join("manifest.json"), "{}").unwrap();
    std::fs::write(dir.join("encoder.safetensors"), "old weights").unwrap();
}

fn old_run_is_intact(dir: &Path) {
    assert_eq!(std::fs::read_to_string(dir.join("encoder.safetensors")).unwrap(), "old weights");
}

const TINY: [&str; 6] =
    ["--set", "encoder.word_dim=8", "--set", "encoder.hidden_dim=8", "--set", "decoder.hidden_dim=8"];

#[test]
fn force_checks_every_input_before_it_replaces_anything() {
    let root = tempfile::tempdir().unwrap();
    let corpus = corpus(root.path());
    let run = root.path().join("run");
    old_run(&run);
    let missing = root.path().join("nonexistent");

    // A missing input: refused, and the old run is still there.
    let output = storytool(&["train-encoder", "--corpus", path(&missing), "--out", path(&run), "--force"]);
    assert_refused(&output, &["nonexistent"]);
    old_run_is_intact(&run);
    let output = storytool(&[
        "train-decoder",
        "--corpus",
        path(&missing),
        "--encoder",
        path(&missing),
        "--out",
        path(&run),
        "--force",
    ]);
    assert_refused(&output, &["nonexistent"]);
    old_run_is_intact(&run);
    for trainer in ["train-vse", "train-captioner"] {
        let output = storytool(&[trainer, "--features", path(&missing), "--out", path(&run), "--force"]);
        assert_refused(&output, &["nonexistent"]);
        old_run_is_intact(&run);
    }

    // The output is the input, or inside it: refused, the corpus untouched.
    for out in [corpus.clone(), corpus.join("run")] {
        let output = storytool(&["train-encoder", "--corpus", path(&corpus), "--out", path(&out), "--force"]);
        assert_refused(&output, &["input"]);
        assert!(corpus.join("manifest.json").is_file());
    }

    // A folder that is not a run is never removed by --force.
    let photos = root.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::write(photos.join("holiday.jpg"), "a photo").unwrap();
    let output = storytool(&["train-encoder", "--corpus", path(&corpus), "--out", path(&photos), "--force"]);
    assert_refused(&output, &["not a storytool training run"]);
    assert!(photos.join("holiday.jpg").is_file());

    // A refused train-decoder (no encoder there) leaves no empty --out behind to block the rerun.
    let fresh = root.path().join("fresh-decoder");
    let output =
        storytool(&["train-decoder", "--corpus", path(&corpus), "--encoder", path(&missing), "--out", path(&fresh)]);
    assert_refused(&output, &["nonexistent"]);
    assert!(!fresh.exists(), "a refused run left `{}` behind", fresh.display());

    // With good inputs, --force replaces the old run, and nothing is left beside it.
    let mut args = vec!["train-encoder", "--corpus", path(&corpus), "--out", path(&run), "--force", "--steps", "3"];
    args.extend(TINY);
    let output = storytool(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_ne!(std::fs::read(run.join("encoder.safetensors")).unwrap(), b"old weights");
    let hidden: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "left beside the run: {hidden:?}");
}

#[test]
fn a_kill_between_the_checkpoint_renames_resumes() {
    let root = tempfile::tempdir().unwrap();
    let corpus = corpus(root.path());
    let run = root.path().join("run");
    let mut args = vec!["train-encoder", "--corpus", path(&corpus), "--out", path(&run), "--steps", "4"];
    args.extend(TINY);
    args.extend(["--set", "encoder.train.checkpoint_every=2"]);
    let output = storytool(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    // What a kill between `checkpoint/ -> .storytool-replaced-*/old` and `.checkpoint.partial-* ->
    // checkpoint/` leaves: both complete copies under hidden names, and no `checkpoint/`.
    std::fs::create_dir_all(run.join(".storytool-replaced-x")).unwrap();
    std::fs::rename(run.join("checkpoint"), run.join(".storytool-replaced-x/old")).unwrap();
    let output = storytool(&{
        let mut resume = args.clone();
        resume[6] = "6";
        resume.push("--resume");
        resume
    });
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("Resumed at step 4"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let names: Vec<String> =
        std::fs::read_dir(&run).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().all(|name| !name.starts_with('.')), "stale copies left: {names:?}");
}

#[test]
fn catalogue_paths_cannot_leave_the_books_folder() {
    let root = tempfile::tempdir().unwrap();
    let books = root.path().join("books");
    std::fs::create_dir_all(&books).unwrap();
    std::fs::write(books.join("book.txt"), "The captain sailed the sea. It was at night.\n").unwrap();
    let out = root.path().join("corpus");
    let output = storytool(&[
        "ingest",
        "--books",
        path(&books),
        "--catalog",
        path(&fixture("catalogue-escape.csv")),
        "--out",
        path(&out),
        "--valid-books",
        "0",
    ]);
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), stderr(&output));
    assert!(output.status.success(), "{report}");
    assert!(report.contains("outside the books folder"), "{report}");
    let vocabulary = std::fs::read_to_string(out.join("tokenizer.json")).unwrap();
    assert!(!vocabulary.contains("\"root\""), "words of /etc/passwd entered the vocabulary");
}

#[cfg(unix)]
#[test]
fn broken_links_and_fifos_are_reported_not_fatal() {
    let root = tempfile::tempdir().unwrap();
    let books = root.path().join("books/adventure");
    std::fs::create_dir_all(&books).unwrap();
    std::fs::write(books.join("book.txt"), "The captain sailed the sea. It was at night.\n").unwrap();
    std::os::unix::fs::symlink(root.path().join("gone.txt"), books.join("dangling.txt")).unwrap();
    let fifo = books.join("pipe.txt");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    let out = root.path().join("corpus");
    let output =
        storytool(&["ingest", "--books", path(&root.path().join("books")), "--out", path(&out), "--valid-books", "0"]);
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), stderr(&output));
    assert!(output.status.success(), "{report}");
    assert!(report.contains("dangling.txt") && report.contains("broken link"), "{report}");
    assert!(report.contains("pipe.txt") && report.contains("not a regular file"), "{report}");
}

#[test]
fn an_unterminated_quote_in_flickr_captions_names_its_line() {
    let root = tempfile::tempdir().unwrap();
    let output = storytool(&[
        "extract-features",
        "--dataset",
        "flickr8k",
        "--captions",
        path(&fixture("flickr-unterminated.txt")),
        "--images",
        path(root.path()),
        "--out",
        path(&root.path().join("features")),
        "--cnn",
        path(&root.path().join("no-cnn.pth")),
    ]);
    assert_refused(&output, &["flickr-unterminated.txt", "line 3", "never closed"]);
}

#[test]
fn word_vector_headers_and_values_are_checked() {
    let root = tempfile::tempdir().unwrap();
    for (name, words) in [
        ("w2v-huge-dim.txt", &["w2v-huge-dim.txt", "100000 values per word"][..]),
        ("w2v-overflow-dim.txt", &["values per word"][..]),
        ("w2v-nan.txt", &["entry 2 (`dog`)", "NaN"][..]),
    ] {
        let output = storytool(&[
            "expand-vocab",
            "--encoder",
            "checkpoints/demo/encoder",
            "--vectors",
            path(&fixture(name)),
            "--format",
            "word2vec-text",
            "--out",
            path(&root.path().join(name)),
        ]);
        assert_refused(&output, words);
        assert!(!root.path().join(name).exists());
    }
}

#[test]
fn search_sizes_are_bounded() {
    let output = storytool(&["generate", "--text", "A dog runs.", "--genre", "adventure", "--beam", "100000"]);
    assert_refused(&output, &["generate.beam", "100000", "200"]);
}

#[test]
fn strips_and_cut_jpegs_are_refused_by_caption_and_generate() {
    let root = tempfile::tempdir().unwrap();
    let mut jpeg = Vec::new();
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 90]))
        .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    let cut = root.path().join("cut.jpg");
    std::fs::write(&cut, &jpeg[..jpeg.len() - 40]).unwrap();
    for (photo, words) in [
        (fixture("wide.png"), &["100000x1", "20 times"][..]),
        (fixture("tall.png"), &["1x20000", "20 times"][..]),
        (cut, &["cut.jpg", "truncated"][..]),
    ] {
        let output = storytool(&["generate", "--image", path(&photo), "--genre", "adventure"]);
        assert_refused(&output, words);
    }
}
