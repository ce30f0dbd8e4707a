#!/usr/bin/env bash
# The GPU check: does the CUDA build compute what the CPU computes, how fast does it train against PyTorch
# on the same GPU, and how long does a story take. Built for the GPU machine this project borrows at times
# (one NVIDIA H200, CUDA 13 driver, PyTorch with CUDA, no Rust toolchain, no network, 64 MiB for the
# whole working tree that travels, carried files included; 10 minutes a command), so it runs in halves:
#
#   scripts/gpu-check.sh prepare        here, with the Rust toolchain: builds `storytool --features cuda`
#                                       (after scripts/offline-llvm.sh, with CUDARC_CUDA_VERSION=13000),
#                                       strips and xz-compresses it, and ingests two small corpora
#                                       (vocabularies 10k and 20k) from the shared books into an xz tarball,
#                                       all in gpu-check/ (git-ignored); prints what would travel.
#   scripts/gpu-check.sh slim           the repository's tracked files are about 81 MB, over the 64 MiB a
#                                       device call takes: untracks (in the index only, files stay on disk)
#                                       and ignores the demo models the check does not use (caption bank,
#                                       captioner, VSE: 58 MB). `scripts/gpu-check.sh unslim` puts them back.
#   scripts/gpu-check.sh run OUT        there, from the repository root with gpu-check/ carried along:
#                                       writes OUT/parity.json, OUT/throughput.json, OUT/generate.json and
#                                       OUT/summary.json, in at most about 8 minutes
#                                       (`timeout 540 scripts/gpu-check.sh run "$OUT"`).
#
# What `run` measures:
#   1. parity   `storytool check-device --device cuda`: every model (skip-thought, story decoder, VSE,
#               captioner, EfficientNet-Lite0) forward and through one training step (loss and every
#               gradient) on the GPU against the CPU, same weights, same batch; passes at 1e-3 relative L2.
#   2. speed    scripts/bench/vs_pytorch.py --device cuda: `train-encoder` target tokens/s at the demo size
#               (V 10k, E 256, H 512, B 64) and the paper size (V 20k, E 620, H 2400, B 64), each against
#               the same skip-thought model in the machine's PyTorch on the same GPU, in the same run.
#   3. latency  `storytool generate --device cuda --text ...` on the demo models (caption text in, three
#               genres; the photo path's CNN weights and caption bank do not fit the 64 MiB), cold (first
#               call: kernels compile) and warm (median of the next runs), and the same on the CPU.
#
# Environment (to try the `run` half on any machine): GPU_CHECK_DEVICE (default cuda; `cpu` runs the
# same steps on the CPU), GPU_CHECK_BINARY (a storytool binary to use instead of gpu-check/storytool.xz),
# GPU_CHECK_SIZES (default demo,paper), GPU_CHECK_STEPS (train steps per run instead of the sizes' own),
# GPU_CHECK_CORPORA (a folder of corpus-10000/ and corpus-20000/ instead of gpu-check/corpora.tar.xz).
set -euo pipefail
cd "$(dirname "$0")/.."

here="gpu-check"
usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

prepare() {
    local books="${BOOKS:-../shared/data/books}" count="${GPU_CHECK_BOOKS:-12}"
    # Its own target folder: the CUDA build must not replace the CPU build's binary.
    export CARGO_TARGET_DIR="${GPU_CHECK_TARGET_DIR:-$HOME/.cache/storytool/target-cuda}"
    mkdir -p "$here"
    scripts/offline-llvm.sh
    echo "building storytool with --features cuda (about 30 minutes cold on 2 cores)" >&2
    CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}" \
        cargo build --release --locked --features cuda --bin storytool
    local built="$CARGO_TARGET_DIR/release/storytool"
    objcopy --strip-all "$built" "$here/storytool"
    xz -T0 -9 -f "$here/storytool"
    # A few books, ingested at both vocabulary sizes; the GPU machine has no books.
    local subset
    subset=$(mktemp -d)
    local all
    mapfile -t all < <(find "$books" -maxdepth 1 -type f -name '*.txt' | sort)
    cp "${all[@]:0:$count}" "$subset/"
    local corpora
    corpora=$(mktemp -d)
    for vocab in 10000 20000; do
        "$built" ingest --books "$subset" --out "$corpora/corpus-$vocab" --valid-books 0 \
            --set "corpus.vocab_size=$vocab" >/dev/null 2>&1
    done
    tar -C "$corpora" -cf - corpus-10000 corpus-20000 | xz -T0 -9 >"$here/corpora.tar.xz"
    rm -rf "$subset" "$corpora"
    ls -l "$here" >&2
    local tree carried
    tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
    carried=$(du -sb "$here" | cut -f1)
    echo "travels: $(((tree + carried) / 1048576)) MiB (tree $((tree / 1048576)) MiB + $here $((carried / 1048576)) MiB; limit 64 MiB)" >&2
    echo "ready: \`scripts/gpu-check.sh slim\`, then on the GPU machine, carrying \`$here\`:" >&2
    echo "  timeout 540 scripts/gpu-check.sh run \"\$OUT\"      (then \`scripts/gpu-check.sh unslim\` here)" >&2
}

# The demo models the check does not read: untracked in the index and ignored, so they do not travel.
slim_paths=(checkpoints/demo/caption-bank checkpoints/demo/captioner checkpoints/demo/vse)
exclude_file() { echo "$(git rev-parse --git-dir)/info/exclude"; }

