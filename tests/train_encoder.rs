//! The skip-thought training loop end to end on a tiny corpus this test writes: loss falls, a run that is
//! stopped (as by Ctrl-C) and resumed matches an uninterrupted one, and settings cannot change on resume.

mod support;

use burn::tensor::Device;
use std::path::Path;
use std::sync::Mutex;

use storytool::config::Config;
use storytool::corpus::{IngestRequest, ingest};
use storytool::encoder::SentenceEncoder;
use storytool::encoder::expanded::TableType;
use storytool::progress::NoProgress;
use storytool::train::encoder::{EncoderTrainRequest, METRICS_FILE, MetricsLine, TrainError, train_encoder};
use storytool::train::trainer::RunOptions;
use storytool::util::cancel::CancelFlag;
use storytool::vectors::expand::{ExpandRequest, expand_vocab};
use storytool::vectors::readers::VectorFormat;
use support::CancelAfter;

const STORY: &str = "The ship left the harbour at dawn. The captain watched the grey sea. \
The wind rose in the afternoon. The sailors pulled down the sails. Night fell over the water. \
The storm broke before midnight. The mast cracked in the wind. The crew held on to the ropes. \
Morning came at last. The sea was calm again. The captain counted his men. Nobody was lost.";

/// burn seeds one random generator per backend, shared by the whole process: two trainings initialising
/// their weights at once would interleave its draws. Tests here train one at a time.
static ONE_TRAINING_AT_A_TIME: Mutex<()> = Mutex::new(());

fn tiny_corpus(root: &Path) -> std::path::PathBuf {
    let books = root.join("books");
    std::fs::create_dir_all(&books).unwrap();
    for index in 0..3 {
        // Books differ (identical ones would be dropped as duplicates) but share their words.
        let paragraphs: Vec<String> = (0..4 + index).map(|_| STORY.to_string()).collect();
        std::fs::write(books.join(format!("book{index}.txt")), paragraphs.join("\n\n")).unwrap();
    }
    let mut config = Config::default();
    config.corpus.valid_books = 1;
    let out = root.join("corpus");
    ingest(&IngestRequest::new(books, out.clone(), config), &NoProgress).unwrap();
    out
}

fn request(corpus: &Path, out: &Path, steps: u64) -> EncoderTrainRequest {
    let mut config = Config::default();
    let encoder = &mut config.encoder;
    encoder.word_dim = 8;
    encoder.hidden_dim = 16;
    encoder.train.batch_size = 4;
    encoder.max_tokens = 12;
    encoder.train.learning_rate = 0.01;
    encoder.train.steps = steps;
    encoder.train.validate_every = 10;
    encoder.train.checkpoint_every = 10;
    encoder.valid_batches = 2;
    EncoderTrainRequest {
        corpus_dir: corpus.to_path_buf(),
        config,
        run: RunOptions { command: Vec::new(), ..RunOptions::new(out) },
    }
}

