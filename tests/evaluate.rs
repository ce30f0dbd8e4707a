//! `evaluate decoder` and `evaluate story` on models trained on fixtures: the decoder's held-out book is
//! read back with its vocabulary and scored; with fixture photos too few for a test split, `evaluate story`
//! says so and exits non-zero, as it does for a genre without held-out books. (The figures of the demo
//! models on the shared data are checked by `tests/real_data.rs`.)

mod support;

use support::{SETTINGS, models, run, storytool};

#[test]
fn the_decoder_is_scored_on_its_held_out_book_and_bad_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let models = models(root);
    let output = run(storytool()
        .args(["evaluate", "decoder", "--json", "--passages", "64", "--reconstructions", "8", "--models"])
        .arg(&models));
    let figures: serde_json::Value = serde_json::from_str(&output).unwrap();
    assert_eq!(figures["books"], 1, "{figures}");
    assert!(figures["passages"].as_u64().unwrap() >= 8, "{figures}");
    for key in ["nll_own", "nll_other", "perplexity", "conditioning_gain_nats", "content_recall_own"] {
        assert!(figures[key].as_f64().is_some_and(f64::is_finite), "{key}: {figures}");
    }
    // The conditioning gain is the other passages' loss less the passage's own. Its sign is not checked
    // here: the fixture decoder (300 steps on six tiny books) hardly reads its vector, because the fixture
    // encoder's vectors for "it was at night." and "it was at dawn." differ by 0.002-0.005 (norm 5.2); its
    // gain was +0.0009 nats before the training kernels and -0.00001 after, rounding noise either way. The
    // demo models' gain is checked on real data (tests/real_data.rs: at least 0.3 nats).
    let figure = |key: &str| figures[key].as_f64().unwrap();
    let gain = figure("nll_other") - figure("nll_own");
    assert!((gain - figure("conditioning_gain_nats")).abs() < 1e-5, "{figures}");

    // The same books through a corpus of another vocabulary: refused, naming both.
    let other_books = root.join("other-books/adventure");
    std::fs::create_dir_all(&other_books).unwrap();
    for index in 0..2 {
        std::fs::write(other_books.join(format!("{index}.txt")), "A cat sat. A dog ran. A bird sang.\n\n".repeat(20))
            .unwrap();
    }
    run(storytool()
        .args(["ingest", "--valid-books", "1", "--books"])
        .arg(root.join("other-books"))
        .arg("--out")
        .arg(root.join("other-corpus")));
    let refused = storytool()
        .args(["evaluate", "decoder", "--models"])
        .arg(&models)
        .arg("--corpus")
        .arg(root.join("other-corpus"))
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{message}");
    assert!(
        message.contains("other-corpus") && message.contains("decoder") && message.contains("vocabulary"),
        "{message}"
    );

    // Photos: the fixtures' ten photos leave too few in the test split to rank, which is said.
    let config = root.join("eval.toml");
    std::fs::write(
        &config,
        format!(
            "[pipeline]\nstory_genres = [\"adventure\", \"sci-fi\"]\ncoco = []\n[[pipeline.flickr8k]]\ncaptions = {:?}\nimages = {:?}\n",
            root.join("captions.txt"),
            root.join("images")
        ),
    )
    .unwrap();
    let refused = storytool()
        .args(["evaluate", "story", "--models"])
        .arg(&models)
        .arg("--cnn")
        .arg(models.join("cnn.pth"))
        .arg("--config")
        .arg(&config)
        .args(SETTINGS)
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{message}");
    assert!(message.contains("test photos"), "{message}");
}
