// Host apply of a bf16 delta to a split block (Note [Host split apply]): code words in parallel, escape changes merged once.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/split16.h"
#include "zoff/error.h"

namespace zoff::k {
namespace {

// Note [Host split apply]
// apply_split_delta_host leaves the split block (planes and escapes, Note [Split bf16]) decoding to
// exactly what ref::apply_delta leaves on the decoded master, and runs on the training's critical
// path, so it touches only what changes. Two passes, each followed by a merge of the escape list:
//  A. the codes, oneTBB over ranges of kGrainWords code words (32 elements each, one packed tile
//     for packed codes). A word owns 16 whole nibble bytes and lies in one group (8 words per
//     group), so ranges write their lo bytes and nibbles without races; a zero word costs 8 bytes
//     read (a bitmap bit when packed) and nothing else. +1 without a carry (lo != 0xFF) and -1
//     without a borrow (lo != 0x00) write only the lo byte. Otherwise (1 change in 256, and every
//     recomputed exception) the element's old high byte comes from its nibble, or for an escaped
//     element from a binary search in the sorted list, and its new high byte is re-encoded under the
//     group's base (bases never change here). An escape that stays an escape updates its entry's hi
//     in place (the entries' indices, all the searches read, are never written during a pass); an
//     element that moves into or out of the list writes its nibble at once and records an insert
//     {index, hi} or a remove index (per-range buffers, appended under a mutex: they are rare).
//     Code-3 elements are skipped, or, when the device's list overflowed (count > capacity: its
//     entries past capacity went nowhere), recomputed from their old bits with the recipe, and the
//     list is ignored.
//  B. the list's exceptions {index, new bits}, oneTBB over entries (Note [Racing nibbles]). After
//     pass A's merge the block is consistent again (nibble 15 exactly for the listed elements), so
//     pass B is the same element update as A's slow path, and an entry for an element that the codes
//     also moved (which no update produces, but apply_delta defines: the list is applied last) comes
//     out right as well.
// Merge: the sorted removes and inserts go into the sorted list in one pass (into scratch.merged,
// copied back when it fits). A list that outgrows its capacity stays in scratch.merged through pass
// B; if it still does not fit then, the block is decoded (into scratch.bf16) and re-encoded with
// fresh bases; a block that does not fit even so is an error, after the planes hold the update.
// A bad list index is skipped (never written out of bounds) and reported after the merges, as is a
// recomputed exception outside the recipe's parameters, so the block stays consistent.
//
// Note [Racing nibbles]
// Two elements share a nibble byte, so list entries for neighbours i and i ^ 1, applied by different
// threads in pass B, would race on a plain read-modify-write of that byte. Pass B therefore loads
// nibbles with __atomic_load_n and writes them with an __atomic_compare_exchange loop on the byte
// (each thread changes only its own nibble, so a failed exchange just retries with the neighbour's
// new half). Grouping entries by range instead would need the list sorted or bucketed first; the
// CAS is one uncontended atomic per exception (~0.1% of elements). Pass A needs none of this (its
// ranges are whole code words).
constexpr int64_t kGrainWords = 2048;     // = kPackTileWords: one packed tile per TBB chunk
constexpr int64_t kGrainEntries = 16384;  // list entries per TBB chunk
static_assert(kGrainWords == kPackTileWords, "one apply range is one packed tile");
static_assert(kSplitGroup % 32 == 0, "a code word lies in one group");

struct Changes {  // escape-list changes found by a pass
  std::mutex mu;
  std::vector<SplitEscape>* inserts;
  std::vector<uint32_t>* removes;
  void add(std::vector<SplitEscape>& ins, std::vector<uint32_t>& rem) {
    if (ins.empty() && rem.empty()) return;
    std::lock_guard<std::mutex> lk(mu);
    inserts->insert(inserts->end(), ins.begin(), ins.end());
    removes->insert(removes->end(), rem.begin(), rem.end());
  }
};

template <bool kAtomic>
struct Pass {
  const SplitPlanes& p;
  SplitEscape* list;  // sorted by index; hi updated in place, indices never
  int64_t count;

