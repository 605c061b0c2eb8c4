// split16_decode on the GPU: a split bf16 block's planes and escapes back to bf16 bits (Note [Split bf16]).
#include "kernels/cuda_check.cuh"
#include "kernels/split16.h"

namespace zoff::k {
namespace {

// Note [Split decode kernel]
// Two launches on the caller's stream:
//  1. decode: each thread turns 8 consecutive elements into bf16 bits with one 8-byte load of
//     their lo bytes, one 4-byte load of their nibbles and their group's base byte (8 divides
//     kSplitGroup, so the 8 share one), and one 16-byte store; consecutive threads take
//     consecutive elements, so a warp reads 256 + 128 contiguous bytes and writes 512. The last
//     n % 8 elements (and every element when a pointer is not aligned for the vector accesses) go
//     one by one. Escaped elements come out with a garbage high byte here...
//  2. escapes (only when there are any): ...which this kernel overwrites, out[e.index] =
//     (e.hi << 8) | lo[e.index], reading the list straight from mapped host memory (a few entries per
//     ten thousand elements: less than the block's planes by far, and no copy to wait for). It
//     runs after the decode on the same stream, so its stores land last. An index past n is
//     skipped (never stored out of bounds); ref::split16_decode rejects it.
constexpr int kThreads = 256;
static_assert(kSplitGroup % 8 == 0, "a thread's 8 elements lie in one group");

__device__ __forceinline__ uint32_t nibble_hi(uint32_t nibs, int k, uint32_t base) {
  return split_hi((nibs >> (4 * k)) & 15u, base);
}

template <bool kVec>
__global__ void __launch_bounds__(kThreads) split_decode_kernel(const uint8_t* __restrict__ lo,
                                                                const uint8_t* __restrict__ nib,
                                                                const uint8_t* __restrict__ base, int64_t n,
                                                                uint16_t* __restrict__ out) {
  const int64_t T = (n + 7) / 8;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < T; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i0 = 8 * t;
    const uint32_t b = base[i0 / kSplitGroup];
    if (kVec && i0 + 8 <= n) {
      const uint2 l = *reinterpret_cast<const uint2*>(lo + i0);
      const uint32_t v = *reinterpret_cast<const uint32_t*>(nib + i0 / 2);
      // High bytes of elements 0..3 and 4..7, one per byte; __byte_perm interleaves them with the
      // lo bytes into 16-bit lanes: word k = elements 2k (low half) and 2k + 1.
      const uint32_t h0 = nibble_hi(v, 0, b) | nibble_hi(v, 1, b) << 8 | nibble_hi(v, 2, b) << 16 | nibble_hi(v, 3, b) << 24;
      const uint32_t h1 = nibble_hi(v, 4, b) | nibble_hi(v, 5, b) << 8 | nibble_hi(v, 6, b) << 16 | nibble_hi(v, 7, b) << 24;
      uint4 o;
      o.x = __byte_perm(l.x, h0, 0x5140);
      o.y = __byte_perm(l.x, h0, 0x7362);
      o.z = __byte_perm(l.y, h1, 0x5140);
      o.w = __byte_perm(l.y, h1, 0x7362);
      *reinterpret_cast<uint4*>(out + i0) = o;
    } else {
      const int64_t i1 = i0 + 8 < n ? i0 + 8 : n;
      for (int64_t i = i0; i < i1; ++i)
        out[i] = uint16_t(split_hi((nib[i >> 1] >> (4 * (i & 1))) & 15u, b) << 8 | lo[i]);
    }
  }
}

__global__ void __launch_bounds__(kThreads) split_escape_kernel(const SplitEscape* __restrict__ esc, int64_t count,
                                                                const uint8_t* __restrict__ lo, int64_t n,
                                                                uint16_t* __restrict__ out) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < count; k += int64_t(gridDim.x) * blockDim.x) {
    const SplitEscape e = esc[k];
    if (int64_t(e.index) < n) out[e.index] = uint16_t((e.hi & 0xFFu) << 8 | lo[e.index]);
  }
}

bool aligned(const void* p, uintptr_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

}  // namespace

void split16_decode(const SplitPlanes& planes, const SplitEscape* escapes, int64_t escape_count, uint16_t* out,
                    cudaStream_t s) {
  const int64_t n = planes.n;
  ZOFF_CHECK(n >= 0 && n <= int64_t(0xFFFFFFFFll), "split16_decode: n = ", n);
  ZOFF_CHECK(n == 0 || (planes.lo != nullptr && planes.nib != nullptr && planes.base != nullptr && out != nullptr),
             "split16_decode: null plane or output pointer with n = ", n);
  ZOFF_CHECK(escape_count >= 0 && (escape_count == 0 || escapes != nullptr), "split16_decode: ", escape_count,
             " escapes but escapes == nullptr");
  if (n == 0) return;
  const int64_t T = (n + 7) / 8;
  if (aligned(planes.lo, 8) && aligned(planes.nib, 4) && aligned(out, 16)) {
    const int grid = grid_for(split_decode_kernel<true>, kThreads, T);
    split_decode_kernel<true><<<grid, kThreads, 0, s>>>(planes.lo, planes.nib, planes.base, n, out);
    ZOFF_CUDA_LAUNCH_CHECK(split_decode_kernel);
  } else {
    const int grid = grid_for(split_decode_kernel<false>, kThreads, T);
    split_decode_kernel<false><<<grid, kThreads, 0, s>>>(planes.lo, planes.nib, planes.base, n, out);
    ZOFF_CUDA_LAUNCH_CHECK(split_decode_kernel);
  }
  if (escape_count == 0) return;
  const int grid = grid_for(split_escape_kernel, kThreads, escape_count);
  split_escape_kernel<<<grid, kThreads, 0, s>>>(escapes, escape_count, planes.lo, n, out);
  ZOFF_CUDA_LAUNCH_CHECK(split_escape_kernel);
}

}  // namespace zoff::k
