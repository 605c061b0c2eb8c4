// Host apply of an fp8-site delta: bf16 master and fp8 copy kept current together (Note [fp8 at the GPU site]).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/fp8_site.h"
#include "kernels/host/zo_host.h"
#include "zoff/error.h"

namespace zoff::k {
namespace {

// Note [Host fp8-site apply]
// The portable word loop (words(); the vector walks of Note [Vector fp8-site apply] replace it
// where the CPU has AVX2). Like Note [Host apply_delta], the pass reads the codes a word (32
// elements) at a time and skips zero words; a nonzero word is walked by its set bits
// (count-trailing-zeros), so the cost is per changed element (the first, byte-by-byte version ran
// 5x slower than the bf16 apply). Each changed element also gets its fp8 byte recomputed with its
// row's scale; the byte is written only when it differs from the old master's byte (computed, not
// read: the fp8 copy's lines are then only touched where a byte changes, ~1/16 of the changed
// elements). Rows are found with a cursor that moves forward through the block (words are visited
// in order within a range). Exceptions (code 3) are left to the list (or the recompute). The walk
// branches per element, and each mispredicted branch also cancels the loads in flight, so master
// lines would arrive one DRAM latency at a time; the loop therefore prefetches the master line of
// the changed word kLiveAhead nonzero words ahead (from the list of nonzero words that pass (1) of
// Note [Vector fp8-site apply] makes for both walks; at first, kAhead words ahead). Re-packing is
// skipped where the byte cannot change (may_requant). Measured on the 2-core dev machine, 79 M
// elements with 1% changed and 0.16% exceptions (the H200 bench_step's rates): 53 ms byte by byte,
// 44 ms walking set bits, 25 ms with the prefetch, 18 ms with the may_requant filter and the list
// prefetch; the bf16 apply of the same codes takes 9-10 ms.
constexpr int64_t kGrainWords = 2048;
constexpr int64_t kAhead = 16;  // list entries to prefetch ahead
constexpr int kSub = 256;       // words per compaction pass of the vector walk (Note [Vector fp8-site apply])
constexpr int kLiveAhead = 16;  // nonzero words whose master line the walks prefetch ahead

struct RowCursor {
  const Fp8Copy& c;
  int64_t r = 0;
  int64_t at(int64_t i) {
    if (i >= c.row_start[r] && i < c.row_start[r + 1]) return r;
    if (r + 2 <= c.rows && i >= c.row_start[r + 1] && i < c.row_start[r + 2]) return ++r;  // the next row
    if (c.segs != nullptr) {  // a far jump (list entries): the segment, then a division
      int j = c.nsegs - 1;
      while (j > 0 && c.segs[j].offset > i) --j;
      r = c.segs[j].row0 + (i - c.segs[j].offset) / c.segs[j].cols;
      return r;
    }
    r = int64_t(std::upper_bound(c.row_start, c.row_start + c.rows + 1, i) - c.row_start) - 1;
    return r;
  }
};

int scale_exp(float s) { return int((f32_bits(s) >> 23) & 0xFFu) - 127; }

#if defined(__x86_64__)
// Note [Vector fp8-site apply]: one code word's 32 masters at once. The AVX2 word is words_avx2 of
// Note [Host apply_delta] (the word broadcast, vpshufb puts element e's code byte in its 16-bit
// lane, two compares give the up and down lanes); the AVX-512 word (BW) does all 32 lanes in one
// register, shifts each lane's code into place (vpsrlvw) and keeps the lanes in mask registers.
// Then the re-pack candidates of all 32 lanes: the fp8 mantissa before and after (fp8_m3), the
// lanes where it changes, a third as many as may_requant's low-bits filter passes (which the
// portable loop uses; dev machine, perf samples per bench iteration: the re-pack 61 -> 25, the
// whole apply 598 -> ~480), plus every changed lane whose exponent field is below e_floor. The
// word returns them (AVX2: bits 2j and 2j + 1 for element j; AVX-512: bit j); only they take the
// scalar re-pack.
//
// The walk around the word is branch-light, in three passes over kSub words: (1) the nonzero words
// listed with their positions (dense codes: appended without a branch; packed codes: from the
// bitmap's bits, CodeSource); (2) each listed word's exceptions counted, the vector word on it,
// prefetching the master line kLiveAhead listed words ahead, its candidate mask appended (again
// without a branch) where nonzero; (3) the scalar re-pack of the candidates. The earlier walk
// branched on every word (zero or not: 27% nonzero at the step's rates, so about one misprediction
// in three words) and on every nonzero word's candidates (1 in 5 nonzero), each misprediction also
// cancelling the master loads in flight; on the H200 host (Xeon, 2.1 GHz) it ran at 2.3 Gelem/s a
// core where the bf16 apply ran at 5.7. With this walk and the AVX-512 word: 3.26 Gelem/s on one
// core, 30.2 on 16 (bf16: 5.13 / 39.4; one OPT-13B block; docs/results.md session 10, call 2), and
// the 13B step went from 0.51-0.58 to 0.41-0.42 s. Without the master prefetch it loses a third
// (26.0 Gelem/s, call 3).
// fp8_m3 (below) for 16 AVX2 lanes.
__attribute__((target("avx2"))) inline __m256i fp8_m3_avx2(__m256i v) {
  const __m256i seven = _mm256_set1_epi16(7);
  const __m256i m = _mm256_and_si256(v, _mm256_set1_epi16(0x7F));
  const __m256i t =
      _mm256_add_epi16(_mm256_add_epi16(m, seven), _mm256_and_si256(_mm256_srli_epi16(m, 4), _mm256_set1_epi16(1)));
  return _mm256_min_epu16(_mm256_srli_epi16(t, 4), seven);
}

__attribute__((target("avx2"))) inline uint64_t word_avx2(uint16_t* m, uint64_t cw, int e_floor) {
  const __m256i sel0 = _mm256_setr_epi8(0, -128, 0, -128, 0, -128, 0, -128, 1, -128, 1, -128, 1, -128, 1, -128,  //
                                        2, -128, 2, -128, 2, -128, 2, -128, 3, -128, 3, -128, 3, -128, 3, -128);
  const __m256i sel1 = _mm256_add_epi16(sel0, _mm256_set1_epi16(4));
  const __m256i lane = _mm256_setr_epi16(3, 12, 48, 192, 3, 12, 48, 192, 3, 12, 48, 192, 3, 12, 48, 192);
  const __m256i upc = _mm256_setr_epi16(1, 4, 16, 64, 1, 4, 16, 64, 1, 4, 16, 64, 1, 4, 16, 64);
  const __m256i downc = _mm256_add_epi16(upc, upc);
  const __m256i c = _mm256_set1_epi64x((long long)cw);
  const __m256i ef = _mm256_set1_epi16(short(e_floor));
  uint64_t out = 0;
  for (int h = 0; h < 2; ++h) {
    const __m256i ci = _mm256_and_si256(_mm256_shuffle_epi8(c, h ? sel1 : sel0), lane);
    const __m256i up = _mm256_cmpeq_epi16(ci, upc), down = _mm256_cmpeq_epi16(ci, downc);
    __m256i* p = reinterpret_cast<__m256i*>(m + 16 * h);
    const __m256i old = _mm256_loadu_si256(p);
    const __m256i n = _mm256_add_epi16(_mm256_sub_epi16(old, up), down);
    _mm256_storeu_si256(p, n);
    const __m256i moved = _mm256_or_si256(up, down);
    // Exact candidates, as the AVX-512 word: lanes whose fp8 mantissa changes (andnot: not equal).
    const __m256i changed = _mm256_andnot_si256(_mm256_cmpeq_epi16(fp8_m3_avx2(n), fp8_m3_avx2(old)), moved);
    const __m256i ex = _mm256_and_si256(_mm256_srli_epi16(n, 7), _mm256_set1_epi16(0xFF));
    const __m256i small = _mm256_and_si256(moved, _mm256_cmpgt_epi16(ef, ex));
    out |= uint64_t(uint32_t(_mm256_movemask_epi8(_mm256_or_si256(changed, small)))) << (32 * h);
  }
  return out;
}

// The 3-bit fp8 mantissa of bf16 lanes v, as e4m3_exact_bits rounds it: min(7, (m7 + 7 + bit 4 of
// m7) >> 4) of the 7-bit mantissa m7.
__attribute__((target("avx512f,avx512bw"))) inline __m512i fp8_m3(__m512i v) {
  const __m512i seven = _mm512_set1_epi16(7);
  const __m512i m = _mm512_and_si512(v, _mm512_set1_epi16(0x7F));
  const __m512i t =
      _mm512_add_epi16(_mm512_add_epi16(m, seven), _mm512_and_si512(_mm512_srli_epi16(m, 4), _mm512_set1_epi16(1)));
  return _mm512_min_epu16(_mm512_srli_epi16(t, 4), seven);
}

// AVX-512 (F + BW) word of Note [Vector fp8-site apply]: bit j of the result is element j.
__attribute__((target("avx512f,avx512bw"))) inline uint64_t word_avx512(uint16_t* m, uint64_t cw, int e_floor) {
  alignas(64) static constexpr uint8_t kSel[64] = {
      0, 0x80, 0, 0x80, 0, 0x80, 0, 0x80, 1, 0x80, 1, 0x80, 1, 0x80, 1, 0x80,   // elements 0-7
      2, 0x80, 2, 0x80, 2, 0x80, 2, 0x80, 3, 0x80, 3, 0x80, 3, 0x80, 3, 0x80,   // 8-15
      4, 0x80, 4, 0x80, 4, 0x80, 4, 0x80, 5, 0x80, 5, 0x80, 5, 0x80, 5, 0x80,   // 16-23
      6, 0x80, 6, 0x80, 6, 0x80, 6, 0x80, 7, 0x80, 7, 0x80, 7, 0x80, 7, 0x80};  // 24-31
  alignas(64) static constexpr uint16_t kShiftBy[32] = {0, 2, 4, 6, 0, 2, 4, 6, 0, 2, 4, 6, 0, 2, 4, 6,
                                                        0, 2, 4, 6, 0, 2, 4, 6, 0, 2, 4, 6, 0, 2, 4, 6};
  const __m512i one = _mm512_set1_epi16(1);
  const __m512i code = _mm512_and_si512(
      _mm512_srlv_epi16(_mm512_shuffle_epi8(_mm512_set1_epi64((long long)cw), _mm512_load_si512(kSel)),
                        _mm512_load_si512(kShiftBy)),
      _mm512_set1_epi16(3));
  const __mmask32 up = _mm512_cmpeq_epi16_mask(code, one);
  const __mmask32 down = _mm512_cmpeq_epi16_mask(code, _mm512_set1_epi16(2));
  __m512i x = _mm512_loadu_si512(m);
  x = _mm512_mask_add_epi16(x, up, x, one);
  x = _mm512_mask_sub_epi16(x, down, x, one);
  _mm512_storeu_si512(m, x);
  // Exact candidates (Note [Vector fp8-site apply]): the byte of a normal fp8 value is the sign,
  // the binade and fp8_m3 of the mantissa (round to nearest even, kept in the binade), so a step
  // of one changes it only where m3 changes (about 1 step in 16; may_requant passes 3 in 16). A
  // step that changes the binade wraps the mantissa between 127 and 0, which moves m3 between 7
  // and 0, so m3 alone sees it.
  const __m512i old = _mm512_mask_add_epi16(_mm512_mask_sub_epi16(x, up, x, one), down, x, one);
  const __m512i ex = _mm512_and_si512(_mm512_srli_epi16(x, 7), _mm512_set1_epi16(0xFF));
  const __mmask32 moved = up | down;
  const __mmask32 changed = _mm512_mask_cmpneq_epi16_mask(moved, fp8_m3(x), fp8_m3(old));
  const __mmask32 small = _mm512_mask_cmplt_epi16_mask(moved, ex, _mm512_set1_epi16(short(e_floor)));
  return uint64_t(uint32_t(changed | small));
}

// Pass (2) of Note [Vector fp8-site apply] over the nl nonzero words that pass (1)
// (CodeSource::live) listed, word live[j] being lcw[j]: their code-3 lanes added to *exc, the
// vector word on each, prefetching kLiveAhead listed words ahead; the listed positions j of words
// with candidates are appended to cand / cmask without a branch. Returns their number. Built for
// the vector target (popcnt included: the portable build calls libgcc for it), once per pass.
#define ZOFF_FP8_LIVE_PASS(NAME, TARGET, WORD, MASK)                                                        \
  __attribute__((target(TARGET))) int NAME(uint16_t* master, const uint8_t* q, const uint32_t* live,        \
                                           const uint64_t* lcw, int nl, int e_floor, int64_t* exc,          \
                                           uint32_t* cand, uint64_t* cmask) {                                \
    int nc = 0;                                                                                             \
    int64_t x = 0;                                                                                          \
    for (int j = 0; j < nl; ++j) {                                                                          \
      if (j + kLiveAhead < nl) __builtin_prefetch(master + 32 * int64_t(live[j + kLiveAhead]), 1);          \
      const uint64_t cw = lcw[j];                                                                           \
      x += __builtin_popcountll(cw & (cw >> 1) & 0x5555555555555555ull);                                    \
      const uint64_t mm = WORD(master + 32 * int64_t(live[j]), cw, e_floor) & (MASK);                      \
      __builtin_prefetch(q + (mm != 0 ? 32 * int64_t(live[j]) : 0), 1); /* the re-pack's fp8 line */       \
      cand[nc] = uint32_t(j);                                                                               \
      cmask[nc] = mm;                                                                                       \
      nc += mm != 0;                                                                                        \
    }                                                                                                       \
    *exc += x;                                                                                              \
    return nc;                                                                                              \
  }
ZOFF_FP8_LIVE_PASS(live_pass_avx2, "avx2,popcnt", word_avx2, 0x5555555555555555ull)
ZOFF_FP8_LIVE_PASS(live_pass_avx512, "avx512f,avx512bw,popcnt", word_avx512, ~0ull)
#undef ZOFF_FP8_LIVE_PASS

// The vector words for Applier::walk: kShift turns a result bit into an element.
struct WordAvx2 {
  static constexpr int kShift = 1;
  static constexpr auto pass = live_pass_avx2;
};
struct WordAvx512 {
  static constexpr int kShift = 0;
  static constexpr auto pass = live_pass_avx512;
};
#endif

// Pass (1) of Note [Vector fp8-site apply] (and the portable walk's): the nonzero code words of
// [w0, w1) (at most kSub words) listed in order, positions in live and words in lcw; returns their
// number. Dense codes (word w at dense + 8 w): every word read, listed without a branch. Packed
// codes (Note [Packed codes]; w0 a multiple of 32): the set bits of the bitmap, the words taken
// in order from packed[next], so zero words cost a bit and no scratch is needed.
struct CodeSource {
  const uint8_t* dense = nullptr;
  const uint32_t* bitmap = nullptr;
  const uint64_t* packed = nullptr;
  int64_t next = 0;
  int live(int64_t w0, int64_t w1, uint32_t* live, uint64_t* lcw) {
    int nl = 0;
    if (bitmap == nullptr) {
      for (int64_t w = w0; w < w1; ++w) {
        uint64_t cw;
        std::memcpy(&cw, dense + 8 * w, 8);
        live[nl] = uint32_t(w);
        lcw[nl] = cw;
        nl += cw != 0;
      }
      return nl;
    }
    for (int64_t i = w0 / 32; 32 * i < w1; ++i) {
      uint32_t bits = bitmap[i];
      if (32 * i + 32 > w1) bits &= (1u << (w1 - 32 * i)) - 1u;
      for (; bits != 0; bits &= bits - 1) {
        live[nl] = uint32_t(32 * i + __builtin_ctz(bits));
        lcw[nl++] = packed[next++];
      }
    }
    return nl;
  }
};

struct Applier {
  const ApplyFp8DeltaArgs& a;
  std::mutex mu;
  std::vector<int64_t> grow;  // rows whose range an element outgrew

