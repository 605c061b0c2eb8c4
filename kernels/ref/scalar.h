// Scalar conversions, rounding and per-group z draws shared by the CUDA kernels and the CPU references.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/philox.h"
#include "kernels/zo_kernels.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

namespace zoff::k {

// Note [One arithmetic, two compilers]
// The GPU kernels and the CPU references run the same source for everything after the Philox
// words: the functions below are ZOFF_HD and compiled by both nvcc and g++. Every multiply and add
// on the update path goes through mul_rn/add_rn (kernels/philox.h), which are __fmul_rn/__fadd_rn
// on the device (nvcc would otherwise contract a*b+c into one FMA, which rounds once instead of
// twice) and plain operators on the host (kernels/ref is built with -ffp-contract=off for the same
// reason; the default x86-64 target has no FMA to contract into). Gaussian z is bit-identical too
// (Note [Bit-identical Box-Muller]), so CPU and GPU results agree bit for bit everywhere.

// f32_bits, bits_f32, mul_rn, add_rn, div_rn, fma_rn, sqrt_rn: kernels/philox.h.

// ---- bf16: the top 16 bits of an fp32 ------------------------------------------------------------

ZOFF_HD float bf16_bits_to_f32(uint16_t h) { return bits_f32(uint32_t(h) << 16); }

ZOFF_HD uint16_t f32_to_bf16_bits_rne(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x40u);  // NaN stays a quiet NaN
  u += 0x7FFFu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// ---- f16 (IEEE binary16) --------------------------------------------------------------------------

ZOFF_HD float f16_bits_to_f32(uint16_t h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h));
#else
  uint32_t s = uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
  if (e == 0) {
    float v = float(m) * 5.9604644775390625e-08f;  // m * 2^-24, exact
    return s ? -v : v;
  }
  if (e == 31) return bits_f32(s | 0x7F800000u | (m << 13));
  return bits_f32(s | ((e + 112u) << 23) | (m << 13));
#endif
}

