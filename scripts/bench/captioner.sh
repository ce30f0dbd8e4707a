#!/usr/bin/env bash
# Speed of the captioner on the photos of ../shared/data, all in one run so the figures compare:
#   - extract-features on the Flickr8k photos without and with --spatial (what the maps cost to write),
#   - train-captioner: tokens per second over 60 steps at the demo settings (from its metrics.jsonl),
#   - evaluate captioner on the test photos at beam 1 (batched greedy), 3 and 5: photos per second, and the
#     ratio to greedy.
# Usage: scripts/bench/captioner.sh [SHARED_DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
data="${1:-../shared/data}"
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/storytool"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
weights=$(scripts/fetch-cnn.sh)
seconds() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

flickr=(--dataset flickr8k --captions "$data/flickr8k/captions.txt" --images "$data/flickr8k/images" --cnn "$weights")
start=$(date +%s.%N); "$bin" extract-features "${flickr[@]}" --out "$out/pooled" >/dev/null 2>&1; end=$(date +%s.%N)
pooled=$(seconds "$start" "$end")
start=$(date +%s.%N); "$bin" extract-features "${flickr[@]}" --spatial --out "$out/spatial-flickr8k" >/dev/null 2>&1; end=$(date +%s.%N)
spatial=$(seconds "$start" "$end")
python3 -c "import sys; a, b = map(float, sys.argv[1:]); print(f'extract-features, 798 Flickr8k photos: {a:.1f} s pooled only, {b:.1f} s with --spatial ({b / a:.2f}x)')" "$pooled" "$spatial"
for set in "coco-val --annotations $data/coco/annotations/captions_val2017.json --images $data/coco/val2017" \
           "coco-train --annotations $data/coco/annotations/captions_train2017.json --images $data/coco/train2017"; do
    # shellcheck disable=SC2086
    "$bin" extract-features --spatial --dataset coco ${set#* } --cnn "$weights" --out "$out/spatial-${set%% *}" >/dev/null 2>&1
done
features=(--features "$out/spatial-coco-val" --features "$out/spatial-coco-train" --features "$out/spatial-flickr8k")

"$bin" train-captioner "${features[@]}" --out "$out/captioner" --steps 60 --set captioner.train.validate_every=1000 >/dev/null 2>&1
python3 - "$out/captioner/metrics.jsonl" <<'PY'
import json, sys
lines = [json.loads(line) for line in open(sys.argv[1])]
# The first window includes start-up; report the steady ones.
rates = [line["tokens_per_second"] for line in lines[1:]]
print(f"train-captioner (demo sizes, batch 32): {sum(rates) / len(rates):.0f} tokens/s over steps 11-60")
PY

greedy=""
for beam in 1 3 5; do
    start=$(date +%s.%N)
    "$bin" evaluate captioner --captioner checkpoints/demo/captioner "${features[@]}" --beam "$beam" --json > "$out/eval-$beam.json"
    end=$(date +%s.%N)
    took=$(seconds "$start" "$end")
    greedy=${greedy:-$took}
    python3 -c "
import json, sys
photos = json.load(open(sys.argv[1]))['photos']
took, greedy = float(sys.argv[2]), float(sys.argv[3])
print(f'evaluate captioner, beam {sys.argv[4]}: {photos} photos in {took:.2f} s = {photos / took:.1f} photos/s ({took / greedy:.2f}x the time of beam 1; wall, including loading)')
" "$out/eval-$beam.json" "$took" "$greedy" "$beam"
done
