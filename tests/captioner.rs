//! The Show-Attend-Tell captioner: a tiny model memorises its photos, beam search of width 1 writes what
//! greedy decoding writes, training resumes to the same weights; then the CLI on fixture photos:
//! extract-features --spatial -> train-captioner -> caption (with the attention picture) -> evaluate
//! captioner beside the VSE baseline -> generate --captioner.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use storytool::captioner::decode::{CaptionRules, beam_captions, caption_beam_settings, greedy_captions};
use storytool::config::Config;
use storytool::features::FeatureSet;
use storytool::model::batch::PaddedBatch;
use storytool::model::captioner::{Captioner, CaptionerModelConfig};
use storytool::model::skip_thought::DecoderTargets;
use storytool::progress::NoProgress;
use storytool::train::captioner::{CaptionerTrainRequest, train_captioner};
use storytool::train::run::TrainError;
use storytool::train::trainer::RunOptions;
use support::{CancelAfter, SETTINGS, models, run, storytool};

/// Training seeds the device's global generator: one training at a time in this test binary.
static ONE_TRAINING_AT_A_TIME: Mutex<()> = Mutex::new(());

/// `photos` photos of `locations` annotation vectors of `dim` values, each photo its own pattern.
fn photos(photos: usize, locations: usize, dim: usize, device: &Device) -> Tensor<3> {
    let values = support::values(photos * locations * dim, 11, 1.0).iter().map(|v| v.abs() * 2.0).collect::<Vec<_>>();
    Tensor::from_data(TensorData::new(values, [photos, locations, dim]), device)
}

fn beam_words(model: &Captioner, all: &Tensor<3>, photo: usize, beam: usize, rules: &CaptionRules) -> Vec<u32> {
    let [_, locations, dim] = all.dims();
    let one = all.clone().slice([photo..photo + 1, 0..locations, 0..dim]);
    beam_captions(model, one, &caption_beam_settings(beam, rules)).first().map(|f| f.words.clone()).unwrap_or_default()
}

#[test]
fn a_tiny_captioner_memorises_its_photos_and_beam_width_1_is_greedy() {
    let _one = ONE_TRAINING_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let device = Device::flex().autodiff();
    device.seed(7);
    let mut model = CaptionerModelConfig::new(10, 16, 32, 16, 8).with_dropout(0.0).init(&device);
    let captions: [&[u32]; 3] = [&[2, 3, 4], &[5, 6], &[7, 8, 2, 9]];
    let inputs = photos(3, 4, 8, &device);
    let targets = DecoderTargets::new(&PaddedBatch::new(captions, 10), &device);
    let mut optimizer = AdamConfig::new().init();
    let first: f32 = model.forward_targets(inputs.clone(), &targets).0.nll.into_scalar();
    for _ in 0..300 {
        let (loss, _) = model.forward_targets(inputs.clone(), &targets);
        let grads = GradientsParams::from_grads(loss.objective(0.1).backward(), &model);
        model = optimizer.step(1e-2, model, grads);
    }
    let last: f32 = model.forward_targets(inputs.clone(), &targets).0.nll.into_scalar();
    assert!(last < first / 50.0, "nll {first} -> {last}");

    let model = model.valid();
    let inputs = Tensor::<3>::from_data(inputs.into_data(), &Device::flex());
    let rules = CaptionRules { max_words: 8, no_repeat_ngram: 3 };
    let greedy = greedy_captions(&model, inputs.clone(), &rules);
    assert_eq!(greedy, captions.map(<[u32]>::to_vec));
    for (photo, written) in greedy.iter().enumerate() {
        assert_eq!(&beam_words(&model, &inputs, photo, 1, &rules), written);
        assert_eq!(&beam_words(&model, &inputs, photo, 3, &rules), written);
    }
}

#[test]
fn beam_width_1_writes_what_greedy_writes_on_an_untrained_model() {
    let device = Device::flex();
    // No training: only the initialisation draws from the seed.
    let model = CaptionerModelConfig::new(30, 8, 16, 8, 6).init(&device);
    let inputs = photos(6, 5, 6, &device);
    for (max_words, no_repeat_ngram) in [(3, 0), (12, 0), (12, 1), (12, 2)] {
        let rules = CaptionRules { max_words, no_repeat_ngram };
        let greedy = greedy_captions(&model, inputs.clone(), &rules);
        for (photo, written) in greedy.iter().enumerate() {
            assert!(!written.is_empty() && written.len() <= max_words);
            assert!(!written.contains(&1), "never <unk>: {written:?}");
            if no_repeat_ngram > 0 {
                let grams: Vec<&[u32]> = written.windows(no_repeat_ngram).collect();
                let distinct: std::collections::HashSet<&[u32]> = grams.iter().copied().collect();
                assert_eq!(grams.len(), distinct.len(), "a repeated {no_repeat_ngram}-gram: {written:?}");
            }
            assert_eq!(&beam_words(&model, &inputs, photo, 1, &rules), written, "photo {photo}, {rules:?}");
        }
    }
}

