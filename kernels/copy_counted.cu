// copy_counted on the GPU: copies a device-counted prefix of an array, e.g. into mapped host memory.
#include "kernels/cuda_check.cuh"
#include "kernels/delta.h"

namespace zoff::k {
namespace {

// Note [Counted copy]: 16-byte loads and stores, consecutive threads on consecutive vectors, so a
// warp writes 512 contiguous bytes: into mapped host memory these are whole-line PCIe writes.
__global__ void __launch_bounds__(256) copy_counted_kernel(uint4* dst, const uint4* src, const unsigned long long* count,
                                                           int64_t cap, int64_t elem_bytes) {
  const unsigned long long c = *count;
  const int64_t n = (c < (unsigned long long)cap ? int64_t(c) : cap) * elem_bytes;
  const int64_t vecs = n / 16;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < vecs; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = src[i];
  if (blockIdx.x == 0 && threadIdx.x < (n & 15)) {
    reinterpret_cast<uint8_t*>(dst)[vecs * 16 + threadIdx.x] = reinterpret_cast<const uint8_t*>(src)[vecs * 16 + threadIdx.x];
  }
}

}  // namespace

void copy_counted(void* dst, const void* src, const unsigned long long* count, int64_t cap, int64_t elem_bytes,
                  cudaStream_t s) {
  ZOFF_CHECK(cap >= 0 && elem_bytes > 0 && (cap == 0 || (dst != nullptr && src != nullptr && count != nullptr)),
             "copy_counted: cap = ", cap, ", elem_bytes = ", elem_bytes);
  ZOFF_CHECK(reinterpret_cast<uintptr_t>(dst) % 16 == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0,
             "copy_counted: dst and src must be 16-byte aligned");
  if (cap == 0) return;
  const int64_t vecs = (cap * elem_bytes + 15) / 16;
  const int grid = grid_for(copy_counted_kernel, 256, vecs);
  copy_counted_kernel<<<grid, 256, 0, s>>>(static_cast<uint4*>(dst), static_cast<const uint4*>(src), count, cap,
                                           elem_bytes);
  ZOFF_CUDA_LAUNCH_CHECK(copy_counted_kernel);
}

}  // namespace zoff::k