slim() {
    git rm -r -q --cached "${slim_paths[@]}"
    for path in "${slim_paths[@]}"; do
        grep -qxF "/$path/" "$(exclude_file)" 2>/dev/null || echo "/$path/" >>"$(exclude_file)"
    done
    echo "untracked ${slim_paths[*]} in the index (the files are still here); undo: scripts/gpu-check.sh unslim" >&2
}

unslim() {
    for path in "${slim_paths[@]}"; do
        sed -i "\#^/$path/\$#d" "$(exclude_file)"
    done
    git reset -q HEAD -- "${slim_paths[@]}"
    git status --short -- "${slim_paths[@]}" >&2
}

# Milliseconds since the epoch, for timing commands.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

run() {
    local out="${1:?usage: scripts/gpu-check.sh run OUT}"
    local device="${GPU_CHECK_DEVICE:-cuda}" sizes="${GPU_CHECK_SIZES:-demo,paper}"
    mkdir -p "$out"
    work=$(mktemp -d) # global: the EXIT trap runs after this function returns
    trap 'rm -rf "$work"' EXIT
    local binary="${GPU_CHECK_BINARY:-}"
    if [ -z "$binary" ]; then
        xz -dc "$here/storytool.xz" >"$work/storytool"
        chmod +x "$work/storytool"
        binary="$work/storytool"
    fi
    mkdir -p "$work/corpora"
    if [ -f "$here/corpora.tar.xz" ]; then
        xz -dc "$here/corpora.tar.xz" | tar -C "$work/corpora" -xf -
    fi
    local corpora="${GPU_CHECK_CORPORA:-$work/corpora}"
    local python
    python=$(command -v python3)
    {
        echo "device: $device"
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
        "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null || true
    } | tee "$out/machine.txt" >&2

    echo "== 1. parity: storytool check-device --device $device" >&2
    local parity_status=0
    timeout 90 "$binary" check-device --device "$device" --json "$out/parity.json" || parity_status=$?

    echo "== 2. train-encoder against PyTorch on $device ($sizes)" >&2
    local steps=()
    [ -n "${GPU_CHECK_STEPS:-}" ] && steps=(--steps "$GPU_CHECK_STEPS")
    local speed_status=0
    timeout 270 "$python" scripts/bench/vs_pytorch.py --binary "$binary" --device "$device" \
        --corpora "$corpora" --sizes "$sizes" --rounds 1 "${steps[@]}" --json "$out/throughput.json" \
        || speed_status=$?

    echo "== 3. generate latency on $device and on the CPU" >&2
    # The GRU decoder: the language-model decoder's base model (98 MB) does not travel to the device.
    local generate=(generate --models checkpoints/demo --decoder checkpoints/demo/decoder-gru --text "A cat sits on the edge of a swimming pool."
        --text "A small cat is lying next to a pool." --genre adventure --genre sci-fi --genre thriller --json)
    local latency_status=0
    {
        echo "{"
        # The CUDA build computes on the CPU too (`--device cpu`): the same binary on both sides.
        for name in "$device" cpu; do
            local times=()
            for _ in 1 2 3 4; do
                local start
                start=$(now_ms)
                timeout 15 "$binary" "${generate[@]}" --device "$name" >"$work/story-$name.json" || latency_status=$?
                times+=($(($(now_ms) - start)))
            done
            echo "  \"$name\": {\"cold_ms\": ${times[0]}, \"warm_ms\": [${times[1]}, ${times[2]}, ${times[3]}]},"
        done
        echo "  \"command\": \"storytool ${generate[*]}\""
        echo "}"
    } >"$out/generate.json"
    cp "$work/story-$device.json" "$out/story.json" 2>/dev/null || true

    "$python" - "$out" "$parity_status" "$speed_status" "$latency_status" <<'EOF'
import json, pathlib, statistics, sys
out, statuses = pathlib.Path(sys.argv[1]), dict(zip(["parity", "speed", "latency"], map(int, sys.argv[2:])))
summary = {"exit_status": statuses}
if (out / "parity.json").exists():
    parity = json.loads((out / "parity.json").read_text())
    summary["parity_passed"] = parity["passed"]
    summary["parity_worst_relative"] = max(check["relative"] for check in parity["checks"])
if (out / "throughput.json").exists():
    for size, figures in json.loads((out / "throughput.json").read_text()).items():
        summary[f"{size}_storytool_tokens_per_s"] = figures["storytool"]["tokens_per_s"]
        summary[f"{size}_pytorch_tokens_per_s"] = figures["pytorch"]["tokens_per_s"]
        summary[f"{size}_ratio"] = figures["ratio"]
generate = json.loads((out / "generate.json").read_text())
for side, figures in generate.items():
    if isinstance(figures, dict):
        summary[f"generate_{side}_cold_ms"] = figures["cold_ms"]
        summary[f"generate_{side}_warm_ms"] = statistics.median(figures["warm_ms"])
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
EOF
    [ "$parity_status" -eq 0 ] && [ "$speed_status" -eq 0 ] && [ "$latency_status" -eq 0 ]
}

case "${1:-}" in
    prepare) prepare ;;
    slim) slim ;;
    unslim) unslim ;;
    run) shift; run "$@" ;;
    *) usage ;;
esac