  uint32_t nibble(int64_t i) const {
    const uint8_t b = kAtomic ? __atomic_load_n(p.nib + (i >> 1), __ATOMIC_RELAXED) : p.nib[i >> 1];
    return (b >> (4 * (i & 1))) & 15u;
  }
  void write_nibble(int64_t i, uint32_t v) const {
    uint8_t* q = p.nib + (i >> 1);
    const int sh = 4 * int(i & 1);
    if constexpr (kAtomic) {
      uint8_t old = __atomic_load_n(q, __ATOMIC_RELAXED);
      while (!__atomic_compare_exchange_n(q, &old, uint8_t((old & ~(15u << sh)) | (v << sh)), true, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED)) {
      }
    } else {
      *q = uint8_t((*q & ~(15u << sh)) | (v << sh));
    }
  }
  SplitEscape* find(int64_t i) const {
    SplitEscape* e = std::lower_bound(list, list + count, uint32_t(i),
                                      [](const SplitEscape& a, uint32_t x) { return a.index < x; });
    ZOFF_CHECK(e != list + count && e->index == uint32_t(i), "apply_split_delta_host: element ", i,
               " has the escape nibble but no escape list entry (a corrupt split block)");
    return e;
  }
  // Element i's old bits (its nibble v, entry e when escaped).
  uint16_t old_bits(int64_t i, uint32_t base, uint32_t& v, SplitEscape*& e) const {
    v = nibble(i);
    e = v == kSplitEscapeNibble ? find(i) : nullptr;
    return uint16_t(((e != nullptr ? e->hi : split_hi(v, base)) << 8) | p.lo[i]);
  }
  // Element i (nibble v, entry e) becomes `bits`.
  void set(int64_t i, uint32_t base, uint32_t v, SplitEscape* e, uint16_t old, uint16_t bits,
           std::vector<SplitEscape>& ins, std::vector<uint32_t>& rem) const {
    p.lo[i] = uint8_t(bits & 0xFFu);
    const uint32_t hi = uint32_t(bits) >> 8;
    if (hi == uint32_t(old) >> 8) return;
    const uint32_t nv = split_nibble(hi, base);
    if (e != nullptr && nv == kSplitEscapeNibble) {
      e->hi = hi;
      return;
    }
    write_nibble(i, nv);
    if (e != nullptr) rem.push_back(uint32_t(i));
    else if (nv == kSplitEscapeNibble) ins.push_back(SplitEscape{uint32_t(i), hi});
  }
};

// Note [Split apply lanes]
// Pass A's words on AVX2 (HostIsa Avx2 or Avx512; the loop is bound by memory, so AVX-512 adds
// nothing): the 32 codes of a whole word become byte lanes (vpshufb puts code byte e / 4 in lane
// e, a mask keeps its two bits), two compares give the up and down lanes, and the word's 32 lo
// bytes take every +1 whose byte is not 0xFF and every -1 whose byte is not 0x00 in one
// load-add-store. Those are all but 1 in 256 changes; the rest (a carry, a borrow, and code 3 when
// recomputing) come back as a bit mask for the scalar element path, which finds their lo bytes
// untouched. The scalar path walks the word's nonzero codes one by one; the two leave the same
// bytes (tests run both). The last, partial word always goes scalar: its 32 bytes would run past
// the lo plane.
#if defined(__x86_64__)
__attribute__((target("avx2"))) uint32_t split_word_avx2(uint8_t* lo, uint64_t cw, bool exceptions) {
  const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3,  //
                                       4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
  const __m256i mask = _mm256_set1_epi32(int(0xC0300C03u));  // lane e: bits 2 (e % 4) and up
  const __m256i up = _mm256_set1_epi32(int(0x40100401u));    // kDeltaUp << 2 (e % 4)
  const __m256i down = _mm256_add_epi8(up, up);              // kDeltaDown << 2 (e % 4)
  static_assert(kDeltaUp == 1 && kDeltaDown == 2 && kDeltaException == 3, "lane patterns");
  const __m256i c = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi64x((long long)cw), sel), mask);
  __m256i* p = reinterpret_cast<__m256i*>(lo);
  const __m256i x = _mm256_loadu_si256(p);
  const __m256i is_up = _mm256_cmpeq_epi8(c, up), is_down = _mm256_cmpeq_epi8(c, down);
  const __m256i ff = _mm256_cmpeq_epi8(x, _mm256_set1_epi8(-1)), zz = _mm256_cmpeq_epi8(x, _mm256_setzero_si256());
  const __m256i inc = _mm256_andnot_si256(ff, is_up), dec = _mm256_andnot_si256(zz, is_down);  // all-ones lanes
  _mm256_storeu_si256(p, _mm256_add_epi8(_mm256_sub_epi8(x, inc), dec));
  __m256i slow = _mm256_or_si256(_mm256_and_si256(ff, is_up), _mm256_and_si256(zz, is_down));
  if (exceptions) slow = _mm256_or_si256(slow, _mm256_cmpeq_epi8(c, mask));
  return uint32_t(_mm256_movemask_epi8(slow));
}
#endif

