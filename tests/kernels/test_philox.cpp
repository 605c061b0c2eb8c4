// Philox4x32-10 known answers and the statistics of the z distributions drawn from it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/philox.h"
#include "kernels/zo_kernels.h"

namespace zoff::k {
namespace {

void expect_words(Philox4 got, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  EXPECT_EQ(got.v[0], a);
  EXPECT_EQ(got.v[1], b);
  EXPECT_EQ(got.v[2], c);
  EXPECT_EQ(got.v[3], d);
}

// The Random123 known-answer vectors for philox4x32 with 10 rounds (kat_vectors).
TEST(Philox, KnownAnswerZero) {
  expect_words(philox4x32_10(Philox4{{0, 0, 0, 0}}, 0, 0), 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u);
}

TEST(Philox, KnownAnswerOnes) {
  uint32_t f = 0xffffffffu;
  expect_words(philox4x32_10(Philox4{{f, f, f, f}}, f, f), 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu);
}

TEST(Philox, KnownAnswerPi) {
  Philox4 c{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}};
  expect_words(philox4x32_10(c, 0xa4093822u, 0x299f31d0u), 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u);
}

TEST(Philox, BlockKeying) {
  // Note [Philox keying]: counter = (blk lo, blk hi, pid lo, pid hi), key = (seed lo, seed hi).
  uint64_t seed = 0x0123456789abcdefull, pid = 0xfedcba9876543210ull, blk = 0x0000000500000007ull;
  Philox4 want = philox4x32_10(Philox4{{7u, 5u, 0x76543210u, 0xfedcba98u}}, 0x89abcdefu, 0x01234567u);
  Philox4 got = philox_block(seed, pid, blk);
  for (int j = 0; j < 4; ++j) EXPECT_EQ(got.v[j], want.v[j]);
}

// Note [Keyed Philox]: the prepared-key form the kernels use is the same function.
TEST(Philox, KeyedEqualsBlock) {
  std::mt19937_64 rng(5);
  const uint64_t edge[] = {0ull, 1ull, 0xffffffffull, 0x100000000ull, ~0ull, 0x8000000000000000ull};
  for (int i = 0; i < 20000; ++i) {
    const uint64_t seed = i < 36 ? edge[i % 6] : rng(), pid = i < 36 ? edge[i / 6] : rng();
    const uint64_t blk = i % 3 == 0 ? rng() : i % 3 == 1 ? rng() >> 32 : edge[i % 6];
    const PhiloxKey k = philox_key(seed, pid);
    const Philox4 want = philox_block(seed, pid, blk), got = philox_keyed(k, blk);
    for (int j = 0; j < 4; ++j) ASSERT_EQ(got.v[j], want.v[j]) << "seed " << seed << " pid " << pid << " blk " << blk;
  }
}

TEST(Philox, UnitIsInOpenClosedInterval) {
  EXPECT_EQ(u32_to_unit(0u), 1.0f / 16777216.0f);
  EXPECT_EQ(u32_to_unit(0xffffffffu), 1.0f);
  EXPECT_GT(u32_to_unit(0x000000ffu), 0.0f);
}

TEST(Philox, GaussianAtMatchesGroupOfFour) {
  for (uint64_t i = 0; i < 64; ++i) {
    float g[4];
    gaussian4(philox_block(11, 22, i / 4), g);
    EXPECT_EQ(gaussian_at(11, 22, i), g[i % 4]);
  }
}

TEST(Philox, RademacherAtUsesBitOfBlock) {
  Philox4 r = philox_block(3, 4, 2);  // elements 256 .. 383
  for (uint64_t i = 256; i < 384; ++i) {
    uint64_t e = i - 256;
    float want = ((r.v[e / 32] >> (e % 32)) & 1u) ? -1.0f : 1.0f;
    EXPECT_EQ(rademacher_at(3, 4, i), want) << i;
  }
}

int64_t ulps_from(float got, double want) {
  float w = float(want);
  int32_t a, b;
  std::memcpy(&a, &got, 4);
  std::memcpy(&b, &w, 4);
  if (a < 0) a = INT32_MIN - a;
  if (b < 0) b = INT32_MIN - b;
  return std::llabs(int64_t(a) - int64_t(b));
}

// Note [Bit-identical Box-Muller]: the hand-made -2 ln(u) and sin/cos(2 pi u) over every one of
// their 2^24 inputs, against double-precision libm.
TEST(Philox, BoxMullerPiecesAreAccurateForEveryInput) {
  int64_t worst_log = 0, worst_sin = 0, worst_cos = 0;
  double worst_abs = 0;
  for (uint32_t v = 1; v <= (1u << 24); ++v) {
    const double u = double(v) / 16777216.0;
    const float l = neg2_log_unit(float(u));
    const uint32_t word = ((v - 1u) << 8) | (v & 0xFFu);  // any low byte: u32_to_unit drops it
    ASSERT_EQ(f32_bits(neg2_log_word(word)), f32_bits(neg2_log_unit(u32_to_unit(word)))) << "word " << word;
    if (v < (1u << 24)) worst_log = std::max(worst_log, ulps_from(l, -2.0 * std::log(u)));
    else ASSERT_EQ(l, 0.0f);
    float s, c;
    sincos_turn24(v, &s, &c);
    const double sr = std::sin(6.283185307179586476925 * u), cr = std::cos(6.283185307179586476925 * u);
    if (std::fabs(sr) > 1e-6) worst_sin = std::max(worst_sin, ulps_from(s, sr));
    if (std::fabs(cr) > 1e-6) worst_cos = std::max(worst_cos, ulps_from(c, cr));
    worst_abs = std::max(worst_abs, std::max(std::fabs(s - sr), std::fabs(c - cr)));
  }
  EXPECT_LE(worst_log, 1);
  EXPECT_LE(worst_sin, 2);
  EXPECT_LE(worst_cos, 2);
  EXPECT_LT(worst_abs, 2e-7);
}

struct Moments {
  double mean, var, kurt;
};

Moments moments(const std::vector<float>& x) {
  double s1 = 0, s2 = 0, s4 = 0;
  for (float v : x) s1 += v;
  double m = s1 / double(x.size());
  for (float v : x) {
    double d = v - m;
    s2 += d * d;
    s4 += d * d * d * d;
  }
  double var = s2 / double(x.size());
  return {m, var, s4 / double(x.size()) / (var * var)};
}

TEST(Philox, GaussianMoments) {
  const int64_t n = 1000000;
  std::vector<float> z(n);
  ref::fill_z(z.data(), n, param_id("layers.0.fc1.weight"), step_seed(42, 7, 0), Dist::Gaussian);
  Moments m = moments(z);
  // Standard errors at n = 1e6: mean 1e-3, variance sqrt(2/n) = 1.4e-3, kurtosis sqrt(24/n) = 4.9e-3.
  EXPECT_NEAR(m.mean, 0.0, 5e-3);
  EXPECT_NEAR(m.var, 1.0, 7e-3);
  EXPECT_NEAR(m.kurt, 3.0, 3e-2);
  int64_t beyond3 = 0;
  for (float v : z) {
    ASSERT_TRUE(std::isfinite(v));
    beyond3 += std::fabs(v) > 3.0f;
  }
  EXPECT_NEAR(double(beyond3) / double(n), 0.0026998, 5 * std::sqrt(0.0027 / double(n)));
}

TEST(Philox, RademacherBalance) {
  const int64_t n = 1000000;
  std::vector<float> z(n);
  ref::fill_z(z.data(), n, param_id("lm_head.weight"), 99, Dist::Rademacher);
  double sum = 0;
  int64_t runs = 1;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_TRUE(z[i] == 1.0f || z[i] == -1.0f);
    sum += z[i];
    if (i > 0 && z[i] != z[i - 1]) ++runs;
  }
  EXPECT_LT(std::fabs(sum), 5.0 * std::sqrt(double(n)));
  // Wald-Wolfowitz runs: (n+1)/2 expected, sd sqrt(n)/2.
  EXPECT_NEAR(double(runs), double(n + 1) / 2.0, 5.0 * std::sqrt(double(n)) / 2.0);
}

