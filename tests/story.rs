//! The whole pipeline on fixtures the test makes, each stage for a few steps through the CLI:
//! ingest -> train-encoder -> train-decoder -> compute-bias, and photos -> extract-features -> train-vse ->
//! build-caption-bank --encoder; then `generate`, whose stories must be long enough, free of `<unk>`,
//! the same for the same seed, and different between genres; photos must find their own captions.

mod support;

use std::path::{Path, PathBuf};

use support::{SETTINGS, book, models, run, storytool};

fn stories(models: &Path, photo: &Path, extra: &[&str]) -> serde_json::Value {
    let output = run(storytool()
        .args(["generate", "--image"])
        .arg(photo)
        .arg("--models")
        .arg(models)
        .arg("--cnn")
        .arg(models.join("cnn.pth"))
        .args(["--genre", "adventure", "--genre", "sci-fi", "--json"])
        .args(SETTINGS)
        .args(extra));
    serde_json::from_str(&output).unwrap()
}

#[test]
fn from_books_and_photos_to_stories() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let models = models(root);
    let photo = root.join("images/2.png");
    let first = stories(&models, &photo, &[]);
    let (adventure, scifi) = (first[0]["story"].as_str().unwrap(), first[1]["story"].as_str().unwrap());
    for story in [adventure, scifi] {
        assert!(story.split_whitespace().count() >= 15, "too short: {story}");
        assert!(!story.contains("<unk>") && !story.contains("<eos>"), "{story}");
        assert!(story.starts_with(char::is_uppercase), "{story}");
    }
    assert_ne!(adventure, scifi, "genres must differ");
    assert_eq!(first[0]["captions"].as_array().unwrap().len(), 3);
    let again = stories(&models, &photo, &[]);
    assert_eq!(first[0]["story"], again[0]["story"], "deterministic");

    // Seeded noise: the same seed repeats, another seed may differ.
    let seeded = stories(&models, &photo, &["--temperature", "1", "--seed", "5"]);
    assert_eq!(seeded[0]["story"], stories(&models, &photo, &["--temperature", "1", "--seed", "5"])[0]["story"]);

    // Another photo (dawn, not night) finds other captions. Whether these toy models then write another
    // story is left to the real-data test on the demo models, where it is checked.
    let other = stories(&models, &root.join("images/3.png"), &[]);
    assert!(first[0]["captions"][0]["text"].as_str().unwrap().ends_with("at night."), "{:?}", first[0]["captions"]);
    assert!(other[0]["captions"][0]["text"].as_str().unwrap().ends_with("at dawn."));

    // The decoder reads keywords: the captions' commonest content word is given to it and written.
    assert_eq!(first[0]["keywords"], serde_json::json!(["night"]));
    assert_eq!(other[0]["keywords"], serde_json::json!(["dawn"]));
    let dawn = other[0]["story"].as_str().unwrap();
    assert!(adventure.contains("night") && dawn.contains("dawn"), "{adventure} / {dawn}");
    let bare = stories(&models, &photo, &["--set", "generate.keywords=0"]);
    assert_eq!(bare[0]["keywords"], serde_json::json!([]));

    // From text, and the errors a user can make.
    let text = run(storytool()
        .args(["generate", "--text", "a robot near the star .", "--genre", "sci-fi", "--models"])
        .arg(&models)
        .args(SETTINGS));
    assert!(text.split_whitespace().count() >= 15, "{text}");
    let wrong = storytool()
        .args(["generate", "--text", "a captain .", "--genre", "western", "--models"])
        .arg(&models)
        .args(SETTINGS)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success() && stderr.contains("western") && stderr.contains("adventure, sci-fi"), "{stderr}");
}

/// Writes the fixture books, photos and captions of [`models`] without training anything.
fn raw_data(root: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let books = root.join("books");
    let adventure: [&[&str]; 3] =
        [&["captain", "sailor", "pirate"], &["sailed", "crossed", "searched"], &["sea", "island", "harbour"]];
    let scifi: [&[&str]; 3] =
        [&["robot", "android", "pilot"], &["launched", "scanned", "orbited"], &["star", "planet", "station"]];
    for (genre, words, base) in [("adventure", adventure, 10), ("sci-fi", scifi, 20)] {
        std::fs::create_dir_all(books.join(genre)).unwrap();
        for index in 0..3u64 {
            std::fs::write(books.join(genre).join(format!("{index}.txt")), book(&words, base + index)).unwrap();
        }
    }
    let images = root.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut lines = vec!["image,caption".to_string()];
    for i in 0..6u8 {
        support::write_photo(&images.join(format!("{i}.png")), 40 + u32::from(i) * 5, 40, i * 40 + 3);
        lines.push(format!("{i}.png,It was at night."));
        lines.push(format!("{i}.png,It was at dawn."));
    }
    let captions = root.join("captions.txt");
    std::fs::write(&captions, lines.join("\n")).unwrap();
    (books, images, captions)
}