fn metrics(out: &Path) -> Vec<MetricsLine> {
    std::fs::read_to_string(out.join(METRICS_FILE))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn training_lowers_the_loss_and_exports_the_encoder() {
    let _serial = ONE_TRAINING_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = tempfile::tempdir().unwrap();
    let corpus = tiny_corpus(root.path());
    let out = root.path().join("run");
    let report = train_encoder(&request(&corpus, &out, 100), &NoProgress).unwrap();
    assert!(report.train_triples > 0 && report.valid_triples > 0, "{report:?}");
    assert_eq!(report.steps, 100);
    let lines = metrics(&out);
    let first = lines.first().unwrap().train_loss;
    let last = lines.last().unwrap().train_loss;
    assert!(last < first * 0.6, "loss went from {first} to {last}");
    assert!(lines.last().unwrap().valid_loss.is_some());
    for file in ["encoder.safetensors", "manifest.json", "tokenizer.json"] {
        assert!(out.join(file).is_file(), "{file} is missing");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["hidden_dim"], 16);
    assert_eq!(manifest["steps"], 100);

    let again = train_encoder(&request(&corpus, &out, 60), &NoProgress).unwrap_err();
    assert!(matches!(again, TrainError::RunExists(_)), "{again}");

    // The exported folder encodes sentences on its own.
    let encoder = SentenceEncoder::load(&out, &Device::flex()).unwrap();
    let encoded = encoder.encode(&["The captain watched the sea.", "The zorblax watched the sea."]);
    assert_eq!(encoded.len(), 2);
    assert_eq!(encoded[0].vector.len(), 16);
    assert!(encoded[0].unknown_words.is_empty());
    assert_eq!(encoded[1].unknown_words, ["zorblax"]);
    assert_eq!(encoder.encode(&["The captain watched the sea."])[0], encoded[0], "encoding is deterministic");

    // Through the CLI, as JSON lines.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_storytool"))
        .args(["encode", "--encoder"])
        .arg(&out)
        .arg("--file")
        .arg({
            let input = out.join("input.txt");
            std::fs::write(&input, "The sea was calm.\n\nNobody was lost.\n").unwrap();
            input
        })
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["sentence"], "Nobody was lost.");
    assert_eq!(lines[1]["vector"].as_array().unwrap().len(), 16);

    // With an expanded vocabulary, a word outside the vocabulary gets its own embedding; known words encode
    // exactly as before.
    let mut glove = String::new();
    for (index, word) in encoder.vocabulary().words().iter().enumerate().skip(2).chain([(99, &"zorblax".to_string())]) {
        glove.push_str(&format!("{word} {} {} {}\n", index % 7, (index * 3) % 5, index as f32 * 0.1));
    }
    std::fs::write(root.path().join("glove.txt"), glove).unwrap();
    let expand = ExpandRequest {
        encoder_dir: out.clone(),
        vectors: root.path().join("glove.txt"),
        format: VectorFormat::Glove,
        words: None,
        out: root.path().join("expanded"),
        dtype: TableType::F32,
        force: false,
        command: Vec::new(),
        cancel: CancelFlag::new(),
    };
    expand_vocab(&expand, &NoProgress).unwrap();
    let expanded = SentenceEncoder::load(&out, &Device::flex())
        .unwrap()
        .with_expanded_vocab(&root.path().join("expanded"))
        .unwrap();
    let with = expanded.encode(&["The captain watched the sea.", "The zorblax watched the sea."]);
    assert!(with[1].unknown_words.is_empty(), "{:?}", with[1].unknown_words);
    assert_ne!(with[1].vector, encoded[1].vector, "zorblax no longer reads as <unk>");
    for (a, b) in with[0].vector.iter().zip(&encoded[0].vector) {
        assert!((a - b).abs() < 1e-5, "known words encode the same: {a} vs {b}");
    }

    // A vocabulary that is not the one it was trained on is refused.
    let other = storytool::text::Vocabulary::from_counts([("other", 1)], 10, true);
    other.save(&out.join("tokenizer.json")).unwrap();
    let error = SentenceEncoder::load(&out, &Device::flex()).unwrap_err().to_string();
    assert!(error.contains("was trained on"), "{error}");
}

#[test]
fn an_interrupted_run_resumes_exactly() {
    let _serial = ONE_TRAINING_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = tempfile::tempdir().unwrap();
    let corpus = tiny_corpus(root.path());

    // A sampled softmax, so that resuming must also redraw the same candidate words.
    let sampled = |out: &Path| {
        let mut request = request(&corpus, out, 20);
        request.config.encoder.sampled_softmax = 8;
        request
    };
    let straight = root.path().join("straight");
    train_encoder(&sampled(&straight), &NoProgress).unwrap();

    let stopped = root.path().join("stopped");
    let first = sampled(&stopped);
    let progress = CancelAfter::new(first.run.cancel.clone(), 7);
    let error = train_encoder(&first, &progress).unwrap_err();
    assert!(matches!(error, TrainError::Interrupted(_)), "{error}");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stopped.join("checkpoint/state.json")).unwrap()).unwrap();
    assert_eq!(state["step"], 7, "the interrupt wrote a checkpoint at the step reached");

    let mut resumed = sampled(&stopped);
    resumed.run.resume = true;
    let report = train_encoder(&resumed, &NoProgress).unwrap();
    assert_eq!(report.resumed_from, Some(7));

    let (a, b) = (metrics(&straight), metrics(&stopped));
    let at = |lines: &[MetricsLine], step: u64| lines.iter().find(|line| line.step == step).unwrap().clone();
    for step in [10, 20] {
        let (x, y) = (at(&a, step), at(&b, step));
        assert!((x.valid_loss.unwrap() - y.valid_loss.unwrap()).abs() < 1e-4, "step {step}: {x:?} vs {y:?}");
    }

    let mut changed = sampled(&stopped);
    changed.config.encoder.train.steps = 30;
    changed.run.resume = true;
    changed.config.encoder.hidden_dim = 32;
    let error = train_encoder(&changed, &NoProgress).unwrap_err().to_string();
    assert!(error.contains("encoder.hidden_dim"), "{error}");
}