  // Whether a change old -> new can change the fp8 byte (else requant is skipped). For a normal
  // fp8 result the byte is the sign, the binade and the 7-bit mantissa m rounded to 3 bits, to
  // nearest even: (m + 7 + bit 4) >> 4. A step of one between x and x + 1 changes that only when
  // x's low 4 bits are 7 (to 8, with bit 4 odd), 8 (to 9) or 15 (a carry into bit 4, or into the
  // exponent: a new binade, possibly past the row's range). Elements whose fp8 value may be
  // subnormal (bf16 exponent field below e_floor: the largest row scale 2^kmax times 2^-6) are
  // always re-packed.
  int e_floor = 0;
  std::atomic<int64_t> exc_seen{0};  // code-3 lanes in the codes (checked against the count)
  bool may_requant(uint16_t old_bits, uint16_t new_bits) const {
    const uint32_t lo = uint32_t(std::min(old_bits, new_bits)) & 0xFu;
    return lo == 7u || lo == 8u || lo == 15u || int((old_bits >> 7) & 0xFFu) < e_floor;
  }

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

  static int64_t exceptions_in(uint64_t cw) { return __builtin_popcountll(cw & (cw >> 1) & 0x5555555555555555ull); }

  // One changed element i with code c (1 up, 2 down, 3 exception); returns 1 if recomputed.
  int element(RowCursor& rc, int64_t& p, int64_t i, uint32_t c, bool recompute_exc) {
    const uint16_t old = a.master[i];
    uint16_t nw;
    int rec = 0;
    if (c == kDeltaUp) nw = uint16_t(old + 1u);
    else if (c == kDeltaDown) nw = uint16_t(old - 1u);
    else if (recompute_exc) nw = recompute(i, p), rec = 1;
    else return 0;  // the list's
    a.master[i] = nw;
    if (nw != old && (rec || may_requant(old, nw))) requant(rc, i, old, nw);  // a recomputed one may jump
    return rec;
  }

