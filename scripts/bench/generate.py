#!/usr/bin/env python3
"""Generate latency and memory of the demo models (checkpoints/demo) on the sample photos.

Runs `storytool generate --json` once per photo with every genre, repeated; reports the per-story latency
that generate measures in-process (`timings.total_ms`: retrieval, style shift, beam search, clean-up) as
p50/p95, the wall time of whole processes (model loading included) and their peak RSS (from /usr/bin/time).

    python3 scripts/bench/generate.py [--repeats 5] [--beam 5]
"""
import argparse, json, os, statistics, subprocess, sys, time
from pathlib import Path

root = Path(__file__).resolve().parents[2]
parser = argparse.ArgumentParser()
parser.add_argument("--repeats", type=int, default=5)
parser.add_argument("--beam", type=int, default=5)
args = parser.parse_args()

subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=root, check=True)
binary = Path(os.environ.get("CARGO_TARGET_DIR", root / "target")) / "release" / "storytool"
cnn = subprocess.run([root / "scripts/fetch-cnn.sh"], capture_output=True, text=True, check=True).stdout.strip()
lm = subprocess.run([root / "scripts/fetch-lm.sh"], capture_output=True, text=True, check=True).stdout.strip()
photos = sorted((root / "data/samples").glob("*.[pj][np]g"))
genres = ["adventure", "sci-fi", "thriller"]
latencies, walls, rss = [], [], []
for _ in range(args.repeats):
    for photo in photos:
        command = ["/usr/bin/time", "-f", "%M", str(binary), "generate", "--json", "--image", str(photo), "--cnn", cnn, "--lm", lm,
                   "--beam", str(args.beam)]
        for genre in genres:
            command += ["--genre", genre]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=root, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        if result.returncode != 0:
            sys.exit(result.stderr)
        rss.append(int(result.stderr.strip().splitlines()[-1]) / 1024)
        latencies += [story["timings"]["total_ms"] for story in json.loads(result.stdout)]

def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]

print(f"{len(latencies)} stories ({len(photos)} photos x {len(genres)} genres x {args.repeats}), beam {args.beam}, {os.cpu_count()} cores")
print(f"per story (in process): p50 {pct(latencies, 0.5):.0f} ms, p95 {pct(latencies, 0.95):.0f} ms")
print(f"per process (load + {len(genres)} stories): p50 {pct(walls, 0.5) * 1000:.0f} ms, p95 {pct(walls, 0.95) * 1000:.0f} ms")
print(f"peak RSS: max {max(rss):.0f} MB")
