#!/usr/bin/env bash
# Standalone build (nvcc, sm_90, no LibTorch, no CMake) of kernels/ with their GPU tests and bench_kernels, and the run of both.
#   scripts/kernels_gpu_check.sh build   # here or on the GPU machine: binaries in build-kernels-gpu/bin/
#   scripts/kernels_gpu_check.sh run     # on the GPU machine: tests, compute-sanitizer on small sizes, bench
#   scripts/kernels_gpu_check.sh         # both
# Dependencies the GPU machine lacks (oneTBB, gtest, benchmark) come from the Debian .debs in .gpu-debs/
# (scripts/fetch_gpu_debs.sh; add libgtest-dev libbenchmark-dev libbenchmark1debian), unpacked to /tmp/deps.
# Logs go to $OUT (default build-kernels-gpu/out). Results: docs/results-kernels.md.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
B=build-kernels-gpu
OUT=${OUT:-$B/out}
mkdir -p "$B/obj" "$B/bin" "$OUT"
DEPS=/tmp/deps
mkdir -p $DEPS
for f in .gpu-debs/*.deb; do [ -e "$f" ] && dpkg -x "$f" $DEPS; done
LIB=$DEPS/usr/lib/x86_64-linux-gnu
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc)")")}
INC="-I. -Iinclude -isystem $DEPS/usr/include -isystem $CUDA_HOME/include"
CXX="g++ -std=c++17 -O2 -Wall -Wextra -Wno-unused-parameter"
NVCC="nvcc -std=c++17 -O3 -arch=sm_90 -lineinfo --expt-relaxed-constexpr -Xptxas -v"

build() {
  local jobs=$(nproc)
  ls kernels/*.cu | xargs -P "$jobs" -I{} sh -c \
    "$NVCC -I. -Iinclude -c {} -o $B/obj/\$(basename {} .cu).cu.o > $B/obj/\$(basename {} .cu).ptxas.log 2>&1 || { cat $B/obj/\$(basename {} .cu).ptxas.log; exit 1; }"
  for f in kernels/ref/*.cpp src/error/error.cpp; do
    $CXX -ffp-contract=off $INC -c "$f" -o "$B/obj/$(basename "$f" .cpp).o" &
  done
  $CXX $INC -c tests/gpu/test_kernels_gpu.cpp -o $B/obj/test_kernels_gpu.o &
  $CXX $INC -DZOFF_KERNELS_CUDA=1 -c bench/bench_kernels.cpp -o $B/obj/bench_kernels.o &
  wait
  local kobjs="$B/obj/*.cu.o $(ls $B/obj/*.o | grep -v -e '\.cu\.o$' -e test_kernels_gpu -e bench_kernels)"
  local libs="-L$LIB -L$CUDA_HOME/lib64 -ltbb -lcublas -lcudart_static -lpthread -ldl -lrt"
  g++ -o $B/bin/kernels_gpu_test $B/obj/test_kernels_gpu.o $kobjs $LIB/libgtest_main.a $LIB/libgtest.a $libs
  g++ -o $B/bin/bench_kernels $B/obj/bench_kernels.o $kobjs -l:libbenchmark.so.1debian $libs
  cat $B/obj/*.ptxas.log > $B/bin/ptxas.log
  echo "built $B/bin/kernels_gpu_test $B/bin/bench_kernels"
}

run() {
  export LD_LIBRARY_PATH=$LIB:$CUDA_HOME/lib64:${LD_LIBRARY_PATH:-}
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv | tee "$OUT/device.txt" || true
  local rc=0
  timeout 240 $B/bin/kernels_gpu_test 2>&1 | tee "$OUT/test.log" | grep -E '^\[ *(OK|FAILED|PASSED) *\]|max ulp|Failure|first bad|error' || rc=1
  [ "${PIPESTATUS[0]}" = 0 ] || rc=1
  if command -v compute-sanitizer >/dev/null; then
    ZOFF_KERNEL_TEST_MAX_N=5000 timeout 100 compute-sanitizer --tool memcheck --leak-check no \
      $B/bin/kernels_gpu_test --gtest_brief=1 > "$OUT/memcheck.log" 2>&1 || rc=1
    tail -4 "$OUT/memcheck.log"
  fi
  timeout 120 $B/bin/bench_kernels --benchmark_min_time=0.2 --benchmark_out="$OUT/bench.json" \
    --benchmark_out_format=json 2>&1 | tee "$OUT/bench.txt" || rc=1
  return $rc
}

case $mode in
  build) build ;;
  run) run ;;
  all) build && run ;;
  *) echo "usage: $0 [build|run|all]" >&2; exit 2 ;;
esac
