// AVX2 + FMA + F16C lanes for the host tile driver (include only from isa_avx2.cpp / isa_avx512.cpp).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace zoff::k::host {
namespace {  // Note [ISA translation units]: internal linkage only

// 4 vectors of 8 words (vector k holds word k of blocks 0..7) -> out[4 b + k]: 32 words, block-major.
__attribute__((always_inline)) inline void transpose4x8_store(__m256i v0, __m256i v1, __m256i v2, __m256i v3,
                                                              uint32_t* out) {
  const __m256i t0 = _mm256_unpacklo_epi32(v0, v1), t1 = _mm256_unpackhi_epi32(v0, v1);
  const __m256i t2 = _mm256_unpacklo_epi32(v2, v3), t3 = _mm256_unpackhi_epi32(v2, v3);
  const __m256i a0 = _mm256_unpacklo_epi64(t0, t2), a1 = _mm256_unpackhi_epi64(t0, t2);  // blocks 0|4, 1|5
  const __m256i a2 = _mm256_unpacklo_epi64(t1, t3), a3 = _mm256_unpackhi_epi64(t1, t3);  // blocks 2|6, 3|7
  __m256i* o = reinterpret_cast<__m256i*>(out);
  _mm256_storeu_si256(o + 0, _mm256_permute2x128_si256(a0, a1, 0x20));
  _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(a2, a3, 0x20));
  _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(a0, a1, 0x31));
  _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(a2, a3, 0x31));
}

// Low 16 bits of each of 8 words, packed.
__attribute__((always_inline)) inline __m128i narrow16(__m256i v) {
  const __m256i p = _mm256_packus_epi32(v, v);  // values are < 2^16, so no saturation
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(p, 0x08));
}

struct Avx2 {
  static constexpr int W = 8;
  using U = __m256i;
  using F = __m256;
  using M = __m256i;  // all-ones lanes

  static U set1(uint32_t x) { return _mm256_set1_epi32(int32_t(x)); }
  static U iota() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
  static U load(const uint32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void store(uint32_t* p, U v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static U load_u16(const uint16_t* p) {
    return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static void store_u16(uint16_t* p, U v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), narrow16(v)); }
  static U load_u8(const uint8_t* p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static void store_u8(uint8_t* p, U v) {  // values < 256
    const __m128i w = narrow16(v);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(w, w));
  }
  static U add(U a, U b) { return _mm256_add_epi32(a, b); }
  static U sub(U a, U b) { return _mm256_sub_epi32(a, b); }
  static U xor_(U a, U b) { return _mm256_xor_si256(a, b); }
  static U and_(U a, U b) { return _mm256_and_si256(a, b); }
  static U or_(U a, U b) { return _mm256_or_si256(a, b); }
  template <int S> static U srli(U a) { return _mm256_srli_epi32(a, S); }
  template <int S> static U slli(U a) { return _mm256_slli_epi32(a, S); }
  static U srlv(U a, U n) { return _mm256_srlv_epi32(a, n); }  // n >= 32 gives 0
  static U sllv(U a, U n) { return _mm256_sllv_epi32(a, n); }
  // lo/hi 32 bits of a * m per lane.
  static void mulhilo(U a, uint32_t m, U& lo, U& hi) {
    const __m256i mm = _mm256_set1_epi32(int32_t(m));
    const __m256i pe = _mm256_mul_epu32(a, mm);                         // lanes 0,2,4,6
    const __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), mm);  // lanes 1,3,5,7
    lo = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
    hi = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
  }
  static void transpose_store(U v0, U v1, U v2, U v3, uint32_t* out) { transpose4x8_store(v0, v1, v2, v3, out); }

  static M gt(U a, U b) { return _mm256_cmpgt_epi32(a, b); }  // signed
  static M eq(U a, U b) { return _mm256_cmpeq_epi32(a, b); }
  static M m_and(M a, M b) { return _mm256_and_si256(a, b); }
  static M m_or(M a, M b) { return _mm256_or_si256(a, b); }
  static U select(M m, U a, U b) { return _mm256_blendv_epi8(b, a, m); }  // m ? a : b

  static F fset1(float x) { return _mm256_set1_ps(x); }
  static F fload(const float* p) { return _mm256_loadu_ps(p); }
  static void fstore(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F fadd(F a, F b) { return _mm256_add_ps(a, b); }
  static F fsub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F fmul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fdiv(F a, F b) { return _mm256_div_ps(a, b); }
  static F fsqrt(F a) { return _mm256_sqrt_ps(a); }
  static F ffma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }  // a * b + c, one rounding
  static F fmax(F a, F b) { return _mm256_max_ps(a, b); }            // a > b ? a : b (NaN: b)
  static F cvt(U a) { return _mm256_cvtepi32_ps(a); }                // signed int32 -> float
  static F as_f(U a) { return _mm256_castsi256_ps(a); }
  static U as_u(F a) { return _mm256_castps_si256(a); }
  static M flt(F a, F b) { return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_LT_OQ)); }
  static M fgt(F a, F b) { return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
  static M feq(F a, F b) { return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_EQ_OQ)); }
  static float hmax(F a) {  // exact: max is order-free on non-NaN values
    alignas(32) float t[8];
    _mm256_store_ps(t, a);
    float m = t[0];
    for (int i = 1; i < 8; ++i) m = t[i] > m ? t[i] : m;
    return m;
  }
  // f16 bits (zero-extended in 32-bit lanes) <-> float. f2h rounds to nearest even (IEEE; NaNs are
  // fixed up by the caller to the reference's canonical 0x7FFF).
  static F h2f(U h) { return _mm256_cvtph_ps(narrow16(h)); }
  static U f2h(F f) { return _mm256_cvtepu16_epi32(_mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT)); }
};

}  // namespace
}  // namespace zoff::k::host