/// Spatial features of the fixture photos of [`models`] (10 photos, night (dark) and dawn (bright), whose
/// captions say which), through the CLI, with a CNN whose stages halve the photo as Lite0's do.
fn spatial_features(root: &Path, cnn: &Path) -> PathBuf {
    let out = root.join("spatial");
    let output = run(storytool()
        .args(["extract-features", "--dataset", "flickr8k", "--spatial", "--captions"])
        .arg(root.join("captions.txt"))
        .arg("--images")
        .arg(root.join("images"))
        .arg("--out")
        .arg(&out)
        .arg("--cnn")
        .arg(cnn));
    assert!(output.contains("10 extracted"), "{output}");
    // Location-major rows: the mean over locations of each channel is the pooled feature.
    let set = FeatureSet::open(&out).unwrap();
    let (info, spatial) = set.spatial().unwrap();
    assert_eq!(info.grid[0] * info.grid[1] * info.dim, spatial.columns);
    for image in 0..spatial.rows {
        let row = spatial.row(image);
        for (channel, pooled) in set.pooled.row(image).iter().enumerate() {
            let mean =
                (0..info.locations()).map(|l| row[l * info.dim + channel]).sum::<f32>() / info.locations() as f32;
            assert!((mean - pooled).abs() < 2e-3 * pooled.abs().max(1.0), "image {image} channel {channel}");
        }
    }
    assert_eq!(info.grid, [7, 7]);
    // A larger input gives a finer grid; a size the CNN cannot halve five times is refused.
    let finer = root.join("spatial-finer");
    let extract = |size: &str, out: &Path| {
        storytool()
            .args(["extract-features", "--dataset", "flickr8k", "--spatial", "--image-size", size, "--captions"])
            .arg(root.join("captions.txt"))
            .arg("--images")
            .arg(root.join("images"))
            .arg("--out")
            .arg(out)
            .arg("--cnn")
            .arg(cnn)
            .output()
            .unwrap()
    };
    assert!(extract("448", &finer).status.success());
    let finer_grid = FeatureSet::open(&finer).unwrap().manifest.spatial.unwrap().grid;
    assert_eq!(finer_grid, [info.grid[0] * 2, info.grid[1] * 2]);
    let refused = extract("100", &root.join("refused-size"));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("multiple of 32"), "{stderr}");
    out
}

const CAPTIONER_SETTINGS: [&str; 12] = [
    "--set",
    "captioner.word_dim=16",
    "--set",
    "captioner.hidden_dim=32",
    "--set",
    "captioner.attention_dim=16",
    "--set",
    "captioner.train.batch_size=6",
    "--set",
    "captioner.train.learning_rate=0.01",
    "--set",
    "captioner.min_word_count=1",
];

fn request(features: &Path, out: &Path, steps: u64) -> CaptionerTrainRequest {
    let mut config = Config::default();
    config.captioner.word_dim = 8;
    config.captioner.hidden_dim = 16;
    config.captioner.attention_dim = 8;
    config.captioner.train.batch_size = 4;
    config.captioner.min_word_count = 1;
    config.captioner.train.steps = steps;
    config.captioner.train.checkpoint_every = 5;
    config.captioner.train.validate_every = 10;
    CaptionerTrainRequest {
        features: vec![features.to_path_buf()],
        config,
        run: RunOptions { command: vec!["test".into()], ..RunOptions::new(out) },
    }
}