ZOFF_HD uint16_t f32_to_f16_bits_rne(float f) {
#if defined(__CUDA_ARCH__)
  return __half_as_ushort(__float2half_rn(f));
#else
  uint32_t u = f32_bits(f);
  uint16_t s = uint16_t((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return 0x7FFFu;             // NaN (the canonical one CUDA produces)
  if (a >= 0x477FF000u) return uint16_t(s | 0x7C00u);  // >= 65520 rounds to infinity
  if (a >= 0x38800000u) {                          // >= 2^-14: normal
    uint32_t r = a + 0xFFFu + ((a >> 13) & 1u);
    return uint16_t(s | ((r - 0x38000000u) >> 13));
  }
  uint32_t e = a >> 23;  // subnormal result: q = rne(|f| * 2^24) in [0, 1024]
  if (e < 102) return s;
  uint32_t mm = (a & 0x7FFFFFu) | 0x800000u, sh = 126u - e;
  uint32_t q = mm >> sh, rem = mm & ((1u << sh) - 1u), half = 1u << (sh - 1u);
  q += (rem > half || (rem == half && (q & 1u))) ? 1u : 0u;
  return uint16_t(s | q);
#endif
}

// ---- e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities; 0x7F/0xFF are NaN --------

// Selects, not branches (the GPU decodes 8 per thread): NaN, subnormal (m * 2^-9, exact), normal.
ZOFF_HD float e4m3_bits_to_f32(uint8_t q) {
  const uint32_t s = uint32_t(q & 0x80u) << 24, e = (q >> 3) & 15u, m = q & 7u;
  const uint32_t sub = s | f32_bits(float(m) * 0.001953125f), normal = s | ((e + 120u) << 23) | (m << 20);
  return bits_f32((q & 0x7Fu) == 0x7Fu ? (s | 0x7FC00000u) : e == 0 ? sub : normal);
}

// Round to nearest even; |f| >= 448 and infinities saturate to +-448; NaN -> 0x7F | sign.
ZOFF_HD uint8_t f32_to_e4m3_bits_rne(float f) {
  uint32_t u = f32_bits(f);
  uint8_t s = uint8_t((u >> 24) & 0x80u);
  uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return uint8_t(s | 0x7Fu);
  if (a >= 0x43E00000u) return uint8_t(s | 0x7Eu);  // 448 = 1.75 * 2^8
  if (a >= 0x3C800000u) {                            // >= 2^-6: normal
    uint32_t r = a + 0x7FFFFu + ((a >> 20) & 1u);
    return uint8_t(s | ((r - 0x3C000000u) >> 20));
  }
  uint32_t e = a >> 23;  // subnormal result: q = rne(|f| * 2^9) in [0, 8]
  if (e < 117) return s;
  uint32_t mm = (a & 0x7FFFFFu) | 0x800000u, sh = 141u - e;
  uint32_t q = mm >> sh, rem = mm & ((1u << sh) - 1u), half = 1u << (sh - 1u);
  q += (rem > half || (rem == half && (q & 1u))) ? 1u : 0u;
  return uint8_t(s | q);
}

// Note [Stochastic rounding]
// With UpdateArgs::sr_seed != 0, a 16-bit theta is rounded stochastically: the result is the
// neighbour away from zero with probability frac = (|x| - |lo|) / (|hi| - |lo|), where lo is x
// truncated toward zero and hi the next value away from zero; so E[round(x)] = x. The decision for
// element g (its index in the parameter, UpdateArgs::first + i) in pass p uses 16 random bits
//     w   = philox_block(sr_key(sr_seed, p), pid, g >> 3).v[(g >> 1) & 3]
//     r16 = (w >> (16 * (g & 1))) & 0xFFFF          -- 8 elements per Philox call
// and rounds away from zero iff r16 < frac * 2^16 (an exact comparison: frac * 2^16 is the low 16
// bits of x for bf16 and a multiple of 2^-13 * 2^16 for normal f16, so P = frac exactly; for f16
// subnormals the bias is below 2^-16 of a step). sr_key mixes the seed with splitmix64 so that an
// sr_seed equal to a z seed does not correlate rounding with z, and gives each pass of a split term
// list (Note [Term passes]) fresh bits. NaN, infinities and |x| >= the largest finite value
// (65504 for f16) round to nearest; for bf16 the step up from the largest finite value reaches
// infinity with probability frac (as rounding to nearest would beyond half an ulp).

ZOFF_HD uint64_t sr_key(uint64_t sr_seed, int pass) { return splitmix64(sr_seed + uint64_t(pass)); }

ZOFF_HD uint32_t sr_r16(const Philox4& r, uint64_t g) {
  return (r.v[(g >> 1) & 3] >> (16u * uint32_t(g & 1))) & 0xFFFFu;
}

ZOFF_HD uint16_t f32_to_bf16_bits_sr(float f, uint32_t r16) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7FFFFFFFu) >= 0x7F800000u) return f32_to_bf16_bits_rne(f);
  return uint16_t((u >> 16) + (r16 < (u & 0xFFFFu) ? 1u : 0u));
}

ZOFF_HD uint16_t f32_to_f16_bits_sr(float f, uint32_t r16) {
  float a = fabsf(f);
  if (!(a < 65504.0f)) return f32_to_f16_bits_rne(f);
  uint16_t s = uint16_t((f32_bits(f) >> 16) & 0x8000u);
  uint16_t r = f32_to_f16_bits_rne(a);
  float rv = f16_bits_to_f32(r);
  if (rv == a) return uint16_t(s | r);
  uint16_t lo = rv > a ? uint16_t(r - 1u) : r;
  float lov = f16_bits_to_f32(lo), step = f16_bits_to_f32(uint16_t(lo + 1u)) - lov;  // exact
  float frac16 = div_rn(a - lov, step) * 65536.0f;                                   // exact
  return uint16_t(s | (lo + (float(r16) < frac16 ? 1u : 0u)));
}

// ---- elements as bits ----------------------------------------------------------------------------

ZOFF_HD constexpr int elem_size(Elem e) { return e == Elem::F32 ? 4 : e == Elem::F8E4M3 ? 1 : 2; }

// The value of an element stored as `bits` (fp8 without its row scale).
template <Elem E>
ZOFF_HD float decode(uint32_t bits) {
  if constexpr (E == Elem::F32) return bits_f32(bits);
  else if constexpr (E == Elem::BF16) return bf16_bits_to_f32(uint16_t(bits));
  else if constexpr (E == Elem::F16) return f16_bits_to_f32(uint16_t(bits));
  else return e4m3_bits_to_f32(uint8_t(bits));
}

