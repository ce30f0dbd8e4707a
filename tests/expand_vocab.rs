//! `storytool expand-vocab` on a synthetic encoder whose embeddings are a known linear function of the word
//! vectors: the fit must recover it (R² > 0.999), map words the encoder never had, and write a table that
//! reads back through `ExpandedVocab`.

use std::path::Path;
use std::process::Command;

use rand::{Rng, SeedableRng};
use storytool::encoder::expanded::ExpandedVocab;
use storytool::text::Vocabulary;

const IN_DIM: usize = 6;
const WORD_DIM: usize = 4;

/// The true map: embedding = W·vector + b.
fn truth(vector: &[f32]) -> Vec<f32> {
    (0..WORD_DIM)
        .map(|out| {
            vector.iter().enumerate().map(|(i, x)| x * ((i + 2 * out) as f32 * 0.37).sin()).sum::<f32>()
                + out as f32 * 0.1
        })
        .collect()
}

/// An encoder folder whose vocabulary is `words` (plus `<eos>`, `<unk>`) and whose embeddings follow `truth`.
fn write_encoder(dir: &Path, words: &[(String, Vec<f32>)]) {
    std::fs::create_dir_all(dir).unwrap();
    let counts: Vec<(&str, u64)> = words.iter().map(|(word, _)| (word.as_str(), 1)).collect();
    let vocabulary = Vocabulary::from_counts(counts, words.len() + 2, true);
    vocabulary.save(&dir.join("tokenizer.json")).unwrap();
    let mut table = vec![0f32; vocabulary.len() * WORD_DIM];
    for (word, vector) in words {
        let id = vocabulary.id(word) as usize;
        table[id * WORD_DIM..(id + 1) * WORD_DIM].copy_from_slice(&truth(vector));
    }
    let bytes: Vec<u8> = table.iter().flat_map(|value| value.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![vocabulary.len(), WORD_DIM], &bytes)
        .unwrap();
    let file = safetensors::tensor::serialize([("embedding.weight", view)], None).unwrap();
    std::fs::write(dir.join("encoder.safetensors"), file).unwrap();
    let manifest = serde_json::json!({
        "format": "storytool-skip-thought-encoder",
        "created_by": {"tool": "test", "version": "0", "git_revision": null, "command": []},
        "corpus": "synthetic",
        "vocabulary_size": vocabulary.len(),
        "vocabulary_hash": vocabulary.content_hash(),
        "word_dim": WORD_DIM,
        "hidden_dim": 8,
        "max_tokens": 30,
        "steps": 0,
        "final_train_loss": null,
        "final_valid_loss": null,
        "config": storytool::config::EncoderConfig::default(),
    });
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
}

#[test]
fn recovers_a_known_map_and_writes_a_readable_table() {
    let root = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let words: Vec<(String, Vec<f32>)> = (0..400)
        .map(|index| (format!("word{index}"), (0..IN_DIM).map(|_| rng.random_range(-1.0..1.0)).collect()))
        .collect();
    // The encoder knows the first 300 words; the vectors file has all 400, with one in upper case.
    write_encoder(&root.path().join("encoder"), &words[..300]);
    let mut binary = format!("{} {IN_DIM}\n", words.len()).into_bytes();
    for (index, (word, vector)) in words.iter().enumerate() {
        let word = if index == 5 { word.to_uppercase() } else { word.clone() };
        binary.extend_from_slice(word.as_bytes());
        binary.push(b' ');
        vector.iter().for_each(|value| binary.extend_from_slice(&value.to_le_bytes()));
    }
    let vectors = root.path().join("vectors.bin");
    std::fs::write(&vectors, binary).unwrap();

    for dtype in ["f32", "f16"] {
        let out = root.path().join(format!("expanded-{dtype}"));
        let output = Command::new(env!("CARGO_BIN_EXE_storytool"))
            .args(["expand-vocab", "--encoder"])
            .arg(root.path().join("encoder"))
            .arg("--vectors")
            .arg(&vectors)
            .arg("--out")
            .arg(&out)
            .args(["--dtype", dtype])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.starts_with("Expanded to 400 words of 4 dimensions"), "{stdout}");

        let table = ExpandedVocab::open(&out).unwrap();
        assert_eq!(table.manifest.shared_words, 300);
        assert!(table.manifest.r_squared > 0.999, "R² {}", table.manifest.r_squared);
        assert!(table.manifest.heldout_r_squared > 0.999, "held-out R² {}", table.manifest.heldout_r_squared);
        assert!(table.manifest.heldout_cosine > 0.999);
        // A word the encoder never had gets the embedding the true map gives it.
        let tolerance = if dtype == "f16" { 2e-2 } else { 1e-4 };
        for (word, vector) in &words[350..353] {
            let found = table.embedding(word).unwrap();
            for (a, b) in found.iter().zip(truth(vector)) {
                assert!((a - b).abs() < tolerance, "{word}: {a} vs {b}");
            }
        }
        assert!(table.embedding("word5").is_some(), "WORD5 is lowercased like the vocabulary");
        assert!(table.embedding("absent").is_none());
    }

    let again = Command::new(env!("CARGO_BIN_EXE_storytool"))
        .args(["expand-vocab", "--encoder"])
        .arg(root.path().join("encoder"))
        .arg("--vectors")
        .arg(&vectors)
        .arg("--out")
        .arg(root.path().join("expanded-f32"))
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}
