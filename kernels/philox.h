// Philox4x32-10 counter-based random numbers and the z distributions zoff draws, for host and device.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/ziggurat_table.h"

#if defined(__CUDACC__)
#define ZOFF_HD __host__ __device__ __forceinline__
#define ZOFF_UNROLL _Pragma("unroll")
#else
#define ZOFF_HD inline
#define ZOFF_UNROLL _Pragma("GCC unroll 16")
#endif

namespace zoff::k {

// Note [Philox keying]
// z for element i of parameter p at step seed s is a pure function of (s, p, i):
//   key     = (lo32(s), hi32(s))
//   counter = (lo32(i / 4), hi32(i / 4), lo32(p), hi32(p))       -- Gaussian: 4 values a call
//   counter = (lo32(i / 128), hi32(i / 128), lo32(p), hi32(p))   -- Rademacher: 128 signs a call
// p is a 64-bit hash of the parameter's name (param_id()), so z does not depend on the order in
// which blocks are visited, on the device, or on how a tensor is split into pieces. Gaussian
// value j of a block comes from word j by the ziggurat (Note [Ziggurat z]); CPU and GPU produce
// the same 32-bit words and the same Gaussian values, bit for bit (Note [Bit-identical logarithm]).

struct Philox4 {
  uint32_t v[4];
};

ZOFF_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  *hi = uint32_t(p >> 32);
  return uint32_t(p);
}

ZOFF_HD Philox4 philox4x32_10(Philox4 c, uint32_t k0, uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
ZOFF_UNROLL
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo32(M0, c.v[0], &hi0);
    uint32_t lo1 = mulhilo32(M1, c.v[2], &hi1);
    c = Philox4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
    k0 += W0;
    k1 += W1;
  }
  return c;
}

// The 4 words for block `blk` (= element / 4 or element / 128) of parameter `pid` at `seed`.
ZOFF_HD Philox4 philox_block(uint64_t seed, uint64_t pid, uint64_t blk) {
  Philox4 c{{uint32_t(blk), uint32_t(blk >> 32), uint32_t(pid), uint32_t(pid >> 32)}};
  return philox4x32_10(c, uint32_t(seed), uint32_t(seed >> 32));
}

// Uniform in (0, 1]: never 0, so log() is finite.
ZOFF_HD float u32_to_unit(uint32_t x) { return (float(x >> 8) + 1.0f) * (1.0f / 16777216.0f); }

// ---- correctly rounded fp32 primitives, the same on host and device ------------------------------

ZOFF_HD uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

ZOFF_HD float bits_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

ZOFF_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

ZOFF_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

ZOFF_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

