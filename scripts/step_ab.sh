#!/usr/bin/env bash
# Same-run A/B of bench_step stream-bf16 MeZO under environment knobs (issue 7; docs/results.md).
#   scripts/step_ab.sh OUT ROUNDS SIZES CONFIG...    (after gpu_build.sh built build-gpu/bench/bench_step)
#   CONFIG = label or label:VAR=value,VAR=value    e.g. base skip:ZOFF_DEBUG_SKIP_DELTA_APPLY=1
#   AB_CASE=optimizer/policy (environment) picks another case, e.g. AB_CASE=mezo/stream-fp8; a
#   config may set its own (split:AB_CASE=mezo/stream-bf16-split compares policies in one run);
#   AB_ITERS / AB_WARMUP (environment, default 4 / 2): timed and warm-up steps per run.
# Configs alternate within each round (ABAB..., Note [Same-run comparisons] in docs/results.md).
# Writes OUT/step_ab.txt (one line per run) and OUT/step_ab.tgz (the JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: $0 OUT ROUNDS SIZES CONFIG...}
ROUNDS=${2:?rounds}
SIZES=${3:?sizes, e.g. 6.7b,13b}
shift 3
mkdir -p "$OUT"
export LD_LIBRARY_PATH=/tmp/zoff-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-} NCCL_NVLS_ENABLE=0
J=$(mktemp -d)
for r in $(seq 1 "$ROUNDS"); do
  for s in ${SIZES//,/ }; do
    for cfg in "$@"; do
      label=${cfg%%:*}
      envs=()
      if [ "$label" != "$cfg" ]; then IFS=, read -r -a envs <<< "${cfg#*:}"; fi
      f=$J/${label}_${s}_$r.json
      case_=${AB_CASE:-mezo/stream-bf16}
      for e in "${envs[@]}"; do [[ $e == AB_CASE=* ]] && case_=${e#AB_CASE=}; done
      env "${envs[@]}" ZOFF_BENCH_ITERS=${AB_ITERS:-4} ZOFF_BENCH_WARMUP=${AB_WARMUP:-2} ZOFF_BENCH_SIZES=$s ZOFF_BENCH_FILTER="*/$case_" \
        timeout 120 build-gpu/bench/bench_step --benchmark_out="$f" --benchmark_out_format=json > /dev/null 2>&1 || true
      python3 - "$f" "$r $label $s" <<'PY' | tee -a "$OUT/step_ab.txt"
import json, sys
try:
    b = json.load(open(sys.argv[1]))['benchmarks'][0]
    print(sys.argv[2], 's/step %.4f' % b['s_per_step'], 'bound %.3f' % b['fraction_of_transfer_bound'],
          'h2d_busy %.3f' % b['h2d_busy'], 'apply_wait_ms %.2f' % b.get('delta_apply_wait_ms', -1),
          'apply_busy_ms %.1f' % b.get('delta_apply_busy_ms', -1), 'tail_ms %.1f' % b.get('tail_ms', -1),
          'exc %d' % b.get('delta_exceptions', -1), 'gpu_MiB %.0f' % b.get('gpu_used_MiB', -1), 'compute_busy %.3f' % b.get('compute_busy', -1),
          'h2d_GB %.2f' % b.get('h2d_GB_per_step', -1), 'd2h_GB %.2f' % b.get('d2h_GB_per_step', -1))
except Exception as e:
    print(sys.argv[2], 'failed:', e)
PY
    done
  done
done
tar czf "$OUT/step_ab.tgz" -C "$J" .
