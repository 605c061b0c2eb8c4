// Fast host apply_delta: 32 elements per code word, zero words skipped, SWAR or AVX2 lane adds, oneTBB.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/host/zo_host.h"
#include "kernels/ref/delta_check.h"
#include "zoff/error.h"

namespace zoff::k {
namespace {

// Note [Host apply_delta]
// apply_delta runs on the host, on the training's critical path, once per streamed block and
// update (the GPU has written the codes and list into mapped host memory). The work per element
// is tiny (a 16-bit add of +1, -1 or 0) so the loop must run at memory speed: it reads the codes
// 8 bytes (one code word, 32 elements) at a time and skips a zero word without touching its
// masters (codes are zero at rest, so an unchanged stretch costs a quarter byte per element).
// A nonzero word is consumed and zeroed (unless keep_codes: staged codes are overwritten whole by
// the next write-back, so zeroing them would only add n / 4 bytes of host writes):
//  - Scalar: kLanes[byte] is the four 16-bit deltas of a code byte (+1, 0xFFFF for -1, 0 for
//    unchanged and exceptions) packed in a uint64, added to four masters at once by a carry-free
//    lane add; branch-free over the word's 8 bytes (with ~7% of elements changed most bytes are
//    nonzero, and a per-byte branch would mispredict).
//  - Avx2 (also the Avx512 path: AVX-512F has no 16-bit lane ops, and the loop is memory-bound
//    either way): the word is broadcast, vpshufb puts element e's code byte in its 16-bit lane, a
//    per-lane mask isolates its two bits, and two compares give all-ones lanes for up and down:
//    master - up + down. The function carries a target attribute instead of living in the -mavx2
//    translation unit; it calls nothing but always-inline intrinsics, so no AVX code can leak into
//    a baseline caller (Note [ISA translation units]).
// The tail (n % 32 elements) goes element by element. The list is applied after every code
// (its entries are exceptions, code 3, which the codes leave alone), in parallel: one update pass
// reports an element at most once, so the indices are unique and the order does not matter.
// A bad index is skipped (never written out of bounds) and reported after the pass.
constexpr int64_t kGrainWords = 2048;     // 64 Ki elements per TBB chunk
constexpr int64_t kGrainEntries = 16384;  // list entries per TBB chunk

struct Lanes {
  uint64_t v[256];
  Lanes() {
    for (int b = 0; b < 256; ++b) {
      uint64_t x = 0;
      for (int e = 0; e < 4; ++e) {
        const uint32_t c = uint32_t(b >> (2 * e)) & 3u;
        x |= uint64_t(c == kDeltaUp ? 0x0001u : c == kDeltaDown ? 0xFFFFu : 0u) << (16 * e);
      }
      v[b] = x;
    }
  }
};
const Lanes kLanes;

inline uint64_t add16x4(uint64_t x, uint64_t d) {
  constexpr uint64_t kLow = 0x7FFF7FFF7FFF7FFFull, kHigh = 0x8000800080008000ull;
  return ((x & kLow) + (d & kLow)) ^ ((x ^ d) & kHigh);
}

inline void word_scalar(uint16_t* m, uint64_t cw) {
  for (int b = 0; b < 8; ++b) {
    uint64_t x;
    std::memcpy(&x, m + 4 * b, 8);
    x = add16x4(x, kLanes.v[(cw >> (8 * b)) & 0xFFu]);
    std::memcpy(m + 4 * b, &x, 8);
  }
}

template <bool kClear>
void words_scalar(uint16_t* master, uint8_t* codes, int64_t w0, int64_t w1) {
  for (int64_t w = w0; w < w1; ++w) {
    uint64_t cw;
    std::memcpy(&cw, codes + 8 * w, 8);
    if (cw == 0) continue;
    word_scalar(master + 32 * w, cw);
    if (kClear) std::memset(codes + 8 * w, 0, 8);
  }
}

// Note [Packed codes]: the nonzero words of [w0, w1) (w0 a multiple of 32) straight from the
// bitmap, packed[next] being the first; no scratch, and zero words cost a bitmap bit. packed_avx2
// repeats this loop: its word must inline into a target("avx2") function, which a shared
// baseline template taking the word as a callable cannot do.
void packed_scalar(uint16_t* master, const uint32_t* bitmap, const uint64_t* packed, int64_t next, int64_t w0,
                   int64_t w1) {
  for (int64_t i = w0 / 32; 32 * i < w1; ++i) {
    uint32_t bits = bitmap[i];
    if (32 * i + 32 > w1) bits &= (1u << (w1 - 32 * i)) - 1u;
    for (; bits != 0; bits &= bits - 1) word_scalar(master + 32 * (32 * i + __builtin_ctz(bits)), packed[next++]);
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2"), always_inline)) inline void word_avx2(uint16_t* master, uint64_t cw) {
  // Lane e of vector h (elements 16 h + e) takes code byte 4 h + e / 4 into its low byte; the
  // high byte is zeroed (index 0x80). In-lane vpshufb: the broadcast word is in every 128-bit lane.
  const __m256i sel0 = _mm256_setr_epi8(0, -128, 0, -128, 0, -128, 0, -128, 1, -128, 1, -128, 1, -128, 1, -128,  //
                                        2, -128, 2, -128, 2, -128, 2, -128, 3, -128, 3, -128, 3, -128, 3, -128);
  const __m256i sel1 = _mm256_add_epi16(sel0, _mm256_set1_epi16(4));  // high bytes stay >= 0x80 (zeroed)
  const __m256i mask = _mm256_setr_epi16(3, 12, 48, 192, 3, 12, 48, 192, 3, 12, 48, 192, 3, 12, 48, 192);
  const __m256i up = _mm256_setr_epi16(1, 4, 16, 64, 1, 4, 16, 64, 1, 4, 16, 64, 1, 4, 16, 64);
  const __m256i down = _mm256_add_epi16(up, up);
  const __m256i c = _mm256_set1_epi64x((long long)cw);
  __m256i* m = reinterpret_cast<__m256i*>(master);
  const __m256i c0 = _mm256_and_si256(_mm256_shuffle_epi8(c, sel0), mask);
  const __m256i c1 = _mm256_and_si256(_mm256_shuffle_epi8(c, sel1), mask);
  __m256i x0 = _mm256_loadu_si256(m), x1 = _mm256_loadu_si256(m + 1);
  x0 = _mm256_add_epi16(_mm256_sub_epi16(x0, _mm256_cmpeq_epi16(c0, up)), _mm256_cmpeq_epi16(c0, down));
  x1 = _mm256_add_epi16(_mm256_sub_epi16(x1, _mm256_cmpeq_epi16(c1, up)), _mm256_cmpeq_epi16(c1, down));
  _mm256_storeu_si256(m, x0);
  _mm256_storeu_si256(m + 1, x1);
}

template <bool kClear>
__attribute__((target("avx2"))) void words_avx2(uint16_t* master, uint8_t* codes, int64_t w0, int64_t w1) {
  for (int64_t w = w0; w < w1; ++w) {
    uint64_t cw;
    std::memcpy(&cw, codes + 8 * w, 8);
    if (cw == 0) continue;
    word_avx2(master + 32 * w, cw);
    if (kClear) std::memset(codes + 8 * w, 0, 8);
  }
}

__attribute__((target("avx2"))) void packed_avx2(uint16_t* master, const uint32_t* bitmap, const uint64_t* packed,
                                                 int64_t next, int64_t w0, int64_t w1) {
  for (int64_t i = w0 / 32; 32 * i < w1; ++i) {
    uint32_t bits = bitmap[i];
    if (32 * i + 32 > w1) bits &= (1u << (w1 - 32 * i)) - 1u;
    for (; bits != 0; bits &= bits - 1) word_avx2(master + 32 * (32 * i + __builtin_ctz(bits)), packed[next++]);
  }
}
#endif

using WordsFn = void (*)(uint16_t*, uint8_t*, int64_t, int64_t);
using PackedFn = void (*)(uint16_t*, const uint32_t*, const uint64_t*, int64_t, int64_t, int64_t);

PackedFn packed_of(HostIsa isa) {
#if defined(__x86_64__)
  if (isa == HostIsa::Avx2 || isa == HostIsa::Avx512) return packed_avx2;
#endif
  (void)isa;
  return packed_scalar;
}

WordsFn words_of(HostIsa isa, bool clear) {
#if defined(__x86_64__)
  if (isa == HostIsa::Avx2 || isa == HostIsa::Avx512) return clear ? words_avx2<true> : words_avx2<false>;
#endif
  (void)isa;
  return clear ? words_scalar<true> : words_scalar<false>;
}

// The last n % 32 elements, element by element, from their code bytes.
void tail(uint16_t* master, int64_t n, uint8_t* bytes, bool clear) {
  const int64_t from = n / 32 * 32;
  for (int64_t j = 0; from + 4 * j < n; ++j) {
    const uint32_t byte = bytes[j];
    for (int e = 0; e < 4 && from + 4 * j + e < n; ++e) {
      const uint32_t c = (byte >> (2 * e)) & 3u;
      uint16_t& m = master[from + 4 * j + e];
      if (c == kDeltaUp) m = uint16_t(m + 1u);
      else if (c == kDeltaDown) m = uint16_t(m - 1u);
    }
    if (clear) bytes[j] = 0;
  }
}

// Note [Packed codes]: range by range (kPackTileWords words, each range's first packed word from
// the bitmap's counts), the nonzero words walked straight from the bitmap; the tail from its word.
void apply_packed(const ApplyDeltaArgs& a, PackedFn fn) {
  static_assert(kPackTileWords == kGrainWords, "one apply range is one packed tile");
  const int64_t W = pack_code_words(a.n), words = a.n / 32;
  const int64_t R = (W + kPackTileWords - 1) / kPackTileWords;
  std::vector<int64_t> offsets(size_t(R) + 1);
  packed_range_offsets(a.bitmap, a.n, a.packed_count, offsets.data(), "apply_delta_host");
  const auto* packed = reinterpret_cast<const uint64_t*>(a.codes);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, R, 1), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t b = r.begin(); b < r.end(); ++b) {
      const int64_t w0 = b * kPackTileWords, w1 = std::min(words, w0 + kPackTileWords);
      if (w1 > w0) fn(a.master, a.bitmap, packed, offsets[size_t(b)], w0, w1);
    }
  });
  if (W > words && ((a.bitmap[words / 32] >> (words % 32)) & 1u)) {  // the last, partial word: packed last
    uint64_t cw = packed[a.packed_count - 1];
    tail(a.master, a.n, reinterpret_cast<uint8_t*>(&cw), false);
  }
}

}  // namespace

