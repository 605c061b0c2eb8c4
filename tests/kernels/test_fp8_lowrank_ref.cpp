// ref::pack_fp8_rows / unpack_fp8_rows (scales, codes, error bound) and ref::lowrank_update vs naive.
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

// rows x cols values of dtype e (as raw bits), row r scaled by 10^(r % 7 - 3); row 2 all zero.
std::vector<uint32_t> rows_of(Elem e, int64_t rows, int64_t cols, std::vector<float>* vals) {
  std::mt19937 rng(uint32_t(rows * 131 + cols));
  std::normal_distribution<float> nd;
  std::vector<uint32_t> bits(size_t(rows * cols));
  vals->resize(bits.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      float f = r == 2 ? 0.0f : nd(rng) * std::pow(10.0f, float(r % 7 - 3));
      uint32_t b = e == Elem::F32 ? f32_bits(f) : e == Elem::F16 ? ref::float_to_f16_rne(f) : ref::float_to_bf16_rne(f);
      bits[size_t(r * cols + c)] = b;
      (*vals)[size_t(r * cols + c)] = e == Elem::F32 ? f : e == Elem::F16 ? ref::f16_to_float(uint16_t(b)) : ref::bf16_to_float(uint16_t(b));
    }
  return bits;
}

void check_pack(Elem e, int64_t rows, int64_t cols) {
  SCOPED_TRACE(testing::Message() << "elem " << int(e) << " " << rows << " x " << cols);
  std::vector<float> x;
  std::vector<uint32_t> bits = rows_of(e, rows, cols, &x);
  std::vector<uint16_t> b16(bits.begin(), bits.end());
  const void* src = e == Elem::F32 ? static_cast<const void*>(bits.data()) : b16.data();
  std::vector<uint8_t> q(size_t(rows * cols), 0x7F);
  std::vector<float> scales(size_t(rows), std::nanf(""));
  ref::pack_fp8_rows({src, e, rows, cols, q.data(), scales.data()});
  std::vector<float> back(size_t(rows * cols), std::nanf(""));
  ref::unpack_fp8_rows(q.data(), scales.data(), rows, cols, back.data());
  for (int64_t r = 0; r < rows; ++r) {
    float m = 0;
    for (int64_t c = 0; c < cols; ++c) m = std::max(m, std::fabs(x[size_t(r * cols + c)]));
    float want_scale = m > 0 ? m / 448.0f : 1.0f;
    ASSERT_EQ(scales[size_t(r)], want_scale) << "row " << r;
    double worst = 0;
    for (int64_t c = 0; c < cols; ++c) {
      size_t i = size_t(r * cols + c);
      ASSERT_EQ(q[i], ref::float_to_e4m3_rne(x[i] / want_scale)) << "row " << r << " col " << c;
      double err = std::fabs(double(back[i]) - double(x[i]));
      if (std::fabs(x[i] / want_scale) >= std::ldexp(1.0f, -6)) {
        worst = std::max(worst, err / std::fabs(double(x[i])));
      } else {
        ASSERT_LE(err, std::ldexp(1.0, -10) * want_scale * (1 + 1e-6)) << "subnormal, row " << r;
      }
    }
    // e4m3 keeps 3 mantissa bits: half an ulp is 2^-4 relative (the spec's bound is 2^-3).
    EXPECT_LE(worst, std::ldexp(1.0, -4) * (1 + std::ldexp(1.0, -20))) << "row " << r;
    if (m > 0) {
      bool hit_max = false;
      for (int64_t c = 0; c < cols; ++c) hit_max |= (q[size_t(r * cols + c)] & 0x7F) == 0x7E;
      EXPECT_TRUE(hit_max) << "the largest value of a row packs to +-448";
    }
  }
  // unpack is zo_perturb from F8E4M3 with no terms.
  std::vector<float> viaperturb(size_t(rows * cols));
  if (cols > 0) {
    ref::zo_perturb({viaperturb.data(), Elem::F32, q.data(), Elem::F8E4M3, scales.data(), cols, rows * cols, 0,
                     Dist::Gaussian, nullptr, 0});
    for (size_t i = 0; i < back.size(); ++i) ASSERT_EQ(f32_bits(back[i]), f32_bits(viaperturb[i])) << i;
  }
}

