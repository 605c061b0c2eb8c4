// CPU references of split bf16 (Note [Split bf16]): encode, decode, and one exception's recomputed bits.
#include <algorithm>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "kernels/ref/scalar.h"
#include "kernels/ref/term_sum.h"
#include "kernels/split16.h"
#include "zoff/error.h"

namespace zoff::k::ref {
namespace {

// Note [Split encode in two passes]
// Escapes are few and must come out sorted by index, so the encode does not gather them in
// per-thread lists: pass 1 (oneTBB over groups) writes every plane and counts each group's
// escapes; a serial prefix sum gives each group its first slot; pass 2 revisits only the groups
// with escapes and writes their entries (in index order within the group) at those slots, for as
// many slots as the capacity holds. So a failed encode still leaves complete planes (every escaped
// element's nibble is kSplitEscapeNibble) and the first `capacity` entries of the list.
constexpr int64_t kGrainGroups = 256;  // 64 Ki elements per TBB chunk

void check_planes(const SplitPlanes& p, const char* fn) {
  ZOFF_CHECK(p.n >= 0 && p.n <= int64_t(0xFFFFFFFFll), fn, ": n = ", p.n, " (split blocks index elements in 32 bits)");
  ZOFF_CHECK(p.n == 0 || (p.lo != nullptr && p.nib != nullptr && p.base != nullptr), fn,
             ": null plane pointer with n = ", p.n);
}

inline uint32_t nibble_at(const uint8_t* nib, int64_t i) { return (nib[i >> 1] >> (4 * (i & 1))) & 15u; }

}  // namespace

bool split16_encode(const uint16_t* src, const SplitPlanes& planes, SplitEscapes* esc) {
  check_planes(planes, "split16_encode");
  ZOFF_CHECK(esc != nullptr && esc->capacity >= 0 && (esc->capacity == 0 || esc->e != nullptr),
             "split16_encode: null escape list or negative capacity");
  ZOFF_CHECK(planes.n == 0 || src != nullptr, "split16_encode: null source with n = ", planes.n);
  const int64_t n = planes.n, G = split_groups(n);
  std::vector<int64_t> first(size_t(G) + 1, 0);  // group g's escapes, then (after the scan) its first slot
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, G, kGrainGroups), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t g = r.begin(); g < r.end(); ++g) {
      const int64_t i0 = g * kSplitGroup, i1 = std::min(n, i0 + kSplitGroup);
      uint32_t base = 0;
      for (int64_t i = i0; i < i1; ++i) base = std::max(base, (uint32_t(src[i]) >> 8) & 0x7Fu);
      planes.base[g] = uint8_t(base);
      int64_t escapes = 0;
      for (int64_t i = i0; i < i1; i += 2) {  // i0 is even: whole nibble bytes
        const uint32_t v0 = split_nibble(uint32_t(src[i]) >> 8, base);
        const uint32_t v1 = i + 1 < i1 ? split_nibble(uint32_t(src[i + 1]) >> 8, base) : 0u;
        planes.nib[i >> 1] = uint8_t(v0 | (v1 << 4));
        escapes += (v0 == kSplitEscapeNibble) + (i + 1 < i1 && v1 == kSplitEscapeNibble);
      }
      for (int64_t i = i0; i < i1; ++i) planes.lo[i] = uint8_t(src[i] & 0xFFu);
      first[size_t(g) + 1] = escapes;
    }
  });
  for (int64_t g = 0; g < G; ++g) first[size_t(g) + 1] += first[size_t(g)];
  const int64_t need = first[size_t(G)];
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, G, kGrainGroups), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t g = r.begin(); g < r.end(); ++g) {
      int64_t slot = first[size_t(g)];
      if (slot == first[size_t(g) + 1] || slot >= esc->capacity) continue;
      for (int64_t i = g * kSplitGroup, i1 = std::min(n, i + kSplitGroup); i < i1 && slot < esc->capacity; ++i)
        if (nibble_at(planes.nib, i) == kSplitEscapeNibble) esc->e[slot++] = SplitEscape{uint32_t(i), uint32_t(src[i]) >> 8};
    }
  });
  esc->count = need;
  return need <= esc->capacity;
}

void split16_decode(const SplitPlanes& planes, const SplitEscape* escapes, int64_t escape_count, uint16_t* out) {
  check_planes(planes, "split16_decode");
  ZOFF_CHECK(escape_count >= 0 && (escape_count == 0 || escapes != nullptr), "split16_decode: ", escape_count,
             " escapes but escapes == nullptr");
  ZOFF_CHECK(planes.n == 0 || out != nullptr, "split16_decode: null output with n = ", planes.n);
  for (int64_t s = 0; s < escape_count; ++s)  // all checked before anything is written
    ZOFF_CHECK(int64_t(escapes[s].index) < planes.n && escapes[s].hi <= 0xFFu, "split16_decode: escape ", s,
               " = {index ", escapes[s].index, ", hi ", escapes[s].hi, "} outside the block's ", planes.n,
               " elements or not a byte");
  const int64_t n = planes.n;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, split_groups(n), kGrainGroups),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t g = r.begin(); g < r.end(); ++g) {
                        const uint32_t base = planes.base[g];
                        for (int64_t i = g * kSplitGroup, i1 = std::min(n, i + kSplitGroup); i < i1; ++i)
                          out[i] = uint16_t((split_hi(nibble_at(planes.nib, i), base) << 8) | planes.lo[i]);
                      }
                    });
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, escape_count, 16384), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t s = r.begin(); s < r.end(); ++s) {
      const uint32_t i = escapes[s].index;
      out[i] = uint16_t((escapes[s].hi << 8) | planes.lo[i]);
    }
  });
}

// zo_update's one pass for one bf16 element (kernels/ref/zo_ref.cpp): v = theta * keep + acc
// (theta * keep alone without terms), rounded as the update rounds. Equal to what zo_update leaves
// whenever zo_update is not a no-op (no terms and no decay: it then reports no exceptions at all).
uint16_t split_recompute_one(uint16_t theta, const SplitRecipe& r, const SplitRecomputeParam& p, int64_t g) {
  const int nterms = int(r.terms.size());
  const float t = mul_rn(bf16_bits_to_f32(theta), p.keep);
  const float v = nterms > 0 ? add_rn(t, term_sum(p.pid, g, r.dist, r.terms.data(), nterms)) : t;
  return r.sr_seed != 0 ? f32_to_bf16_bits_sr(v, sr_bits(r.sr_seed, p.pid, g)) : f32_to_bf16_bits_rne(v);
}

}  // namespace zoff::k::ref