// x rounded to E's bits: to nearest even, or stochastically with r16 (16-bit E only) when SR.
template <Elem E, bool SR>
ZOFF_HD uint32_t encode(float x, uint32_t r16) {
  if constexpr (E == Elem::F32) return f32_bits(x);
  else if constexpr (E == Elem::BF16) return SR ? f32_to_bf16_bits_sr(x, r16) : f32_to_bf16_bits_rne(x);
  else if constexpr (E == Elem::F16) return SR ? f32_to_f16_bits_sr(x, r16) : f32_to_f16_bits_rne(x);
  else return f32_to_e4m3_bits_rne(x);
}

// ---- z for a group of 4 consecutive elements 4q .. 4q+3 (one Philox call) -------------------------

// The Philox block that group q's z comes from, and z from that block's words.
template <Dist D>
ZOFF_HD uint64_t z_group_block(uint64_t q) { return D == Dist::Gaussian ? q : q >> 5; }

template <Dist D>
ZOFF_HD void z_group_from(const Philox4& r, uint64_t q, float z[4]) {
  if constexpr (D == Dist::Gaussian) {
    gaussian4(r, z);
  } else {
    // Elements 4q..4q+3 are bits (4q & 31).. of word (4q >> 5) & 3 of block 4q >> 7.
    // A select, not r.v[runtime index]: that would put the block in a GPU thread's local memory.
    const uint32_t wi = uint32_t(q >> 3) & 3u;
    uint32_t w = (wi == 0 ? r.v[0] : wi == 1 ? r.v[1] : wi == 2 ? r.v[2] : r.v[3]) >> (4u * uint32_t(q & 7));
ZOFF_UNROLL
    for (int j = 0; j < 4; ++j) z[j] = ((w >> j) & 1u) ? -1.0f : 1.0f;
  }
}

template <Dist D>
ZOFF_HD void z_group(uint64_t seed, uint64_t pid, uint64_t q, float z[4]) {
  z_group_from<D>(philox_block(seed, pid, z_group_block<D>(q)), q, z);
}

// z_group under a prepared key (Note [Keyed Philox]): the same values, for kernels.
template <Dist D>
ZOFF_HD void z_group_keyed(const PhiloxKey& key, uint64_t q, float z[4]) {
  z_group_from<D>(philox_keyed(key, z_group_block<D>(q)), q, z);
}

// Note [Term passes]
// zo_update and zo_perturb take any number of terms but apply at most kMaxTerms per pass over the
// data; pass p covers terms [p * kMaxTerms, (p + 1) * kMaxTerms). Within a pass the value is
//     acc = -0; for k in pass: acc = acc + coeff_k * z_k        (each op rounded to fp32)
//     v   = t * keep + acc   (t * keep alone when the pass has no terms)
// and v is rounded to the output dtype before the next pass reads it. keep = 1 - decay in pass 0
// of zo_update and 1 elsewhere; zo_perturb's pass 0 reads the (dequantised) source, later passes
// the output. The CPU reference runs the passes per element; the GPU runs one launch per pass.
// The sum starts at -0, not +0: -0 + y is y for every y (+0 + y turns y = -0 into +0), so the
// first term costs no addition once a compiler folds it (ew_kernel.cuh).
// Both therefore round at the same points and agree for any number of terms.
inline int term_passes(int nterms) { return nterms <= 0 ? 1 : (nterms + kMaxTerms - 1) / kMaxTerms; }

// T[i,k] = alpha * sum_l U[i,l] Z[l,k] in the order of Note [Low-rank stochastic rounding]
// (kernels/lowrank.h): u_row = U's row i, Z r x r row-major, r >= 1.
ZOFF_HD float lowrank_t(const float* u_row, const float* z, int64_t r, int64_t k, float alpha) {
  float s = mul_rn(u_row[0], z[k]);
  for (int64_t l = 1; l < r; ++l) s = add_rn(s, mul_rn(u_row[l], z[l * r + k]));
  return mul_rn(alpha, s);
}

// The new bits of a low-rank element: y = w * keep + x rounded to E (stochastically with r16 when SR).
template <Elem E, bool SR>
ZOFF_HD uint32_t lowrank_round(uint32_t w, float keep, float x, uint32_t r16) {
  return encode<E, SR>(add_rn(mul_rn(decode<E>(w), keep), x), r16);
}

}  // namespace zoff::k
