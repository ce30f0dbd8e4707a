#!/usr/bin/env python3
"""Peak memory of `storytool serve` under the worst uploads (issue 13), on loopback.

Starts the server with the demo models and the deployment's settings, then sends, from 200 client threads at
once: the 370-byte 100000x1 PNG and the 157-byte 1x20000 PNG of tests/fixtures/hostile/, a PNG that
declares just under the pixel limit (a few KB that decode to `--max-megapixels` million pixels), a 10 MB
upload, and ordinary photos. Prints how the answers came back (status counts) and the server's peak resident
memory (VmHWM) before and after, and fails if the server died.

    python3 scripts/bench/serve_memory.py [--binary PATH] [--workers 2] [--queue 8] [--max-megapixels 24] [--requests 200]
"""
import argparse, collections, concurrent.futures, os, socket, struct, subprocess, sys, time, urllib.error, urllib.request, uuid, zlib
from pathlib import Path

root = Path(__file__).resolve().parents[2]
parser = argparse.ArgumentParser()
parser.add_argument("--binary", default=str(Path(os.environ.get("CARGO_TARGET_DIR", root / "target")) / "release" / "storytool"))
parser.add_argument("--workers", type=int, default=2)
parser.add_argument("--queue", type=int, default=8)
parser.add_argument("--max-megapixels", type=float, default=24)
parser.add_argument("--requests", type=int, default=200)
args = parser.parse_args()


def png(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x80" * (width * 3)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def hwm(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(("VmHWM", "VmRSS")):
            yield line.split()[0].rstrip(":"), int(line.split()[1]) // 1024


side = int((args.max_megapixels * 1e6) ** 0.5) - 1
uploads = {
    "wide.png (100000x1)": (root / "tests/fixtures/hostile/wide.png").read_bytes(),
    "tall.png (1x20000)": (root / "tests/fixtures/hostile/tall.png").read_bytes(),
    f"bomb {side}x{side}": png(side, side),
    "10 MB of noise": os.urandom(10 << 20),
    "photo": (root / "data/samples/coffee.png").read_bytes(),
}
cnn = subprocess.run([root / "scripts/fetch-cnn.sh"], capture_output=True, text=True, check=True).stdout.strip()
lm = subprocess.run([root / "scripts/fetch-lm.sh"], capture_output=True, text=True, check=True).stdout.strip()
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
server = subprocess.Popen([args.binary, "serve", "--addr", f"127.0.0.1:{port}", "--cnn", cnn, "--lm", lm, "--workers", str(args.workers),
                           "--queue", str(args.queue), "--max-megapixels", str(args.max_megapixels)], cwd=root,
                          stderr=subprocess.DEVNULL)
base = f"http://127.0.0.1:{port}"
for _ in range(300):
    try:
        urllib.request.urlopen(base + "/healthz", timeout=1)
        break
    except OSError:
        time.sleep(0.1)
loaded = dict(hwm(server.pid))


def post(name):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"genre\"\r\n\r\nadventure\r\n--{boundary}\r\n"
            f"Content-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
    body += uploads[name] + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(base + "/api/story", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return name, answer.status
    except urllib.error.HTTPError as error:
        return name, error.code
    except OSError as error:
        return name, type(error).__name__


names = list(uploads)
started = time.time()
with concurrent.futures.ThreadPoolExecutor(args.requests) as pool:
    results = list(pool.map(post, [names[i % len(names)] for i in range(args.requests)]))
elapsed = time.time() - started
alive = server.poll() is None
peak = dict(hwm(server.pid)) if alive else {}
server.terminate()
server.wait(timeout=30)
counts = collections.Counter(results)
print(f"{args.requests} requests in {elapsed:.1f} s, workers {args.workers}, queue {args.queue}, max {args.max_megapixels} MP")
for (name, status), count in sorted(counts.items(), key=str):
    print(f"  {name:<24} {status}: {count}")
print(f"server resident memory after loading: {loaded.get('VmRSS')} MB; peak under load: {peak.get('VmHWM')} MB")
sys.exit(0 if alive else 1)
