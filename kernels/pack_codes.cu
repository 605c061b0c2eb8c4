// pack_codes on the GPU (Note [Packed codes] in kernels/delta.h): tile counts, a scan over the tiles, each tile's words in order.
#include "kernels/cuda_check.cuh"
#include "kernels/delta.h"

namespace zoff::k {
namespace {

// Note [Packing kernels]
// Three launches on the caller's stream (the Offload op's), each reading the staged codes from
// device memory (79 MB at OPT-13B: tens of microseconds) and writing into mapped host memory:
//  1. tile_count: per tile of kPackTileWords words (256 threads, 8 words each, a warp ballot per
//     32 consecutive words), the tile's 64 bitmap words gathered in shared memory and stored as
//     one contiguous 256-byte run, and the tile's count;
//  2. tile_scan: one block turns the tile counts into each tile's first packed word and the total;
//  3. tile_write: the tile's nonzero words compacted in shared memory in word order (ballots, a
//     scan of the 64 warp counts), then stored to the tile's offset by consecutive threads, so a
//     warp writes 256 contiguous bytes: PCIe sees long writes, not one per word.
// The grids are capped at kMaxBlocks: the kernels run beside the next block's forward, and
// their stores wait on the link, not on the SMs.
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kIters = int(kPackTileWords / kThreads);
constexpr int kMaxBlocks = 32;
static_assert(kPackTileWords % kThreads == 0 && kIters * kWarps == kPackTileWords / 32, "tile layout");

__global__ void __launch_bounds__(kThreads) tile_count_kernel(const uint64_t* codes, int64_t W, int64_t tiles,
                                                               uint32_t* bitmap, uint32_t* counts) {
  __shared__ uint32_t bits[kPackTileWords / 32];
  __shared__ uint32_t warp_count[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t w0 = t * kPackTileWords;
    uint32_t c = 0;
    for (int it = 0; it < kIters; ++it) {
      const int64_t w = w0 + it * kThreads + threadIdx.x;
      const uint32_t b = __ballot_sync(0xffffffffu, w < W && codes[w] != 0);
      if (lane == 0) bits[it * kWarps + warp] = b;
      c += __popc(b);
    }
    if (lane == 0) warp_count[warp] = c;
    __syncthreads();
    const int64_t nbits = (min(W - w0, kPackTileWords) + 31) / 32;  // this tile's bitmap words
    if (threadIdx.x < nbits) bitmap[w0 / 32 + threadIdx.x] = bits[threadIdx.x];
    if (threadIdx.x == 0) {
      uint32_t s = 0;
      for (int k = 0; k < kWarps; ++k) s += warp_count[k];
      counts[t] = s;
    }
    __syncthreads();
  }
}

__global__ void __launch_bounds__(1024) tile_scan_kernel(const uint32_t* counts, int64_t tiles, uint32_t* offsets,
                                                          unsigned long long* total) {
  __shared__ uint32_t warp_sum[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t per = (tiles + 1023) / 1024, b = threadIdx.x * per, e = min(tiles, b + per);
  uint32_t s = 0;
  for (int64_t i = b; i < e; ++i) s += counts[i];
  uint32_t x = s;  // inclusive scan over the warp
  for (int o = 1; o < 32; o <<= 1) {
    const uint32_t y = __shfl_up_sync(0xffffffffu, x, o);
    if (lane >= o) x += y;
  }
  if (lane == 31) warp_sum[warp] = x;
  __syncthreads();
  if (warp == 0) {
    uint32_t v = warp_sum[lane];
    for (int o = 1; o < 32; o <<= 1) {
      const uint32_t y = __shfl_up_sync(0xffffffffu, v, o);
      if (lane >= o) v += y;
    }
    warp_sum[lane] = v;
  }
  __syncthreads();
  uint32_t base = x - s + (warp > 0 ? warp_sum[warp - 1] : 0u);
  for (int64_t i = b; i < e; ++i) offsets[i] = base, base += counts[i];
  if (threadIdx.x == 1023) *total = base;
}

__global__ void __launch_bounds__(kThreads) tile_write_kernel(const uint64_t* codes, int64_t W, int64_t tiles,
                                                               const uint32_t* offsets, uint64_t* packed) {
  __shared__ uint64_t stage[kPackTileWords];
  __shared__ uint32_t pos[kIters * kWarps];
  __shared__ uint32_t tile_total;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const uint32_t below = (1u << lane) - 1u;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t w0 = t * kPackTileWords;
    uint64_t cw[kIters];
    uint32_t bal[kIters];
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const int64_t w = w0 + it * kThreads + threadIdx.x;
      cw[it] = w < W ? codes[w] : 0;
      bal[it] = __ballot_sync(0xffffffffu, cw[it] != 0);
      if (lane == 0) pos[it * kWarps + warp] = __popc(bal[it]);
    }
    __syncthreads();
    if (warp == 0) {  // exclusive scan of the 64 warp counts, two per lane, in word order
      const uint32_t c0 = pos[2 * lane], c1 = pos[2 * lane + 1];
      uint32_t x = c0 + c1;
      for (int o = 1; o < 32; o <<= 1) {
        const uint32_t y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) x += y;
      }
      pos[2 * lane] = x - c0 - c1;
      pos[2 * lane + 1] = x - c1;
      if (lane == 31) tile_total = x;
    }
    __syncthreads();
#pragma unroll
    for (int it = 0; it < kIters; ++it)
      if (cw[it] != 0) stage[pos[it * kWarps + warp] + __popc(bal[it] & below)] = cw[it];
    __syncthreads();
    const uint32_t n = tile_total;
    uint64_t* dst = packed + offsets[t];
    for (uint32_t i = threadIdx.x; i < n; i += kThreads) dst[i] = stage[i];
    __syncthreads();  // stage, pos and tile_total are the next tile's
  }
}

}  // namespace

