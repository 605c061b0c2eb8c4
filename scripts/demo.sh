#!/usr/bin/env bash
# `make demo`: MeZO fine-tuning of the shipped sentiment model; prints held-out accuracy before and after.
# Usage: scripts/demo.sh [BUILD_DIR]   (default: build; BUILD_DIR/zoff must exist: `make build`)
# What it runs and why: docs/demo.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
ZOFF="$BUILD/zoff"
CONFIG=configs/runs/demo.toml
OUT="$BUILD/demo-run"  # a build output: replaced on every run

if [ ! -x "$ZOFF" ]; then
  echo "demo.sh: $ZOFF not found; build it first (make build, or make demo)" >&2
  exit 2
fi
cd "$ROOT"
# Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning threads make
# LibTorch's CPU ops about 10x slower (docs/demo.md).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

# The accuracy field of `zoff eval --json`, as a percentage with one decimal.
accuracy_of() {
  local acc
  acc=$(printf '%s\n' "$1" | grep -o '"accuracy":[-0-9.eE+]*' | tail -n 1 | cut -d: -f2)
  if [ -z "$acc" ]; then
    echo "demo.sh: no accuracy in zoff eval's output:" >&2
    printf '%s\n' "$1" >&2
    exit 1
  fi
  awk -v a="$acc" 'BEGIN { printf "%.1f", 100 * a }'
}

rm -rf "$OUT"
echo "== 1/3  held-out accuracy of the shipped checkpoint (configs/data/sentiment/model)"
before_json=$("$ZOFF" eval --config "$CONFIG" --set "train.output_dir=$OUT" --json)
before=$(accuracy_of "$before_json")
echo "before fine-tuning: $before% on configs/data/sentiment/test.jsonl"

echo "== 2/3  MeZO fine-tuning on configs/data/sentiment/train.jsonl ($CONFIG)"
start=$SECONDS
"$ZOFF" train --config "$CONFIG" --set train.device=auto --set "train.output_dir=$OUT"
train_s=$((SECONDS - start))

echo "== 3/3  held-out accuracy of the fine-tuned checkpoint ($OUT/checkpoint-final)"
after_json=$("$ZOFF" eval --config "$CONFIG" --set "train.output_dir=$OUT" \
  --checkpoint "$OUT/checkpoint-final" --json)
after=$(accuracy_of "$after_json")
echo "after fine-tuning: $after%"

echo
echo "held-out accuracy: before $before% -> after $after%  (100 test reviews never trained on;" \
  "MeZO fine-tuning took ${train_s} s; outputs in $OUT)"
if ! awk -v b="$before" -v a="$after" 'BEGIN { exit !(a > b) }'; then
  echo "demo.sh: fine-tuning did not improve held-out accuracy; that is a bug (docs/demo.md)" >&2
  exit 1
fi
