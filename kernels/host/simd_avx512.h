// AVX-512F lanes for the host tile driver (include only from isa_avx512.cpp).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/host/simd_avx2.h"

namespace zoff::k::host {
namespace {  // Note [ISA translation units]: internal linkage only

struct Avx512 {
  static constexpr int W = 16;
  using U = __m512i;
  using F = __m512;
  using M = __mmask16;

  static U set1(uint32_t x) { return _mm512_set1_epi32(int32_t(x)); }
  static U iota() { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
  static U load(const uint32_t* p) { return _mm512_loadu_si512(p); }
  static void store(uint32_t* p, U v) { _mm512_storeu_si512(p, v); }
  static U load_u16(const uint16_t* p) {
    return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static void store_u16(uint16_t* p, U v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(v));
  }
  static U load_u8(const uint8_t* p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static void store_u8(uint8_t* p, U v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(v)); }
  static U add(U a, U b) { return _mm512_add_epi32(a, b); }
  static U sub(U a, U b) { return _mm512_sub_epi32(a, b); }
  static U xor_(U a, U b) { return _mm512_xor_si512(a, b); }
  static U and_(U a, U b) { return _mm512_and_si512(a, b); }
  static U or_(U a, U b) { return _mm512_or_si512(a, b); }
  template <int S> static U srli(U a) { return _mm512_srli_epi32(a, S); }
  template <int S> static U slli(U a) { return _mm512_slli_epi32(a, S); }
  static U srlv(U a, U n) { return _mm512_srlv_epi32(a, n); }  // n >= 32 gives 0
  static U sllv(U a, U n) { return _mm512_sllv_epi32(a, n); }
  static void mulhilo(U a, uint32_t m, U& lo, U& hi) {
    const __m512i mm = _mm512_set1_epi32(int32_t(m));
    const __m512i pe = _mm512_mul_epu32(a, mm);                         // even lanes
    const __m512i po = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), mm);  // odd lanes
    lo = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
    hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 32), po);
  }
  // Blocks 0..7 from the low halves, 8..15 from the high halves.
  static void transpose_store(U v0, U v1, U v2, U v3, uint32_t* out) {
    transpose4x8_store(_mm512_castsi512_si256(v0), _mm512_castsi512_si256(v1), _mm512_castsi512_si256(v2),
                       _mm512_castsi512_si256(v3), out);
    transpose4x8_store(_mm512_extracti64x4_epi64(v0, 1), _mm512_extracti64x4_epi64(v1, 1),
                       _mm512_extracti64x4_epi64(v2, 1), _mm512_extracti64x4_epi64(v3, 1), out + 32);
  }

  static M gt(U a, U b) { return _mm512_cmpgt_epi32_mask(a, b); }  // signed
  static M eq(U a, U b) { return _mm512_cmpeq_epi32_mask(a, b); }
  static M m_and(M a, M b) { return M(a & b); }
  static M m_or(M a, M b) { return M(a | b); }
  static U select(M m, U a, U b) { return _mm512_mask_blend_epi32(m, b, a); }  // m ? a : b

  static F fset1(float x) { return _mm512_set1_ps(x); }
  static F fload(const float* p) { return _mm512_loadu_ps(p); }
  static void fstore(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F fadd(F a, F b) { return _mm512_add_ps(a, b); }
  static F fsub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F fmul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fdiv(F a, F b) { return _mm512_div_ps(a, b); }
  static F fsqrt(F a) { return _mm512_sqrt_ps(a); }
  static F ffma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F fmax(F a, F b) { return _mm512_max_ps(a, b); }  // a > b ? a : b (NaN: b)
  static F cvt(U a) { return _mm512_cvtepi32_ps(a); }
  static F as_f(U a) { return _mm512_castsi512_ps(a); }
  static U as_u(F a) { return _mm512_castps_si512(a); }
  static M flt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M fgt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M feq(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
  static float hmax(F a) {
    alignas(64) float t[16];
    _mm512_store_ps(t, a);
    float m = t[0];
    for (int i = 1; i < 16; ++i) m = t[i] > m ? t[i] : m;
    return m;
  }
  static F h2f(U h) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h)); }
  static U f2h(F f) { return _mm512_cvtepu16_epi32(_mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT)); }
};

}  // namespace
}  // namespace zoff::k::host