void apply_delta_host(const ApplyDeltaArgs& a, HostIsa isa) {
  if (isa == HostIsa::Auto) isa = host_isa_auto();
  if (isa == HostIsa::Ref) return ref::apply_delta(a);
  ZOFF_CHECK(host_isa_supported(isa), "apply_delta_host: ", host_isa_name(isa),
             " requested but this CPU (or build) lacks it");
  check_apply_delta_args(a, "apply_delta_host");
  const int64_t words = a.n / 32;
  if (a.bitmap != nullptr) {
    apply_packed(a, packed_of(isa));
  } else {
    const WordsFn fn = words_of(isa, !a.keep_codes);
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, words, kGrainWords),
                      [&](const tbb::blocked_range<int64_t>& r) { fn(a.master, a.codes, r.begin(), r.end()); });
    tail(a.master, a.n, a.codes + 8 * words, !a.keep_codes);
  }
  std::atomic<int64_t> bad{a.entries};  // the first slot with an index outside [0, n)
  auto apply_list = [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const DeltaEntry e = a.list[s];
      if (int64_t(e.index) < a.n) {
        a.master[e.index] = e.bits;
        continue;
      }
      int64_t seen = bad.load(std::memory_order_relaxed);
      while (s < seen && !bad.compare_exchange_weak(seen, s, std::memory_order_relaxed)) {
      }
    }
  };
  if (a.entries <= kGrainEntries) apply_list(0, a.entries);
  else
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, a.entries, kGrainEntries),
                      [&](const tbb::blocked_range<int64_t>& r) { apply_list(r.begin(), r.end()); });
  if (const int64_t s = bad.load(); s < a.entries) fail_list_index(a, s, "apply_delta_host");
}

}  // namespace zoff::k
