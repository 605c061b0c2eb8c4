// CPU references of the fp8 row packing (and its inverse) and of the scalar conversions.
#include <algorithm>
#include <cmath>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "kernels/ref/ew_job.h"
#include "kernels/ref/scalar.h"
#include "kernels/zo_kernels.h"

namespace zoff::k {
namespace {

// Note [fp8 row scale]
// scale_r = max_c |x_rc| / 448, computed as one IEEE division (fmaxf ignores NaN, so a NaN never
// becomes the scale); a row whose max is 0 (or whose scale underflows to 0) gets scale 1. Codes are
// e4m3(x / scale) with an IEEE division, never a multiply by 1/scale, so the GPU (which also
// divides) produces the same bytes. A row holding an infinity gets scale inf: its finite values
// pack to 0 and the infinity to NaN; callers pack finite weights.
template <Elem E>
void pack_rows(const PackFp8Args& a, int64_t r0, int64_t r1) {
  using T = std::conditional_t<E == Elem::F32, uint32_t, uint16_t>;
  const T* src = static_cast<const T*>(a.src);
  for (int64_t r = r0; r < r1; ++r) {
    const T* x = src + r * a.cols;
    float m = 0.0f;
    for (int64_t c = 0; c < a.cols; ++c) m = fmaxf(m, fabsf(decode<E>(x[c])));
    float s = m > 0.0f ? div_rn(m, 448.0f) : 1.0f;
    if (s == 0.0f) s = 1.0f;
    a.scales[r] = s;
    uint8_t* q = a.dst + r * a.cols;
    for (int64_t c = 0; c < a.cols; ++c) q[c] = f32_to_e4m3_bits_rne(div_rn(decode<E>(x[c]), s));
  }
}

}  // namespace

namespace ref {

void pack_fp8_rows(const PackFp8Args& a) {
  check_pack(a);
  int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, a.cols));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, a.rows, grain), [&](const tbb::blocked_range<int64_t>& r) {
    switch (a.src_elem) {
      case Elem::F32: return pack_rows<Elem::F32>(a, r.begin(), r.end());
      case Elem::F16: return pack_rows<Elem::F16>(a, r.begin(), r.end());
      case Elem::BF16: return pack_rows<Elem::BF16>(a, r.begin(), r.end());
      case Elem::F8E4M3: return;  // rejected by check_pack
    }
  });
}

void unpack_fp8_rows(const uint8_t* q, const float* scales, int64_t rows, int64_t cols, float* out) {
  ZOFF_CHECK(rows >= 0 && cols >= 0, "unpack_fp8_rows: rows = ", rows, ", cols = ", cols);
  ZOFF_CHECK(rows * cols == 0 || (q && scales && out), "unpack_fp8_rows: null q, scales or out");
  int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, cols));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, grain), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i)
      for (int64_t c = 0; c < cols; ++c) out[i * cols + c] = mul_rn(e4m3_bits_to_f32(q[i * cols + c]), scales[i]);
  });
}

float bf16_to_float(uint16_t h) { return bf16_bits_to_f32(h); }
uint16_t float_to_bf16_rne(float f) { return f32_to_bf16_bits_rne(f); }
float f16_to_float(uint16_t h) { return f16_bits_to_f32(h); }
uint16_t float_to_f16_rne(float f) { return f32_to_f16_bits_rne(f); }
float e4m3_to_float(uint8_t q) { return e4m3_bits_to_f32(q); }
uint8_t float_to_e4m3_rne(float f) { return f32_to_e4m3_bits_rne(f); }

}  // namespace ref
}  // namespace zoff::k
