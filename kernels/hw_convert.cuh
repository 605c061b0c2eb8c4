// Hardware format conversions for the CUDA kernels, bit for bit the reference's (kernels/ref/scalar.h).
#pragma once

#include <cstdint>

#include "kernels/ref/scalar.h"

namespace zoff::k {

// Note [Hardware bf16 rounding]
// f32_to_bf16_bits_rne in integer ops costs ~5 instructions an element; cvt.rn.bf16x2.f32 rounds
// two at once to nearest even, with the same result for every non-NaN input (subnormals, overflow
// to infinity included). Only NaN differs (the hardware gives a canonical NaN, the reference keeps
// the sign and payload, quieted), so a word holding a NaN half, found with packed integer ops
// ((h & 0x7FFF) > 0x7F80 per half), is redone by the reference: NaN is rare, the check is cheap.
template <int V>
__device__ __forceinline__ void bf16_pack_rne(const float (&v)[V], uint32_t (&ow)[V / 2]) {
  uint32_t nan = 0;
#pragma unroll
  for (int u = 0; u < V / 2; ++u) {
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(ow[u]) : "f"(v[2 * u + 1]), "f"(v[2 * u]));
    nan |= (ow[u] & 0x7FFF7FFFu) + 0x007F007Fu;
  }
  if ((nan & 0x80008000u) != 0) {
#pragma unroll
    for (int u = 0; u < V / 2; ++u)
      ow[u] = uint32_t(f32_to_bf16_bits_rne(v[2 * u])) | (uint32_t(f32_to_bf16_bits_rne(v[2 * u + 1])) << 16);
  }
}

// Note [Hardware e4m3 decode]
// e4m3_bits_to_f32 in integer ops (fields, a subnormal multiply, two selects) costs ~10
// instructions an element. On sm_89+ cvt.rn.f16x2.e4m3x2 widens two e4m3 bytes to f16 exactly
// (every finite e4m3 value, subnormals included, is an f16 value), and f16 -> f32 is exact too.
// Only NaN (0x7F / 0xFF) differs: the hardware gives f16's canonical NaN, the reference
// sign | 0x7FC00000; so a word with a NaN byte, found with packed integer ops ((b & 0x7F) + 1
// reaches bit 7 only for 0x7F), is redone by the reference (as Note [Hardware bf16 rounding]).
// `w` holds 4 e4m3 bytes, byte j is element j.
__device__ __forceinline__ void e4m3x4_to_f32(uint32_t w, float (&out)[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const uint16_t pair = uint16_t(w >> (16 * h));
    uint32_t f16x2;
    asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(f16x2) : "h"(pair));
    asm("cvt.f32.f16 %0, %1;" : "=f"(out[2 * h]) : "h"(uint16_t(f16x2)));
    asm("cvt.f32.f16 %0, %1;" : "=f"(out[2 * h + 1]) : "h"(uint16_t(f16x2 >> 16)));
  }
  if ((((w & 0x7F7F7F7Fu) + 0x01010101u) & 0x80808080u) == 0) return;
#endif
#pragma unroll
  for (int j = 0; j < 4; ++j) out[j] = e4m3_bits_to_f32(uint8_t(w >> (8 * j)));
}

}  // namespace zoff::k