#[test]
fn from_photos_to_written_captions_and_stories() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let models = models(root);
    let cnn = root.join("strided.pth");
    support::write_legacy_pth(&cnn, &support::strided_efficientnet(3));
    let features = spatial_features(root, &cnn);

    // An interrupted run (dropout on) resumes to the same weights as an uninterrupted one.
    {
        let _one = ONE_TRAINING_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let whole = root.join("whole");
        train_captioner(&request(&features, &whole, 12), &NoProgress).unwrap();
        let parts = root.join("parts");
        let mut first = request(&features, &parts, 12);
        let cancel = CancelAfter::new(first.run.cancel.clone(), 7);
        first.run.cancel = cancel.flag.clone();
        assert!(matches!(train_captioner(&first, &cancel), Err(TrainError::Interrupted(_))));
        let mut again = request(&features, &parts, 12);
        again.run.resume = true;
        assert_eq!(train_captioner(&again, &NoProgress).unwrap().resumed_from, Some(7));
        let weights = |dir: &Path| std::fs::read(dir.join("captioner.safetensors")).unwrap();
        assert!(weights(&whole) == weights(&parts), "resumed weights differ");
        let mut changed = request(&features, &parts, 20);
        changed.config.captioner.hidden_dim = 24;
        changed.run.resume = true;
        let error = train_captioner(&changed, &NoProgress).unwrap_err().to_string();
        assert!(error.contains("captioner.hidden_dim"), "{error}");
    }

    // Through the CLI: night photos are captioned "at night", dawn photos "at dawn".
    let captioner = root.join("captioner");
    let trained = run(storytool()
        .args(["train-captioner", "--features"])
        .arg(&features)
        .arg("--out")
        .arg(&captioner)
        .args(["--steps", "150"])
        .args(CAPTIONER_SETTINGS));
    assert!(trained.contains("Trained 150 steps"), "{trained}");
    let picture = root.join("attention.png");
    let caption = |photo: &str, extra: &[&str]| {
        run(storytool()
            .args(["caption", "--captioner"])
            .arg(&captioner)
            .arg("--image")
            .arg(root.join("images").join(photo))
            .arg("--cnn")
            .arg(&cnn)
            .args(extra))
    };
    let night = caption("4.png", &["--attention", picture.to_str().unwrap(), "--json"]);
    let night: serde_json::Value = serde_json::from_str(&night).unwrap();
    let best = night["captions"][0]["text"].as_str().unwrap();
    assert!(best.ends_with("at night ."), "{night}");
    let words = best.split_whitespace().count();
    // The picture: the photo and one tile per word and the end, 5 to a row, 224 px tiles with a label band.
    let image = image::open(&picture).unwrap();
    let tiles = words + 2;
    assert_eq!(image.width(), 224 * tiles.min(5) as u32);
    assert_eq!(image.height(), (224 + 24) * tiles.div_ceil(5) as u32);
    let dawn = caption("5.png", &["--beam", "1"]);
    assert!(dawn.trim_end().ends_with("at dawn ."), "{dawn}");

    // BLEU beside the VSE baseline (on the training photos: ten photos leave too few for a test split), with
    // a VSE trained on the same features.
    let vse = root.join("vse");
    run(storytool()
        .args(["train-vse", "--features"])
        .arg(&features)
        .arg("--out")
        .arg(&vse)
        .args(["--steps", "100", "--set", "vse.embed_dim=16", "--set", "vse.word_dim=8"])
        .args(SETTINGS));
    let scores = run(storytool()
        .args(["evaluate", "captioner", "--captioner"])
        .arg(&captioner)
        .arg("--vse")
        .arg(&vse)
        .args(["--split", "train", "--json"]));
    let scores: serde_json::Value = serde_json::from_str(&scores).unwrap();
    let bleu = |path: &str| scores.pointer(path).and_then(|v| v.as_f64()).unwrap_or_else(|| panic!("{path}: {scores}"));
    assert!(bleu("/captioner/bleu/0") > 0.9, "{scores}");
    assert!(bleu("/retrieval/scores/bleu/0") > 0.5, "{scores}");
    assert!(bleu("/captioner/cider_d").is_finite(), "{scores}");
    assert!(scores["photos"].as_u64().unwrap() >= 3, "{scores}");

    // A story from written captions.
    let story = run(storytool()
        .args(["generate", "--image"])
        .arg(root.join("images/2.png"))
        .arg("--models")
        .arg(&models)
        .arg("--captioner")
        .arg(&captioner)
        .arg("--cnn")
        .arg(&cnn)
        .args(["--genre", "adventure", "--json"])
        .args(SETTINGS));
    let story: serde_json::Value = serde_json::from_str(&story).unwrap();
    let used = story[0]["captions"].as_array().unwrap();
    assert!(!used.is_empty() && used.iter().all(|c| c["text"].as_str().unwrap().contains("night")), "{story}");
    assert!(story[0]["story"].as_str().unwrap().split_whitespace().count() >= 15, "{story}");

    // The web app streams the written caption's attention picture after the captions, before the story.
    let mut paths = storytool::story::generate::ModelPaths::from_dir(&models, cnn.clone());
    paths.captioner = Some(captioner.clone());
    let generator = storytool::story::generate::Generator::load(&paths, true, &Device::flex()).unwrap();
    let state = storytool::serve::ServeState::new(
        std::sync::Arc::new(generator),
        storytool::config::GenerateConfig::default(),
        storytool::serve::ServeSettings::default(),
        Default::default(),
    );
    let photo = std::fs::read(root.join("images/2.png")).unwrap();
    let boundary = "captioner-test";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"genre\"\r\n\r\nadventure\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"2.png\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&photo);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let request = axum::http::Request::post("/api/story")
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .header("accept", "text/event-stream")
        .body(axum::body::Body::from(body))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let events = runtime.block_on(async {
        use tower::ServiceExt;
        let response = storytool::serve::router(state).oneshot(request).await.unwrap();
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        String::from_utf8(axum::body::to_bytes(response.into_body(), 1 << 24).await.unwrap().to_vec()).unwrap()
    });
    let names: Vec<&str> = events.lines().filter_map(|line| line.strip_prefix("event: ")).collect();
    assert_eq!(names[..3], ["captions", "attention", "keywords"], "{names:?}");
    assert_eq!(names.last(), Some(&"story"));
    let attention = events.lines().skip_while(|line| *line != "event: attention").nth(1).unwrap();
    let data: serde_json::Value = serde_json::from_str(attention.strip_prefix("data: ").unwrap()).unwrap();
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD.decode(data["png"].as_str().unwrap()).unwrap();
    let picture = image::load_from_memory(&png).unwrap();
    assert_eq!(picture.width() % 224, 0, "tiles of 224 px");

    // Features without spatial maps are refused with the fix.
    let output = storytool()
        .args(["train-captioner", "--features"])
        .arg(root.join("features"))
        .arg("--out")
        .arg(root.join("refused"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("--spatial"), "{stderr}");
}