#[test]
fn the_pipeline_runs_every_stage_then_skips_what_is_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (books, images, captions) = raw_data(root);
    let cnn = root.join("cnn.pth");
    support::write_legacy_pth(&cnn, &support::tiny_efficientnet(3));
    let config = root.join("tiny.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[corpus]
valid_books = 1
[encoder]
word_dim = 16
hidden_dim = 32
steps = 20
[decoder]
word_dim = 16
hidden_dim = 32
passage_sentences = 3
sampled_softmax = 0
steps = 20
[bias]
min_passage_tokens = 20
[vse]
word_dim = 8
embed_dim = 16
batch_size = 4
steps = 10
valid_percent = 0
test_percent = 0
[generate]
k = 3
max_words = 30
[pipeline]
run_dir = "{run}"
books = "{books}"
catalog = ""
coco = []
cnn = "{cnn}"
photos = ["{photo}"]
story_genres = ["adventure", "sci-fi"]
[[pipeline.flickr8k]]
captions = "{captions}"
images = "{images}"
[genres]
adventure = ["adventure"]
"sci-fi" = ["sci-fi"]
"#,
            run = root.join("run").display(),
            books = books.display(),
            cnn = cnn.display(),
            photo = images.join("1.png").display(),
            captions = captions.display(),
            images = images.display(),
        ),
    )
    .unwrap();
    let pipeline = |extra: &[&str]| {
        let output = storytool().arg("pipeline").arg("--config").arg(&config).args(extra).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        (String::from_utf8_lossy(&output.stdout).into_owned(), stderr)
    };
    let (stories, log) = pipeline(&[]);
    for stage in [
        "ingest",
        "train-encoder",
        "train-decoder",
        "compute-bias",
        "features-flickr8k-0",
        "train-vse",
        "build-caption-bank",
    ] {
        assert!(log.contains(&format!("== {stage}\n")), "{stage} did not run:\n{log}");
    }
    assert!(stories.contains("1.png / adventure]") && stories.contains("1.png / sci-fi]"), "{stories}");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("run/stories.json")).unwrap()).unwrap();
    assert_eq!(written.as_array().unwrap().len(), 2);

    // Nothing changed: every stage is skipped, and the stories are the same.
    let (again, log) = pipeline(&[]);
    assert_eq!(log.matches("up to date, skipped").count(), 7, "{log}");
    assert_eq!(again, stories);

    // A decoder setting changed: only the decoder is trained again.
    let (_, log) = pipeline(&["--set", "decoder.steps=25"]);
    assert!(log.contains("== train-decoder\n"), "{log}");
    assert_eq!(log.matches("up to date, skipped").count(), 6, "{log}");

    // A training stage that started but did not finish resumes from its checkpoint.
    let record_path = root.join("run/pipeline.json");
    let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    record["stages"]["train-decoder"]["finished"] = serde_json::Value::Null;
    std::fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();
    let (_, log) = pipeline(&["--set", "decoder.steps=25"]);
    assert!(log.contains("== train-decoder: resuming from its checkpoint"), "{log}");

    // With the captioner: the features are extracted again with their spatial maps, the VSE and the bank
    // follow them, the captioner trains, and the stories are written from its captions.
    let (stories, log) = pipeline(&[
        "--set",
        "decoder.steps=25",
        "--set",
        "pipeline.captioner=true",
        "--set",
        "captioner.word_dim=8",
        "--set",
        "captioner.hidden_dim=16",
        "--set",
        "captioner.attention_dim=8",
        "--set",
        "captioner.min_word_count=1",
        "--set",
        "captioner.valid_percent=0",
        "--set",
        "captioner.test_percent=0",
        "--set",
        "captioner.train.batch_size=4",
        "--set",
        "captioner.train.steps=5",
    ]);
    for stage in ["features-flickr8k-0", "train-vse", "train-captioner", "build-caption-bank"] {
        assert!(log.contains(&format!("== {stage}\n")), "{stage} did not run:\n{log}");
    }
    assert_eq!(log.matches("up to date, skipped").count(), 4, "{log}");
    assert!(root.join("run/captioner/captioner.safetensors").is_file());
    assert!(stories.contains("1.png / adventure]") && stories.contains("1.png / sci-fi]"), "{stories}");
}

