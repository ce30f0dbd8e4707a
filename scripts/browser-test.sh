#!/usr/bin/env bash
# The real-browser test of `storytool serve`: headless Chromium opens the upload page, uploads a sample
# photo, waits for the story and saves a screenshot. Run by .ci/run. Needs Debian's `chromium` and Node with
# npm (each installed on its own if missing, by scripts/install-browser-tools.sh), puppeteer-core from npm (into
# the user's cache folder), the demo models, the EfficientNet-Lite0 weights (scripts/fetch-cnn.sh) and
# SmolLM2-135M, the demo story decoder's base model (scripts/fetch-lm.sh).
# Usage: scripts/browser-test.sh [SCREENSHOT.png] [SERVE ARGUMENTS...]   (default: runs/browser/screenshot.png;
# e.g. `--decoder checkpoints/demo/decoder-gru` for the GRU decoder)
set -euo pipefail
cd "$(dirname "$0")/.."
screenshot="${1:-runs/browser/screenshot.png}"
shift || true
mkdir -p "$(dirname "$screenshot")"

scripts/install-browser-tools.sh
tools="${XDG_CACHE_HOME:-$HOME/.cache}/storytool/browser"
if [ ! -d "$tools/node_modules/puppeteer-core" ]; then
    mkdir -p "$tools"
    npm install --silent --prefix "$tools" puppeteer-core@25.16.0 >/dev/null
fi
cnn=$(scripts/fetch-cnn.sh)
lm=$(scripts/fetch-lm.sh)
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/storytool"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
"$bin" serve --addr "127.0.0.1:$port" --cnn "$cnn" --lm "$lm" "$@" 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/healthz', timeout=1)" 2>/dev/null; then break; fi
    if ! kill -0 $server 2>/dev/null; then cat "$log" >&2; exit 1; fi
    sleep 0.2
done
# Run from beside its node_modules, where the script's `import 'puppeteer-core'` resolves.
cp tests/browser/upload.mjs "$tools/upload.mjs"
node "$tools/upload.mjs" \
    "http://127.0.0.1:$port/" "$PWD/data/samples/coffee.png" thriller sci-fi "$screenshot" || { cat "$log" >&2; exit 1; }
echo "screenshot: $screenshot"
