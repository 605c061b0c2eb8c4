// ref::lowrank_update_sr: the fixed-order contract, naive fp64, SR neighbours and keying, unbiasedness, mirrors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/lowrank.h"
#include "kernels/ref/scalar.h"
#include "kernels/zo_kernels.h"
#include "zoff/error.h"

namespace zoff::k {
namespace {

struct Case {
  int64_t m, n, r;
  std::vector<float> u, z, v;
  float alpha;
};

Case make_case(int64_t m, int64_t n, int64_t r, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  Case c{m, n, r, std::vector<float>(size_t(m * r)), std::vector<float>(size_t(r * r)), std::vector<float>(size_t(n * r)),
         0.05f / float(r)};
  for (auto* x : {&c.u, &c.z, &c.v})
    for (float& f : *x) f = nd(rng);
  return c;
}

// W's m x n values as bits of e, row i scaled by 10^(i % 7 - 3), a few exact zeros.
std::vector<uint16_t> w16_of(Elem e, int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<uint16_t> w(static_cast<size_t>(count));
  for (int64_t x = 0; x < count; ++x) {
    float f = x % 11 == 3 ? 0.0f : nd(rng) * std::pow(10.0f, float(x % 7 - 3));
    w[size_t(x)] = e == Elem::F16 ? ref::float_to_f16_rne(f) : ref::float_to_bf16_rne(f);
  }
  return w;
}

float value16(Elem e, uint16_t b) { return e == Elem::F16 ? ref::f16_to_float(b) : ref::bf16_to_float(b); }

// x[i,j] of Note [Low-rank stochastic rounding], written out one element at a time.
float contract_x(const Case& c, int64_t i, int64_t j) {
  auto t = [&](int64_t k) {
    float s = mul_rn(c.u[size_t(i * c.r)], c.z[size_t(k)]);
    for (int64_t l = 1; l < c.r; ++l) s = add_rn(s, mul_rn(c.u[size_t(i * c.r + l)], c.z[size_t(l * c.r + k)]));
    return mul_rn(c.alpha, s);
  };
  float x = mul_rn(t(0), c.v[size_t(j * c.r)]);
  for (int64_t k = 1; k < c.r; ++k) x = add_rn(x, mul_rn(t(k), c.v[size_t(j * c.r + k)]));
  return x;
}

// alpha * (U Z V^T)[i,j] in fp64, and the sum of the magnitudes of its terms.
double naive(const Case& c, int64_t i, int64_t j, double* mag) {
  double d = 0;
  *mag = 0;
  for (int64_t k = 0; k < c.r; ++k)
    for (int64_t l = 0; l < c.r; ++l) {
      double p = double(c.u[size_t(i * c.r + l)]) * c.z[size_t(l * c.r + k)] * c.v[size_t(j * c.r + k)];
      d += p;
      *mag += std::fabs(p);
    }
  *mag *= std::fabs(double(c.alpha));
  return double(c.alpha) * d;
}

// Bound on |fp32 contract - exact| for the sum (two fp32 dot products of length r, then alpha).
double fp32_tol(int64_t r, double mag) { return double(2 * r + 4) * std::ldexp(1.0, -24) * mag + 1e-37; }

LowRankArgs args(const Case& c, void* w, Elem e, uint64_t sr, uint64_t pid, int pass, float keep) {
  LowRankArgs a{w, e, c.m, c.n, c.r, c.u.data(), c.z.data(), c.v.data(), c.alpha};
  a.sr_seed = sr;
  a.pid = pid;
  a.sr_pass = pass;
  a.keep = keep;
  return a;
}

const int64_t kShapes[][3] = {{1, 1, 1}, {7, 13, 3}, {257, 129, 24}, {5, 9, 70}};

TEST(LowRankSrRef, Fp32IsTheExactContract) {
  for (auto& s : kShapes)
    for (float keep : {1.0f, 0.999f}) {
      SCOPED_TRACE(testing::Message() << s[0] << "x" << s[1] << " r " << s[2] << " keep " << keep);
      Case c = make_case(s[0], s[1], s[2], uint32_t(s[0] * 31 + s[1]));
      std::vector<float> w0(size_t(c.m * c.n)), w;
      std::mt19937 rng(7);
      std::normal_distribution<float> nd;
      for (float& f : w0) f = nd(rng);
      w = w0;
      ref::lowrank_update_sr(args(c, w.data(), Elem::F32, 12345, 77, 0, keep));  // sr_seed ignored for fp32
      for (int64_t i = 0; i < c.m; ++i)
        for (int64_t j = 0; j < c.n; ++j) {
          const size_t x = size_t(i * c.n + j);
          const float want = add_rn(mul_rn(w0[x], keep), contract_x(c, i, j));
          ASSERT_EQ(f32_bits(w[x]), f32_bits(want)) << "W[" << i << "," << j << "]";
          double mag, exact = double(w0[x]) * double(keep) + naive(c, i, j, &mag);
          ASSERT_NEAR(w[x], exact, std::ldexp(std::fabs(exact), -23) + fp32_tol(c.r, mag + std::fabs(w0[x])));
        }
    }
}

// 16-bit W: with SR every element is one of the two neighbours of the fp32 contract value y
// (hence within one ulp of the exact value), and it is exactly the neighbour that zo_update's bits
// for element g pick (Note [Stochastic rounding]); without SR it is y rounded to nearest even.
TEST(LowRankSrRef, SixteenBitRoundsToANeighbourWithZoUpdatesBits) {
  const uint64_t seed = 0xABCDEF12345ull, pid = param_id("model.layers.3.mlp.fc1.weight");
  for (Elem e : {Elem::BF16, Elem::F16})
    for (auto& s : kShapes)
      for (uint64_t sr : {uint64_t(0), seed})
        for (int pass : {0, 2}) {
          SCOPED_TRACE(testing::Message() << "elem " << int(e) << " " << s[0] << "x" << s[1] << " r " << s[2]
                                          << " sr " << sr << " pass " << pass);
          Case c = make_case(s[0], s[1], s[2], uint32_t(s[2] * 101 + s[1]));
          const float keep = pass == 0 ? 1.0f : 0.998f;
          std::vector<uint16_t> w0 = w16_of(e, c.m * c.n, uint32_t(s[0])), w = w0;
          ref::lowrank_update_sr(args(c, w.data(), e, sr, pid, pass, keep));
          const double ulp_rel = e == Elem::BF16 ? std::ldexp(1.0, -7) : std::ldexp(1.0, -10);
          int64_t rounded_up = 0, inexact = 0;
          for (int64_t i = 0; i < c.m; ++i)
            for (int64_t j = 0; j < c.n; ++j) {
              const size_t x = size_t(i * c.n + j);
              const uint64_t g = uint64_t(x);
              const float y = add_rn(mul_rn(value16(e, w0[x]), keep), contract_x(c, i, j));
              const float ay = std::fabs(y);
              uint16_t lo = e == Elem::BF16 ? uint16_t(f32_bits(ay) >> 16) : ref::float_to_f16_rne(ay);
              if (value16(e, lo) > ay) --lo;  // lo: |y| truncated toward zero
              const uint16_t sign = std::signbit(y) ? 0x8000 : 0;
              const uint16_t got = w[x];
              if (sr == 0) {
                ASSERT_EQ(got, e == Elem::BF16 ? ref::float_to_bf16_rne(y) : ref::float_to_f16_rne(y));
              } else {
                const uint32_t r16 = sr_r16(philox_block(sr_key(sr, pass), pid, g >> 3), g);
                const uint16_t want = uint16_t(e == Elem::BF16 ? encode<Elem::BF16, true>(y, r16)
                                                               : encode<Elem::F16, true>(y, r16));
                ASSERT_EQ(got, want) << "W[" << i << "," << j << "]";
                if (value16(e, lo) == ay) {
                  ASSERT_EQ(got, uint16_t(sign | lo));
                } else {
                  ++inexact;
                  ASSERT_TRUE(got == uint16_t(sign | lo) || got == uint16_t(sign | (lo + 1))) << "W[" << i << "," << j << "]";
                  rounded_up += got != uint16_t(sign | lo);
                }
              }
              double mag, exact = double(value16(e, w0[x])) * double(keep) + naive(c, i, j, &mag);
              ASSERT_NEAR(value16(e, got), exact,
                          ulp_rel * std::fabs(exact) + std::ldexp(1.0, -24) + fp32_tol(c.r, mag + std::fabs(exact)));
            }
          if (sr != 0 && inexact > 1000) {  // both neighbours occur
            EXPECT_GT(rounded_up, 0);
            EXPECT_LT(rounded_up, inexact);
          }
        }
}

TEST(LowRankSrRef, DeterministicPerSeedAndKeyedBySeedPidAndPass) {
  Case c = make_case(257, 129, 24, 5);
  c.alpha = 1e-5f;  // far below half an ulp of W: every element is a coin toss
  auto run = [&](uint64_t sr, uint64_t pid, int pass) {
    std::vector<uint16_t> w = w16_of(Elem::BF16, c.m * c.n, 3);
    ref::lowrank_update_sr(args(c, w.data(), Elem::BF16, sr, pid, pass, 1.0f));
    return w;
  };
  auto differ = [](const std::vector<uint16_t>& a, const std::vector<uint16_t>& b) {
    int64_t d = 0;
    for (size_t x = 0; x < a.size(); ++x) d += a[x] != b[x];
    return d;
  };
  const auto base = run(11, 22, 0);
  EXPECT_EQ(differ(base, run(11, 22, 0)), 0);
  EXPECT_GT(differ(base, run(12, 22, 0)), 0);
  EXPECT_GT(differ(base, run(11, 23, 0)), 0);
  EXPECT_GT(differ(base, run(11, 22, 1)), 0);
  EXPECT_GT(differ(base, w16_of(Elem::BF16, c.m * c.n, 3)), 0);  // the update moved something
}

// A positive update of ~1e-3 ulp on 2^20 bf16 elements of 1.5: with SR the mean change matches
// the exact fp64 expectation within 3 sigma (sigma from each element's Bernoulli variance);
// rounding to nearest loses it all.
TEST(LowRankSrRef, SubUlpUpdatesAreUnbiasedWithSrAndLostWithRne) {
  const int64_t m = 1024, n = 1024, r = 4;
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> ud(0.5f, 1.5f);
  Case c{m, n, r, std::vector<float>(size_t(m * r)), std::vector<float>(size_t(r * r), 0.0f), std::vector<float>(size_t(n * r)), 1.0f};
  for (float& f : c.u) f = ud(rng);
  for (float& f : c.v) f = ud(rng);
  for (int64_t k = 0; k < r; ++k) c.z[size_t(k * r + k)] = ud(rng);
  const double ulp = std::ldexp(1.0, -7);  // bf16 spacing in [1, 2)
  double sum_uzv = 0;
  std::vector<double> d(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double mag;
      d[size_t(i * n + j)] = naive(c, i, j, &mag);
      sum_uzv += d[size_t(i * n + j)];
    }
  c.alpha = float(1e-3 * ulp * double(m * n) / sum_uzv);  // mean update 1e-3 ulp
  double want = 0, var = 0;
  for (double& x : d) {
    x *= double(c.alpha);
    want += x;
    const double p = x / ulp;
    var += ulp * ulp * p * (1 - p);
  }
  const double N = double(m * n);
  want /= N;
  const double sigma = std::sqrt(var) / N;
  ASSERT_GT(want, 20 * sigma);  // the test can tell drift from none
  const uint16_t one5 = ref::float_to_bf16_rne(1.5f);
  for (uint64_t sr : {uint64_t(0), uint64_t(0x5EED)}) {
    std::vector<uint16_t> w(size_t(m * n), one5);
    ref::lowrank_update_sr(args(c, w.data(), Elem::BF16, sr, 4242, 0, 1.0f));
    double mean = 0;
    for (uint16_t b : w) mean += double(ref::bf16_to_float(b)) - 1.5;
    mean /= N;
    if (sr == 0) {
      EXPECT_EQ(mean, 0.0) << "round to nearest drops every sub-ulp update";
    } else {
      EXPECT_NEAR(mean, want, 3 * sigma) << "mean drift " << mean / ulp << " ulp, expected " << want / ulp;
    }
  }
}

// Without SR, alpha and -alpha give exact negatives (from W = 0): theta +- eps z are mirror images.
TEST(LowRankSrRef, NegatedAlphaIsAnExactMirrorWithoutSr) {
  for (Elem e : {Elem::F32, Elem::F16, Elem::BF16}) {
    Case c = make_case(33, 47, 6, 8);
    const int64_t count = c.m * c.n;
    std::vector<uint32_t> p32(size_t(count), 0), n32(size_t(count), 0);
    std::vector<uint16_t> p16(size_t(count), 0), n16(size_t(count), 0);
    void* wp = e == Elem::F32 ? static_cast<void*>(p32.data()) : p16.data();
    void* wn = e == Elem::F32 ? static_cast<void*>(n32.data()) : n16.data();
    ref::lowrank_update_sr(args(c, wp, e, 0, 1, 0, 1.0f));
    c.alpha = -c.alpha;
    ref::lowrank_update_sr(args(c, wn, e, 0, 1, 0, 1.0f));
    const uint32_t sign = e == Elem::F32 ? 0x80000000u : 0x8000u;
    for (int64_t x = 0; x < count; ++x) {
      uint32_t a = e == Elem::F32 ? p32[size_t(x)] : p16[size_t(x)], b = e == Elem::F32 ? n32[size_t(x)] : n16[size_t(x)];
      if ((a & ~sign) == 0) continue;  // +-0: the sign of a zero sum is not mirrored
      ASSERT_EQ(a ^ sign, b) << "elem " << int(e) << " at " << x;
    }
  }
}

TEST(LowRankSrRef, RejectsBadArguments) {
  float x[4] = {};
  EXPECT_THROW(ref::lowrank_update_sr({x, Elem::F8E4M3, 2, 2, 1, x, x, x, 1.0f}), zoff::Error);
  EXPECT_THROW(ref::lowrank_update_sr({nullptr, Elem::F32, 2, 2, 1, x, x, x, 1.0f}), zoff::Error);
  EXPECT_THROW(ref::lowrank_update_sr({x, Elem::F32, 2, 2, 0, x, x, x, 1.0f}), zoff::Error);
  EXPECT_NO_THROW(ref::lowrank_update_sr({nullptr, Elem::F32, 0, 2, 0, nullptr, nullptr, nullptr, 1.0f}));
  LowRankArgs sr{x, Elem::F32, 2, 2, 1, x, x, x, 1.0f};
  sr.sr_seed = 1;
  EXPECT_THROW(ref::lowrank_update(sr), zoff::Error);  // the RNE path refuses SR arguments
}

}  // namespace
}  // namespace zoff::k
