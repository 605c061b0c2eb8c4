#!/usr/bin/env bash
# One `zoff` run on the GPU machine with a memory monitor: GPU memory (NVML, via nvidia-smi) and
# host MemAvailable sampled every second, so setup time and peak memory of big runs are on record.
# Usage: scripts/monitored_run.sh OUTDIR NAME TIMEOUT_S zoff-args...
#   writes OUTDIR/NAME.log (zoff's output), NAME.mon (samples), NAME.metrics (metrics.jsonl) and a
#   summary line in OUTDIR/summary.txt: rc, wall seconds, peak NVML MiB, lowest MemAvailable.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage}; NAME=${2:?usage}; T=${3:?usage}; shift 3
Z=${ZOFF_BIN:-build-gpu/zoff}
export LD_LIBRARY_PATH="/tmp/zoff-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
mkdir -p "$OUT"
RUN=/tmp/zoff-run-$NAME
rm -rf "$RUN"
t0=$(date +%s)
( while :; do
    g=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i "${CUDA_VISIBLE_DEVICES:-0}" 2>/dev/null | head -1)
    a=$(awk '/MemAvailable/ {print int($2/1024)}' /proc/meminfo)
    echo "$(( $(date +%s) - t0 )) gpu_mib=$g avail_mib=$a"
    sleep 1
  done ) > "$OUT/$NAME.mon" 2>&1 &
MON=$!
timeout "$T" "$Z" "$@" --set train.output_dir="$RUN" > "$OUT/$NAME.log" 2>&1
rc=$?
kill $MON 2>/dev/null; wait $MON 2>/dev/null
[ -f "$RUN/metrics.jsonl" ] && cp "$RUN/metrics.jsonl" "$OUT/$NAME.metrics"
peak=$(sed -n 's/.*gpu_mib=\([0-9]*\).*/\1/p' "$OUT/$NAME.mon" | sort -n | tail -1)
low=$(sed -n 's/.*avail_mib=\([0-9]*\).*/\1/p' "$OUT/$NAME.mon" | sort -n | head -1)
echo "$NAME rc=$rc wall=$(( $(date +%s) - t0 ))s peak_nvml_mib=$peak min_avail_mib=$low" | tee -a "$OUT/summary.txt"
exit $rc