double correlation(const std::vector<float>& a, const std::vector<float>& b, size_t lag = 0) {
  double sab = 0, sa = 0, sb = 0, saa = 0, sbb = 0;
  size_t n = a.size() - lag;
  for (size_t i = 0; i < n; ++i) {
    double x = a[i], y = b[i + lag];
    sab += x * y, sa += x, sb += y, saa += x * x, sbb += y * y;
  }
  double cov = sab / n - (sa / n) * (sb / n);
  return cov / std::sqrt((saa / n - (sa / n) * (sa / n)) * (sbb / n - (sb / n) * (sb / n)));
}

TEST(Philox, DifferentSeedsAndParamsAreIndependent) {
  const int64_t n = 400000;
  const double bound = 5.0 / std::sqrt(double(n));
  for (Dist d : {Dist::Gaussian, Dist::Rademacher}) {
    std::vector<float> a(n), b(n), c(n);
    uint64_t p = param_id("model.decoder.layers.3.fc2.weight");
    ref::fill_z(a.data(), n, p, step_seed(1, 0, 0), d);
    ref::fill_z(b.data(), n, p, step_seed(1, 0, 1), d);  // the next perturbation of the same step
    ref::fill_z(c.data(), n, param_id("model.decoder.layers.3.fc2.bias"), step_seed(1, 0, 0), d);
    EXPECT_LT(std::fabs(correlation(a, b)), bound);
    EXPECT_LT(std::fabs(correlation(a, c)), bound);
    for (size_t lag : {1, 2, 3, 4, 128}) EXPECT_LT(std::fabs(correlation(a, a, lag)), bound) << "lag " << lag;
  }
}

TEST(Philox, SeedsAndIdsAreDistinct) {
  EXPECT_NE(param_id("a.weight"), param_id("a.bias"));
  EXPECT_EQ(param_id("a.weight"), param_id("a.weight"));
  EXPECT_NE(step_seed(1, 0, 0), step_seed(1, 1, 0));
  EXPECT_NE(step_seed(1, 0, 0), step_seed(1, 0, 1));
  EXPECT_NE(step_seed(1, 0, 0), step_seed(2, 0, 0));
}

}  // namespace
}  // namespace zoff::k
