// One element's term sum and stochastic-rounding bits of a one-pass update, shared by the CPU references.
#pragma once

#include <cstdint>

#include "kernels/ref/scalar.h"
#include "kernels/zo_kernels.h"

namespace zoff::k::ref {

// acc = -0 + sum_k coeff_k z_k(g), in order (Note [Term passes]: pass 0, nterms <= kMaxTerms).
inline float term_sum(uint64_t pid, int64_t g, Dist d, const ZTerm* terms, int nterms) {
  float acc = -0.0f;
  for (int t = 0; t < nterms; ++t) {
    float z[4];
    if (d == Dist::Gaussian) z_group<Dist::Gaussian>(terms[t].seed, pid, uint64_t(g >> 2), z);
    else z_group<Dist::Rademacher>(terms[t].seed, pid, uint64_t(g >> 2), z);
    acc = add_rn(acc, mul_rn(terms[t].coeff, z[g & 3]));
  }
  return acc;
}

// Element g's 16 rounding bits in pass 0 (Note [Stochastic rounding]).
inline uint32_t sr_bits(uint64_t sr_seed, uint64_t pid, int64_t g) {
  return sr_r16(philox_block(sr_key(sr_seed, 0), pid, uint64_t(g >> 3)), uint64_t(g));
}

}  // namespace zoff::k::ref
