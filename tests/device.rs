//! `--device` from the command line: the CPU check passes, a backend this build lacks is refused with the
//! feature to build it with, and a list of devices is refused where one is needed.

use std::process::{Command, Output};

#[cfg(feature = "ndarray")]
mod support;

fn storytool(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_storytool"));
    command.args(args).env_remove("STORYTOOL_DEVICE");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("storytool runs")
}

fn refused(output: &Output, words: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected a refusal, got success: {stderr}");
    for word in words {
        assert!(stderr.contains(word), "`{word}` missing from: {stderr}");
    }
}

#[test]
fn check_device_on_the_cpu_passes_every_model_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("parity.json");
    let output = storytool(&["check-device", "--device", "cpu", "--json", json.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["passed"], true);
    let checks = report["checks"].as_array().unwrap();
    let models: std::collections::BTreeSet<&str> =
        checks.iter().map(|check| check["model"].as_str().unwrap()).collect();
    assert_eq!(models.len(), 6, "{models:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("all 11 checks agree"));
}

#[test]
fn a_backend_this_build_lacks_is_refused_with_how_to_build_it() {
    if cfg!(feature = "cuda") {
        return;
    }
    let output = storytool(&["check-device", "--device", "cuda:1"], &[]);
    refused(&output, &["built without the cuda backend", "`cuda:1`", "--features cuda", "offline-llvm.sh"]);
    // The environment variable and the config key are read too, and named when wrong.
    let output = storytool(&["check-device"], &[("STORYTOOL_DEVICE", "cuda")]);
    refused(&output, &["--features cuda"]);
    let output = storytool(&["generate", "--text", "a cat", "--genre", "thriller", "--set", "device.select=tpu"], &[]);
    refused(&output, &["device.select", "`tpu` is not a device"]);
}

#[test]
fn one_device_commands_refuse_a_list() {
    let output = storytool(&["generate", "--text", "a cat", "--genre", "thriller", "--device", "cpu,cpu"], &[]);
    refused(&output, &["generate computes on one device", "--device cpu"]);
}

/// With `--features ndarray`, burn's ndarray backend stands in for a GPU: another backend than the CPU's, so
/// tensors left on the wrong device fail, and the models run through burn's tensor operations (the path every
/// GPU takes) instead of storytool's CPU kernels, so `check-device` compares the two.
#[cfg(feature = "ndarray")]
mod on_another_backend {
    use std::path::Path;

    use super::*;

    fn path(path: &Path) -> &str {
        path.to_str().unwrap()
    }

    #[test]
    fn check_device_finds_the_tensor_path_equal_to_the_cpu_kernels() {
        let output = storytool(&["check-device", "--device", "ndarray"], &[]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("all 11 checks agree"), "{stdout}");
    }

    #[test]
    fn the_demo_models_write_the_same_story_on_either_backend() {
        let story = |device: &str| {
            let args = ["generate", "--text", "A cat sits by a pool.", "--genre", "thriller", "--json"];
            let output = storytool(&[&args[..], &["--device", device]].concat(), &[]);
            assert!(output.status.success(), "{device}: {}", String::from_utf8_lossy(&output.stderr));
            let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            json[0]["story"].as_str().unwrap().to_string()
        };
        assert_eq!(story("cpu"), story("ndarray"));
    }

    #[test]
    fn the_encoder_trains_there_on_one_device_and_on_two() {
        let root = tempfile::tempdir().unwrap();
        let corpus = crate::support::tiny_corpus(root.path(), 30);
        let small =
            ["--set", "encoder.word_dim=8", "--set", "encoder.hidden_dim=16", "--set", "encoder.train.batch_size=5"];
        for (name, devices) in [("one", "ndarray"), ("two", "ndarray,ndarray")] {
            let out = root.path().join(name);
            let train =
                ["train-encoder", "--corpus", path(&corpus), "--out", path(&out), "--steps", "4", "--device", devices];
            let output = storytool(&[&train[..], &small[..]].concat(), &[]);
            assert!(output.status.success(), "{devices}: {}", String::from_utf8_lossy(&output.stderr));
            assert!(out.join("encoder.safetensors").is_file());
        }
        // Trained there, the encoder loads and encodes on the CPU.
        let sentences = root.path().join("sentences.txt");
        std::fs::write(&sentences, "The crew sang.\n").unwrap();
        let one = root.path().join("one");
        let encode = ["encode", "--encoder", path(&one), "--file", path(&sentences)];
        let output = storytool(&encode, &[]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
}