// A whole number from the environment variable `name` in [0, max] (`unit` names what it counts),
// read once by each caller's static; `dflt` when unset or empty.
int env_whole(const char* name, int dflt, long max, const char* unit) {
  const char* env = std::getenv(name);
  if (env == nullptr || *env == '\0') return dflt;
  char* end = nullptr;
  const long v = std::strtol(env, &end, 10);
  ZOFF_INPUT_CHECK(end != env && *end == '\0' && v >= 0 && v <= max, "environment variable ", name, " = '", env,
                   "': expected a whole number of ", unit, " from 0 (off) to ", max);
  return int(v);
}

// Note [Split apply prefetch]
// A MeZO step changes ~1% of the elements, so ~27% of the code words are nonzero and the apply
// touches ~47% of the lo plane's lines, scattered: the hardware prefetcher, which follows
// sequential streams, misses most of them, and each word waits for its line. The packed walk knows
// every nonzero word ahead from the bitmap, so before a bitmap word's 32 code words it prefetches
// (for writing) the lo bytes of the nonzero words `ZOFF_SPLIT_APPLY_PREFETCH` bitmap words on
// (32 code words, 1 KiB of lo bytes each; default 4, 0 turns it off), within the range. The H100
// machine's 16-core host (session 18, 314.6 M elements, 1% changed): 16 threads 7.18 ms without,
// 5.95 / 6.38 / 6.59 ms at 4 / 8 / 16 (1 thread: 56.8 against 38.2 ms at 4). Dense codes are not
// walked ahead.
int split_apply_prefetch() {
  static const int words = env_whole("ZOFF_SPLIT_APPLY_PREFETCH", 4, 1024, "bitmap words");
  return words;
}

// Note [Split list prefetch]
// Pass B is a walk over the device's exception list in its own order (ascending window by window,
// shuffled within each window of ~2 M elements: kernels/fp8_site.cu's grid-stride append), and
// each entry reads its element's nibble and lo byte, two lines no hardware prefetcher predicts:
// perf on the dev machine (OPT-1.3B, 0.35% exceptions) put 60% of the pass on those two loads.
// The list says where the walk goes, so entry k prefetches (for writing) the nibble and lo lines of
// entry k + `ZOFF_SPLIT_LIST_PREFETCH` (default 16, 0 turns it off) of the same chunk. The list
// alone (bench_kernels BM_ApplySplitDeltaHost impl 3, 470 k entries in a 314.6 M-element block), H100
// machine's host: 1 thread 14.6 -> 10.9 ms, 16 threads 2.17-2.34 -> 1.77 ms (bf16's list, impl 4, 1
// thread: 7.7-7.9 ms; dev machine 8 / 32 / 64 entries ahead no better than 16). In `zoff train`
// on OPT-13B, steps with 34-38 M exceptions: apply busy 442-461 -> 370-375 ms (session 19).
int split_list_prefetch() {
  static const int entries = env_whole("ZOFF_SPLIT_LIST_PREFETCH", 16, 4096, "list entries");
  return entries;
}

// Pass A over one range of code words.
struct CodePass {
  const ApplySplitDeltaArgs& a;
  Pass<false> pass;
  Changes& changes;
  bool recompute;
  bool wide;  // the AVX2 word path (Note [Split apply lanes])
  int prefetch_words;  // bitmap words ahead (Note [Split apply prefetch])
  std::atomic<int64_t> recomputed{0}, uncovered{INT64_MAX};

  const SplitRecomputeParam* param_of(int64_t i, int64_t& cur) const {
    const std::vector<SplitRecomputeParam>& ps = a.recipe->params;
    if (cur >= 0 && i >= ps[size_t(cur)].offset && i < ps[size_t(cur)].offset + ps[size_t(cur)].numel)
      return &ps[size_t(cur)];
    auto it = std::upper_bound(ps.begin(), ps.end(), i, [](int64_t x, const SplitRecomputeParam& q) { return x < q.offset; });
    if (it == ps.begin() || i >= (it - 1)->offset + (it - 1)->numel) return nullptr;
    cur = (it - 1) - ps.begin();
    return &*(it - 1);
  }

