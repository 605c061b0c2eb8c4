// A block's shared copy of the ziggurat's fast-path table, and V Gaussians per thread (device).
#pragma once

#include <cstdint>

#include "kernels/philox.h"

namespace zoff::k {

// Note [Ziggurat tables in shared memory]
// The fast path reads one random entry of 256 per value: from shared memory a warp's 32 lookups
// cost a few bank-conflict replays, from constant memory (one address per cycle) they would
// serialise. Each block copies the 2 KB once at its start. The slow path reads the global copies
// (kernels/philox.h): it is rare, and a second pointer would be one more live register pair.
// Every thread of the block must call this (it synchronises the block).
__device__ __forceinline__ const ZigEntry* zig_shared_table(ZigEntry (&s)[256]) {
  for (int i = threadIdx.x; i < 256; i += blockDim.x) s[i] = d_zig_entries[i];
  __syncthreads();
  return s;
}

// z for elements g .. g + V - 1 (g a multiple of 4): V / 4 Philox calls, the fast path for all,
// then one slow-path loop over the misses of all V values, so a warp runs zig_slow about once per
// batch instead of once per group (its lanes' misses overlap). A missed word is recomputed rather
// than kept: keeping V words live costs the fast path registers.
template <int V>
__device__ __forceinline__ void gaussian_v(uint64_t seed, uint64_t pid, uint64_t g, const ZigEntry* e, float (&z)[V]) {
  static_assert(V % 4 == 0, "whole Philox blocks");
  uint32_t slow = 0;
#pragma unroll
  for (int q = 0; q < V / 4; ++q) slow |= zig_fast4(philox_block(seed, pid, (g >> 2) + uint64_t(q)), e, z + 4 * q) << (4 * q);
  while (slow != 0) {
    const int j = __ffs(int(slow)) - 1;
    slow &= slow - 1;
    const Philox4 r = philox_block(seed, pid, (g >> 2) + uint64_t(j >> 2));
    const float v = zig_slow(r.v[j & 3], seed, pid, g + uint64_t(j));
#pragma unroll
    for (int jj = 0; jj < V; ++jj)
      if (jj == j) z[jj] = v;
  }
}

}  // namespace zoff::k
