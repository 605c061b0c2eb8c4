// CPU references of zo_update, zo_perturb and fill_z: oneTBB over 128-element Philox blocks.
#include <algorithm>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "kernels/ref/ew_job.h"
#include "kernels/ref/scalar.h"
#include "kernels/zo_kernels.h"

namespace zoff::k {
namespace {

constexpr int64_t kBlock = 128;  // one Rademacher Philox block; 32 Gaussian groups

// z for the elements [g0, g1) of the 128-block b, written to z[g - 128 b].
template <Dist D>
void z_block(uint64_t seed, uint64_t pid, int64_t b, int64_t g0, int64_t g1, float* z) {
  if constexpr (D == Dist::Rademacher) {
    Philox4 r = philox_block(seed, pid, uint64_t(b));
    for (int64_t g = g0; g < g1; ++g) z[g - b * kBlock] = ((r.v[(g >> 5) & 3] >> (g & 31)) & 1u) ? -1.0f : 1.0f;
  } else {
    for (int64_t q = g0 >> 2; q <= (g1 - 1) >> 2; ++q) z_group<D>(seed, pid, uint64_t(q), z + (4 * q - b * kBlock));
  }
}

template <Elem SRC>
float load_src(const EwJob& j, int64_t i) {
  if constexpr (SRC == Elem::F32) {
    return static_cast<const float*>(j.src)[i];
  } else if constexpr (SRC == Elem::F8E4M3) {
    float q = decode<SRC>(static_cast<const uint8_t*>(j.src)[i]);
    return mul_rn(q, j.row_scales[i / j.row_len]);
  } else {
    return decode<SRC>(static_cast<const uint16_t*>(j.src)[i]);
  }
}

template <Elem OUT>
void store_out(const EwJob& j, int64_t i, uint32_t bits) {
  if constexpr (OUT == Elem::F32) static_cast<uint32_t*>(j.out)[i] = bits;
  else static_cast<uint16_t*>(j.out)[i] = uint16_t(bits);
}

// Note [Delta write-back] for the elements [g0, g1) of one 128-block (before theta is stored:
// the source still holds the old bits). first % 4 == 0, so a group of 4 parameter indices is one
// code byte; elements of the byte outside [g0, g1) lie outside the parameter and get code 0.
void emit_delta(const DeltaOut& d, const EwJob& j, int64_t g0, int64_t g1, int64_t o, const uint32_t* bits) {
  const uint16_t* old = static_cast<const uint16_t*>(j.src);
  for (int64_t q = g0 >> 2; q <= (g1 - 1) >> 2; ++q) {
    uint32_t code = 0;
    for (int e = 0; e < 4; ++e) {
      const int64_t g = 4 * q + e;
      if (g < g0 || g >= g1) continue;
      const int64_t i = g - j.first;
      const uint32_t c = delta_code(old[i], bits[g - o]);
      code |= c << (2 * e);
      if (c != kDeltaException) continue;
      const unsigned long long slot = __atomic_fetch_add(d.count, 1ull, __ATOMIC_RELAXED);
      if (int64_t(slot) < d.capacity)
        d.list[slot] = DeltaEntry{uint32_t(d.index_base + i), uint16_t(bits[g - o]), 0};
      else
        d.overflow[i] = uint16_t(bits[g - o]);
    }
    d.codes[(4 * q - j.first) >> 2] = uint8_t(code);
  }
  if (d.stored != nullptr)  // every byte (Note [Sparse code stores])
    __atomic_fetch_add(d.stored, static_cast<unsigned long long>(((g1 - 1) >> 2) - (g0 >> 2) + 1), __ATOMIC_RELAXED);
}

// All passes of Note [Term passes] for the 128-blocks [blo, bhi).
template <Elem OUT, Elem SRC, Dist D, bool SR>
void ew_blocks(const EwJob& j, int64_t blo, int64_t bhi) {
  float val[kBlock], acc[kBlock], z[kBlock];
  const int passes = term_passes(j.nterms);
  for (int64_t b = blo; b < bhi; ++b) {
    const int64_t g0 = std::max(b * kBlock, j.first), g1 = std::min(b * kBlock + kBlock, j.first + j.n);
    const int64_t o = b * kBlock;
    for (int64_t g = g0; g < g1; ++g) val[g - o] = load_src<SRC>(j, g - j.first);
    uint32_t bits[kBlock];
    for (int p = 0; p < passes; ++p) {
      const int k0 = p * kMaxTerms, k1 = std::min(j.nterms, k0 + kMaxTerms);
      const float keep = p == 0 ? j.keep : 1.0f;
      std::fill(acc, acc + kBlock, -0.0f);  // Note [Term passes]
      for (int k = k0; k < k1; ++k) {
        z_block<D>(j.terms[k].seed, j.pid, b, g0, g1, z);
        for (int64_t g = g0; g < g1; ++g) acc[g - o] = add_rn(acc[g - o], mul_rn(j.terms[k].coeff, z[g - o]));
      }
      Philox4 r{};
      for (int64_t g = g0; g < g1; ++g) {
        float t = mul_rn(val[g - o], keep);
        float v = k1 > k0 ? add_rn(t, acc[g - o]) : t;
        uint32_t r16 = 0;
        if constexpr (SR) {
          if (g == g0 || (g & 7) == 0) r = philox_block(sr_key(j.sr_seed, p), j.pid, uint64_t(g >> 3));
          r16 = sr_r16(r, uint64_t(g));
        }
        bits[g - o] = encode<OUT, SR>(v, r16);
        val[g - o] = decode<OUT>(bits[g - o]);
      }
    }
    if constexpr (OUT == SRC && OUT != Elem::F32) {
      if (j.delta != nullptr) emit_delta(*j.delta, j, g0, g1, o, bits);
    }
    for (int64_t g = g0; g < g1; ++g) store_out<OUT>(j, g - j.first, bits[g - o]);
  }
}

template <Elem OUT, Elem SRC, Dist D, bool SR>
void run_job(const EwJob& j) {
  const int64_t blo = j.first / kBlock, bhi = (j.first + j.n + kBlock - 1) / kBlock;
  tbb::parallel_for(tbb::blocked_range<int64_t>(blo, bhi, 64),
                    [&](const tbb::blocked_range<int64_t>& r) { ew_blocks<OUT, SRC, D, SR>(j, r.begin(), r.end()); });
}

template <Elem OUT, Elem SRC>
void dispatch_dist(const EwJob& j) {
  constexpr bool k16 = OUT != Elem::F32;
  if (j.dist == Dist::Gaussian) {
    if (k16 && j.sr_seed) run_job<OUT, SRC, Dist::Gaussian, k16>(j);
    else run_job<OUT, SRC, Dist::Gaussian, false>(j);
  } else {
    if (k16 && j.sr_seed) run_job<OUT, SRC, Dist::Rademacher, k16>(j);
    else run_job<OUT, SRC, Dist::Rademacher, false>(j);
  }
}

template <Elem OUT>
void dispatch_src(const EwJob& j) {
  switch (j.src_elem) {
    case Elem::F32: return dispatch_dist<OUT, Elem::F32>(j);
    case Elem::F16: return dispatch_dist<OUT, Elem::F16>(j);
    case Elem::BF16: return dispatch_dist<OUT, Elem::BF16>(j);
    case Elem::F8E4M3: return dispatch_dist<OUT, Elem::F8E4M3>(j);
  }
}

void run(const EwJob& j) {
  if (j.noop) return;
  switch (j.out_elem) {
    case Elem::F32: return dispatch_src<Elem::F32>(j);
    case Elem::F16: return dispatch_src<Elem::F16>(j);
    case Elem::BF16: return dispatch_src<Elem::BF16>(j);
    case Elem::F8E4M3: break;  // rejected by the job's checks
  }
}

template <Dist D>
void fill_z_impl(float* out, int64_t n, uint64_t pid, uint64_t seed) {
  const int64_t nb = (n + kBlock - 1) / kBlock;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, nb, 64), [&](const tbb::blocked_range<int64_t>& r) {
    float z[kBlock];
    for (int64_t b = r.begin(); b < r.end(); ++b) {
      const int64_t g0 = b * kBlock, g1 = std::min(g0 + kBlock, n);
      z_block<D>(seed, pid, b, g0, g1, z);
      std::copy(z, z + (g1 - g0), out + g0);
    }
  });
}

}  // namespace

namespace ref {

void zo_update(const UpdateArgs& a) { run(update_job(a)); }

void zo_perturb(const PerturbArgs& a) {
  const EwJob j = perturb_job(a);
  EwJob first = j;
  first.out2 = nullptr;
  run(first);
  if (j.out2 != nullptr) run(MirrorJob(j).job);  // Note [Mirror perturbation]: two calls
}

void box_muller_pieces(uint32_t first, int64_t n, float* out) {
  ZOFF_CHECK(n >= 0 && int64_t(first) + n <= (int64_t(1) << 24) && (n == 0 || out != nullptr),
             "box_muller_pieces: first = ", first, ", n = ", n);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 1 << 14), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i) box_muller_pieces_at(first + uint32_t(i), out + 3 * i);
  });
}

void fill_z(float* out, int64_t n, uint64_t pid, uint64_t seed, Dist d) {
  ZOFF_CHECK(n >= 0 && (n == 0 || out != nullptr), "fill_z: n = ", n, ", out = ", static_cast<void*>(out));
  if (d == Dist::Gaussian) fill_z_impl<Dist::Gaussian>(out, n, pid, seed);
  else fill_z_impl<Dist::Rademacher>(out, n, pid, seed);
}

}  // namespace ref
}  // namespace zoff::k