  void range(int64_t w0, int64_t w1, const int64_t* packed_first) {
    std::vector<SplitEscape> ins;
    std::vector<uint32_t> rem;
    int64_t cur = -1, rec = 0;
    const int64_t n = a.planes.n, full = n / 32, W = pack_code_words(n);
    // Element i (code c): +1 without a carry and -1 without a borrow touch its lo byte only;
    // everything else goes through the element's high byte (Note [Host split apply]).
    auto element = [&](int64_t i, uint32_t c, uint32_t base) {
      uint8_t& lo = a.planes.lo[i];
      if (c == kDeltaUp && lo != 0xFFu) ++lo;
      else if (c == kDeltaDown && lo != 0x00u) --lo;
      else if (c != kDeltaException || recompute) {
        uint32_t v;
        SplitEscape* e;
        const uint16_t old = pass.old_bits(i, base, v, e);
        uint16_t nw = uint16_t(c == kDeltaUp ? old + 1u : old - 1u);
        if (c == kDeltaException) {
          const SplitRecomputeParam* q = param_of(i, cur);
          if (q == nullptr) {
            int64_t seen = uncovered.load(std::memory_order_relaxed);
            while (i < seen && !uncovered.compare_exchange_weak(seen, i, std::memory_order_relaxed)) {
            }
            return;
          }
          nw = ref::split_recompute_one(old, *a.recipe, *q, i - q->offset);
          ++rec;
        }
        pass.set(i, base, v, e, old, nw, ins, rem);
      }
    };
    auto word = [&](int64_t w, uint64_t cw) {
      const uint32_t base = a.planes.base[(32 * w) / kSplitGroup];
#if defined(__x86_64__)
      if (wide && w < full) {  // Note [Split apply lanes]
        for (uint32_t slow = split_word_avx2(a.planes.lo + 32 * w, cw, recompute); slow != 0; slow &= slow - 1) {
          const int j = __builtin_ctz(slow);
          element(32 * w + j, uint32_t(cw >> (2 * j)) & 3u, base);
        }
        return;
      }
#endif
      if (w == W - 1 && n % 32 != 0) cw &= (uint64_t(1) << (2 * (n % 32))) - 1;  // codes past n
      for (uint64_t live = (cw | cw >> 1) & 0x5555555555555555ull; live != 0; live &= live - 1) {
        const int b = __builtin_ctzll(live);
        element(32 * w + b / 2, uint32_t(cw >> b) & 3u, base);
      }
    };
    if (a.bitmap != nullptr) {
      const auto* packed = reinterpret_cast<const uint64_t*>(a.codes);
      int64_t next = *packed_first;
      const int64_t ahead = prefetch_words;
      for (int64_t k = w0 / 32; 32 * k < w1; ++k) {
        if (ahead > 0 && 32 * (k + ahead) < w1)  // Note [Split apply prefetch]
          for (uint32_t nb = a.bitmap[k + ahead]; nb != 0; nb &= nb - 1)
            __builtin_prefetch(a.planes.lo + 32 * (32 * (k + ahead) + __builtin_ctz(nb)), 1);
        uint32_t bits = a.bitmap[k];
        if (32 * k + 32 > w1) bits &= (1u << (w1 - 32 * k)) - 1u;
        for (; bits != 0; bits &= bits - 1) word(32 * k + __builtin_ctz(bits), packed[next++]);
      }
    } else {
      for (int64_t w = w0; w < std::min(w1, full); ++w) {
        uint64_t cw;
        std::memcpy(&cw, a.codes + 8 * w, 8);
        if (cw == 0) continue;
        word(w, cw);
        if (!a.keep_codes) std::memset(a.codes + 8 * w, 0, 8);
      }
      if (w1 > full) {  // the last, partial word: (n % 32 + 3) / 4 bytes
        const size_t bytes = size_t((n + 3) / 4 - 8 * full);
        uint64_t cw = 0;
        std::memcpy(&cw, a.codes + 8 * full, bytes);
        word(full, cw);
        if (!a.keep_codes) std::memset(a.codes + 8 * full, 0, bytes);
      }
    }
    recomputed += rec;
    changes.add(ins, rem);
  }
};

