// Note [Packed codes] on the CPU: the reference packing, the host's range offsets and expansion, and their checks.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/delta.h"
#include "zoff/error.h"

namespace zoff::k {
namespace {

struct Packed {
  std::vector<uint8_t> dense;    // 8 W bytes, zero past the codes
  std::vector<uint32_t> bitmap;
  std::vector<uint64_t> packed;
  unsigned long long count = 0;
};

// Random codes for n elements: each 32-element word nonzero with probability `density`, its
// nonzero codes random (a word's last partial lanes too).
Packed make(int64_t n, double density, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Packed p;
  const int64_t W = pack_code_words(n);
  p.dense.assign(size_t(8 * W), 0);
  for (int64_t i = 0; i < n; ++i)
    if (u(rng) < density) p.dense[size_t(i / 4)] |= uint8_t((1 + rng() % 3) << (2 * (i % 4)));
  p.bitmap.assign(size_t(pack_bitmap_words(n)), 0xDEADBEEFu);  // every word must be written
  p.packed.assign(size_t(W), 0);
  PackCodesArgs a{p.dense.data(), n, p.bitmap.data(), p.packed.data(), &p.count, nullptr};
  ref::pack_codes(a);
  return p;
}

// The bitmap marks exactly the nonzero words, the packed words are those words in order, and both
// ways back give the dense codes; each range's first packed word (as the host applies find it) is
// the count of nonzero words before the range.
TEST(PackedCodes, RoundTripEverySizeAndDensity) {
  for (int64_t n : {0, 1, 31, 32, 33, 1000, 1024, 1025, 32 * 2048, 32 * 2048 + 5, 32 * 2048 * 3 + 32 * 40 + 17})
    for (double density : {0.0, 0.002, 0.03, 1.0}) {
      SCOPED_TRACE(testing::Message() << "n " << n << " density " << density);
      const Packed p = make(n, density, uint32_t(n * 7 + int64_t(density * 1000)));
      const int64_t W = pack_code_words(n);
      int64_t nonzero = 0;
      for (int64_t w = 0; w < W; ++w) {
        uint64_t cw;
        std::memcpy(&cw, p.dense.data() + 8 * w, 8);
        const bool bit = (p.bitmap[size_t(w / 32)] >> (w % 32)) & 1u;
        ASSERT_EQ(bit, cw != 0) << "word " << w;
        if (cw != 0) {
          ASSERT_EQ(p.packed[size_t(nonzero++)], cw) << "word " << w;
        }
      }
      ASSERT_EQ(int64_t(p.count), nonzero);
      if (W % 32 != 0) {
        EXPECT_EQ(p.bitmap.back() >> (W % 32), 0u) << "bits past the last word";
      }
      std::vector<uint8_t> back(size_t(8 * W), 0xAB);
      ref::unpack_codes(p.bitmap.data(), p.packed.data(), int64_t(p.count), n, back.data());
      EXPECT_EQ(back, p.dense);
      const int64_t R = (W + kPackTileWords - 1) / kPackTileWords;
      std::vector<int64_t> off(size_t(R) + 1, -1);
      packed_range_offsets(p.bitmap.data(), n, int64_t(p.count), off.data(), "test");
      for (int64_t r = 0, before = 0; r <= R; ++r) {  // range r's first packed word: the nonzero words before it
        ASSERT_EQ(off[size_t(r)], before) << "range " << r;
        for (int64_t w = r * kPackTileWords; w < std::min(W, (r + 1) * kPackTileWords); ++w) {
          uint64_t cw;
          std::memcpy(&cw, p.dense.data() + 8 * w, 8);
          before += cw != 0;
        }
      }
      EXPECT_EQ(off[size_t(R)], int64_t(p.count));
    }
}

// Codes and bitmap that do not belong together are an error naming the caller, not a wrong apply.
TEST(PackedCodes, MismatchesAreErrors) {
  const int64_t n = 32 * 2048 + 100;  // two ranges, W % 32 != 0
  Packed p = make(n, 0.05, 5);
  ASSERT_GT(p.count, 10u);
  std::vector<int64_t> off(3);
  auto message = [&](int64_t count) {
    try {
      packed_range_offsets(p.bitmap.data(), n, count, off.data(), "apply_x");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message(int64_t(p.count) - 1).find("apply_x"), std::string::npos);
  EXPECT_NE(message(int64_t(p.count) + 1).find("do not belong together"), std::string::npos);
  EXPECT_EQ(message(int64_t(p.count)), "");
  const int64_t W = pack_code_words(n);
  p.bitmap.back() |= 1u << (W % 32);  // a word past the block
  EXPECT_NE(message(int64_t(p.count) + 1).find("past the"), std::string::npos);
  std::vector<uint8_t> back(size_t(8 * W));
  EXPECT_THROW(ref::unpack_codes(p.bitmap.data(), p.packed.data(), int64_t(p.count) + 1, n, back.data()), Error);
  p.bitmap.back() &= ~(1u << (W % 32));
  EXPECT_THROW(ref::unpack_codes(p.bitmap.data(), p.packed.data(), int64_t(p.count) - 1, n, back.data()), Error);
}

}  // namespace
}  // namespace zoff::k