  // Code words [w0, w1) (32 elements each, inside the block); returns the exceptions recomputed.
  // A nonzero word is walked by its set bits, so only changed elements cost anything; the master
  // line of the nonzero word kLiveAhead listed words ahead is prefetched (Note [Host fp8-site apply]).
  int64_t words(CodeSource& src, int64_t w0, int64_t w1, bool recompute_exc) {
    RowCursor rc{a.copy};
    int64_t p = -1, recomputed = 0, exc = 0;
    uint32_t live[kSub];
    uint64_t lcw[kSub];
    for (int64_t s = w0; s < w1; s += kSub) {
      const int nl = src.live(s, std::min<int64_t>(w1, s + kSub), live, lcw);
      for (int j = 0; j < nl; ++j) {
        if (j + kLiveAhead < nl) __builtin_prefetch(a.master + 32 * int64_t(live[j + kLiveAhead]), 1);
        uint64_t cw = lcw[j];
        const int64_t w = live[j];
        exc += exceptions_in(cw);
        while (cw != 0) {
          const int e = __builtin_ctzll(cw) >> 1;
          const uint32_t c = uint32_t(cw >> (2 * e)) & 3u;
          cw &= ~(uint64_t(3) << (2 * e));
          recomputed += element(rc, p, 32 * w + e, c, recompute_exc);
        }
      }
    }
    exc_seen += exc;
    return recomputed;
  }

