#!/usr/bin/env bash
# Why the streamed step's uploads run at 46-50 GB/s instead of 55 (issue 7; docs/results.md "Session 7").
#   scripts/probe_upload_gap.sh OUT [transfer|step|all] [ROUNDS]
#   on the GPU machine, carry .gpu-debs; transfer ~3 minutes, step ~40 s per run
# 1. bench_transfer: H2D alone and under host read-modify-write load (Note [Loaded bench]), and the
#    32 GiB spread upload (Note [Spread bench]).
# 2. bench_step 6.7B and 13B stream-bf16 with the delta apply on all cores, 4 and 2 threads
#    (ZOFF_DELTA_APPLY_THREADS, Note [Delta buffers]), twice each in alternation.
# Writes OUT/transfer.txt, OUT/step_ab.txt (one line per run) and OUT/step_ab.tgz (the JSON).
# Results: docs/results.md, "Session 8 measurements".
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: $0 OUT [transfer|step|all] [ROUNDS]}
PHASE=${2:-all}
ROUNDS=${3:-2}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=/tmp/zoff-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-} NCCL_NVLS_ENABLE=0
ZOFF_BUILD_TARGETS="${ZOFF_BUILD_TARGETS:-bench_transfer bench_step}" \
  scripts/gpu_build.sh build-gpu -DCMAKE_BUILD_TYPE=Release > "$OUT/build.log" 2>&1
if [ "$PHASE" != step ]; then
timeout 150 build-gpu/bench/bench_transfer --benchmark_filter='loaded|spread|transfer/h2d/pinned/MiB:1024' 2>&1 \
  | tee "$OUT/transfer.txt" | grep -E '^transfer' || true
fi
[ "$PHASE" = transfer ] && exit 0
scripts/step_ab.sh "$OUT" "$ROUNDS" 6.7b,13b all t4:ZOFF_DELTA_APPLY_THREADS=4 t2:ZOFF_DELTA_APPLY_THREADS=2
