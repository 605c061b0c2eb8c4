// Philox4x32-10 counter-based random numbers and the z distributions zoff draws, for host and device.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

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
// values use Box-Muller on (u0,u1) -> (z0,z1) and (u2,u3) -> (z2,z3); CPU and GPU produce the
// same 32-bit words and the same Gaussian values, bit for bit (Note [Bit-identical Box-Muller]).

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

// Note [Bit-identical Box-Muller]
// z must be the same on the CPU and the GPU, so gaussian4 uses neither libm nor CUDA's logf/sinf/
// cosf (they differ by an ulp or two, and CUDA's accurate sincosf is slow). It is built only from
// correctly rounded operations (+, *, /, sqrt and fma, each explicit, so no compiler contraction can
// apply: no product ever feeds a plain + or -) and integer bit manipulation:
//   u1 = (v1 + 1) / 2^24, v1 = word >> 8, so u1 in [2^-24, 1]; rad = sqrt(-2 ln u1), with ln from
//     musl's (fdlibm's) logf: u1 = 2^k m, m in [sqrt(2)/2, sqrt(2)), s = f / (2 + f), f = m - 1,
//     Lg1..Lg4 polynomial (error < 1 ulp), evaluated with fma;
//   the angle 2 pi (v2 + 1) / 2^24 is split exactly in integers into a quarter turn q and a
//     remainder x in [-pi/4, pi/4] (one rounding, with a two-term constant), and sin x, cos x are
//     Cephes' sinf/cosf polynomials (about 1 ulp on that range), then rotated by q.
// Results agree with the exact Box-Muller values to a few ulp (tests/kernels/test_philox.cpp checks
// all 2^24 inputs of each half), and CPU and GPU agree bit for bit.
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

// sin and cos of 2 pi v / 2^24 for v in [1, 2^24].
ZOFF_HD void sincos_turn24(uint32_t v, float* sn, float* cs) {
  constexpr float c_hi = 3.74507028e-07f;                           // 2 pi / 2^24, rounded
  constexpr float c_lo = float(6.28318530717958647692 / 16777216.0 - double(c_hi));
  const uint32_t q = (v + (1u << 21)) >> 22;  // nearest quarter turn, 0..4
  const float r = float(int32_t(v) - int32_t(q << 22));  // exact, |r| <= 2^21
  const float x = fma_rn(r, c_hi, mul_rn(r, c_lo));
  const float z = mul_rn(x, x);
  const float sp = fma_rn(fma_rn(-1.9515295891e-4f, z, 8.3321608736e-3f), z, -1.6666654611e-1f);
  const float s = fma_rn(mul_rn(sp, z), x, x);
  const float cp = fma_rn(fma_rn(2.443315711809948e-5f, z, -1.388731625493765e-3f), z, 4.166664568298827e-2f);
  const float c = fma_rn(mul_rn(cp, z), z, fma_rn(-0.5f, z, 1.0f));
  switch (q & 3u) {
    case 0: *sn = s, *cs = c; break;
    case 1: *sn = c, *cs = -s; break;
    case 2: *sn = -s, *cs = -c; break;
    default: *sn = -c, *cs = s; break;
  }
}

// The seed log's "z" field (Note [Seed log replay]): a log is replayed only with the sampler that
// drew it. Logs without the field predate it and were drawn by this same Box-Muller.
constexpr const char* kGaussianSampler = "box-muller";

// Four standard normals from one Philox call (Box-Muller on (v0,v1) -> (z0,z1), (v2,v3) -> (z2,z3)):
// z_{2j} = sqrt(-2 ln u1) cos(2 pi u2), z_{2j+1} = sqrt(-2 ln u1) sin(2 pi u2), u = u32_to_unit(v).
ZOFF_HD void gaussian4(Philox4 r, float out[4]) {
ZOFF_UNROLL
  for (int j = 0; j < 2; ++j) {
    const float rad = sqrt_rn(neg2_log_unit(u32_to_unit(r.v[2 * j])));
    float sn, cs;
    sincos_turn24((r.v[2 * j + 1] >> 8) + 1u, &sn, &cs);
    out[2 * j] = mul_rn(rad, cs);
    out[2 * j + 1] = mul_rn(rad, sn);
  }
}

// z_i ~ N(0,1) for one element (computes the whole group of 4; kernels use gaussian4 directly).
ZOFF_HD float gaussian_at(uint64_t seed, uint64_t pid, uint64_t i) {
  float g[4];
  gaussian4(philox_block(seed, pid, i >> 2), g);
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