/// The language-model decoder on the tiny GGUF the tests ship: `train-decoder` with `decoder.kind = "lm"`
/// trains, stops and resumes; `generate` writes with it; `evaluate decoder` scores what each input is
/// worth; and a base model other than the one it was trained on is refused, naming both.
#[test]
fn a_language_model_decoder_trains_resumes_writes_and_refuses_another_base_model() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let models = models(root);
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm/tiny-llama.gguf");
    let lm_settings = [
        "--set",
        "decoder.kind=lm",
        "--set",
        "decoder.lm.prefix_len=2",
        "--set",
        "decoder.lm.mapper_hidden=16",
        "--set",
        "decoder.lm.lora_rank=2",
        "--set",
        "decoder.lm.max_tokens=48",
        "--set",
        "decoder.lm.max_passages=40",
        "--set",
        "decoder.lm.valid_passages=4",
        "--set",
        "decoder.lm.train.batch_size=4",
        "--set",
        "decoder.lm.train.validate_every=2",
        "--set",
        "decoder.lm.train.checkpoint_every=2",
    ];
    let out = root.join("lm-decoder");
    let train = |steps: &str, resume: bool| {
        let mut command = storytool();
        command
            .args(["train-decoder", "--corpus"])
            .arg(root.join("corpus"))
            .arg("--encoder")
            .arg(models.join("encoder"))
            .arg("--lm")
            .arg(&tiny)
            .arg("--out")
            .arg(&out)
            .args(["--steps", steps])
            .args(SETTINGS)
            .args(lm_settings);
        if resume {
            command.arg("--resume");
        }
        run(&mut command)
    };
    let first = train("4", false);
    assert!(first.contains("Trained 4 steps") && first.contains("valid loss per token"), "{first}");
    let resumed = train("6", true);
    assert!(resumed.contains("Resumed at step 4 and trained to step 6"), "{resumed}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "storytool-lm-decoder");
    assert_eq!(manifest["base_model"]["file"], "tiny-llama.gguf");
    assert!(out.join("steering.safetensors").is_file());

    // The model folder with the language-model decoder in place of the GRU.
    std::fs::rename(models.join("decoder"), root.join("gru-decoder")).unwrap();
    std::fs::rename(&out, models.join("decoder")).unwrap();
    let written = run(storytool()
        .args(["generate", "--text", "It was at night.", "--genre", "adventure", "--json", "--lm"])
        .arg(&tiny)
        .arg("--models")
        .arg(&models)
        .args(SETTINGS)
        .args(["--set", "generate.min_words=3", "--set", "generate.max_words=10", "--seed", "3"]));
    let stories: serde_json::Value = serde_json::from_str(&written).unwrap();
    let story = stories[0]["story"].as_str().unwrap();
    assert!(!story.is_empty() && !story.contains('<') && !story.contains('\n'), "{story:?}");

    let scored = run(storytool()
        .args(["evaluate", "decoder", "--json", "--passages", "6", "--lm"])
        .arg(&tiny)
        .arg("--models")
        .arg(&models)
        .args(SETTINGS));
    let scored: serde_json::Value = serde_json::from_str(&scored).unwrap();
    for key in ["vector_gain", "keyword_gain", "genre_gain"] {
        let gain = &scored[key];
        assert!(gain["low"].as_f64().unwrap() <= gain["nats"].as_f64().unwrap(), "{scored}");
    }
    assert!(scored["nll"].as_f64().unwrap().is_finite(), "{scored}");

    // Another base model (one byte of its tensor data changed) is refused, naming both.
    let mut bytes = std::fs::read(&tiny).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let other = root.join("other.gguf");
    std::fs::write(&other, bytes).unwrap();
    let refused = storytool()
        .args(["generate", "--text", "It was at night.", "--genre", "adventure", "--lm"])
        .arg(&other)
        .arg("--models")
        .arg(&models)
        .args(SETTINGS)
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{message}");
    assert!(message.contains("tiny-llama.gguf") && message.contains("other.gguf"), "{message}");
}
