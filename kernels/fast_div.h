// FastDiv: 32-bit unsigned division by a run-time constant as a multiply-high, for kernels' index math.
#pragma once

#include <cstdint>

#include "kernels/philox.h"  // ZOFF_HD

namespace zoff::k {

// Exact x / d for every 32-bit x and every divisor 1 <= d < 2^32, after Granlund and Montgomery
// (Hacker's Delight, section 10-8). Let s = ceil(log2 d) and M = floor(2^(32+s) / d) + 1, a 33-bit
// number written M = 2^32 + m. Then x / d = floor(x M / 2^(32+s)) = (umulhi(x, m) + x) >> s, the sum
// taken in 64 bits. It is exact because M d - 2^(32+s) lies in (0, d] and d <= 2^s. A 64-bit
// division is a ~70-instruction subroutine on the GPU; this is three instructions.
struct FastDiv {
  uint32_t d = 1, m = 1;
  int s = 0;
  FastDiv() = default;
  explicit FastDiv(uint32_t div) : d(div == 0 ? 1 : div) {
    while ((uint64_t(1) << s) < d) ++s;
    m = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << s) - d)) / d + 1);
  }
  ZOFF_HD uint32_t div(uint32_t x) const {
#if defined(__CUDA_ARCH__)
    const uint32_t hi = __umulhi(x, m);
#else
    const uint32_t hi = uint32_t((uint64_t(x) * m) >> 32);
#endif
    return uint32_t((uint64_t(hi) + x) >> s);
  }
};

}  // namespace zoff::k