  // words() with a vector word, walked branch-light (Note [Vector fp8-site apply]). Exceptions are
  // left to the list or, when recomputing, walked after the vector update of their pass.
#if defined(__x86_64__)
  template <class Word>
  int64_t walk(CodeSource& src, int64_t w0, int64_t w1, bool recompute_exc) {
    RowCursor rc{a.copy};
    int64_t p = -1, recomputed = 0, exc = 0;
    uint32_t live[kSub], cand[kSub];
    uint64_t lcw[kSub], cmask[kSub];
    for (int64_t s = w0; s < w1; s += kSub) {
      const int nl = src.live(s, std::min<int64_t>(w1, s + kSub), live, lcw);               // (1)
      const int nc = Word::pass(a.master, a.copy.q, live, lcw, nl, e_floor, &exc, cand, cmask);  // (2)
      for (int k = 0; k < nc; ++k) {  // (3) the re-pack of the candidates
        const int64_t w = live[cand[k]];
        const uint64_t cw = lcw[cand[k]];
        const uint16_t* m = a.master + 32 * w;
        for (uint64_t mm = cmask[k]; mm != 0; mm &= mm - 1) {
          const int j = __builtin_ctzll(mm) >> Word::kShift;
          const uint16_t nw = m[j];
          const uint16_t old = ((cw >> (2 * j)) & 3u) == kDeltaUp ? uint16_t(nw - 1u) : uint16_t(nw + 1u);
          requant(rc, 32 * w + j, old, nw);
        }
      }
      if (recompute_exc) {
        for (int j = 0; j < nl; ++j) {
          const uint64_t cw = lcw[j];
          for (uint64_t x = cw & (cw >> 1) & 0x5555555555555555ull; x != 0; x &= x - 1)  // code-3 lanes
            recomputed += element(rc, p, 32 * int64_t(live[j]) + (__builtin_ctzll(x) >> 1), 3u, true);
        }
      }
    }
    exc_seen += exc;
    return recomputed;
  }
#endif

