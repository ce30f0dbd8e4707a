//! `--device` from the command line: the CPU check passes, a backend this build lacks is refused with the
//! feature to build it with, and a list of devices is refused where one is needed.

use std::process::{Command, Output};

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
    assert_eq!(models.len(), 5, "{models:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("all 9 checks agree"));
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
