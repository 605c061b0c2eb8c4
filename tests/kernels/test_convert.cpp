// The scalar conversions (bf16, f16, e4m3fn) and stochastic rounding against independent references.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "kernels/ref/scalar.h"
#include "kernels/zo_kernels.h"

namespace zoff::k {
namespace {

float random_float(std::mt19937& rng, int min_exp, int max_exp) {
  std::uniform_int_distribution<int> e(min_exp, max_exp);
  std::uniform_int_distribution<uint32_t> m(0, 0x7FFFFF), s(0, 1);
  return bits_f32((s(rng) << 31) | (uint32_t(e(rng) + 127) << 23) | m(rng));
}

TEST(Convert, F16MatchesCompilerFloat16) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    _Float16 x;
    uint16_t hb = uint16_t(h);
    std::memcpy(&x, &hb, 2);
    float want = float(x);
    float got = ref::f16_to_float(hb);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got));
      continue;
    }
    ASSERT_EQ(f32_bits(got), f32_bits(want)) << std::hex << h;
    ASSERT_EQ(ref::float_to_f16_rne(got), hb) << std::hex << h;
    // The midpoint to the next value up and its fp32 neighbours: ties and near-ties.
    if ((h & 0x7FFF) < 0x7BFF) {
      _Float16 y;
      uint16_t nb = uint16_t(h + 1);
      std::memcpy(&y, &nb, 2);
      float mid = float((double(want) + double(float(y))) / 2.0);
      for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f), std::nextafter(mid, -1e9f)}) {
        _Float16 c = _Float16(f);
        uint16_t cb;
        std::memcpy(&cb, &c, 2);
        ASSERT_EQ(ref::float_to_f16_rne(f), cb) << f;
      }
    }
  }
  std::mt19937 rng(1);
  for (int i = 0; i < 200000; ++i) {
    float f = random_float(rng, -30, 20);
    _Float16 c = _Float16(f);
    uint16_t cb;
    std::memcpy(&cb, &c, 2);
    ASSERT_EQ(ref::float_to_f16_rne(f), cb) << f;
  }
  EXPECT_EQ(ref::float_to_f16_rne(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(ref::float_to_f16_rne(-1e6f), 0xFC00);
  EXPECT_EQ(ref::float_to_f16_rne(65519.0f), 0x7BFF);
  EXPECT_EQ(ref::float_to_f16_rne(65520.0f), 0x7C00);
  EXPECT_TRUE(std::isnan(ref::f16_to_float(ref::float_to_f16_rne(std::nanf("")))));
}

// r is the correctly rounded (nearest, ties to even) encoding of x among the codes of a format whose
// magnitudes increase with the code: `dec` decodes, `maxcode` is the largest finite magnitude code.
template <typename Dec>
void expect_nearest(float x, uint32_t r, Dec dec, uint32_t maxcode, uint32_t signbit) {
  uint32_t mag = r & ~signbit;
  double ax = std::fabs(double(x)), d0 = std::fabs(double(std::fabs(dec(r))) - ax);
  if (mag < maxcode) {
    ASSERT_LE(d0, std::fabs(double(std::fabs(dec(r + 1))) - ax)) << x;
  }
  if (mag > 0) {
    double d2 = std::fabs(double(std::fabs(dec(r - 1))) - ax);
    ASSERT_LE(d0, d2) << x;
    if (d0 == d2) {
      ASSERT_EQ(mag & 1u, 0u) << "tie not to even: " << x;
    }
  }
  ASSERT_EQ(std::signbit(dec(r)), std::signbit(x)) << x;
}

TEST(Convert, Bf16IsNearestEven) {
  std::mt19937 rng(2);
  auto dec = [](uint32_t b) { return ref::bf16_to_float(uint16_t(b)); };
  for (int i = 0; i < 300000; ++i) {
    float f = random_float(rng, -126, 126);
    uint16_t r = ref::float_to_bf16_rne(f);
    if ((r & 0x7FFF) == 0x7F80) {  // overflow only beyond the last midpoint
      ASSERT_GE(std::fabs(double(f)), double(bits_f32(0x7F7F0000u)) + std::ldexp(1.0, 127 - 8)) << f;
      continue;
    }
    expect_nearest(f, r, dec, 0x7F7F, 0x8000);
    if (HasFatalFailure()) return;
  }
  for (uint32_t h = 0; h < 0x10000; ++h) {  // round trip of every code
    float f = ref::bf16_to_float(uint16_t(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(ref::float_to_bf16_rne(f), h);
    }
  }
  EXPECT_EQ(ref::float_to_bf16_rne(bits_f32(0x3F808000u)), 0x3F80);  // tie, even below
  EXPECT_EQ(ref::float_to_bf16_rne(bits_f32(0x3F818000u)), 0x3F82);  // tie, even above
  EXPECT_TRUE(std::isnan(ref::bf16_to_float(ref::float_to_bf16_rne(std::nanf("")))));
}

TEST(Convert, E4m3DecodeTable) {
  for (uint32_t q = 0; q < 256; ++q) {
    float got = ref::e4m3_to_float(uint8_t(q));
    uint32_t e = (q >> 3) & 15, m = q & 7;
    double s = (q & 0x80) ? -1.0 : 1.0;
    if ((q & 0x7F) == 0x7F) {
      ASSERT_TRUE(std::isnan(got)) << q;
      continue;
    }
    double want = e == 0 ? s * m * std::ldexp(1.0, -9) : s * (1.0 + m / 8.0) * std::ldexp(1.0, int(e) - 7);
    ASSERT_EQ(double(got), want) << q;
    ASSERT_EQ(ref::float_to_e4m3_rne(got), q) << q;  // round trip, -0 included
  }
  EXPECT_EQ(ref::e4m3_to_float(0x7E), 448.0f);
}

TEST(Convert, E4m3RoundsToNearestEvenAndSaturates) {
  std::mt19937 rng(3);
  auto dec = [](uint32_t b) { return ref::e4m3_to_float(uint8_t(b)); };
  for (int i = 0; i < 300000; ++i) {
    float f = random_float(rng, -12, 8);
    if (std::fabs(f) >= 448.0f) continue;
    expect_nearest(f, ref::float_to_e4m3_rne(f), dec, 0x7E, 0x80);
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(ref::float_to_e4m3_rne(448.0f), 0x7E);
  EXPECT_EQ(ref::float_to_e4m3_rne(464.0f), 0x7E);
  EXPECT_EQ(ref::float_to_e4m3_rne(1e30f), 0x7E);
  EXPECT_EQ(ref::float_to_e4m3_rne(-std::numeric_limits<float>::infinity()), 0xFE);
  EXPECT_EQ(ref::float_to_e4m3_rne(std::nanf("")), 0x7F);
  EXPECT_EQ(ref::float_to_e4m3_rne(std::ldexp(1.0f, -10)), 0x00);      // tie between 0 and 2^-9
  EXPECT_EQ(ref::float_to_e4m3_rne(std::ldexp(1.5f, -10)), 0x01);
  EXPECT_EQ(ref::float_to_e4m3_rne(std::ldexp(15.0f, -10)), 0x08);     // 7.5 * 2^-9 -> 2^-6
  EXPECT_EQ(ref::float_to_e4m3_rne(-std::ldexp(1.0f, -6)), 0x88);
}

// Note [Stochastic rounding]: over all 2^16 values of r16, rounding away happens exactly
// frac * 2^16 times.
TEST(Convert, Bf16StochasticRoundingIsExactlyUnbiased) {
  std::mt19937 rng(4);
  for (int i = 0; i < 200; ++i) {
    float f = random_float(rng, -40, 40);
    uint32_t u = f32_bits(f), up = 0;
    uint16_t lo = uint16_t(u >> 16);
    for (uint32_t r = 0; r < 0x10000; ++r) {
      uint16_t b = f32_to_bf16_bits_sr(f, r);
      ASSERT_TRUE(b == lo || b == lo + 1) << f;
      up += b != lo;
    }
    ASSERT_EQ(up, u & 0xFFFFu) << f;
  }
  for (uint32_t r : {0u, 0x8000u, 0xFFFFu}) EXPECT_EQ(f32_to_bf16_bits_sr(1.5f, r), 0x3FC0);
}

TEST(Convert, F16StochasticRoundingIsUnbiased) {
  std::mt19937 rng(5);
  for (int i = 0; i < 300; ++i) {
    float f = random_float(rng, i < 100 ? -14 : -24, 15);
    if (std::fabs(f) >= 65504.0f) continue;
    double sum = 0;
    for (uint32_t r = 0; r < 0x10000; ++r) {
      uint16_t b = f32_to_f16_bits_sr(f, r);
      double v = ref::f16_to_float(b);
      sum += v;
    }
    double mean = sum / 65536.0;
    // Exact for normal f16 (frac is a multiple of 2^-13); subnormals: bias < 2^-16 of a 2^-24 step.
    double tol = std::fabs(f) >= std::ldexp(1.0, -14) ? 0.0 : std::ldexp(1.0, -40);
    ASSERT_LE(std::fabs(mean - double(f)), tol) << f;
  }
  EXPECT_EQ(f32_to_f16_bits_sr(65504.0f, 0), 0x7BFF);
  EXPECT_EQ(f32_to_f16_bits_sr(1e6f, 0), 0x7C00);
  EXPECT_EQ(f32_to_f16_bits_sr(-0.0f, 0), 0x8000);
}

}  // namespace
}  // namespace zoff::k