  // List entries list[order[s]] for s in [s0, s1) (one range's, Note [Exceptions by range]): the
  // master line is usually cached (the word pass loaded it: a code-3 lane makes its word nonzero);
  // the entry and its fp8 line are fetched kAhead entries ahead.
  void entries(const uint32_t* order, int64_t s0, int64_t s1) {
    RowCursor rc{a.copy};
    for (int64_t s = s0; s < s1; ++s) {
      if (s + kAhead < s1) {
        const Fp8Entry& f = a.list[order[s + kAhead]];
        __builtin_prefetch(&f, 0);
        if (s + kAhead / 2 < s1) __builtin_prefetch(a.copy.q + a.list[order[s + kAhead / 2]].index, 1);
      }
      const Fp8Entry e = a.list[order[s]];
      const int64_t i = e.index;
      const uint16_t old = a.master[i];
      const uint16_t nw = bf16_add_sr(old, e.acc, e.r16 & 0xFFFFu);
      a.master[i] = nw;
      if (nw != old) requant(rc, i, old, nw);
    }
  }

  // The list in the device's order, after the word pass (ApplyFp8DeltaArgs::list_by_range false):
  // each entry's master and fp8 lines are fetched kAhead entries ahead.
  void entries_in_list_order() {
    std::atomic<int64_t> bad{-1};
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, a.count, 8192), [&](const tbb::blocked_range<int64_t>& r) {
      RowCursor rc{a.copy};
      for (int64_t s = r.begin(); s < r.end(); ++s) {
        if (s + kAhead < r.end()) {
          const uint32_t j = a.list[s + kAhead].index;
          if (j < a.n) __builtin_prefetch(a.master + j, 1), __builtin_prefetch(a.copy.q + j, 1);
        }
        const Fp8Entry e = a.list[s];
        const int64_t i = e.index;
        if (i >= a.n) {
          bad = s;
          continue;
        }
        const uint16_t old = a.master[i];
        const uint16_t nw = bf16_add_sr(old, e.acc, e.r16 & 0xFFFFu);
        a.master[i] = nw;
        if (nw != old) requant(rc, i, old, nw);
      }
    });
    ZOFF_CHECK(bad.load() < 0, "apply_fp8_delta: list entry ", bad.load(), " names element ", a.list[bad.load()].index,
               ", which is outside the block (", a.n, " elements)");
  }

