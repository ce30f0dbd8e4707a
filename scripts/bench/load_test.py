#!/usr/bin/env python3
"""Load test of `storytool serve` on loopback: a bounded number of story requests at rising concurrency.

Starts the server (demo models, `--workers W --queue Q`), then for each concurrency level sends `--requests`
POST /api/story requests (a sample photo, genres in turn) from that many client threads and reports
stories/s, p50/p99 latency of the successful ones, and how many answers were 200, 503 (refused: busy) or
anything else (failures). Below saturation there should be no 503s and no failures; above it, 503s, still
no failures. With `--stream` the requests ask for server-sent events and the table adds the p50 and p99 time
to the first words of the story (the first `text` event); a stream that ends without its `story` event, or
with an `error` event other than a documented 503, is a failure. The server's peak resident memory (VmHWM)
is printed at the end. Arguments after `--` go to `storytool serve` (e.g. `-- --decoder
checkpoints/demo/decoder-gru`).

    python3 scripts/bench/load_test.py [--workers 2] [--queue 4] [--requests 24] [--levels 1,2,4,16] [--stream] [-- SERVE ARGS]
"""
import argparse, concurrent.futures, json, os, socket, subprocess, sys, threading, time, urllib.error, urllib.request, uuid
from pathlib import Path

root = Path(__file__).resolve().parents[2]
parser = argparse.ArgumentParser()
parser.add_argument("--workers", type=int, default=2)
parser.add_argument("--queue", type=int, default=4)
parser.add_argument("--requests", type=int, default=24)
parser.add_argument("--levels", default="1,2,4,16")
parser.add_argument("--stream", action="store_true", help="ask for server-sent events and time the first words")
parser.add_argument("serve_args", nargs="*", help="more arguments for storytool serve (after --)")
args = parser.parse_args()

subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=root, check=True)
binary = Path(os.environ.get("CARGO_TARGET_DIR", root / "target")) / "release" / "storytool"
cnn = subprocess.run([root / "scripts/fetch-cnn.sh"], capture_output=True, text=True, check=True).stdout.strip()
lm = subprocess.run([root / "scripts/fetch-lm.sh"], capture_output=True, text=True, check=True).stdout.strip()
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
server = subprocess.Popen([binary, "serve", "--addr", f"127.0.0.1:{port}", "--cnn", cnn, "--lm", lm, "--workers", str(args.workers),
                           "--queue", str(args.queue), *args.serve_args], cwd=root, stderr=subprocess.DEVNULL)
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
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        if args.stream:
            headers["Accept"] = "text/event-stream"
        req = urllib.request.Request(base + "/api/story", data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as response:
                if not args.stream:
                    json.load(response)
                    return response.status, time.perf_counter() - started, None
                return streamed(response, started)
        except urllib.error.HTTPError as error:
            json.load(error)  # every error must be JSON
            return error.code, time.perf_counter() - started, None
        except Exception as error:  # a failure, not an answer
            return f"failed: {error}", time.perf_counter() - started, None

    def streamed(response, started):
        """Reads server-sent events to the end: (status, total seconds, seconds to the first words)."""
        first, name, last = None, None, None
        for raw in response:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
                if name == "text" and first is None:
                    first = time.perf_counter() - started
                last = (name, data)
        total = time.perf_counter() - started
        if last and last[0] == "story":
            return 200, total, first
        if last and last[0] == "error" and last[1].get("status") == 503:
            return 503, total, first
        return f"failed: stream ended with {last}", total, first

    print(f"server: {args.workers} workers, queue {args.queue}; {os.cpu_count()} cores; {args.requests} requests per level")
    first_columns = f" {'first p50':>9} {'first p99':>9}" if args.stream else ""
    print(f"{'clients':>8} {'stories/s':>10} {'p50 ms':>8} {'p99 ms':>8}{first_columns} {'200':>5} {'503':>5} {'other':>6}")
    for level in [int(x) for x in args.levels.split(",")]:
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(level) as pool:
            results = list(pool.map(request, range(args.requests)))
        elapsed = time.perf_counter() - started
        ok = sorted(result[1] for result in results if result[0] == 200)
        firsts = sorted(result[2] for result in results if result[0] == 200 and len(result) > 2 and result[2] is not None)
        busy = sum(1 for result in results if result[0] == 503)
        other = [result[0] for result in results if result[0] not in (200, 503)]
        pct = lambda values, q: values[min(len(values) - 1, int(round(q * (len(values) - 1))))] * 1000 if values else float("nan")
        first_cells = f" {pct(firsts, 0.5):>9.0f} {pct(firsts, 0.99):>9.0f}" if args.stream else ""
        print(f"{level:>8} {len(ok) / elapsed:>10.2f} {pct(ok, 0.5):>8.0f} {pct(ok, 0.99):>8.0f}{first_cells} {len(ok):>5} {busy:>5} {len(other):>6}"
              + (f"  {other[:3]}" if other else ""), flush=True)
    status = Path(f"/proc/{server.pid}/status").read_text()
    peak = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))
    print(f"server peak RSS (VmHWM): {int(peak) / 1024:.0f} MB")
finally:
    server.terminate()
    server.wait(timeout=30)
