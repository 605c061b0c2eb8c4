#!/usr/bin/env bash
# Standalone build (nvcc, sm_90, no LibTorch, no CMake) of kernels/ with their GPU tests and bench_kernels, and the run of both.
#   scripts/kernels_gpu_check.sh build   # here or on the GPU machine: binaries in build-kernels-gpu/bin/
#   scripts/kernels_gpu_check.sh run     # on the GPU machine: tests, compute-sanitizer on small sizes, bench
#   scripts/kernels_gpu_check.sh         # both
# Tuning variants: NVCC_EXTRA="-DZOFF_EW_GAUSS_ROWS=1" TAG=_r1 scripts/kernels_gpu_check.sh build adds
# bin/bench_kernels_r1 (and bin/kernels_gpu_test_r1); `run` benches every bin/bench_kernels* it finds.
# Dependencies the GPU machine lacks (oneTBB, gtest, benchmark) come from the Debian .debs in .gpu-debs/
# (scripts/fetch_gpu_debs.sh; add libgtest-dev libbenchmark-dev libbenchmark1debian), unpacked to /tmp/deps.
# Logs go to $OUT (default build-kernels-gpu/out). Results: docs/results-kernels.md.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
B=build-kernels-gpu
OUT=${OUT:-$B/out}
TAG=${TAG:-}
mkdir -p "$B/obj$TAG" "$B/bin" "$OUT"
DEPS=/tmp/deps
mkdir -p $DEPS
# Extracted once per set of .debs (the marker holds their names): variant builds may then run at
# the same time without racing on the files, and a .deb added later is still unpacked.
debs=$(ls .gpu-debs/*.deb 2>/dev/null || true)
if [ "$(cat $DEPS/.extracted 2>/dev/null)" != "$debs" ]; then
  for f in $debs; do dpkg -x "$f" $DEPS; done
  printf '%s' "$debs" > $DEPS/.extracted
fi
LIB=$DEPS/usr/lib/x86_64-linux-gnu
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc)")")}
INC="-I. -Iinclude -isystem $DEPS/usr/include -isystem $CUDA_HOME/include"
CXX="g++ -std=c++17 -O2 -Wall -Wextra -Wno-unused-parameter"
NVCC="nvcc -std=c++17 -O3 -arch=sm_90 -lineinfo --expt-relaxed-constexpr -Xptxas -v ${NVCC_EXTRA:-}"

build() {
  local jobs=$(nproc) O=$B/obj$TAG
  ls kernels/*.cu | xargs -P "$jobs" -I{} sh -c \
    "$NVCC -I. -Iinclude -c {} -o $O/\$(basename {} .cu).cu.o > $O/\$(basename {} .cu).ptxas.log 2>&1 || { cat $O/\$(basename {} .cu).ptxas.log; exit 1; }"
  for f in kernels/ref/*.cpp kernels/host/zo_host.cpp kernels/host/delta_host.cpp kernels/host/isa_scalar.cpp src/error/error.cpp; do
    $CXX -ffp-contract=off $INC -c "$f" -o "$O/$(basename "$f" .cpp).o" &
  done
  # Note [ISA translation units]: the same flags as CMakeLists.txt gives these two files.
  $CXX -ffp-contract=off -mavx2 -mfma -mf16c $INC -c kernels/host/isa_avx2.cpp -o $O/isa_avx2.o &
  $CXX -ffp-contract=off -mavx512f -mavx2 -mfma -mf16c $INC -c kernels/host/isa_avx512.cpp -o $O/isa_avx512.o &
  $CXX $INC -c tests/gpu/test_kernels_gpu.cpp -o $O/test_kernels_gpu.o &
  $CXX $INC -DZOFF_KERNELS_CUDA=1 -c bench/bench_kernels.cpp -o $O/bench_kernels.o &
  wait
  local kobjs="$O/*.cu.o $(ls $O/*.o | grep -v -e '\.cu\.o$' -e test_kernels_gpu -e bench_kernels)"
  local libs="-L$LIB -L$CUDA_HOME/lib64 -ltbb -lcublas -lcudart_static -lpthread -ldl -lrt"
  # gtest and benchmark: the carried Debian ones when present, else the system's.
  local gtest="$LIB/libgtest_main.a $LIB/libgtest.a" bench="-l:libbenchmark.so.1debian"
  [ -f "$LIB/libgtest.a" ] || gtest="-lgtest_main -lgtest"
  [ -f "$LIB/libbenchmark.so.1debian" ] || bench="-lbenchmark"
  g++ -o $B/bin/kernels_gpu_test$TAG $O/test_kernels_gpu.o $kobjs $gtest $libs
  g++ -o $B/bin/bench_kernels$TAG $O/bench_kernels.o $kobjs $bench $libs
  cat $O/*.ptxas.log > $B/bin/ptxas$TAG.log
  echo "${NVCC_EXTRA:-default}" > $B/bin/variant$TAG.txt
  echo "built $B/bin/kernels_gpu_test$TAG $B/bin/bench_kernels$TAG"
}

run() {
  export LD_LIBRARY_PATH=$LIB:$CUDA_HOME/lib64:${LD_LIBRARY_PATH:-}
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv | tee "$OUT/device.txt" || true
  local rc=0
  timeout 240 $B/bin/kernels_gpu_test 2>&1 | tee "$OUT/test.log" | grep -E '^\[ *(OK|FAILED|PASSED) *\]|max ulp|Failure|first bad|error' || rc=1
  if command -v compute-sanitizer >/dev/null; then
    ZOFF_KERNEL_TEST_MAX_N=5000 timeout 100 compute-sanitizer --tool memcheck --leak-check no \
      $B/bin/kernels_gpu_test --gtest_brief=1 > "$OUT/memcheck.log" 2>&1 || rc=1
    tail -4 "$OUT/memcheck.log"
  fi
  timeout 120 $B/bin/bench_kernels --benchmark_min_time=0.2 --benchmark_out="$OUT/bench.json" \
    --benchmark_out_format=json 2>&1 | tee "$OUT/bench.txt" || rc=1
  for v in $B/bin/bench_kernels_*; do
    [ -x "$v" ] || continue
    echo "== variant ${v##*/bench_kernels}: $(cat $B/bin/variant${v##*/bench_kernels}.txt 2>/dev/null)"
    timeout 60 $v --benchmark_min_time=0.2 --benchmark_filter='BM_D2D|BM_ZoUpdate|BM_ZoPerturb' 2>&1 \
      | tee "$OUT/bench${v##*/bench_kernels}.txt" | grep -E '^BM_' || rc=1
  done
  return $rc
}

case $mode in
  build) build ;;
  run) run ;;
  all) build && run ;;
  *) echo "usage: $0 [build|run|all]" >&2; exit 2 ;;
esac
