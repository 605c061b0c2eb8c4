// CPU references of the fp8-site update and exponent-exact packing (Note [fp8 at the GPU site]).
#include <algorithm>
#include <cmath>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "kernels/fp8_site.h"
#include "kernels/ref/term_sum.h"
#include "zoff/error.h"

namespace zoff::k {

namespace {
int scale_exp(float s) { return int((f32_bits(s) >> 23) & 0xFFu) - 127; }
}  // namespace

namespace ref {

uint16_t update_bf16_one(uint16_t theta, uint64_t pid, int64_t g, Dist d, const ZTerm* terms, int nterms,
                         uint64_t sr_seed) {
  const float acc = term_sum(pid, g, d, terms, nterms);
  return bf16_add_sr(theta, acc, sr_bits(sr_seed, pid, g));
}

void pack_fp8_exact(const uint16_t* src, int64_t rows, int64_t cols, uint8_t* dst, float* scales) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(cols, 1))),
                    [&](const tbb::blocked_range<int64_t>& rr) {
                      for (int64_t r = rr.begin(); r < rr.end(); ++r) {
                        const uint16_t* x = src + r * cols;
                        float amax = 0.0f;
                        for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(bf16_bits_to_f32(x[c])));
                        // bf16 magnitudes are below 2^128, so k <= 120; tiny rows clamp at 2^-126. An
                        // all-zero row (a zero-initialised bias) gets 2^-126 too: its first nonzero
                        // value outgrows that range, so the host apply re-packs the row with a scale
                        // fitted to its values, instead of leaving them to round to 0 under scale 1.
                        const int k = amax > 0.0f ? std::clamp(fp8_exact_scale_exp(amax), -126, 126) : -126;
                        scales[r] = pow2f(k);
                        const float inv = pow2f(-k);
                        for (int64_t c = 0; c < cols; ++c) dst[r * cols + c] = e4m3_exact_bits(mul_rn(bf16_bits_to_f32(x[c]), inv));
                      }
                    });
}

void zo_update_fp8(const Fp8UpdateArgs& a) {
  check_fp8_update_args(a);
  if (a.n <= 0) return;
  const Fp8DeltaOut& d = a.delta;
  // One code byte (4 elements) per iteration: parallel ranges never share a byte.
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, (a.n + 3) / 4, 4096), [&](const tbb::blocked_range<int64_t>& br) {
    for (int64_t b = br.begin(); b < br.end(); ++b) {
      uint32_t code = 0;
      for (int e = 0; e < 4; ++e) {
        const int64_t i = 4 * b + e;
        if (i >= a.n) break;
        const int64_t g = a.first + i;
        const uint32_t q = a.q[i];
        const float scale = a.row_scales[i / a.row_len];
        const float acc = term_sum(a.pid, g, a.dist, a.terms, a.nterms);
        const uint32_t r16 = sr_bits(a.sr_seed, a.pid, g);
        const uint32_t c = fp8_site_code(q, scale_exp(scale), acc, r16);
        code |= c << (2 * e);
        if (c == kDeltaException) {
          const unsigned long long slot = __atomic_fetch_add(d.count, 1ull, __ATOMIC_RELAXED);
          if (int64_t(slot) < d.capacity) d.list[slot] = Fp8Entry{uint32_t(d.index_base + i), r16, acc, 0};
        }
        const float wv = add_rn(mul_rn(e4m3_bits_to_f32(uint8_t(q)), scale), acc);
        switch (a.w_elem) {
          case Elem::F32: static_cast<float*>(a.w)[i] = wv; break;
          case Elem::BF16: static_cast<uint16_t*>(a.w)[i] = f32_to_bf16_bits_rne(wv); break;
          case Elem::F16: static_cast<uint16_t*>(a.w)[i] = f32_to_f16_bits_rne(wv); break;
          case Elem::F8E4M3: break;
        }
      }
      d.codes[b] = uint8_t(code);
    }
  });
}

}  // namespace ref
}  // namespace zoff::k