void pack_codes(const PackCodesArgs& a, cudaStream_t s) {
  ZOFF_CHECK(a.n >= 0 && a.packed_count != nullptr &&
                 (a.n == 0 || (a.codes != nullptr && a.bitmap != nullptr && a.packed != nullptr && a.scratch != nullptr)),
             "pack_codes: n = ", a.n, " with a null codes, bitmap, packed, count or scratch pointer");
  ZOFF_CHECK(reinterpret_cast<uintptr_t>(a.codes) % 8 == 0 && reinterpret_cast<uintptr_t>(a.packed) % 8 == 0 &&
                 reinterpret_cast<uintptr_t>(a.bitmap) % 4 == 0,
             "pack_codes: codes and packed must be 8-byte aligned, bitmap 4-byte");
  const int64_t W = pack_code_words(a.n), tiles = (W + kPackTileWords - 1) / kPackTileWords;
  if (tiles == 0) {
    ZOFF_CUDA_CHECK(cudaMemsetAsync(a.packed_count, 0, sizeof(unsigned long long), s));
    return;
  }
  const auto* codes = reinterpret_cast<const uint64_t*>(a.codes);
  uint32_t* counts = a.scratch;
  uint32_t* offsets = a.scratch + tiles;
  const int grid = int(tiles < kMaxBlocks ? tiles : kMaxBlocks);
  tile_count_kernel<<<grid, kThreads, 0, s>>>(codes, W, tiles, a.bitmap, counts);
  ZOFF_CUDA_LAUNCH_CHECK(tile_count_kernel);
  tile_scan_kernel<<<1, 1024, 0, s>>>(counts, tiles, offsets, a.packed_count);
  ZOFF_CUDA_LAUNCH_CHECK(tile_scan_kernel);
  tile_write_kernel<<<grid, kThreads, 0, s>>>(codes, W, tiles, offsets, a.packed);
  ZOFF_CUDA_LAUNCH_CHECK(tile_write_kernel);
}

}  // namespace zoff::k