  // The last (n % 32) elements, from their (partial) code word cw.
  int64_t tail(uint64_t cw, bool recompute_exc) {
    RowCursor rc{a.copy};
    int64_t p = -1, recomputed = 0;
    const int64_t from = a.n / 32 * 32;
    for (int64_t i = from; i < a.n; ++i) {
      const uint32_t c = uint32_t(cw >> (2 * (i - from))) & 3u;
      if (c == kDeltaException) ++exc_seen;
      if (c != 0) recomputed += element(rc, p, i, c, recompute_exc);
    }
    return recomputed;
  }
};

// Note [Exceptions by range]
// The device appends list entries in no particular order, so applying them one by one after the
// word pass fetched a master line and an fp8 line from anywhere in the block per entry (on the
// H200 host that was ~40 ms of a 0.41 s OPT-13B step: 19 M entries). Instead the entries are
// counting-sorted (slot numbers only, 4 bytes each) by the word range (kGrainWords words) that
// holds their element, and each range's entries are applied right after its word pass, while its
// masters are cached. Entries naming an element outside the block are refused here, before
// anything is written. The buffers are the caller's (ApplyFp8DeltaArgs::scratch: DeltaBuffers
// keeps one, so a step allocates nothing), else made per call.
// Measured on the H200 (OPT-13B stream-fp8 steps, same-call A/B against ZOFF_FP8_LIST=device,
// docs/results.md session 10): 0.424 / 0.438 s against 0.467 / 0.475 on a slow-host call (with
// an older, serial position pass), 0.408 / 0.410 against 0.400 / 0.395 on a fast-host call; 14 ms
// better on average and far less sensitive to the host's state, so it is the default. The
// bench then shuffled the whole list, which favours the device order (39.1 against 36.2
// Gelem/s); the device appends roughly in element order, as the bench now does.
void bucket_list(const ApplyFp8DeltaArgs& a, int64_t nb, Fp8ApplyScratch& lb) {
  const int64_t count = a.count, per = 32 * kGrainWords;  // elements per range
  const int64_t chunks = std::clamp<int64_t>(count / 16384, 1, 64);
  lb.hist.assign(size_t(chunks * nb), 0);
  lb.order.resize(size_t(count));
  lb.start.assign(size_t(nb) + 1, 0);
  std::atomic<int64_t> bad{count};  // the first slot naming an element outside the block
  auto chunk_range = [&](int64_t c) { return std::make_pair(count * c / chunks, count * (c + 1) / chunks); };
  tbb::parallel_for(int64_t(0), chunks, [&](int64_t c) {
    int64_t* h = lb.hist.data() + c * nb;
    const auto [s0, s1] = chunk_range(c);
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t i = a.list[s].index;
      if (i >= a.n) {
        int64_t seen = bad.load();
        while (s < seen && !bad.compare_exchange_weak(seen, s)) {
        }
        continue;
      }
      ++h[std::min(i / per, nb - 1)];  // the tail's elements go with the last range
    }
  });
  ZOFF_CHECK(bad.load() == count, "apply_fp8_delta: list entry ", bad.load(), " names element ",
             bad.load() < count ? a.list[bad.load()].index : 0u, ", which is outside the block (", a.n, " elements)");
  // Write positions: range b's entries start after all earlier ranges', chunk by chunk. Both
  // passes walk hist chunk-major over a contiguous span of ranges (a serial range-major pass read
  // it with a stride of nb and took ~1 ms per 13B block on the H200 host).
  constexpr int64_t kRangesPerTask = 512;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, nb, kRangesPerTask), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t c = 0; c < chunks; ++c)
      for (int64_t b = r.begin(); b < r.end(); ++b) lb.start[size_t(b) + 1] += lb.hist[size_t(c * nb + b)];
  });
  for (int64_t b = 0; b < nb; ++b) lb.start[size_t(b) + 1] += lb.start[size_t(b)];
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, nb, kRangesPerTask), [&](const tbb::blocked_range<int64_t>& r) {
    int64_t pos[kRangesPerTask];
    for (int64_t b = r.begin(); b < r.end(); ++b) pos[b - r.begin()] = lb.start[size_t(b)];
    for (int64_t c = 0; c < chunks; ++c)
      for (int64_t b = r.begin(); b < r.end(); ++b) {
        int64_t& h = lb.hist[size_t(c * nb + b)];
        const int64_t k = h;
        h = pos[b - r.begin()];
        pos[b - r.begin()] += k;
      }
  }, tbb::simple_partitioner());  // ranges of at most kRangesPerTask (pos)
  tbb::parallel_for(int64_t(0), chunks, [&](int64_t c) {
    int64_t* h = lb.hist.data() + c * nb;
    const auto [s0, s1] = chunk_range(c);
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t b = std::min<int64_t>(a.list[s].index / per, nb - 1);
      lb.order[size_t(h[b]++)] = uint32_t(s);
    }
  });
}

}  // namespace

