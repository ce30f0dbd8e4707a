#!/usr/bin/env bash
# Benchmark: `storytool expand-vocab` on a generated GoogleNews-sized word2vec binary (3,000,000 x 300,
# 3.6 GB), reporting seconds and peak memory (goals: <= 30 s, < 1 GB). The first rows carry the encoder's
# own words so the regression has something to fit.
#
#   scripts/bench/expand_vocab.sh ENCODER_DIR [ROWS] [DIM]
set -euo pipefail
cd "$(dirname "$0")/../.."
encoder=${1:?usage: scripts/bench/expand_vocab.sh ENCODER_DIR [ROWS] [DIM]}
rows=${2:-3000000}
dim=${3:-300}
work=$(mktemp -d "${TMPDIR:-/tmp}/storytool-expand-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --example make_word2vec --bin storytool
target=${CARGO_TARGET_DIR:-target}
echo "generating $rows x $dim word2vec binary..." >&2
"$target/release/examples/make_word2vec" "$rows" "$dim" "$work/vectors.bin" "$encoder/tokenizer.json"
ls -l "$work/vectors.bin" >&2
cat "$work/vectors.bin" > /dev/null  # warm the page cache, as a second run would find it
/usr/bin/time -v "$target/release/storytool" expand-vocab --encoder "$encoder" --vectors "$work/vectors.bin" \
    --out "$work/expanded" 2> "$work/time.txt"
grep -E "Elapsed \(wall clock\)|Maximum resident set size" "$work/time.txt"
ls -l "$work/expanded" >&2