// Merges sorted removes and inserts into the sorted list [list, list + count) -> out.
void merge(const SplitEscape* list, int64_t count, const std::vector<SplitEscape>& ins,
           const std::vector<uint32_t>& rem, std::vector<SplitEscape>& out) {
  out.clear();
  out.reserve(size_t(count) + ins.size());
  size_t k = 0, r = 0;
  for (int64_t j = 0; j < count; ++j) {
    for (; k < ins.size() && ins[k].index < list[j].index; ++k) out.push_back(ins[k]);
    if (r < rem.size() && rem[r] == list[j].index) ++r;
    else out.push_back(list[j]);
  }
  out.insert(out.end(), ins.begin() + std::ptrdiff_t(k), ins.end());
  ZOFF_CHECK(r == rem.size(), "apply_split_delta_host: ", rem.size() - r, " escapes to remove are not in the list");
}

// The escape list during an apply: the caller's, or (after outgrowing its capacity) scratch.merged.
struct ListState {
  SplitEscapes& esc;
  SplitApplyScratch& s;
  bool spilled = false;
  SplitEscape* data() { return spilled ? s.merged.data() : esc.e; }
  int64_t size() const { return spilled ? int64_t(s.merged.size()) : esc.count; }

  void commit(ApplySplitResult& res) {
    if (s.inserts.empty() && s.removes.empty()) return;
    auto by_index = [](const SplitEscape& x, const SplitEscape& y) { return x.index < y.index; };
    std::sort(s.inserts.begin(), s.inserts.end(), by_index);
    std::sort(s.removes.begin(), s.removes.end());
    res.escapes_added += int64_t(s.inserts.size());
    res.escapes_removed += int64_t(s.removes.size());
    std::vector<SplitEscape> spill;  // only when the list is already spilled (rare)
    merge(data(), size(), s.inserts, s.removes, spilled ? spill : s.merged);
    if (spilled) s.merged.swap(spill);
    spilled = int64_t(s.merged.size()) > esc.capacity;
    if (!spilled) {
      if (!s.merged.empty()) std::memcpy(esc.e, s.merged.data(), s.merged.size() * sizeof(SplitEscape));
      esc.count = int64_t(s.merged.size());
    }
    s.inserts.clear();
    s.removes.clear();
  }
};

void check_args(const ApplySplitDeltaArgs& a) {
  const SplitPlanes& p = a.planes;
  ZOFF_CHECK(p.n >= 0 && p.n <= int64_t(0xFFFFFFFFll), "apply_split_delta_host: n = ", p.n);
  ZOFF_CHECK(a.escapes != nullptr && a.escapes->count >= 0 && a.escapes->count <= a.escapes->capacity &&
                 (a.escapes->capacity == 0 || a.escapes->e != nullptr),
             "apply_split_delta_host: null escapes, or an escape count outside [0, capacity]");
  ZOFF_CHECK(p.n == 0 || (p.lo != nullptr && p.nib != nullptr && p.base != nullptr && a.codes != nullptr),
             "apply_split_delta_host: null planes or codes with n = ", p.n);
  ZOFF_CHECK(a.count >= 0 && a.capacity >= 0, "apply_split_delta_host: count = ", a.count, ", capacity = ", a.capacity);
  ZOFF_CHECK(a.count > a.capacity || a.count == 0 || a.list != nullptr, "apply_split_delta_host: ", a.count,
             " entries but list == nullptr");
  if (a.count <= a.capacity) return;
  ZOFF_CHECK(a.recipe != nullptr, "apply_split_delta_host: the delta list overflowed (", a.count, " exceptions, room for ",
             a.capacity, ") and no recipe was given to recompute them");
  const SplitRecipe& r = *a.recipe;
  ZOFF_CHECK(r.terms.size() <= size_t(kMaxTerms), "apply_split_delta_host: the recipe has ", r.terms.size(),
             " terms; a delta update is one pass of at most ", kMaxTerms);
  for (size_t k = 0; k < r.params.size(); ++k)
    ZOFF_CHECK(r.params[k].numel >= 0 && (k == 0 || r.params[k - 1].offset + r.params[k - 1].numel <= r.params[k].offset),
               "apply_split_delta_host: recipe parameter ", k, " (offset ", r.params[k].offset, ", numel ",
               r.params[k].numel, ") is not sorted by offset or overlaps the one before");
}

}  // namespace

