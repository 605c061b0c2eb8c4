#!/usr/bin/env bash
# Nsight Compute profile of the Gaussian update kernel (issue 5): where its ~0.85 SM-cycles per value go.
#   scripts/profile_kernels.sh OUT     # on the GPU machine; builds with kernels_gpu_check.sh first
# Writes OUT/ncu_<case>.txt (the details page: throughput, pipe utilisation, warp stall reasons,
# instruction mix) for the bf16 and f32 Gaussian updates and, for contrast, the Rademacher one.
# Needs `ncu` (CUDA toolkit); says so and exits 2 when it is missing. Profiles 2 launches each.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: $0 OUT}
mkdir -p "$OUT"
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -n 1 || true)
if [ -z "$NCU" ]; then echo "ncu not found on this machine" | tee "$OUT/ncu_missing.txt"; exit 2; fi
[ -x build-kernels-gpu/bin/bench_kernels ] || scripts/kernels_gpu_check.sh build > "$OUT/build.log" 2>&1
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
declare -A cases=(
  [bf16_gauss]='BM_ZoUpdate/elem:2/dist:0/terms:1/sr:0/'
  [f32_gauss]='BM_ZoUpdate/elem:0/dist:0/terms:1/sr:0/'
  [bf16_rad]='BM_ZoUpdate/elem:2/dist:1/terms:1/sr:0/'
)
for name in "${!cases[@]}"; do
  timeout 240 "$NCU" --set full -k regex:ew_kernel --launch-skip 1 --launch-count 2 --page details \
    build-kernels-gpu/bin/bench_kernels --benchmark_filter="${cases[$name]}" --benchmark_min_time=0.01 \
    > "$OUT/ncu_$name.txt" 2>&1 || echo "ncu $name: rc $?" | tee -a "$OUT/ncu_errors.txt"
done
grep -H -E "Compute \(SM\) Throughput|Memory Throughput|Registers Per Thread|Achieved Occupancy|Issue Slots Busy" "$OUT"/ncu_*.txt || true
