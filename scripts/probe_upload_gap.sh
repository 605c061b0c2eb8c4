#!/usr/bin/env bash
# Why the streamed step's uploads run at 46-50 GB/s instead of 55 (issue 7; docs/results.md "Session 7").
#   scripts/probe_upload_gap.sh OUT [transfer|step|all] [ROUNDS]
#   on the GPU machine, carry .gpu-debs; transfer ~3 minutes, step ~40 s per run
# 1. bench_transfer: H2D alone and under host read-modify-write load (Note [Loaded bench]), and the
#    32 GiB spread upload (Note [Spread bench]).
# 2. bench_step 6.7B and 13B stream-bf16 with the delta apply on all cores, 4 and 2 threads
#    (ZOFF_DELTA_APPLY_THREADS, Note [Delta buffers]), twice each in alternation.
# Writes OUT/transfer.txt, OUT/step.txt (one line per run) and OUT/steps.tgz (the JSON).
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
J=$(mktemp -d)
for r in $(seq 1 "$ROUNDS"); do
  for t in all 4 2; do
    for s in 6.7b 13b; do
      f=$J/s_${s}_${t}_$r.json
      if [ "$t" = all ]; then unset ZOFF_DELTA_APPLY_THREADS; else export ZOFF_DELTA_APPLY_THREADS=$t; fi
      ZOFF_BENCH_ITERS=4 ZOFF_BENCH_WARMUP=2 ZOFF_BENCH_SIZES=$s ZOFF_BENCH_FILTER='*/mezo/stream-bf16' \
        timeout 90 build-gpu/bench/bench_step --benchmark_out="$f" --benchmark_out_format=json > /dev/null 2>&1 || true
      python3 - "$f" "$r $t $s" <<'PY' | tee -a "$OUT/step.txt"
import json, sys
try:
    b = json.load(open(sys.argv[1]))['benchmarks'][0]
    print(sys.argv[2], 's/step %.4f' % b['s_per_step'], 'bound %.3f' % b['fraction_of_transfer_bound'],
          'h2d_busy %.3f' % b['h2d_busy'], 'apply_wait_ms %.2f' % b['delta_apply_wait_ms'])
except Exception as e:
    print(sys.argv[2], 'failed:', e)
PY
    done
  done
done
unset ZOFF_DELTA_APPLY_THREADS
tar czf "$OUT/steps.tgz" -C "$J" .
