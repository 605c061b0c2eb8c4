// Host apply of an fp8-site delta: bf16 master and fp8 copy kept current together (Note [fp8 at the GPU site]).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "kernels/fp8_site.h"
#include "zoff/error.h"

namespace zoff::k {
namespace {

// Note [Host fp8-site apply]
// Like Note [Host apply_delta], the pass reads the codes a word (32 elements) at a time and skips
// zero words. Each changed element also gets its fp8 byte recomputed with its row's scale; the
// byte is written only when it differs from the old master's byte (computed, not read: the fp8
// copy's lines are then only touched where a byte changes, ~1/16 of the changed elements). Rows
// are found with a cursor that moves forward through the block (words are visited in order
// within a chunk). Exceptions (code 3) are left to the list (or the recompute) after the codes.
constexpr int64_t kGrainWords = 2048;
constexpr int64_t kGrainEntries = 8192;

struct RowCursor {
  const Fp8Copy& c;
  int64_t r = 0;
  int64_t at(int64_t i) {
    if (i < c.row_start[r] || i >= c.row_start[r + 1])
      r = int64_t(std::upper_bound(c.row_start, c.row_start + c.rows + 1, i) - c.row_start) - 1;
    return r;
  }
};

int scale_exp(float s) { return int((f32_bits(s) >> 23) & 0xFFu) - 127; }

struct Applier {
  const ApplyFp8DeltaArgs& a;
  std::mutex mu;
  std::vector<int64_t> grow;  // rows whose range an element outgrew

  // theta at i went from old_bits to new_bits: keep its fp8 byte current.
  void requant(RowCursor& rc, int64_t i, uint16_t old_bits, uint16_t new_bits) {
    const int64_t r = rc.at(i);
    const float inv = pow2f(-scale_exp(a.copy.scales[r]));
    const uint8_t qn = e4m3_exact_bits(mul_rn(bf16_bits_to_f32(new_bits), inv));
    if ((qn & 0x7Fu) == 0x7Fu) {  // |theta| / 2^k >= 512 (or not finite): the row needs a new scale
      std::lock_guard<std::mutex> lk(mu);
      grow.push_back(r);
      return;
    }
    if (qn != e4m3_exact_bits(mul_rn(bf16_bits_to_f32(old_bits), inv))) a.copy.q[i] = qn;
  }

  uint16_t recompute(int64_t i, int64_t& p) const {
    const Fp8Recompute& rc = *a.recompute;
    if (p < 0 || i < rc.params[p].offset || i >= rc.params[p].offset + rc.params[p].numel) {
      p = -1;
      for (int j = 0; j < rc.nparams; ++j)
        if (i >= rc.params[j].offset && i < rc.params[j].offset + rc.params[j].numel) p = j;
      ZOFF_CHECK(p >= 0, "apply_fp8_delta: exception at element ", i, " lies in no parameter of the recompute list");
    }
    const Fp8RecomputeParam& pp = rc.params[p];
    return ref::update_bf16_one(a.master[i], pp.pid, i - pp.offset, rc.dist, rc.terms, rc.nterms, rc.sr_seed);
  }

  // Elements [4 j0, 4 j1) by code byte; returns the exceptions recomputed.
  int64_t bytes(int64_t j0, int64_t j1, bool recompute_exc) {
    RowCursor rc{a.copy};
    int64_t p = -1, recomputed = 0;
    for (int64_t j = j0; j < j1;) {
      if (j % 8 == 0 && j + 8 <= j1) {
        uint64_t cw;
        std::memcpy(&cw, a.codes + j, 8);
        if (cw == 0) {
          j += 8;
          continue;
        }
      }
      const uint32_t byte = a.codes[j];
      for (int e = 0; byte != 0 && e < 4; ++e) {
        const uint32_t c = (byte >> (2 * e)) & 3u;
        const int64_t i = 4 * j + e;
        if (c == 0 || i >= a.n) continue;
        const uint16_t old = a.master[i];
        uint16_t nw;
        if (c == kDeltaUp) nw = uint16_t(old + 1u);
        else if (c == kDeltaDown) nw = uint16_t(old - 1u);
        else if (recompute_exc) nw = recompute(i, p), ++recomputed;
        else continue;  // the list's
        a.master[i] = nw;
        if (nw != old) requant(rc, i, old, nw);
      }
      ++j;
    }
    return recomputed;
  }
};

}  // namespace

ApplyFp8Result apply_fp8_delta_host(const ApplyFp8DeltaArgs& a) {
  ZOFF_CHECK(a.n >= 0 && a.count >= 0 && a.capacity >= 0, "apply_fp8_delta: bad sizes");
  ZOFF_CHECK(a.copy.rows >= 1 && a.copy.row_start[0] == 0 && a.copy.row_start[a.copy.rows] == a.n,
             "apply_fp8_delta: the fp8 copy's rows do not cover the block");
  const bool recompute = a.count > a.capacity;
  ZOFF_CHECK(!recompute || a.recompute != nullptr, "apply_fp8_delta: ", a.count,
             " exceptions overflowed a list of ", a.capacity, " and no recompute information was given");
  Applier ap{a, {}, {}};
  ApplyFp8Result res;
  res.exceptions = a.count;
  const int64_t nbytes = (a.n + 3) / 4;
  std::atomic<int64_t> recomputed{0};
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, (nbytes + 7) / 8, kGrainWords), [&](const tbb::blocked_range<int64_t>& r) {
    const int64_t n = ap.bytes(8 * r.begin(), std::min(nbytes, 8 * r.end()), recompute);
    if (n) recomputed += n;
  });
  res.recomputed = recomputed.load();
  if (!recompute) {
    std::atomic<int64_t> bad{-1};
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, a.count, kGrainEntries), [&](const tbb::blocked_range<int64_t>& r) {
      RowCursor rc{a.copy};
      for (int64_t s = r.begin(); s < r.end(); ++s) {
        const Fp8Entry e = a.list[s];
        const int64_t i = e.index;
        if (i >= a.n || ((a.codes[i >> 2] >> (2 * (i & 3))) & 3u) != kDeltaException) {
          bad = s;
          continue;
        }
        const uint16_t old = a.master[i];
        const uint16_t nw = f32_to_bf16_bits_sr(add_rn(mul_rn(bf16_bits_to_f32(old), 1.0f), e.acc), e.r16 & 0xFFFFu);
        a.master[i] = nw;
        if (nw != old) ap.requant(rc, i, old, nw);
      }
    });
    ZOFF_CHECK(bad.load() < 0, "apply_fp8_delta: list entry ", bad.load(), " names element ", a.list[bad.load()].index,
               ", which is outside the block (", a.n, " elements) or not marked as an exception");
  }
  // Rows an element outgrew: a new power-of-two scale and a fresh pack of the whole row.
  std::sort(ap.grow.begin(), ap.grow.end());
  ap.grow.erase(std::unique(ap.grow.begin(), ap.grow.end()), ap.grow.end());
  for (int64_t r : ap.grow) {
    const int64_t b = a.copy.row_start[r], e = a.copy.row_start[r + 1];
    ref::pack_fp8_exact(a.master + b, 1, e - b, a.copy.q + b, a.copy.scales + r);
  }
  res.rescaled_rows = int64_t(ap.grow.size());
  return res;
}

}  // namespace zoff::k
