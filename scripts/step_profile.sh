#!/usr/bin/env bash
# Where one bench_step case's GPU time goes, by kernel (issue 7): Nsight Systems when present, else Nsight Compute.
#   scripts/step_profile.sh OUT SIZE CASE [VAR=value ...]   (after gpu_build.sh built build-gpu/bench/bench_step)
#   e.g. scripts/step_profile.sh $OUT/prof 13b mezo/stream-fp8 ZOFF_DEBUG_SKIP_DELTA_APPLY=1
# Writes OUT/kernels_SIZE.txt: total GPU time per kernel name over the profiled steps (2 warm-up +
# 2 timed, so divide by 4 for one step), largest first. ncu serialises the kernels, so its sum is
# kernel time without overlap (and it stops after 6000 kernels); nsys's is the same figure from a
# normal run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: $0 OUT SIZE CASE [VAR=value ...]}
SIZE=${2:?size}
CASE=${3:?case, e.g. mezo/stream-fp8}
shift 3
mkdir -p "$OUT"
export LD_LIBRARY_PATH=/tmp/zoff-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-} NCCL_NVLS_ENABLE=0
BENCH=(env "$@" ZOFF_BENCH_ITERS=2 ZOFF_BENCH_WARMUP=2 ZOFF_BENCH_SIZES="$SIZE" ZOFF_BENCH_FILTER="*/$CASE" build-gpu/bench/bench_step)
NSYS=$(command -v nsys || ls /usr/local/cuda*/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -n 1 || true)
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -n 1 || true)
if [ -n "$NSYS" ]; then
  timeout 300 "$NSYS" profile -t cuda -o "$OUT/step_$SIZE" --force-overwrite true "${BENCH[@]}" > "$OUT/nsys_$SIZE.log" 2>&1
  "$NSYS" stats --report cuda_gpu_kern_sum --format csv -o "$OUT/kern_$SIZE" "$OUT/step_$SIZE.nsys-rep" >> "$OUT/nsys_$SIZE.log" 2>&1
  python3 - "$OUT/kern_${SIZE}_cuda_gpu_kern_sum.csv" > "$OUT/kernels_$SIZE.txt" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
tot = sum(float(r['Total Time (ns)'].replace(',', '')) for r in rows)
print('nsys: %.1f ms of kernels in total' % (tot / 1e6))
for r in rows[:40]:
    t = float(r['Total Time (ns)'].replace(',', ''))
    print('%9.2f ms %5.1f%% %7s  %s' % (t / 1e6, 100 * t / tot, r['Instances'], r['Name'][:150]))
PY
  rm -f "$OUT/step_$SIZE.nsys-rep" "$OUT/step_$SIZE.sqlite"
elif [ -n "$NCU" ]; then
  timeout 300 "$NCU" --metrics gpu__time_duration.sum --clock-control none --cache-control none -c 6000 --csv --print-units base "${BENCH[@]}" > "$OUT/ncu_$SIZE.csv" 2> "$OUT/ncu_$SIZE.log" || true
  python3 - "$OUT/ncu_$SIZE.csv" > "$OUT/kernels_$SIZE.txt" <<'PY'
import csv, sys, collections
lines = [l for l in open(sys.argv[1]) if l.startswith('"')]
t = collections.Counter(); n = collections.Counter()
for r in csv.DictReader(lines):
    if r.get('Metric Name') != 'gpu__time_duration.sum': continue
    k = r['Kernel Name'][:150]
    t[k] += float(r['Metric Value'].replace(',', '')); n[k] += 1
tot = sum(t.values())
print('ncu (serialised): %.1f ms of kernels in total' % (tot / 1e6))
for k, v in t.most_common(40):
    print('%9.2f ms %5.1f%% %7d  %s' % (v / 1e6, 100 * v / tot, n[k], k))
PY
else
  echo "neither nsys nor ncu found" | tee "$OUT/kernels_$SIZE.txt"; exit 2
fi
head -n 25 "$OUT/kernels_$SIZE.txt"