TEST(PackFp8Ref, ScalesCodesAndErrorBound) {
  for (Elem e : {Elem::F32, Elem::F16, Elem::BF16}) {
    check_pack(e, 37, 1000);
    check_pack(e, 3, 1);
    check_pack(e, 5, 7);
    check_pack(e, 4, 4097);
  }
  check_pack(Elem::F32, 0, 16);
}

TEST(PackFp8Ref, RejectsBadArguments) {
  float x[4] = {};
  uint8_t q[4];
  float s[1];
  EXPECT_THROW(ref::pack_fp8_rows({x, Elem::F8E4M3, 1, 4, q, s}), zoff::Error);
  EXPECT_THROW(ref::pack_fp8_rows({x, Elem::F32, 1, 4, q, nullptr}), zoff::Error);
  EXPECT_THROW(ref::pack_fp8_rows({x, Elem::F32, -1, 4, q, s}), zoff::Error);
}

void check_lowrank(Elem e, int64_t m, int64_t n, int64_t r) {
  SCOPED_TRACE(testing::Message() << "elem " << int(e) << " m " << m << " n " << n << " r " << r);
  std::mt19937 rng(uint32_t(m * 7 + n * 3 + r));
  std::normal_distribution<float> nd;
  std::vector<float> u(size_t(m * r)), z(size_t(r * r)), v(size_t(n * r)), w0(size_t(m * n));
  for (auto* vec : {&u, &z, &v, &w0})
    for (float& f : *vec) f = nd(rng);
  const float alpha = 0.05f / float(r);
  std::vector<uint32_t> w(w0.size());
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = e == Elem::F32 ? f32_bits(w0[i]) : e == Elem::F16 ? ref::float_to_f16_rne(w0[i]) : ref::float_to_bf16_rne(w0[i]);
  std::vector<uint16_t> w16(w.begin(), w.end());
  void* wp = e == Elem::F32 ? static_cast<void*>(w.data()) : w16.data();
  ref::lowrank_update({wp, e, m, n, r, u.data(), z.data(), v.data(), alpha});
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double d = 0, mag = 0;
      for (int64_t k = 0; k < r; ++k)
        for (int64_t l = 0; l < r; ++l) {
          double t = double(u[size_t(i * r + l)]) * z[size_t(l * r + k)] * v[size_t(j * r + k)];
          d += t;
          mag += std::fabs(t);
        }
      size_t x = size_t(i * n + j);
      double before = e == Elem::F32 ? w0[x] : e == Elem::F16 ? ref::f16_to_float(uint16_t(w[x])) : ref::bf16_to_float(uint16_t(w[x]));
      double want = before + alpha * d;
      double got = e == Elem::F32 ? bits_f32(w[x]) : e == Elem::F16 ? ref::f16_to_float(w16[x]) : ref::bf16_to_float(w16[x]);
      double ulp = e == Elem::F32 ? std::ldexp(1.0, -23) : e == Elem::F16 ? std::ldexp(1.0, -10) : std::ldexp(1.0, -7);
      // One rounding of the result, plus the factors' rounding (fp32, or W's dtype for 16-bit W).
      double tol = ulp * std::fabs(want) + 3 * ulp * alpha * mag + 1e-30;
      ASSERT_NEAR(got, want, tol) << "W[" << i << "," << j << "]";
    }
}

TEST(LowRankRef, MatchesNaiveTripleProduct) {
  for (Elem e : {Elem::F32, Elem::F16, Elem::BF16}) {
    check_lowrank(e, 33, 47, 4);
    check_lowrank(e, 1, 7, 1);
    check_lowrank(e, 64, 130, 16);
  }
}

TEST(LowRankRef, RejectsBadArguments) {
  float x[4] = {};
  EXPECT_THROW(ref::lowrank_update({x, Elem::F8E4M3, 2, 2, 1, x, x, x, 1.0f}), zoff::Error);
  EXPECT_THROW(ref::lowrank_update({nullptr, Elem::F32, 2, 2, 1, x, x, x, 1.0f}), zoff::Error);
}

}  // namespace
}  // namespace zoff::k