#[test]
fn a_diverging_run_stops_at_the_first_non_finite_loss_and_keeps_its_checkpoint() {
    let _serial = ONE_TRAINING_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = tempfile::tempdir().unwrap();
    let corpus = tiny_corpus(root.path());
    let out = root.path().join("run");
    let mut request = request(&corpus, &out, 50);
    request.config.encoder.train.checkpoint_every = 1;
    // Steps of 1e38 overflow f32 within two steps.
    request.config.encoder.train.learning_rate = 1e38;
    let error = train_encoder(&request, &NoProgress).unwrap_err();
    let TrainError::NonFinite { step, checkpoint_step, .. } = error else { panic!("{error}") };
    assert_eq!(checkpoint_step, Some(step - 1), "the checkpoint before the bad step is kept");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("checkpoint/state.json")).unwrap()).unwrap();
    assert_eq!(state["step"], step - 1);
    assert!(!out.join("encoder.safetensors").exists(), "a diverged run exports nothing");
}

#[test]
fn a_bi_skip_encoder_exports_both_directions() {
    let _serial = ONE_TRAINING_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = tempfile::tempdir().unwrap();
    let corpus = tiny_corpus(root.path());
    let out = root.path().join("run");
    let mut bi = request(&corpus, &out, 20);
    bi.config.encoder.bidirectional = true;
    train_encoder(&bi, &NoProgress).unwrap();
    let encoder = SentenceEncoder::load(&out, &Device::flex()).unwrap();
    let first = encoder.encode(&["The captain watched the sea."]);
    assert_eq!(first[0].vector.len(), 16);
    let again = SentenceEncoder::load(&out, &Device::flex()).unwrap().encode(&["The captain watched the sea."]);
    assert_eq!(first, again, "the backward encoder's weights were exported and loaded, not re-initialised");

    // Combine-skip: a uni-skip encoder of the same vocabulary beside it, vectors concatenated.
    let uni = root.path().join("uni");
    train_encoder(&request(&corpus, &uni, 10), &NoProgress).unwrap();
    let input = root.path().join("input.txt");
    std::fs::write(&input, "The captain watched the sea.\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_storytool"))
        .args(["encode", "--encoder"])
        .arg(&uni)
        .arg("--encoder")
        .arg(&out)
        .arg("--file")
        .arg(&input)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let line: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let vector: Vec<f32> = serde_json::from_value(line["vector"].clone()).unwrap();
    assert_eq!(vector.len(), 32);
    let uni_vector = SentenceEncoder::load(&uni, &Device::flex())
        .unwrap()
        .encode(&["The captain watched the sea."])
        .remove(0)
        .vector;
    for (a, b) in vector[..16].iter().zip(&uni_vector).chain(vector[16..].iter().zip(&first[0].vector)) {
        assert!((a - b).abs() < 1e-6, "combined vector is uni ++ bi: {a} vs {b}");
    }
}

#[test]
fn data_parallel_training_on_two_and_six_devices_matches_one_device() {
    let _serial = ONE_TRAINING_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = tempfile::tempdir().unwrap();
    let corpus = tiny_corpus(root.path());
    // The full softmax (a sampled one draws candidates per share), and a batch of 5 that splits 3 + 2.
    let run = |out: &Path, devices: Vec<Device>| {
        let mut request = request(&corpus, out, 10);
        request.config.encoder.sampled_softmax = 0;
        request.config.encoder.train.batch_size = 5;
        request.config.encoder.train.validate_every = 1;
        request.run = request.run.on(devices);
        train_encoder(&request, &NoProgress).unwrap()
    };
    let (one, two, six) = (root.path().join("one"), root.path().join("two"), root.path().join("six"));
    run(&one, vec![Device::flex()]);
    let report = run(&two, vec![Device::flex(), Device::flex()]);
    assert_eq!(report.steps, 10);
    // Six devices for five rows: one device gets no share and sits the steps out.
    run(&six, vec![Device::flex(); 6]);

    for other in [&two, &six] {
        let (a, b) = (metrics(&one), metrics(other));
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            let close = |p: f32, q: f32| (p - q).abs() <= 1e-4 * p.abs().max(1.0);
            assert!(close(x.train_loss, y.train_loss), "step {}: {} vs {}", x.step, x.train_loss, y.train_loss);
            assert!(close(x.valid_loss.unwrap(), y.valid_loss.unwrap()), "step {}: {x:?} vs {y:?}", x.step);
        }
    }
    // The same weights after ten steps: the same vectors.
    let sentence = ["The captain watched the sea."];
    let vector = |dir: &Path| SentenceEncoder::load(dir, &Device::flex()).unwrap().encode(&sentence).remove(0).vector;
    let x = vector(&one);
    for other in [&two, &six] {
        let y = vector(other);
        let largest = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(largest < 1e-4, "vectors differ by up to {largest}");
    }
    assert!(x.iter().any(|value| value.abs() > 1e-3), "the vector is not all zeros");
}
