// One-lane "SIMD" for the host tile driver: the portable build (include only from isa_scalar.cpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/ref/scalar.h"

namespace zoff::k::host {
namespace {

// The same operations as simd_avx2.h on one lane, with the x86 semantics the driver relies on
// (variable shifts by >= 32 give 0, fmax returns b when either is NaN, f2h rounds to nearest even).
// Compiled with baseline flags, so this file may use kernels/ref/scalar.h freely.
struct Scalar {
  static constexpr int W = 1;
  using U = uint32_t;
  using F = float;
  using M = bool;

  static U set1(uint32_t x) { return x; }
  static U iota() { return 0; }
  // Word buffers are also read as float or uint16 (z, SR bits): memcpy keeps that free of aliasing UB,
  // as the SIMD intrinsics' may_alias types do.
  static U load(const uint32_t* p) {
    U v;
    std::memcpy(&v, p, 4);
    return v;
  }
  static void store(uint32_t* p, U v) { std::memcpy(p, &v, 4); }
  static U load_u16(const uint16_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
  }
  static void store_u16(uint16_t* p, U v) {
    const uint16_t h = uint16_t(v);
    std::memcpy(p, &h, 2);
  }
  static U load_u8(const uint8_t* p) { return *p; }
  static void store_u8(uint8_t* p, U v) { *p = uint8_t(v); }
  static U add(U a, U b) { return a + b; }
  static U sub(U a, U b) { return a - b; }
  static U xor_(U a, U b) { return a ^ b; }
  static U and_(U a, U b) { return a & b; }
  static U or_(U a, U b) { return a | b; }
  template <int S> static U srli(U a) { return a >> S; }
  template <int S> static U slli(U a) { return a << S; }
  static U srlv(U a, U n) { return n >= 32 ? 0u : a >> n; }
  static U sllv(U a, U n) { return n >= 32 ? 0u : a << n; }
  static void mulhilo(U a, uint32_t m, U& lo, U& hi) {
    const uint64_t p = uint64_t(a) * m;
    lo = uint32_t(p);
    hi = uint32_t(p >> 32);
  }
  static void transpose_store(U v0, U v1, U v2, U v3, uint32_t* out) {
    const uint32_t w[4] = {v0, v1, v2, v3};
    std::memcpy(out, w, sizeof w);
  }

  static M gt(U a, U b) { return int32_t(a) > int32_t(b); }
  static M eq(U a, U b) { return a == b; }
  static M m_and(M a, M b) { return a && b; }
  static M m_or(M a, M b) { return a || b; }
  static U select(M m, U a, U b) { return m ? a : b; }

  static F fset1(float x) { return x; }
  static F fload(const float* p) {
    F v;
    std::memcpy(&v, p, 4);
    return v;
  }
  static void fstore(float* p, F v) { std::memcpy(p, &v, 4); }
  static F fadd(F a, F b) { return a + b; }
  static F fsub(F a, F b) { return a - b; }
  static F fmul(F a, F b) { return a * b; }
  static F fdiv(F a, F b) { return a / b; }
  static F fsqrt(F a) { return std::sqrt(a); }
  static F ffma(F a, F b, F c) { return std::fma(a, b, c); }
  static F fmax(F a, F b) { return a > b ? a : b; }
  static F cvt(U a) { return float(int32_t(a)); }
  static F as_f(U a) { return bits_f32(a); }
  static U as_u(F a) { return f32_bits(a); }
  static M flt(F a, F b) { return a < b; }
  static M fgt(F a, F b) { return a > b; }
  static M feq(F a, F b) { return a == b; }
  static float hmax(F a) { return a; }
  static F h2f(U h) { return f16_bits_to_f32(uint16_t(h)); }
  static U f2h(F f) { return f32_to_f16_bits_rne(f); }
};

}  // namespace
}  // namespace zoff::k::host
