// ref::zo_update, ref::zo_perturb and ref::fill_z against a naive per-element loop; bf16 RNE vs SR.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/ref/scalar.h"
#include "kernels/zo_kernels.h"
#include "zoff/error.h"

namespace zoff::k {
namespace {

float naive_z(Dist d, uint64_t seed, uint64_t pid, uint64_t g) {
  return d == Dist::Gaussian ? gaussian_at(seed, pid, g) : rademacher_at(seed, pid, g);
}

float dec(Elem e, uint32_t b) {
  switch (e) {
    case Elem::F32: return bits_f32(b);
    case Elem::F16: return ref::f16_to_float(uint16_t(b));
    case Elem::BF16: return ref::bf16_to_float(uint16_t(b));
    default: return ref::e4m3_to_float(uint8_t(b));
  }
}

uint32_t enc(Elem e, float v, bool sr, uint64_t key, uint64_t pid, uint64_t g) {
  if (e == Elem::F32) return f32_bits(v);
  if (!sr) return e == Elem::F16 ? ref::float_to_f16_rne(v) : ref::float_to_bf16_rne(v);
  Philox4 r = philox_block(key, pid, g >> 3);
  uint32_t r16 = (r.v[(g >> 1) & 3] >> (16 * (g & 1))) & 0xFFFFu;
  return e == Elem::F16 ? f32_to_f16_bits_sr(v, r16) : f32_to_bf16_bits_sr(v, r16);
}

// Note [Term passes], one element at a time.
uint32_t naive_element(float t, Elem out, Dist d, const std::vector<ZTerm>& terms, float keep, uint64_t sr_seed,
                       uint64_t pid, uint64_t g) {
  int passes = terms.empty() ? 1 : int((terms.size() + kMaxTerms - 1) / kMaxTerms);
  uint32_t bits = 0;
  for (int p = 0; p < passes; ++p) {
    float acc = 0.0f;
    size_t k0 = size_t(p) * kMaxTerms, k1 = std::min(terms.size(), k0 + kMaxTerms);
    for (size_t k = k0; k < k1; ++k) acc = add_rn(acc, mul_rn(terms[k].coeff, naive_z(d, terms[k].seed, pid, g)));
    float v = mul_rn(t, p == 0 ? keep : 1.0f);
    if (k1 > k0) v = add_rn(v, acc);
    bits = enc(out, v, sr_seed != 0, splitmix64(sr_seed + uint64_t(p)), pid, g);
    t = dec(out, bits);
  }
  return bits;
}

// Random values stored as `e`, as raw bits in a byte buffer.
std::vector<uint8_t> random_buffer(Elem e, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  int es = elem_size(e);
  std::vector<uint8_t> buf(size_t(n * es));
  for (int64_t i = 0; i < n; ++i) {
    float f = nd(rng);
    uint32_t b = e == Elem::F32 ? f32_bits(f)
                 : e == Elem::F16 ? ref::float_to_f16_rne(f)
                 : e == Elem::BF16 ? ref::float_to_bf16_rne(f)
                                   : ref::float_to_e4m3_rne(f * 50.0f);
    std::memcpy(buf.data() + i * es, &b, size_t(es));
  }
  return buf;
}

uint32_t bits_at(const std::vector<uint8_t>& buf, Elem e, int64_t i) {
  uint32_t b = 0;
  std::memcpy(&b, buf.data() + i * elem_size(e), size_t(elem_size(e)));
  return b;
}

std::vector<ZTerm> make_terms(int n, uint64_t base) {
  std::vector<ZTerm> t;
  for (int k = 0; k < n; ++k) t.push_back({step_seed(base, 3, uint64_t(k)), 1e-3f * float(k % 3 == 1 ? -1 - k : 1 + k)});
  return t;
}

struct UpdateCase {
  Elem elem;
  Dist dist;
  int nterms;
  float decay;
  uint64_t sr_seed;
  int64_t first;
};

void check_update(const UpdateCase& c, int64_t n) {
  SCOPED_TRACE(testing::Message() << "elem " << int(c.elem) << " dist " << int(c.dist) << " nterms " << c.nterms
                                  << " decay " << c.decay << " sr " << c.sr_seed << " first " << c.first << " n " << n);
  const uint64_t pid = param_id("model.layers.1.mlp.up_proj.weight");
  std::vector<uint8_t> theta = random_buffer(c.elem, n, uint32_t(n + c.nterms));
  std::vector<uint8_t> before = theta;
  std::vector<ZTerm> terms = make_terms(c.nterms, 17);
  UpdateArgs a{theta.data(), c.elem, n, pid, c.dist, terms.data(), c.nterms, c.decay, c.sr_seed};
  a.first = c.first;
  ref::zo_update(a);
  bool sr = c.sr_seed != 0 && c.elem != Elem::F32;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t want = c.nterms == 0 && c.decay == 0.0f
                        ? bits_at(before, c.elem, i)
                        : naive_element(dec(c.elem, bits_at(before, c.elem, i)), c.elem, c.dist, terms,
                                        1.0f - c.decay, sr ? c.sr_seed : 0, pid, uint64_t(c.first + i));
    ASSERT_EQ(bits_at(theta, c.elem, i), want) << "element " << i;
  }
}

TEST(ZoUpdateRef, MatchesNaiveOnAwkwardSizes) {
  for (int64_t n : {1, 7, 4097})
    for (Elem e : {Elem::F32, Elem::F16, Elem::BF16})
      for (Dist d : {Dist::Gaussian, Dist::Rademacher}) {
        for (UpdateCase c : {UpdateCase{e, d, 1, 0.0f, 0, 0}, UpdateCase{e, d, 3, 0.01f, 0, 5},
                             UpdateCase{e, d, 11, 0.0f, 0xabcdefull, 130},  // two passes, stochastic rounding
                             UpdateCase{e, d, 0, 0.5f, 7, 0},               // decay only
                             UpdateCase{e, d, 0, 0.0f, 7, 0}}) {            // nothing to do
          check_update(c, n);
          if (HasFatalFailure()) return;
        }
      }
}

TEST(ZoUpdateRef, MatchesNaiveOnAMillionAndThree) {
  const int64_t n = 1000003;
  check_update({Elem::F32, Dist::Gaussian, 1, 0.0f, 0, 0}, n);
  check_update({Elem::BF16, Dist::Gaussian, 2, 0.0f, 99, 3}, n);
  check_update({Elem::F16, Dist::Rademacher, 1, 1e-3f, 0, 0}, n);
  check_update({Elem::BF16, Dist::Rademacher, 3, 0.0f, 5, 1}, n);
}

TEST(ZoUpdateRef, SplitTensorDrawsTheSameZ) {
  const int64_t n = 10000;
  const uint64_t pid = param_id("w");
  std::vector<ZTerm> terms = make_terms(2, 5);
  for (Dist d : {Dist::Gaussian, Dist::Rademacher}) {
    std::vector<uint8_t> whole = random_buffer(Elem::BF16, n, 1), parts = whole;
    ref::zo_update({whole.data(), Elem::BF16, n, pid, d, terms.data(), 2, 0.0f, 77});
    int64_t cuts[] = {0, 13, 4099, n};
    for (int p = 0; p < 3; ++p) {
      UpdateArgs a{parts.data() + cuts[p] * 2, Elem::BF16, cuts[p + 1] - cuts[p], pid, d, terms.data(), 2, 0.0f, 77};
      a.first = cuts[p];
      ref::zo_update(a);
    }
    EXPECT_EQ(whole, parts);
  }
}

void check_perturb(Elem out, Elem src, Dist d, int nterms, int64_t n, int64_t row_len, int64_t first) {
  SCOPED_TRACE(testing::Message() << "out " << int(out) << " src " << int(src) << " dist " << int(d) << " nterms "
                                  << nterms << " n " << n << " row_len " << row_len);
  const uint64_t pid = param_id("model.decoder.layers.0.self_attn.q_proj.weight");
  std::vector<uint8_t> s = random_buffer(src, n, uint32_t(n * 3 + nterms));
  std::vector<float> scales(size_t((n + row_len - 1) / row_len));
  for (size_t r = 0; r < scales.size(); ++r) scales[r] = 0.001f * float(r + 1);
  std::vector<uint8_t> o(size_t(n * elem_size(out)), 0xFF);
  std::vector<ZTerm> terms = make_terms(nterms, 23);
  PerturbArgs a{o.data(), out, s.data(), src, scales.data(), row_len, n, pid, d, terms.data(), nterms};
  a.first = first;
  ref::zo_perturb(a);
  for (int64_t i = 0; i < n; ++i) {
    float t = dec(src, bits_at(s, src, i));
    if (src == Elem::F8E4M3) t = mul_rn(t, scales[size_t(i / row_len)]);
    uint32_t want = naive_element(t, out, d, terms, 1.0f, 0, pid, uint64_t(first + i));
    ASSERT_EQ(bits_at(o, out, i), want) << "element " << i;
  }
}

TEST(ZoPerturbRef, MatchesNaiveForAllDtypePairs) {
  for (int64_t n : {1, 7, 4097})
    for (Elem out : {Elem::F32, Elem::F16, Elem::BF16})
      for (Elem src : {Elem::F32, Elem::F16, Elem::BF16, Elem::F8E4M3})
        for (Dist d : {Dist::Gaussian, Dist::Rademacher}) {
          check_perturb(out, src, d, 1, n, 5, 0);
          check_perturb(out, src, d, 9, n, 64, 3);
          if (HasFatalFailure()) return;
        }
  check_perturb(Elem::BF16, Elem::F8E4M3, Dist::Gaussian, 0, 1000003, 1000, 0);  // plain dequantisation
  check_perturb(Elem::F32, Elem::BF16, Dist::Gaussian, 2, 1000003, 1, 0);
}

TEST(FillZRef, MatchesPerElementDraws) {
  for (int64_t n : {1, 7, 4097, 1000003})
    for (Dist d : {Dist::Gaussian, Dist::Rademacher}) {
      std::vector<float> z(size_t(n), std::nanf(""));
      ref::fill_z(z.data(), n, 1234, 5678, d);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(f32_bits(z[i]), f32_bits(naive_z(d, 5678, 1234, uint64_t(i)))) << i;
    }
}

// A bf16 weight of 2^-6 (ulp 2^-13) receives 1e-7 * z: rounding to nearest drops every update,
// stochastic rounding keeps it in expectation. The statistic S = sum_i z_i (new_i - old_i) has
// expectation sum_i z_i d_i, with d_i the fp32 update actually formed, and variance
// sum_i z_i^2 frac_i (1 - frac_i) step^2 (Note [Stochastic rounding]).
TEST(ZoUpdateRef, StochasticRoundingKeepsTinyBf16Updates) {
  const int64_t n = 10000000;
  const uint64_t pid = param_id("tiny"), seed = 31337;
  const float theta0 = 0.015625f, coeff = 1e-7f;
  const double step = std::ldexp(1.0, -13);
  std::vector<float> z(static_cast<size_t>(n));
  ref::fill_z(z.data(), n, pid, seed, Dist::Gaussian);
  ZTerm term{seed, coeff};
  for (uint64_t sr : {uint64_t(0), uint64_t(424242)}) {
    std::vector<uint16_t> w(size_t(n), ref::float_to_bf16_rne(theta0));
    ref::zo_update({w.data(), Elem::BF16, n, pid, Dist::Gaussian, &term, 1, 0.0f, sr});
    double s = 0, expect = 0, var = 0;
    for (int64_t i = 0; i < n; ++i) {
      double d = double(add_rn(theta0, mul_rn(coeff, z[i]))) - double(theta0);
      double frac = std::fabs(d) / step;
      s += double(z[i]) * (double(ref::bf16_to_float(w[i])) - double(theta0));
      expect += double(z[i]) * d;
      var += double(z[i]) * z[i] * frac * (1.0 - frac) * step * step;
    }
    if (sr == 0) {
      EXPECT_EQ(s, 0.0) << "round to nearest even must lose every update";
    } else {
      EXPECT_NEAR(expect, 1.0, 0.01);  // 1e-7 * sum z^2 over 1e7 draws
      EXPECT_LT(std::fabs(s - expect), 3.0 * std::sqrt(var)) << "S " << s << " expected " << expect;
      EXPECT_GT(s, 0.9);
    }
  }
}

TEST(ZoKernelsRef, RejectsBadArguments) {
  float x[4] = {};
  ZTerm t{1, 1.0f};
  EXPECT_THROW(ref::zo_update({x, Elem::F32, 4, 0, Dist::Gaussian, &t, -1, 0.0f, 0}), zoff::Error);
  EXPECT_THROW(ref::zo_update({x, Elem::F8E4M3, 4, 0, Dist::Gaussian, &t, 1, 0.0f, 0}), zoff::Error);
  EXPECT_THROW(ref::zo_update({x, Elem::F32, 4, 0, Dist::Gaussian, nullptr, 1, 0.0f, 0}), zoff::Error);
  EXPECT_THROW(ref::zo_perturb({x, Elem::F32, x, Elem::F8E4M3, nullptr, 4, 4, 0, Dist::Gaussian, &t, 1}), zoff::Error);
  EXPECT_THROW(ref::zo_perturb({x, Elem::F8E4M3, x, Elem::F32, nullptr, 4, 4, 0, Dist::Gaussian, &t, 1}), zoff::Error);
  EXPECT_THROW(ref::fill_z(nullptr, 4, 0, 0, Dist::Gaussian), zoff::Error);
}

}  // namespace
}  // namespace zoff::k
