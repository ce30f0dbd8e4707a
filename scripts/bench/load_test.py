#!/usr/bin/env python3
"""Load test of `storytool serve` on loopback: a bounded number of story requests at rising concurrency.

Starts the server (demo models, `--workers W --queue Q`), then for each concurrency level sends `--requests`
POST /api/story requests (a sample photo, genres in turn) from that many client threads and reports
stories/s, p50/p99 latency of the successful ones, and how many answers were 200, 503 (refused: busy) or
anything else (failures). Below saturation there should be no 503s and no failures; above it, 503s, still
no failures.

    python3 scripts/bench/load_test.py [--workers 2] [--queue 4] [--requests 24] [--levels 1,2,4,16]
"""
import argparse, concurrent.futures, json, os, socket, subprocess, sys, threading, time, urllib.error, urllib.request, uuid
from pathlib import Path

root = Path(__file__).resolve().parents[2]
parser = argparse.ArgumentParser()
parser.add_argument("--workers", type=int, default=2)
parser.add_argument("--queue", type=int, default=4)
parser.add_argument("--requests", type=int, default=24)
parser.add_argument("--levels", default="1,2,4,16")
args = parser.parse_args()

subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=root, check=True)
binary = Path(os.environ.get("CARGO_TARGET_DIR", root / "target")) / "release" / "storytool"
cnn = subprocess.run([root / "scripts/fetch-cnn.sh"], capture_output=True, text=True, check=True).stdout.strip()
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
server = subprocess.Popen([binary, "serve", "--addr", f"127.0.0.1:{port}", "--cnn", cnn, "--workers", str(args.workers),
                           "--queue", str(args.queue)], cwd=root, stderr=subprocess.DEVNULL)
base = f"http://127.0.0.1:{port}"
try:
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    photo = (root / "data/samples/coffee.png").read_bytes()
    genres = json.load(urllib.request.urlopen(base + "/api/genres"))["genres"]

    def request(index):
        boundary = uuid.uuid4().hex
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="genre"\r\n\r\n{genres[index % len(genres)]}\r\n'.encode(),
                 f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.png"\r\nContent-Type: image/png\r\n\r\n'.encode()
                 + photo + b"\r\n", f"--{boundary}--\r\n".encode()]
        body = b"".join(parts)
        started = time.perf_counter()
        req = urllib.request.Request(base + "/api/story", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        try:
            with urllib.request.urlopen(req, timeout=120) as response:
                json.load(response)
                return response.status, time.perf_counter() - started
        except urllib.error.HTTPError as error:
            json.load(error)  # every error must be JSON
            return error.code, time.perf_counter() - started
        except Exception as error:  # a failure, not an answer
            return f"failed: {error}", time.perf_counter() - started

    print(f"server: {args.workers} workers, queue {args.queue}; {os.cpu_count()} cores; {args.requests} requests per level")
    print(f"{'clients':>8} {'stories/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'200':>5} {'503':>5} {'other':>6}")
    for level in [int(x) for x in args.levels.split(",")]:
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(level) as pool:
            results = list(pool.map(request, range(args.requests)))
        elapsed = time.perf_counter() - started
        ok = sorted(t for status, t in results if status == 200)
        busy = sum(1 for status, _ in results if status == 503)
        other = [status for status, _ in results if status not in (200, 503)]
        pct = lambda q: ok[min(len(ok) - 1, int(round(q * (len(ok) - 1))))] * 1000 if ok else float("nan")
        print(f"{level:>8} {len(ok) / elapsed:>10.2f} {pct(0.5):>8.0f} {pct(0.99):>8.0f} {len(ok):>5} {busy:>5} {len(other):>6}"
              + (f"  {other[:3]}" if other else ""))
finally:
    server.terminate()
    server.wait(timeout=30)
