#!/usr/bin/env bash
# Builds zoff on the GPU machine (no network): unpacks the carried .debs, configures against the
# python torch's LibTorch with CUDA, builds. Usage: scripts/gpu_build.sh [build-dir] [extra cmake args]
# (environment ZOFF_BUILD_TARGETS: only those targets)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-gpu}
shift || true
PREFIX=/tmp/zoff-deps
if [ ! -d "$PREFIX/usr/include/tbb" ]; then
  ls .gpu-debs/*.deb >/dev/null 2>&1 || { echo "no .gpu-debs/: run scripts/fetch_gpu_debs.sh on the dev machine and carry .gpu-debs" >&2; exit 2; }
  mkdir -p "$PREFIX"
  for f in .gpu-debs/*.deb; do dpkg -x "$f" "$PREFIX"; done
fi
TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
export LD_LIBRARY_PATH="$PREFIX/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
cmake -S . -B "$BUILD" -G Ninja \
  -DCMAKE_PREFIX_PATH="$PREFIX/usr;$PREFIX/usr/lib/x86_64-linux-gnu/cmake;$TORCH_PREFIX" \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc \
  -DCMAKE_BUILD_RPATH="$PREFIX/usr/lib/x86_64-linux-gnu" \
  -DZOFF_CUDA=ON "$@"
# ZOFF_BUILD_TARGETS="test_gpu bench_step" builds just those (device time is scarce).
if [ -n "${ZOFF_BUILD_TARGETS:-}" ]; then
  # shellcheck disable=SC2086
  cmake --build "$BUILD" -j "$(nproc)" --target $ZOFF_BUILD_TARGETS
else
  cmake --build "$BUILD" -j "$(nproc)"
fi
