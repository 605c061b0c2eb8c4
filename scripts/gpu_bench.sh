#!/usr/bin/env bash
# Runs the throughput benches on the GPU machine (build-gpu from scripts/gpu_build.sh) and writes OUTDIR/results.md.
# Usage: scripts/gpu_bench.sh OUTDIR [BUILD_DIR]
#   BENCH_BUDGET_S   total seconds to spend (default 450: the whole run takes ~5-6 minutes)
#   ZOFF_BENCH_ITERS timed steps per case (default 4), ZOFF_BENCH_WARMUP (default 2)
#   BENCH_GROUPS     replaces the case groups below: "name|sizes|filter;name|sizes|filter;..."
# Each bench_step group runs as its own process with its own JSON file, so a group cut short by the
# time budget loses only itself. Cases and counters: docs/bench.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/gpu_bench.sh OUTDIR [BUILD_DIR]}
BUILD=${2:-build-gpu}
BUDGET=${BENCH_BUDGET_S:-450}
export ZOFF_BENCH_ITERS=${ZOFF_BENCH_ITERS:-4} ZOFF_BENCH_WARMUP=${ZOFF_BENCH_WARMUP:-2}
export LD_LIBRARY_PATH="/tmp/zoff-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
for b in bench_transfer bench_step; do
  [ -x "$BUILD/bench/$b" ] || { echo "no $BUILD/bench/$b: run scripts/gpu_build.sh first" >&2; exit 2; }
done
mkdir -p "$OUT"
START=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - START))); }
{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.max,pcie.link.width.max --format=csv || true
  grep -E 'MemTotal|MemAvailable' /proc/meminfo
  nproc
  git rev-parse HEAD 2>/dev/null || true
} > "$OUT/machine.txt" 2>&1

rc=0
# Host<->device copies: the 18 copy cases (about 30 s) the report's transfer table reads. The probes
# (loaded, apply, spread, host/pin: several GiB each, minutes together) run only when asked for:
# scripts/probe_upload_gap.sh, or bench_transfer --benchmark_filter (docs/bench.md).
timeout 90 "$BUILD/bench/bench_transfer" --benchmark_min_time=0.1 \
  --benchmark_filter='^transfer/(h2d|d2h|both)/(pinned|pageable)/' \
  --benchmark_out="$OUT/transfer.json" --benchmark_out_format=json 2>&1 | tee "$OUT/transfer.txt" || rc=1

# name | sizes | filter (size/optimizer/policy globs): issue 7's rows, the streamed MeZO ones
# first. Session 15 ran all four groups in 283 s on the H200 machine (docs/results.md).
CASE_GROUPS=(
  "fp8|6.7b,13b,30b|*/mezo/stream-fp8"
  "bf16|1.3b,6.7b,13b,30b|*/mezo/stream-bf16"
  "split|6.7b,13b,30b|*/mezo/stream-bf16-split"
  "resident|1.3b,6.7b,13b|*/mezo/all-resident"
  "others|1.3b,13b|opt-1.3b/subzero/stream-bf16,opt-1.3b/svrg/stream-bf16,opt-13b/fzoo8/stream-bf16,opt-13b/mezo/budget"
)
if [ -n "${BENCH_GROUPS:-}" ]; then IFS=';' read -r -a CASE_GROUPS <<< "$BENCH_GROUPS"; fi
jsons=("$OUT/transfer.json")
for g in "${CASE_GROUPS[@]}"; do
  IFS='|' read -r name sizes filter <<< "$g"
  t=$(left)
  if [ "$t" -lt 30 ]; then
    echo "gpu_bench: time budget spent, skipping group $name" | tee -a "$OUT/skipped.txt"
    continue
  fi
  echo "== bench_step $name (sizes $sizes, filter $filter, ${t}s left)"
  ZOFF_BENCH_SIZES="$sizes" ZOFF_BENCH_FILTER="$filter" timeout "$t" "$BUILD/bench/bench_step" \
    --benchmark_out="$OUT/step-$name.json" --benchmark_out_format=json 2>&1 | tee "$OUT/step-$name.txt"
  st=${PIPESTATUS[0]}
  if [ "$st" -ne 0 ]; then
    echo "gpu_bench: bench_step group $name exited with $st (124 = time budget)" | tee -a "$OUT/skipped.txt"
    rc=1
  fi
  jsons+=("$OUT/step-$name.json")
done

python3 scripts/bench_report.py --title "zoff on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)" \
  --plot "$OUT/step_time.png" "${jsons[@]}" > "$OUT/results.md" || rc=1
cat "$OUT/results.md"
echo "gpu_bench: $(($(date +%s) - START)) s, results in $OUT/results.md"
exit $rc
