//! The VSE on synthetic features with planted image-caption pairs: the loss falls, retrieval finds the
//! pairs, an interrupted run resumes to the same result; then the CLI end to end on fixture photos
//! (extract-features -> train-vse -> build-caption-bank -> caption -> evaluate vse).

mod support;

use burn::tensor::Device;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use storytool::captions::{Caption, CaptionedImage, DatasetKind, Split};
use storytool::config::Config;
use storytool::corpus::manifest::{CreatedBy, InputFile};
use storytool::features::FeaturesManifest;
use storytool::progress::NoProgress;
use storytool::retrieval::TrainedVse;
use storytool::retrieval::data::VseData;
use storytool::retrieval::evaluate::retrieval_scores;
use storytool::train::run::TrainError;
use storytool::train::trainer::RunOptions;
use storytool::train::vse::{VseMetricsLine, VseTrainRequest, train_vse};
use storytool::util::tensor_file::{Precision, Table, write_tables};
use support::CancelAfter;

/// burn's random generator is process-wide: one training at a time keeps runs reproducible.
static ONE_TRAINING_AT_A_TIME: Mutex<()> = Mutex::new(());

const IMAGES: usize = 40;
const DIM: usize = 24;

/// A features folder of `IMAGES` random feature vectors, each with three captions made of two words only
/// that image's captions use.
fn planted_features(dir: &Path) -> PathBuf {
    let out = dir.join("features");
    std::fs::create_dir_all(&out).unwrap();
    let images: Vec<CaptionedImage> = (0..IMAGES)
        .map(|i| CaptionedImage {
            key: format!("coco:{i}"),
            file_name: format!("{i}.jpg"),
            captions: [
                format!("a w{i} near the v{i} ."),
                format!("the w{i} with a v{i}"),
                format!("w{i} and v{i} here"),
            ]
            .into_iter()
            .enumerate()
            .map(|(n, text)| Caption { id: format!("coco:{}", i * 10 + n), text })
            .collect(),
        })
        .collect();
    let features = support::values(IMAGES * DIM, 5, 1.0);
    write_tables(&out.join("features.safetensors"), &[&Table::new("pooled", IMAGES, DIM, features)], Precision::F32)
        .unwrap();
    let jsonl = |rows: Vec<String>| rows.join("\n") + "\n";
    std::fs::write(out.join("images.jsonl"), jsonl(images.iter().map(|i| serde_json::to_string(i).unwrap()).collect()))
        .unwrap();
    let captions = images
        .iter()
        .flat_map(|image| {
            image.captions.iter().map(|caption| {
                serde_json::json!({"image": image.key, "id": caption.id, "text": caption.text}).to_string()
            })
        })
        .collect();
    std::fs::write(out.join("captions.jsonl"), jsonl(captions)).unwrap();
    let fake = InputFile { path: "synthetic".into(), bytes: 0, blake3: "synthetic".into() };
    let manifest = FeaturesManifest {
        format: "storytool-image-features".into(),
        created_by: CreatedBy::now(vec!["test".into()]),
        dataset: DatasetKind::Coco,
        annotations: fake.clone(),
        images_dir: "synthetic".into(),
        cnn: fake,
        image_size: 224,
        feature_dim: DIM,
        spatial: None,
        images_named: IMAGES,
        images_extracted: IMAGES,
        captions: IMAGES * 3,
        missing: vec![],
        unreadable: vec![],
        seconds: 0.0,
    };
    std::fs::write(out.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
    out
}

fn small_config(steps: u64) -> Config {
    let mut config = Config::default();
    config.vse.word_dim = 16;
    config.vse.embed_dim = 32;
    config.vse.train.batch_size = 16;
    config.vse.train.learning_rate = 0.01;
    config.vse.valid_percent = 0;
    config.vse.test_percent = 0;
    config.vse.train.steps = steps;
    config.vse.train.validate_every = 50;
    config.vse.train.checkpoint_every = 10;
    config
}

fn request(features: &Path, out: &Path, config: Config) -> VseTrainRequest {
    VseTrainRequest {
        features: vec![features.to_path_buf()],
        config,
        word_vectors: None,
        run: RunOptions { command: vec!["test".into()], ..RunOptions::new(out) },
    }
}

fn metrics(out: &Path) -> Vec<VseMetricsLine> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn training_finds_planted_pairs() {
    let _one = ONE_TRAINING_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let features = planted_features(dir.path());
    let out = dir.path().join("vse");
    let report = train_vse(&request(&features, &out, small_config(150)), &NoProgress).unwrap();
    assert_eq!(report.images, [IMAGES, 0, 0]);
    let lines = metrics(&out);
    let (first, last) = (lines.first().unwrap().train_loss, lines.last().unwrap().train_loss);
    assert!(last < first / 4.0, "loss {first} -> {last}");

    let vse = TrainedVse::load(&out, &Device::flex()).unwrap();
    let data = VseData::load(&[features], &vse.manifest.config, Some(vse.vocabulary.clone())).unwrap();
    let images = data.split(Split::Train);
    let scores = retrieval_scores(&vse.model, &data, &images, &vse.manifest.config).unwrap();
    // Chance: R@1 2.5% text->image, 7.5% image->text.
    assert!(scores.text_to_image.r1 > 60.0, "{scores:?}");
    assert!(scores.image_to_text.r1 > 60.0, "{scores:?}");
    assert!(scores.text_to_image.chance_r1 < 3.0);

    // The exported model, reloaded, embeds a caption like the one trained.
    let vectors = vse.embed_texts(&["w3 and v3 here", "the w7 with a v7"]);
    assert_eq!(vectors.len(), 2 * 32);
    let norm: f32 = vectors[..32].iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
}

#[test]
fn an_interrupted_run_resumes_to_the_same_model() {
    let _one = ONE_TRAINING_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let features = planted_features(dir.path());
    let whole = dir.path().join("whole");
    train_vse(&request(&features, &whole, small_config(25)), &NoProgress).unwrap();

    let parts = dir.path().join("parts");
    let mut first = request(&features, &parts, small_config(25));
    let cancel = CancelAfter::new(first.run.cancel.clone(), 7);
    first.run.cancel = cancel.flag.clone();
    assert!(matches!(train_vse(&first, &cancel), Err(TrainError::Interrupted(_))));
    let mut again = request(&features, &parts, small_config(25));
    assert!(matches!(train_vse(&again, &NoProgress), Err(TrainError::RunExists(_))));
    again.run.resume = true;
    let report = train_vse(&again, &NoProgress).unwrap();
    assert_eq!(report.resumed_from, Some(7));

    let (a, b) = (metrics(&whole), metrics(&parts));
    assert_eq!(a.iter().map(|l| l.step).collect::<Vec<_>>(), b.iter().map(|l| l.step).collect::<Vec<_>>());
    // The line at step 10 averages steps 8-10 only in the resumed run; later windows lie wholly after it.
    for (x, y) in a.iter().zip(&b).filter(|(x, _)| x.step > 10) {
        assert!((x.train_loss - y.train_loss).abs() < 1e-4, "step {}: {} vs {}", x.step, x.train_loss, y.train_loss);
    }

    // Settings that shape the model may not change on resume.
    let mut changed = small_config(30);
    changed.vse.embed_dim = 48;
    let mut resume = request(&features, &parts, changed);
    resume.run.resume = true;
    let error = train_vse(&resume, &NoProgress).unwrap_err().to_string();
    assert!(error.contains("vse.embed_dim"), "{error}");
}

#[test]
fn a_non_finite_loss_stops_training() {
    let _one = ONE_TRAINING_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let features = planted_features(dir.path());
    let mut config = small_config(20);
    config.vse.train.learning_rate = 1e38;
    config.vse.train.clip_norm = 1e30;
    let result = train_vse(&request(&features, &dir.path().join("vse"), config), &NoProgress);
    assert!(matches!(result, Err(TrainError::NonFinite { .. })), "{result:?}");
}

fn storytool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_storytool"))
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[test]
fn photos_to_captions_through_the_cli() {
    let _one = ONE_TRAINING_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("tiny.pth");
    support::write_legacy_pth(&weights, &support::tiny_efficientnet(3));
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let mut lines = vec!["image,caption".to_string()];
    for i in 0..12u8 {
        support::write_photo(&images.join(format!("{i}.jpg")), 50 + u32::from(i) * 3, 40, i * 20 + 1);
        for n in 0..3 {
            lines.push(format!("{i}.jpg,photo number{i} shot{n}"));
        }
    }
    lines.push("absent.jpg,a photo nobody has".into());
    let captions = dir.path().join("captions.txt");
    std::fs::write(&captions, lines.join("\n")).unwrap();
    let features = dir.path().join("features");
    run(storytool()
        .args(["extract-features", "--dataset", "flickr8k", "--captions"])
        .arg(&captions)
        .arg("--images")
        .arg(&images)
        .arg("--out")
        .arg(&features)
        .arg("--cnn")
        .arg(&weights));
    let vse = dir.path().join("models/vse");
    let trained = run(storytool()
        .args(["train-vse", "--features"])
        .arg(&features)
        .arg("--out")
        .arg(&vse)
        .args([
            "--steps",
            "20",
            "--set",
            "vse.embed_dim=16",
            "--set",
            "vse.word_dim=8",
            "--set",
            "vse.train.batch_size=4",
        ])
        .args(["--set", "vse.test_percent=30", "--set", "vse.valid_percent=20"]));
    assert!(trained.contains("Trained 20 steps"), "{trained}");
    let bank = run(storytool()
        .args(["build-caption-bank", "--vse"])
        .arg(&vse)
        .arg("--flickr8k")
        .arg(&captions)
        .arg("--out")
        .arg(dir.path().join("models/caption-bank")));
    assert!(bank.contains("37 captions embedded"), "{bank}");
    // Each caption's content words, a line per bank row, for decoders that read keywords.
    let keywords = std::fs::read_to_string(dir.path().join("models/caption-bank/keywords.txt")).unwrap();
    let ids = std::fs::read_to_string(dir.path().join("models/caption-bank/captions.txt")).unwrap();
    assert_eq!(keywords.split('\n').count(), ids.lines().count());
    assert!(keywords.lines().all(|line| !line.split_whitespace().any(|word| ["a", "the", "is"].contains(&word))));
    let shown = run(storytool()
        .args(["caption", "--image"])
        .arg(images.join("4.jpg"))
        .arg("--models")
        .arg(dir.path().join("models"))
        .arg("--cnn")
        .arg(&weights)
        .args(["-k", "3", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let found = json["captions"].as_array().unwrap();
    assert_eq!(found.len(), 3);
    assert!(found[0]["text"].as_str().unwrap().starts_with("photo number"), "{shown}");
    assert!(found[0]["score"].as_f64().unwrap() >= found[2]["score"].as_f64().unwrap());
    let evaluated = run(storytool().args(["evaluate", "vse", "--vse"]).arg(&vse).arg("--json"));
    let json: serde_json::Value = serde_json::from_str(&evaluated).unwrap();
    assert!(json["scores"]["image_to_text"]["r10"].as_f64().is_some(), "{evaluated}");

    // Other CNN weights than the VSE was trained on are refused.
    let other = dir.path().join("other.pth");
    let mut tensors = support::tiny_efficientnet(3);
    tensors[0].2[0] += 1.0;
    support::write_legacy_pth(&other, &tensors);
    let refused = storytool()
        .args(["caption", "--image"])
        .arg(images.join("4.jpg"))
        .arg("--models")
        .arg(dir.path().join("models"))
        .arg("--cnn")
        .arg(&other)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not those the VSE was trained on"));
}

#[test]
fn the_vse_refuses_several_devices_before_touching_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let features = planted_features(dir.path());
    let out = dir.path().join("vse");
    let mut two = request(&features, &out, small_config(5));
    two.run = two.run.on(vec![Device::flex(), Device::flex()]);
    let error = train_vse(&two, &NoProgress).unwrap_err().to_string();
    assert!(error.contains("trains on one device") && error.contains("--device"), "{error}");
    assert!(!out.exists(), "nothing is written");
}
