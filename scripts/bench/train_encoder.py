#!/usr/bin/env python3
"""Benchmark: skip-thought training throughput, full versus sampled softmax, as a fraction of the GEMM rate.

Runs, in one go on one machine: the CPU backend's matrix-multiplication rate at the output layer's shape and
at a square shape (examples/gemm_rate.rs), then `storytool train-encoder` for STEPS steps with the full
softmax and with a sampled one, on the same corpus and settings. Reports tokens/s, the validation loss each
reached, and the model's arithmetic rate (an analytic FLOP count per token: GRU gates and the output layer,
forward and backward = 3x forward) as a fraction of the measured GEMM rate.

    python3 scripts/bench/train_encoder.py CORPUS_DIR [--steps 40] [--sampled 1024]
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"


def run(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def flops_per_token(word, hidden, vocab, scored):
    """Forward + backward FLOPs per token of a (current, previous, next) triple, averaged over the three."""
    gru = 2 * 3 * (word * hidden + hidden * hidden)
    decoder = gru + 2 * hidden * scored  # a decoder step and its output layer
    forward = (gru + 2 * decoder) / 3  # one encoder token per two decoder tokens
    return 3 * forward


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--sampled", type=int, default=1024)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "storytool", "--example", "gemm_rate"], check=True, cwd=ROOT)
    manifest = json.loads((pathlib.Path(args.corpus) / "manifest.json").read_text())
    vocab = manifest["vocabulary"]["size"]
    config = {"word_dim": 128, "hidden_dim": 256, "batch_size": 64}
    gemm_square = json.loads(run([TARGET / "examples/gemm_rate", "1024", "1024", "1024"]))["gflop_per_s"]
    gemm_output = json.loads(run([TARGET / "examples/gemm_rate", str(config["batch_size"] * 31), str(config["hidden_dim"]), str(vocab), "10"]))["gflop_per_s"]
    gemm = max(gemm_square, gemm_output)
    print(f"GEMM rate: {gemm_square:.1f} GFLOP/s at 1024^3, {gemm_output:.1f} at the output layer's shape")
    results = {}
    with tempfile.TemporaryDirectory(prefix="storytool-train-bench-") as work:
        for name, sampled in (("full softmax", 0), (f"sampled softmax ({args.sampled})", args.sampled)):
            out = pathlib.Path(work) / f"run{sampled}"
            run([TARGET / "storytool", "train-encoder", "--corpus", args.corpus, "--out", out, "--steps", str(args.steps),
                 "--set", f"encoder.sampled_softmax={sampled}", "--set", f"encoder.train.validate_every={args.steps}",
                 "--set", "encoder.valid_batches=10", "--set", "encoder.train.checkpoint_every=100000",
                 "--set", f"encoder.word_dim={config['word_dim']}", "--set", f"encoder.hidden_dim={config['hidden_dim']}",
                 "--set", f"encoder.train.batch_size={config['batch_size']}"])
            lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
            tokens_per_s = sum(line["tokens_per_second"] for line in lines[1:]) / max(len(lines) - 1, 1)
            scored = vocab if sampled == 0 else sampled
            achieved = tokens_per_s * flops_per_token(config["word_dim"], config["hidden_dim"], vocab, scored) / 1e9
            results[name] = {"tokens_per_s": round(tokens_per_s), "valid_loss": round(lines[-1]["valid_loss"], 3),
                             "gflop_per_s": round(achieved, 1), "fraction_of_gemm": round(achieved / gemm, 3),
                             "seconds": round(lines[-1]["elapsed_seconds"], 1)}
    print(f"{'':<24} {'tokens/s':>9} {'valid loss':>10} {'GFLOP/s':>8} {'of GEMM':>8} {'seconds':>8}")
    for name, result in results.items():
        print(f"{name:<24} {result['tokens_per_s']:>9} {result['valid_loss']:>10} {result['gflop_per_s']:>8} "
              f"{100 * result['fraction_of_gemm']:>7.0f}% {result['seconds']:>8}")
    print(json.dumps({"gemm_gflop_per_s": gemm, "steps": args.steps, "runs": results}))


if __name__ == "__main__":
    main()
