// FastDiv (kernels/fast_div.h) against the / operator: edge divisors and dividends, and random ones.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/fast_div.h"

namespace zoff::k {
namespace {

TEST(FastDiv, MatchesDivisionEverywhereItIsUsed) {
  std::vector<uint32_t> divisors = {1, 2, 3, 5, 7, 8, 13, 64, 4096, 4097, 5120, 7168, 12288, 20480, 50272,
                                    (1u << 31) - 1, 1u << 31, (1u << 31) + 1, 0xFFFFFFFEu, 0xFFFFFFFFu};
  std::mt19937 rng(11);
  for (int i = 0; i < 200; ++i) divisors.push_back(rng() >> (rng() % 32) | 1u);
  std::vector<uint32_t> xs = {0, 1, 2, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFEu, 0xFFFFFFFFu};
  for (int i = 0; i < 2000; ++i) xs.push_back(rng() >> (rng() % 32));
  for (uint32_t d : divisors) {
    const FastDiv f(d);
    for (uint32_t x : xs) ASSERT_EQ(f.div(x), x / d) << x << " / " << d;
    for (uint32_t q : {1u, 2u, 1000u, 0xFFFFFFFFu / d}) {  // multiples and their neighbours
      const uint64_t x = uint64_t(q) * d;
      for (int64_t e : {-1, 0, 1}) {
        const int64_t y = int64_t(x) + e;
        if (y < 0 || y > int64_t(0xFFFFFFFFu)) continue;
        ASSERT_EQ(f.div(uint32_t(y)), uint32_t(y) / d) << y << " / " << d;
      }
    }
  }
}

}  // namespace
}  // namespace zoff::k
