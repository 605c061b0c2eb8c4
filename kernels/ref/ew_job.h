// EwJob: zo_update and zo_perturb as one elementwise job, validated once for the CPU and GPU paths.
#pragma once

#include <cstdint>
#include <vector>

#include "zoff/error.h"
#include "kernels/ref/scalar.h"
#include "kernels/zo_kernels.h"

namespace zoff::k {

// out[i] = passes over (src[i] * keep) with the terms (Note [Term passes]); update: out == src.
struct EwJob {
  void* out;
  Elem out_elem;
  const void* src;
  Elem src_elem;
  const float* row_scales;  // F8E4M3 source only
  int64_t row_len;
  int64_t n;
  int64_t first;
  uint64_t pid;
  Dist dist;
  const ZTerm* terms;
  int nterms;
  float keep;        // multiplies the source in pass 0 (1 - decay)
  uint64_t sr_seed;  // != 0 only for a 16-bit output with stochastic rounding
  bool noop;         // nothing to do (n == 0, or an update with no terms and no decay)
  void* out2 = nullptr;  // mirror output (perturb only, Note [Mirror perturbation])
  const DeltaOut* delta = nullptr;  // update only (Note [Delta write-back])
};

inline bool is_float_elem(Elem e) { return e == Elem::F32 || e == Elem::F16 || e == Elem::BF16; }

inline void check_terms(const ZTerm* terms, int nterms, Dist dist, const char* fn) {
  ZOFF_CHECK(nterms >= 0, fn, ": nterms = ", nterms, " is negative");
  ZOFF_CHECK(nterms == 0 || terms != nullptr, fn, ": ", nterms, " terms but terms == nullptr");
  ZOFF_CHECK(dist == Dist::Gaussian || dist == Dist::Rademacher, fn, ": unknown Dist ", int(dist));
}

inline EwJob update_job(const UpdateArgs& a) {
  check_terms(a.terms, a.nterms, a.dist, "zo_update");
  ZOFF_CHECK(a.n >= 0 && a.first >= 0, "zo_update: n = ", a.n, ", first = ", a.first);
  ZOFF_CHECK(is_float_elem(a.elem), "zo_update: theta must be F32, F16 or BF16 (got Elem ", int(a.elem), ")");
  ZOFF_CHECK(a.n == 0 || a.theta != nullptr, "zo_update: theta == nullptr with n = ", a.n);
  ZOFF_CHECK(std::isfinite(a.decay), "zo_update: decay = ", a.decay, " is not finite");
  bool sr = a.sr_seed != 0 && a.elem != Elem::F32;
  bool noop = a.n == 0 || (a.nterms == 0 && a.decay == 0.0f);
  if (a.delta != nullptr) {
    const DeltaOut& d = *a.delta;
    ZOFF_CHECK(a.elem != Elem::F32, "zo_update: delta output needs a 16-bit theta");
    ZOFF_CHECK(a.nterms <= kMaxTerms, "zo_update: delta output needs one pass (", a.nterms, " terms > ", kMaxTerms, ")");
    ZOFF_CHECK(a.first % 4 == 0 && d.index_base % 4 == 0, "zo_update: delta output needs first (", a.first,
               ") and index_base (", d.index_base, ") to be multiples of 4");
    ZOFF_CHECK(d.codes != nullptr && d.count != nullptr && d.overflow != nullptr && d.capacity >= 0 &&
                   (d.capacity == 0 || d.list != nullptr),
               "zo_update: delta output with a null codes, count, overflow or list pointer");
    ZOFF_CHECK(d.index_base >= 0 && d.index_base + a.n <= int64_t(0xFFFFFFFFll), "zo_update: delta indices [",
               d.index_base, ", ", d.index_base + a.n, ") do not fit 32 bits");
  }
  EwJob j{a.theta, a.elem,   a.theta, a.elem,   nullptr,  0,  a.n, a.first, a.pid,
          a.dist,  a.terms, a.nterms, 1.0f - a.decay, sr ? a.sr_seed : 0, noop};
  j.delta = a.delta;
  return j;
}

inline EwJob perturb_job(const PerturbArgs& a) {
  check_terms(a.terms, a.nterms, a.dist, "zo_perturb");
  ZOFF_CHECK(a.n >= 0 && a.first >= 0, "zo_perturb: n = ", a.n, ", first = ", a.first);
  ZOFF_CHECK(is_float_elem(a.out_elem), "zo_perturb: out must be F32, F16 or BF16 (got Elem ", int(a.out_elem), ")");
  ZOFF_CHECK(is_float_elem(a.src_elem) || a.src_elem == Elem::F8E4M3, "zo_perturb: unknown src Elem ", int(a.src_elem));
  ZOFF_CHECK(a.n == 0 || (a.out != nullptr && a.src != nullptr), "zo_perturb: null out or src with n = ", a.n);
  if (a.src_elem == Elem::F8E4M3 && a.n > 0) {
    ZOFF_CHECK(a.row_scales != nullptr, "zo_perturb: an F8E4M3 source needs row_scales");
    ZOFF_CHECK(a.row_len > 0, "zo_perturb: an F8E4M3 source needs row_len > 0 (got ", a.row_len, ")");
  }
  ZOFF_CHECK(a.out2 == nullptr || a.out2 != a.out, "zo_perturb: out2 must differ from out");
  return EwJob{a.out, a.out_elem, a.src,   a.src_elem, a.row_scales, a.row_len, a.n, a.first, a.pid,
               a.dist, a.terms,   a.nterms, 1.0f,      0,            a.n == 0,    a.out2};
}

// The mirror half of a perturb job: out2 with negated coefficients (CPU reference, GPU fallback).
struct MirrorJob {
  std::vector<ZTerm> neg;
  EwJob job;
  explicit MirrorJob(const EwJob& j) : neg(j.terms, j.terms + j.nterms), job(j) {
    for (ZTerm& t : neg) t.coeff = -t.coeff;
    job.out = j.out2;
    job.out2 = nullptr;
    job.terms = neg.data();
  }
};

inline void check_pack(const PackFp8Args& a) {
  ZOFF_CHECK(a.rows >= 0 && a.cols >= 0, "pack_fp8_rows: rows = ", a.rows, ", cols = ", a.cols);
  ZOFF_CHECK(is_float_elem(a.src_elem), "pack_fp8_rows: src must be F32, F16 or BF16 (got Elem ", int(a.src_elem), ")");
  ZOFF_CHECK(a.rows == 0 || (a.scales != nullptr && (a.cols == 0 || (a.src != nullptr && a.dst != nullptr))),
              "pack_fp8_rows: null src, dst or scales");
}

}  // namespace zoff::k