ApplySplitResult apply_split_delta_host(const ApplySplitDeltaArgs& a, HostIsa isa) {
  if (isa == HostIsa::Auto) isa = host_isa_auto();
  ZOFF_CHECK(host_isa_supported(isa), "apply_split_delta_host: ", host_isa_name(isa),
             " requested but this CPU (or build) lacks it");
  check_args(a);
  ApplySplitResult res;
  const int64_t n = a.planes.n;
  if (n == 0) return res;
  SplitApplyScratch own;
  SplitApplyScratch& s = a.scratch != nullptr ? *a.scratch : own;
  s.inserts.clear();
  s.removes.clear();
  ListState L{*a.escapes, s};
  Changes changes{{}, &s.inserts, &s.removes};
  const bool recompute = a.count > a.capacity;

  // Pass A: the codes.
  const bool wide = isa == HostIsa::Avx2 || isa == HostIsa::Avx512;
  CodePass cp{a, Pass<false>{a.planes, L.data(), L.size()}, changes, recompute, wide, split_apply_prefetch()};
  const int64_t W = pack_code_words(n), R = (W + kGrainWords - 1) / kGrainWords;
  if (a.bitmap != nullptr) {
    s.packed.resize(size_t(R) + 1);
    packed_range_offsets(a.bitmap, n, a.packed_count, s.packed.data(), "apply_split_delta_host");
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, R, 1), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t b = r.begin(); b < r.end(); ++b)
      cp.range(b * kGrainWords, std::min(W, (b + 1) * kGrainWords), a.bitmap ? &s.packed[size_t(b)] : nullptr);
  });
  L.commit(res);
  res.recomputed = cp.recomputed.load();
  res.exceptions = res.recomputed;

  // Pass B: the list's exceptions (Note [Racing nibbles]).
  const int64_t entries = recompute ? 0 : a.count;
  std::atomic<int64_t> bad{entries}, applied{0};
  const Pass<true> pb{a.planes, L.data(), L.size()};
  const int64_t list_ahead = split_list_prefetch();
  auto apply_list = [&](int64_t s0, int64_t s1) {
    std::vector<SplitEscape> ins;
    std::vector<uint32_t> rem;
    int64_t done = 0;
    for (int64_t k = s0; k < s1; ++k) {
      if (list_ahead > 0 && k + list_ahead < s1) {  // Note [Split list prefetch]
        const int64_t j = a.list[k + list_ahead].index;
        if (j < n) {
          __builtin_prefetch(a.planes.nib + (j >> 1), 1);
          __builtin_prefetch(a.planes.lo + j, 1);
        }
      }
      const DeltaEntry d = a.list[k];
      if (int64_t(d.index) >= n) {
        int64_t seen = bad.load(std::memory_order_relaxed);
        while (k < seen && !bad.compare_exchange_weak(seen, k, std::memory_order_relaxed)) {
        }
        continue;
      }
      const uint32_t base = a.planes.base[d.index / kSplitGroup];
      uint32_t v;
      SplitEscape* e;
      const uint16_t old = pb.old_bits(d.index, base, v, e);
      pb.set(d.index, base, v, e, old, d.bits, ins, rem);
      ++done;
    }
    applied += done;
    changes.add(ins, rem);
  };
  if (entries <= kGrainEntries) apply_list(0, entries);
  else
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, entries, kGrainEntries),
                      [&](const tbb::blocked_range<int64_t>& r) { apply_list(r.begin(), r.end()); });
  L.commit(res);
  res.exceptions += applied.load();

  if (L.spilled) {  // Note [Host split apply]: fresh bases
    res.reencoded = true;
    s.bf16.resize(size_t(n));
    ref::split16_decode(a.planes, s.merged.data(), int64_t(s.merged.size()), s.bf16.data());
    if (!ref::split16_encode(s.bf16.data(), a.planes, a.escapes)) {
      const int64_t need = a.escapes->count;
      a.escapes->count = a.escapes->capacity;  // never past the list's room
      ZOFF_FAIL("apply_split_delta_host: a block of ", n, " elements needs ", need,
                " escapes even re-encoded with fresh bases, but its escape list has room for ", a.escapes->capacity,
                ". The planes already hold this update (the escapes past the room are lost), so the block is "
                "unusable; transfer = \"bf16\" (instead of \"bf16-split\") keeps these weights out of the format");
    }
  }
  if (const int64_t k = bad.load(); k < entries)
    ZOFF_FAIL("apply_split_delta_host: list entry ", k, " has index ", a.list[k].index, " outside the block's ", n,
              " elements");
  if (const int64_t i = cp.uncovered.load(); i != INT64_MAX)
    ZOFF_FAIL("apply_split_delta_host: exception at element ", i,
              " lies in no parameter of the recipe (it was left unchanged)");
  return res;
}

}  // namespace zoff::k