bool fp8_word_path_supported(Fp8WordPath p) {
#if defined(__x86_64__)
  if (p == Fp8WordPath::Avx512) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  if (p == Fp8WordPath::Avx2) return __builtin_cpu_supports("avx2");
#endif
  return p == Fp8WordPath::Portable || p == Fp8WordPath::Auto;
}

// Auto follows host_isa_auto() (so ZOFF_HOST_ISA=avx2 or scalar narrows it too); AVX-512 needs BW.
Fp8WordPath fp8_word_path(Fp8WordPath p) {
  if (p != Fp8WordPath::Auto) {
    ZOFF_CHECK(fp8_word_path_supported(p), "apply_fp8_delta: word path ", int(p), " requested but this CPU lacks it");
    return p;
  }
  const HostIsa isa = host_isa_auto();
  if (isa == HostIsa::Avx512 && fp8_word_path_supported(Fp8WordPath::Avx512)) return Fp8WordPath::Avx512;
  if ((isa == HostIsa::Avx512 || isa == HostIsa::Avx2) && fp8_word_path_supported(Fp8WordPath::Avx2))
    return Fp8WordPath::Avx2;
  return Fp8WordPath::Portable;
}

ApplyFp8Result apply_fp8_delta_host(const ApplyFp8DeltaArgs& a) {
  ZOFF_CHECK(a.n >= 0 && a.count >= 0 && a.capacity >= 0, "apply_fp8_delta: bad sizes");
  ZOFF_CHECK(a.copy.rows >= 1 && a.copy.row_start[0] == 0 && a.copy.row_start[a.copy.rows] == a.n,
             "apply_fp8_delta: the fp8 copy's rows do not cover the block");
  const bool recompute = a.count > a.capacity;
  ZOFF_CHECK(!recompute || a.recompute != nullptr, "apply_fp8_delta: ", a.count,
             " exceptions overflowed a list of ", a.capacity, " and no recompute information was given");
  Applier ap{a, {}, {}, 0, {0}};
  int kmax = -126;
  for (int64_t r = 0; r < a.copy.rows; ++r) kmax = std::max(kmax, scale_exp(a.copy.scales[r]));
  ap.e_floor = kmax + 127 - 6;
  ApplyFp8Result res;
  res.exceptions = a.count;
  const int64_t nwords = a.n / 32;
  const int64_t nb = std::max<int64_t>(1, (nwords + kGrainWords - 1) / kGrainWords);  // word ranges
  const bool by_range = !recompute && a.list_by_range;
  Fp8ApplyScratch local;
  Fp8ApplyScratch& lb = a.scratch != nullptr ? *a.scratch : local;
  if (by_range) bucket_list(a, nb, lb);
  std::atomic<int64_t> recomputed{0};
  const Fp8WordPath path = fp8_word_path(a.path);
  // Note [Packed codes] (kernels/delta.h): each range finds its first packed word from the bitmap.
  static_assert(kPackTileWords == kGrainWords, "one apply range is one packed tile");
  static_assert(kSub % 32 == 0, "a packed pass (1) starts on a bitmap word");
  const auto* packed = reinterpret_cast<const uint64_t*>(a.codes);
  if (a.bitmap != nullptr) {
    lb.packed.resize(size_t(pack_code_words(a.n) + kGrainWords - 1) / kGrainWords + 1);
    packed_range_offsets(a.bitmap, a.n, a.packed_count, lb.packed.data(), "apply_fp8_delta");
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, nb, 1), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t b = r.begin(); b < r.end(); ++b) {
      const int64_t w0 = b * kGrainWords, w1 = std::min(nwords, w0 + kGrainWords);
      CodeSource src{a.codes, nullptr, nullptr, 0};
      if (a.bitmap != nullptr) src = CodeSource{nullptr, a.bitmap, packed, lb.packed[size_t(b)]};
      int64_t n = 0;
#if defined(__x86_64__)
      if (path == Fp8WordPath::Avx512) n = ap.walk<WordAvx512>(src, w0, w1, recompute);
      else if (path == Fp8WordPath::Avx2) n = ap.walk<WordAvx2>(src, w0, w1, recompute);
      else
#endif
        n = ap.words(src, w0, w1, recompute);
      if (n) recomputed += n;
      if (by_range) ap.entries(lb.order.data(), lb.start[size_t(b)], lb.start[size_t(b) + 1]);
    }
  });
  if (a.n % 32 != 0) {  // the last, partial code word
    uint64_t cw = 0;
    if (a.bitmap == nullptr) std::memcpy(&cw, a.codes + 8 * nwords, size_t((a.n + 3) / 4 - 8 * nwords));
    else if ((a.bitmap[nwords / 32] >> (nwords % 32)) & 1u) cw = packed[a.packed_count - 1];  // the last word packed
    recomputed += ap.tail(cw, recompute);
  }
  res.recomputed = recomputed.load();
  ZOFF_CHECK(ap.exc_seen.load() == a.count, "apply_fp8_delta: the codes mark ", ap.exc_seen.load(),
             " exceptions but the device counted ", a.count, " (codes and list do not belong together)");
  if (!recompute && !by_range) ap.entries_in_list_order();
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

std::vector<Fp8RowSegment> fp8_row_segments(const int64_t* row_start, int64_t rows) {
  std::vector<Fp8RowSegment> out;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t len = row_start[r + 1] - row_start[r];
    if (out.empty() || out.back().cols != len ||
        out.back().offset + (r - out.back().row0) * out.back().cols != row_start[r])
      out.push_back(Fp8RowSegment{row_start[r], r, len});
  }
  return out;
}

}  // namespace zoff::k
