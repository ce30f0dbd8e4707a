#!/usr/bin/env python3
"""Benchmark: `storytool ingest` throughput on the shared books beside the plain-Python baseline.

Both run in this one script on the same machine, each REPEATS times after a warm-up run (so the books are
in the page cache for both); the median wall time of each gives MB/s and their ratio.

    python3 scripts/bench/ingest.py [--books DIR] [--catalog FILE] [--repeats N] [--binary PATH]

The binary defaults to the release build in CARGO_TARGET_DIR (or ./target); build it first with
`cargo build --release`.
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def timed(command):
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} failed:\n{result.stdout}{result.stderr}")
    return elapsed, result.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--books", default=str(ROOT.parent / "shared/data/books"))
    parser.add_argument("--catalog", default=str(ROOT.parent / "shared/data/books.csv"))
    parser.add_argument("--repeats", type=int, default=5)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    parser.add_argument("--binary", default=str(target / "release/storytool"))
    args = parser.parse_args()
    if not pathlib.Path(args.binary).is_file():
        sys.exit(f"no storytool binary at {args.binary}: run `cargo build --release` first")

    n_bytes = sum(path.stat().st_size for path in pathlib.Path(args.books).rglob("*.txt"))
    work = pathlib.Path(tempfile.mkdtemp(prefix="storytool-bench-"))
    try:
        out = work / "corpus"
        storytool = [args.binary, "ingest", "--books", args.books, "--catalog", args.catalog, "--out", str(out), "--force"]
        baseline = [sys.executable, str(ROOT / "scripts/bench/baseline_ingest.py"), args.books]
        times = {"storytool ingest": [], "python baseline": []}
        for name, command in (("storytool ingest", storytool), ("python baseline", baseline)):
            timed(command)  # warm-up: page cache, binary loading
            for _ in range(args.repeats):
                elapsed, _ = timed(command)
                times[name].append(elapsed)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    megabytes = n_bytes / 1e6
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"input: {megabytes:.1f} MB of books, {os.cpu_count()} cores, median of {args.repeats} runs")
    print(f"{'command':<18} {'median s':>9} {'min s':>7} {'MB/s':>7}")
    for name, values in times.items():
        print(f"{name:<18} {medians[name]:>9.3f} {min(values):>7.3f} {megabytes / medians[name]:>7.1f}")
    ratio = medians["python baseline"] / medians["storytool ingest"]
    print(f"storytool / baseline throughput: {ratio:.1f}x")
    print(json.dumps({
        "megabytes": round(megabytes, 2),
        "storytool_mb_per_s": round(megabytes / medians["storytool ingest"], 1),
        "baseline_mb_per_s": round(megabytes / medians["python baseline"], 1),
        "ratio": round(ratio, 2),
    }))


if __name__ == "__main__":
    main()
