#!/usr/bin/env bash
# Times `storytool extract-features` on the photos of ../shared/data (COCO val 640 px JPEGs, Flickr8k ~200 px)
# and prints images per second for each set. Usage: scripts/bench/extract_features.sh [SHARED_DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
data="${1:-../shared/data}"
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/storytool"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
weights=$(scripts/fetch-cnn.sh)
for set in "coco --annotations $data/coco/annotations/captions_val2017.json --images $data/coco/val2017" \
           "flickr8k --captions $data/flickr8k/captions.txt --images $data/flickr8k/images"; do
    name=${set%% *}
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$bin" extract-features --dataset $set --out "$out/$name" --cnn "$weights" >/dev/null 2>&1
    end=$(date +%s.%N)
    count=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['images_extracted'])" "$out/$name/manifest.json")
    python3 -c "import sys; n, s = int(sys.argv[1]), float(sys.argv[3]) - float(sys.argv[2]); print(f'{sys.argv[4]}: {n} images in {s:.2f} s = {n/s:.1f} images/s (wall, including model load)')" "$count" "$start" "$end" "$name"
done