ZOFF_HD float fma_rn(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

ZOFF_HD float sqrt_rn(float a) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

// Note [Bit-identical logarithm]
// z must be the same on the CPU and the GPU, so nothing here uses libm or CUDA's logf/expf (they
// differ by an ulp or two between the two). The Gaussian's slow path needs -2 ln(y); it is built
// only from correctly rounded operations (+, *, / and fma, each explicit, so no compiler
// contraction can apply: no product ever feeds a plain + or -) and integer bit manipulation:
// musl's (fdlibm's) logf: y = 2^k m, m in [sqrt(2)/2, sqrt(2)), s = f / (2 + f), f = m - 1,
// Lg1..Lg4 polynomial (error < 1 ulp), evaluated with fma. Valid for normal y in (0, 1].
ZOFF_HD float neg2_log_unit(float u) {
  constexpr float ln2_hi = 6.9313812256e-01f, ln2_lo = 9.0580006145e-06f;
  constexpr float Lg1 = 0.66666662693f, Lg2 = 0.40000972152f, Lg3 = 0.28498786688f, Lg4 = 0.24279078841f;
  uint32_t ix = f32_bits(u) + (0x3f800000u - 0x3f3504f3u);
  const float dk = float(int32_t(ix >> 23) - 0x7f);
  const float f = add_rn(bits_f32((ix & 0x007fffffu) + 0x3f3504f3u), -1.0f);  // exact
  const float s = div_rn(f, add_rn(2.0f, f));
  const float z = mul_rn(s, s), w = mul_rn(z, z);
  const float t1 = mul_rn(w, fma_rn(w, Lg4, Lg2));
  const float R = fma_rn(z, fma_rn(w, Lg3, Lg1), t1);
  const float half_f = mul_rn(0.5f, f);
  const float a = fma_rn(s, fma_rn(half_f, f, R), mul_rn(dk, ln2_lo));
  const float b = fma_rn(-half_f, f, a);
  return mul_rn(-2.0f, fma_rn(dk, ln2_hi, add_rn(b, f)));
}

// Note [Ziggurat z]
// Gaussian z is drawn by Marsaglia and Tsang's ziggurat (J. Stat. Softw. 5(8), 2000) with 256
// layers of equal area under exp(-x^2/2) (kernels/ziggurat_table.h, made by
// scripts/gen_ziggurat_table.py), one 32-bit Philox word per value, its bits used once each
// (Doornik 2005: sharing the layer bits with the uniform biases the output):
//   layer i = w & 255, sign = bit 8, u23 = w >> 9, U = u23 / 2^23 (exact), x = U * x_i.
// Fast path (98.5% of words): u23 < k_i, i.e. x inside layer i's rectangle -> z = +-x. No
// transcendental function: a table load, a multiply and a compare.
// Slow path, exact rejection (zig_slow), its randomness from extra Philox calls keyed by the
// element and the attempt a (zig_retry; counter word 1 has its top bit set, so these never
// collide with the blocks of Note [Philox keying], which stay below 2^31):
//   - layer 0 beyond r (the tail): Marsaglia's tail sampler, x = -ln(U1) / r, accept when
//     -2 ln U2 > x^2, z = +-(r + x); rejected tail draws stay in the tail (fresh U1, U2);
//   - layers 1..255 (the wedge): y = f_i + U2 (f_{i+1} - f_i), accept x when -2 ln y > x^2
//     (y < exp(-x^2/2)); a rejected word is replaced by a fresh word (retry word 3) and the
//     whole draw starts again.
// Every value is a pure function of (seed, pid, element), as before. The ziggurat replaced
// Box-Muller (a log, a sqrt, a division and a sin/cos per pair, all correctly rounded: ~300 G
// values/s on an H100, docs/results-kernels.md); the seed logs carry the sampler's name so an
// old log is never replayed with the new z (Note [Seed log replay]).
constexpr const char* kGaussianSampler = "ziggurat256";  // the seed log's "z" field
constexpr uint32_t kZigAttempts = 64;  // 0.015^64: never reached; bounds the loop all the same

struct ZigEntry {
  uint32_t k;  // layer i accepts u23 < k
  float x;     // layer i's width x_i
};

inline constexpr ZigEntry kZigEntries[256] = ZOFF_ZIG_ENTRIES;  // host copies
inline constexpr float kZigF[257] = ZOFF_ZIG_F;                   // exp(-x_i^2 / 2), i = 0..256
#if defined(__CUDACC__)
namespace {  // device copies: the fast path reads a block's shared copy (kernels/ziggurat_dev.cuh)
__device__ const ZigEntry d_zig_entries[256] = ZOFF_ZIG_ENTRIES;
__device__ const float d_zig_f[257] = ZOFF_ZIG_F;
}  // namespace
#endif

ZOFF_HD float zig_unit23(uint32_t w) { return add_rn(bits_f32(0x3f800000u | (w >> 9)), -1.0f); }  // exact
ZOFF_HD float zig_signed(float x, uint32_t w) { return bits_f32(f32_bits(x) ^ ((w & 0x100u) << 23)); }

// The fast path: *z = +-U x_i, and whether the word was accepted there.
ZOFF_HD bool zig_fast(uint32_t w, const ZigEntry* e, float* z) {
  const ZigEntry t = e[w & 255u];
  *z = zig_signed(mul_rn(zig_unit23(w), t.x), w);
  return (w >> 9) < t.k;
}

// The extra Philox words of attempt a for element `elem` (Note [Ziggurat z]).
ZOFF_HD Philox4 zig_retry(uint64_t seed, uint64_t pid, uint64_t elem, uint32_t a) {
  const Philox4 c{{uint32_t(elem), 0x80000000u | (a << 24) | (uint32_t(elem >> 32) & 0x00FFFFFFu), uint32_t(pid),
                   uint32_t(pid >> 32)}};
  return philox4x32_10(c, uint32_t(seed), uint32_t(seed >> 32));
}

// z for element `elem` whose first word w missed the fast path. It reads the tables from global
// memory on the device (rare, and no table pointers to keep live in the caller's registers).
ZOFF_HD float zig_slow(uint32_t w, uint64_t seed, uint64_t pid, uint64_t elem) {
#if defined(__CUDA_ARCH__)
  const ZigEntry* e = d_zig_entries;
  const float* f = d_zig_f;
#else
  const ZigEntry* e = kZigEntries;
  const float* f = kZigF;
#endif
  for (uint32_t a = 0; a < kZigAttempts; ++a) {
    const Philox4 r = zig_retry(seed, pid, elem, a);
    const uint32_t i = w & 255u;
    if (i == 0) {
      const float x = mul_rn(neg2_log_unit(u32_to_unit(r.v[0])), ZOFF_ZIG_HALF_INV_R);
      if (neg2_log_unit(u32_to_unit(r.v[1])) > mul_rn(x, x)) return zig_signed(add_rn(ZOFF_ZIG_R, x), w);
      continue;
    }
    const float x = mul_rn(zig_unit23(w), e[i].x);
    const float y = add_rn(f[i], mul_rn(u32_to_unit(r.v[0]), add_rn(f[i + 1], -f[i])));
    if (neg2_log_unit(y) > mul_rn(x, x)) return zig_signed(x, w);
    w = r.v[3];
    float z;
    if (zig_fast(w, e, &z)) return z;
  }
  return 0.0f;
}

// Fast path for the 4 words of one Philox block: z[j] for the accepted words, the mask of the rest.
ZOFF_HD uint32_t zig_fast4(const Philox4& r, const ZigEntry* e, float z[4]) {
  uint32_t slow = 0;
ZOFF_UNROLL
  for (int j = 0; j < 4; ++j) slow |= zig_fast(r.v[j], e, &z[j]) ? 0u : (1u << j);
  return slow;
}

// Four standard normals for elements 4 blk .. 4 blk + 3 (word j for element 4 blk + j); `e` is
// kZigEntries on the host, a block's shared copy on the device.
ZOFF_HD void gaussian4(uint64_t seed, uint64_t pid, uint64_t blk, const ZigEntry* e, float out[4]) {
  const Philox4 r = philox_block(seed, pid, blk);
  uint32_t slow = zig_fast4(r, e, out);
  for (; slow != 0; slow &= slow - 1) {
    const int j = slow & 1u ? 0 : slow & 2u ? 1 : slow & 4u ? 2 : 3;
    const float v = zig_slow(r.v[j], seed, pid, 4 * blk + uint64_t(j));
ZOFF_UNROLL
    for (int q = 0; q < 4; ++q)
      if (q == j) out[q] = v;  // no dynamic index: out stays in registers on the GPU
  }
}

// z_i ~ N(0,1) for one element (host: computes the whole group of 4; kernels use gaussian4).
inline float gaussian_at(uint64_t seed, uint64_t pid, uint64_t i) {
  float g[4];
  gaussian4(seed, pid, i >> 2, kZigEntries, g);
  return g[i & 3];
}

// z_i in {-1, +1}: bit (i % 128) of the 128-bit Philox block i / 128; bit set means -1.
ZOFF_HD float rademacher_at(uint64_t seed, uint64_t pid, uint64_t i) {
  Philox4 r = philox_block(seed, pid, i >> 7);
  uint32_t w = r.v[(i >> 5) & 3];
  return ((w >> (i & 31)) & 1u) ? -1.0f : 1.0f;
}

// 64-bit FNV-1a of a parameter name, finished with a splitmix64 mix: the parameter id in z's key.
ZOFF_HD uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline uint64_t param_id(const char* name) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (const char* p = name; *p; ++p) h = (h ^ uint8_t(*p)) * 0x100000001B3ull;
  return splitmix64(h);
}

// Seed of perturbation `j` of step `step` in a run with base seed `base`.
ZOFF_HD uint64_t step_seed(uint64_t base, uint64_t step, uint64_t j) {
  return splitmix64(splitmix64(base ^ splitmix64(step)) + j);
}

}  // namespace zoff::k
