// CPU reference of the low-rank update W += alpha * U * Z * V^T (oneTBB over rows of W).
#include <algorithm>
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

}  // namespace

namespace ref {

void lowrank_update(const LowRankArgs& a) {
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
