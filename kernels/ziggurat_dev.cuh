// A block's shared copy of the ziggurat's fast-path table (device).
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

}  // namespace zoff::k
