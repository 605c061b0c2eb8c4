// CPU references of the low-rank update W += alpha * U * Z * V^T (oneTBB over rows of W): RNE and SR.
#include <algorithm>
#include <type_traits>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "kernels/lowrank.h"
#include "zoff/error.h"
#include "kernels/ref/scalar.h"

namespace zoff::k {
namespace {

// The factor as the GPU's GEMM reads it: fp32, or rounded to W's 16-bit dtype.
float as_factor(float x, Elem e) {
  if (e == Elem::BF16) return bf16_bits_to_f32(f32_to_bf16_bits_rne(x));
  if (e == Elem::F16) return f16_bits_to_f32(f32_to_f16_bits_rne(x));
  return x;
}

template <Elem E>
void rows(const LowRankArgs& a, const std::vector<float>& t, const std::vector<float>& v, int64_t i0, int64_t i1) {
  using T = std::conditional_t<E == Elem::F32, uint32_t, uint16_t>;
  T* w = static_cast<T*>(a.w);
  for (int64_t i = i0; i < i1; ++i) {
    for (int64_t j = 0; j < a.n; ++j) {
      double d = 0.0;
      for (int64_t k = 0; k < a.r; ++k) d += double(t[i * a.r + k]) * double(v[j * a.r + k]);
      T& x = w[i * a.n + j];
      x = T(encode<E, false>(float(double(decode<E>(x)) + d), 0));
    }
  }
}

// Rows [i0, i1) of Note [Low-rank stochastic rounding]: x for a whole row at once, vectorised over
// j (each element still sums k = 0 .. r-1 in order), then one rounding per element.
template <Elem E, bool SR>
void sr_rows(const LowRankArgs& a, const float* t, const float* vt, uint64_t key, int64_t i0, int64_t i1) {
  using T = std::conditional_t<E == Elem::F32, uint32_t, uint16_t>;
  T* w = static_cast<T*>(a.w);
  const int64_t n = a.n, r = a.r;
  std::vector<float> acc(static_cast<size_t>(n));
  float* x = acc.data();
  for (int64_t i = i0; i < i1; ++i) {
    const float* ti = t + i * r;
    for (int64_t j = 0; j < n; ++j) x[j] = mul_rn(ti[0], vt[j]);
    for (int64_t k = 1; k < r; ++k) {
      const float tk = ti[k];
      const float* vk = vt + k * n;
      for (int64_t j = 0; j < n; ++j) x[j] = add_rn(x[j], mul_rn(tk, vk[j]));
    }
    T* wi = w + i * n;
    Philox4 bits{};
    for (int64_t j = 0; j < n; ++j) {
      uint32_t r16 = 0;
      if constexpr (SR) {
        const uint64_t g = uint64_t(i * n + j);
        if (j == 0 || (g & 7) == 0) bits = philox_block(key, a.pid, g >> 3);
        r16 = sr_r16(bits, g);
      }
      wi[j] = T(lowrank_round<E, SR>(wi[j], a.keep, x[j], r16));
    }
  }
}

}  // namespace

namespace ref {

void lowrank_update_sr(const LowRankArgs& a) {
  ZOFF_CHECK(a.m >= 0 && a.n >= 0 && a.r >= 0, "lowrank_update_sr: m, n, r = ", a.m, ", ", a.n, ", ", a.r);
  ZOFF_CHECK(a.elem == Elem::F32 || a.elem == Elem::F16 || a.elem == Elem::BF16,
             "lowrank_update_sr: W must be F32, F16 or BF16 (got Elem ", int(a.elem), ")");
  if (a.m == 0 || a.n == 0) return;
  ZOFF_CHECK(a.r >= 1, "lowrank_update_sr: rank 0");
  ZOFF_CHECK(a.w && a.u && a.z && a.v, "lowrank_update_sr: null W, U, Z or V");
  const int64_t m = a.m, n = a.n, r = a.r;
  std::vector<float> t(size_t(m * r)), vt(size_t(n * r));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, m, 256), [&](const tbb::blocked_range<int64_t>& rg) {
    for (int64_t i = rg.begin(); i < rg.end(); ++i)
      for (int64_t k = 0; k < r; ++k) t[size_t(i * r + k)] = lowrank_t(a.u + i * r, a.z, r, k, a.alpha);
  });
  for (int64_t j = 0; j < n; ++j)
    for (int64_t k = 0; k < r; ++k) vt[size_t(k * n + j)] = a.v[j * r + k];
  const bool sr = a.sr_seed != 0 && a.elem != Elem::F32;
  const uint64_t key = sr ? sr_key(a.sr_seed, a.sr_pass) : 0;
  const int64_t grain = std::max<int64_t>(1, 16384 / n);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, m, grain), [&](const tbb::blocked_range<int64_t>& rg) {
    const float *tp = t.data(), *vp = vt.data();
    switch (a.elem) {
      case Elem::F32: return sr_rows<Elem::F32, false>(a, tp, vp, key, rg.begin(), rg.end());
      case Elem::F16:
        return sr ? sr_rows<Elem::F16, true>(a, tp, vp, key, rg.begin(), rg.end())
                  : sr_rows<Elem::F16, false>(a, tp, vp, key, rg.begin(), rg.end());
      case Elem::BF16:
        return sr ? sr_rows<Elem::BF16, true>(a, tp, vp, key, rg.begin(), rg.end())
                  : sr_rows<Elem::BF16, false>(a, tp, vp, key, rg.begin(), rg.end());
      case Elem::F8E4M3: return;
    }
  });
}

void lowrank_update(const LowRankArgs& a) {
  ZOFF_CHECK(a.sr_seed == 0 && a.keep == 1.0f, "lowrank_update rounds to nearest and has no decay: use lowrank_update_sr");
  ZOFF_CHECK(a.m >= 0 && a.n >= 0 && a.r >= 0, "lowrank_update: m, n, r = ", a.m, ", ", a.n, ", ", a.r);
  ZOFF_CHECK(a.elem == Elem::F32 || a.elem == Elem::F16 || a.elem == Elem::BF16,
              "lowrank_update: W must be F32, F16 or BF16 (got Elem ", int(a.elem), ")");
  if (a.m == 0 || a.n == 0 || a.r == 0) return;
  ZOFF_CHECK(a.w && a.u && a.z && a.v, "lowrank_update: null W, U, Z or V");
  std::vector<float> t(size_t(a.m * a.r)), v(size_t(a.n * a.r));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, a.m, 256), [&](const tbb::blocked_range<int64_t>& rg) {
    for (int64_t i = rg.begin(); i < rg.end(); ++i)
      for (int64_t k = 0; k < a.r; ++k) {
        double d = 0.0;
        for (int64_t l = 0; l < a.r; ++l) d += double(a.u[i * a.r + l]) * double(a.z[l * a.r + k]);
        t[i * a.r + k] = as_factor(float(double(a.alpha) * d), a.elem);
      }
  });
  for (int64_t x = 0; x < a.n * a.r; ++x) v[x] = as_factor(a.v[x], a.elem);
  int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, a.n));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, a.m, grain), [&](const tbb::blocked_range<int64_t>& rg) {
    switch (a.elem) {
      case Elem::F32: return rows<Elem::F32>(a, t, v, rg.begin(), rg.end());
      case Elem::F16: return rows<Elem::F16>(a, t, v, rg.begin(), rg.end());
      case Elem::BF16: return rows<Elem::BF16>(a, t, v, rg.begin(), rg.end());
      case Elem::F8E4M3: return;
    }
  });
}

}  // namespace ref
}  // namespace zoff::k
