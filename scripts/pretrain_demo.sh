#!/usr/bin/env bash
# Rebuilds the demo checkpoint configs/data/sentiment/model with zoff_pretrain_demo (docs/demo.md).
# Usage: scripts/pretrain_demo.sh [BUILD_DIR] [extra zoff_pretrain_demo options]
# Deterministic: the same machine and thread count give a byte-identical model.safetensors.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
shift || true
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
cd "$ROOT"

if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja
fi
cmake --build "$BUILD" --target zoff_pretrain_demo -j "$(nproc)"

# Idle OpenMP threads sleep instead of spinning (docs/demo.md: 10x slower on a busy machine otherwise).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# The shipped recipe is the program's defaults (Note [Demo recipe]); the MeZO check afterwards
# uses the fine-tuning hyperparameters of configs/runs/demo.toml.
"$BUILD/zoff_pretrain_demo" --data configs/data/sentiment --out configs/data/sentiment/model \
  --threads 2 --mezo-steps 500 --mezo-lr 3e-5 --mezo-eps 1e-3 --mezo-batch-size 16 "$@"
sha256sum configs/data/sentiment/model/model.safetensors
