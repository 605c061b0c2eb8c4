#!/usr/bin/env bash
# Multi-GPU throughput runs of docs/distributed.md on a 2-GPU machine: 1 vs 2 GPUs, data and
# perturbation modes, OPT-13B (and OPT-30B if time allows) with dummy weights, streamed bf16.
# Usage: scripts/dist_gpu_run.sh OUTDIR [BUILD_DIR] [STEPS]   (build first with scripts/gpu_build.sh)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/dist_gpu_run.sh OUTDIR [BUILD_DIR] [STEPS]}
Z=${2:-build-gpu}/zoff
STEPS=${3:-6}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export LD_LIBRARY_PATH="/tmp/zoff-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
mkdir -p "$OUT"
C=configs/runs/opt-13b-stream.toml
S=(--set train.steps=$STEPS --set train.log_every=1 --set train.save_final=false)
run() {  # name timeout args...
  local name=$1 t=$2; shift 2
  echo "== $name: $*" | tee -a "$OUT/runs.log"
  local t0=$(date +%s)
  timeout "$t" "$@" --set train.output_dir=/tmp/dist-$name >> "$OUT/runs.log" 2>&1
  local rc=$?
  echo "$name rc=$rc wall=$(( $(date +%s) - t0 ))s" | tee -a "$OUT/runs.log"
  [ -f /tmp/dist-$name/metrics.jsonl ] && sed "s/^/$name /" /tmp/dist-$name/metrics.jsonl >> "$OUT/metrics.txt"
}
M30=(--set model.preset=$(pwd)/configs/models/opt-30b.toml)
run 13b-1gpu 150 "$Z" train --config $C "${S[@]}"
run 13b-2gpu-data 150 "$Z" launch --nproc 2 -- train --config $C "${S[@]}" --set distributed.mode=data --set data.batch_size=2
run 13b-1gpu-q2 150 "$Z" train --config $C "${S[@]}" --set optimizer.mezo_q=2
run 13b-2gpu-pert 150 "$Z" launch --nproc 2 -- train --config $C "${S[@]}" --set optimizer.mezo_q=2
run 30b-1gpu 200 "$Z" train --config $C "${S[@]}" "${M30[@]}"
run 30b-2gpu-data 200 "$Z" launch --nproc 2 -- train --config $C "${S[@]}" "${M30[@]}" --set distributed.mode=data --set data.batch_size=2
python3 - "$OUT/metrics.txt" <<'PY' | tee "$OUT/summary.md"
import json, sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, js = line.split(' ', 1)
    try: j = json.loads(js)
    except Exception: continue
    if 'seconds' in j and j.get('step', 0) >= 2: rows[name].append(j)
print('| run | steps | median s/step | median tok/s |')
print('|---|---|---|---|')
for n, r in rows.items():
    print(f"| {n} | {len(r)} | {statistics.median(x['seconds'] for x in r):.3f} | {statistics.median(x.get('tokens_per_second', 0) for x in r):.0f} |")
PY
