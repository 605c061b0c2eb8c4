// Philox4x32-10 counter-based random numbers and the z distributions zoff draws, for host and device.
#pragma once

#include <cmath>
#include <cstdint>

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
// same 32-bit words, and Gaussian values that agree to a few ulp (libm vs CUDA math).

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

// Four standard normals from one Philox call (Box-Muller).
ZOFF_HD void gaussian4(Philox4 r, float out[4]) {
  constexpr float two_pi = 6.28318530717958647692f;
ZOFF_UNROLL
  for (int j = 0; j < 2; ++j) {
    float u1 = u32_to_unit(r.v[2 * j]);
    float u2 = u32_to_unit(r.v[2 * j + 1]);
    float rad = sqrtf(-2.0f * logf(u1));
    float th = two_pi * u2;
    out[2 * j] = rad * cosf(th);
    out[2 * j + 1] = rad * sinf(th);
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
