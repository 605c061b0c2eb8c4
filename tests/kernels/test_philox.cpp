// Philox4x32-10 known answers, the ziggurat's tables and the statistics of the z distributions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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

TEST(Philox, UnitIsInOpenClosedInterval) {
  EXPECT_EQ(u32_to_unit(0u), 1.0f / 16777216.0f);
  EXPECT_EQ(u32_to_unit(0xffffffffu), 1.0f);
  EXPECT_GT(u32_to_unit(0x000000ffu), 0.0f);
}

TEST(Philox, GaussianAtMatchesGroupOfFour) {
  for (uint64_t i = 0; i < 64; ++i) {
    float g[4];
    gaussian4(11, 22, i / 4, kZigEntries, g);
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

// Note [Bit-identical logarithm]: the hand-made -2 ln(u) over every one of its 2^24 inputs of the
// form (v + 1) / 2^24, against double-precision libm.
TEST(Philox, LogIsAccurateForEveryUnitInput) {
  int64_t worst_log = 0;
  for (uint32_t v = 1; v <= (1u << 24); ++v) {
    const double u = double(v) / 16777216.0;
    const float l = neg2_log_unit(float(u));
    if (v < (1u << 24)) worst_log = std::max(worst_log, ulps_from(l, -2.0 * std::log(u)));
    else ASSERT_EQ(l, 0.0f);
  }
  EXPECT_LE(worst_log, 1);
}

// The ziggurat's wedge test takes -2 ln(y) of y in [exp(-r^2/2), 1]: any float there, not only
// multiples of 2^-24.
TEST(Philox, LogIsAccurateOnTheWedgeRange) {
  int64_t worst = 0;
  const float lo = kZigF[1];
  for (float y = lo; y < 1.0f; y = std::nextafter(y, 2.0f)) worst = std::max(worst, ulps_from(neg2_log_unit(y), -2.0 * std::log(double(y))));
  EXPECT_LE(worst, 1);
}

// Note [Ziggurat z]: the generated tables describe 256 layers of equal area under exp(-x^2/2).
TEST(Ziggurat, TablesAreConsistent) {
  const double r = ZOFF_ZIG_R, pi = 3.14159265358979323846;
  const double v = r * std::exp(-r * r / 2) + std::sqrt(pi / 2) * std::erfc(r / std::sqrt(2.0));
  // The layers cover the half-density (area sqrt(pi/2)) plus the wedges above it: a bit more.
  EXPECT_GT(256 * v, std::sqrt(pi / 2));
  EXPECT_LT(256 * v, std::sqrt(pi / 2) * 1.01);
  EXPECT_FLOAT_EQ(kZigEntries[1].x, float(r));
  EXPECT_NEAR(kZigEntries[0].x * std::exp(-r * r / 2), v, 1e-8);
  EXPECT_EQ(kZigF[256], 1.0f);
  for (int i = 0; i < 256; ++i) {
    const double xi = kZigEntries[i].x, xn = i + 1 < 256 ? kZigEntries[i + 1].x : 0.0;
    ASSERT_GT(xi, xn) << i;
    EXPECT_NEAR(double(kZigF[i]), std::exp(-xi * xi / 2), 1e-7 * std::max(1.0, double(kZigF[i]))) << i;
    // k_i = floor(2^23 x_{i+1} / x_i): within the float rounding of the stored x.
    EXPECT_NEAR(double(kZigEntries[i].k), 8388608.0 * xn / xi, 2.0) << i;
    if (i >= 1) {
      // Equal areas; the float rounding of x_i and f_i allows ~1e-7 (f's ulp times x_i).
      EXPECT_NEAR(xi * (double(kZigF[i + 1]) - double(kZigF[i])), v, 5e-7) << "layer " << i;
    }
  }
}

// The fast path's share: the mean of k_i / 2^23 over the layers, ~98.5%.
TEST(Ziggurat, FastPathTakesMostWords) {
  int64_t miss = 0;
  const int64_t n = 1 << 20;
  for (int64_t b = 0; b < n / 4; ++b) {
    float z[4];
    miss += __builtin_popcount(zig_fast4(philox_block(5, 6, uint64_t(b)), kZigEntries, z));
  }
  double want = 0;
  for (int i = 0; i < 256; ++i) want += double(kZigEntries[i].k) / 8388608.0 / 256.0;
  EXPECT_NEAR(double(miss) / double(n), 1.0 - want, 5 * std::sqrt((1.0 - want) / double(n)));
}

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// Chi-square of samples against a continuous CDF over `bins` equiprobable bins found by bisection;
// returns the statistic (df = bins - 1).
template <class Cdf>
double chi_square(const std::vector<float>& x, int bins, double lo, double hi, Cdf cdf) {
  std::vector<double> edges(bins - 1);
  const double c0 = cdf(lo), c1 = cdf(hi);
  for (int b = 1; b < bins; ++b) {
    const double target = c0 + (c1 - c0) * b / bins;
    double a = lo, z = hi;
    for (int it = 0; it < 200; ++it) {
      const double m = 0.5 * (a + z);
      (cdf(m) < target ? a : z) = m;
    }
    edges[b - 1] = 0.5 * (a + z);
  }
  std::vector<int64_t> count(bins, 0);
  for (float v : x) ++count[std::upper_bound(edges.begin(), edges.end(), double(v)) - edges.begin()];
  const double e = double(x.size()) / bins;
  double chi = 0;
  for (int64_t c : count) chi += (double(c) - e) * (double(c) - e) / e;
  return chi;
}

// 10^7 values against N(0,1) in 400 equiprobable bins (df 399, sd 28): the fast path, the wedges
// and the tail together. A sampler that skipped the wedges or the tail would be off by thousands.
TEST(Ziggurat, GaussianChiSquare) {
  const int64_t n = 10000000;
  std::vector<float> z(n);
  ref::fill_z(z.data(), n, param_id("layers.1.fc2.weight"), step_seed(3, 1, 0), Dist::Gaussian);
  EXPECT_LT(chi_square(z, 400, -12.0, 12.0, normal_cdf), 399 + 5 * 28.2);
  int64_t beyond_r = 0, beyond4 = 0;
  for (float v : z) beyond_r += std::fabs(v) > float(ZOFF_ZIG_R), beyond4 += std::fabs(v) > 4.0f;
  const double pr = 2 * (1 - normal_cdf(ZOFF_ZIG_R)), p4 = 2 * (1 - normal_cdf(4.0));
  EXPECT_NEAR(double(beyond_r), n * pr, 5 * std::sqrt(n * pr));
  EXPECT_NEAR(double(beyond4), n * p4, 5 * std::sqrt(n * p4));
}

// The tail sampler alone: words of layer 0 outside its rectangle, 10^6 elements, against the
// normal distribution conditioned on |z| > r (40 bins, df 39, sd 8.8), with both signs.
TEST(Ziggurat, TailSamplerMatchesConditionalNormal) {
  const int64_t n = 1000000;
  std::vector<float> t(n);
  int64_t neg = 0;
  const uint32_t k0 = kZigEntries[0].k;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u23 = k0 + philox_block(8, 0, uint64_t(i)).v[0] % ((1u << 23) - k0);
    const uint32_t w = (u23 << 9) | (uint32_t(i & 1) << 8);  // layer 0, alternating sign
    const float v = zig_slow(w, 77, 88, uint64_t(i));
    ASSERT_GE(std::fabs(v), float(ZOFF_ZIG_R)) << i;
    neg += v < 0;
    t[i] = std::fabs(v);
  }
  EXPECT_EQ(neg, n / 2);
  const double r = ZOFF_ZIG_R, tail = 1 - normal_cdf(r);
  auto cdf = [&](double x) { return (normal_cdf(x) - normal_cdf(r)) / tail; };
  EXPECT_LT(chi_square(t, 40, r, 12.0, cdf), 39 + 5 * 8.8);
}

// One wedge alone: words of layer i outside its rectangle either land under the curve in the
// wedge (accepted there) or restart; among the accepted-in-wedge values (|z| in [x_{i+1}, x_i)),
// the density must follow exp(-x^2/2) restricted to that interval.
TEST(Ziggurat, WedgeAcceptsUnderTheCurve) {
  for (int layer : {1, 40, 128, 255}) {
    const double xi = kZigEntries[layer].x, xn = layer < 255 ? kZigEntries[layer + 1].x : 0.0;
    const uint32_t k = kZigEntries[layer].k;
    std::vector<float> in_wedge;
    for (int64_t i = 0; in_wedge.size() < 200000 && i < 4000000; ++i) {
      const uint32_t u23 = k + philox_block(9, uint64_t(layer), uint64_t(i)).v[0] % ((1u << 23) - k);
      const float v = std::fabs(zig_slow((u23 << 9) | uint32_t(layer), 5, 6, uint64_t(i)));
      // The first attempt's x is (u23 / 2^23) x_i: values equal to it were accepted in the wedge.
      if (v == float(double(u23) / 8388608.0 * double(kZigEntries[layer].x))) in_wedge.push_back(v);
    }
    ASSERT_GE(in_wedge.size(), 50000u) << "layer " << layer;
    // Proposals are uniform in u23 over the wedge's x-range, accepted with probability
    // (f(x) - f_i) / (f_{i+1} - f_i): the accepted density is proportional to f(x) - f(x_i).
    const double fi = std::exp(-xi * xi / 2);
    auto mass = [&](double x) {  // integral of f(s) - f_i from xn' to x, xn' = first proposal
      return std::sqrt(3.14159265358979323846 / 2) * std::erf(x / std::sqrt(2.0)) - fi * x;
    };
    const double x0 = double(k) / 8388608.0 * xi;
    auto cdf = [&](double x) { return (mass(x) - mass(x0)) / (mass(xi) - mass(x0)); };
    EXPECT_LT(chi_square(in_wedge, 20, x0, xi, cdf), 19 + 5 * 6.2) << "layer " << layer << " [" << xn << ", " << xi << ")";
  }
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
