#!/usr/bin/env python3
"""Benchmark: how soon a sampled or adaptive softmax reaches the validation loss of a full-softmax run.

Trains `storytool train-encoder` twice on one corpus with the same settings: with the full softmax for STEPS
steps, then with a sampled softmax of SAMPLED words (or, with --adaptive, an adaptive softmax with those
cutoffs) for up to STEPS steps, validating (on the same held-out batches, over the whole vocabulary: the
full softmax's or the adaptive softmax's own normalised probabilities) every VALIDATE steps. Reports the full
run's final validation loss, the time the other run first reached it, and the ratio of the two times (the
issue's target: at most 1/3).

Times are each run's `elapsed_seconds` at its validation lines (training and the validations themselves,
which both runs pay alike).

    python3 scripts/bench/sampled_vs_dense.py CORPUS_DIR [--steps 300] [--sampled 1024] [--validate 25]
        [--adaptive 2000,6000] [--set encoder.word_dim=128 ...] [--binary PATH]
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]


def train(binary, corpus, out, steps, sampled, validate, settings, adaptive=None):
    command = [binary, "train-encoder", "--corpus", corpus, "--out", out, "--steps", str(steps),
               "--set", f"encoder.sampled_softmax={0 if adaptive else sampled}", "--set", f"encoder.train.validate_every={validate}",
               "--set", "encoder.train.checkpoint_every=1000000", "--set", "encoder.valid_batches=10"]
    if adaptive:
        command += ["--set", f"encoder.adaptive_softmax=[{adaptive}]"]
    for setting in settings:
        command += ["--set", setting]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} failed:\n{result.stdout}{result.stderr[-3000:]}")
    lines = [json.loads(line) for line in (pathlib.Path(out) / "metrics.jsonl").read_text().splitlines()]
    return [(line["step"], line["elapsed_seconds"], line["valid_loss"]) for line in lines
            if line.get("valid_loss") is not None]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--sampled", type=int, default=1024)
    parser.add_argument("--validate", type=int, default=25)
    parser.add_argument("--adaptive", help="adaptive softmax cutoffs, e.g. 2000,6000, instead of a sampled one")
    parser.add_argument("--set", action="append", default=[], dest="settings")
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    parser.add_argument("--binary", default=str(target / "release/storytool"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="storytool-sampled-") as work:
        dense = train(args.binary, args.corpus, f"{work}/dense", args.steps, 0, args.validate, args.settings)
        sampled = train(args.binary, args.corpus, f"{work}/sampled", args.steps, args.sampled, args.validate,
                        args.settings, args.adaptive)
    other = f"adaptive softmax ({args.adaptive})" if args.adaptive else f"sampled softmax ({args.sampled})"
    goal_step, goal_time, goal = dense[-1]
    print(f"{'step':>6} {'dense s':>8} {'dense loss':>10} {'other s':>9} {'other loss':>12}")
    for (step, dense_time, dense_loss), (_, sampled_time, sampled_loss) in zip(dense, sampled):
        print(f"{step:>6} {dense_time:>8.1f} {dense_loss:>10.3f} {sampled_time:>9.1f} {sampled_loss:>12.3f}")
    reached = next(((step, time) for step, time, loss in sampled if loss <= goal), None)
    result = {"dense_steps": goal_step, "dense_seconds": goal_time, "dense_valid_loss": goal,
              "other": other, "other_final_valid_loss": sampled[-1][2]}
    if reached:
        result.update(other_step=reached[0], other_seconds=reached[1], time_ratio=reached[1] / goal_time)
        print(f"{other} reached the full run's validation loss {goal:.3f} at step "
              f"{reached[0]} after {reached[1]:.1f} s: {reached[1] / goal_time:.2f} of the full run's {goal_time:.1f} s")
    else:
        print(f"{other} did not reach {goal:.3f} in {args.steps} steps "
              f"(final {sampled[-1][2]:.3f} after {sampled[-1][1]:.1f} s)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
