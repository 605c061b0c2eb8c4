// fp8 transfers at the GPU update site: exponent-exact packing, the update kernel and the host apply (Note [fp8 at the GPU site]).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/delta.h"
#include "kernels/ref/scalar.h"
#include "kernels/zo_kernels.h"
#include "zoff/error.h"

typedef struct CUstream_st* cudaStream_t;

namespace zoff::k {

// Note [fp8 at the GPU site]
// With fp8 transfers the host used to update every bf16 master itself (Philox Gaussian and
// stochastic rounding for every element, then a re-pack): ~3.7 core-ns per element, 3 s per
// OPT-13B step on 16 cores (docs/results.md). Here the GPU decides the update instead, from the
// fp8 copy it receives, and sends back the delta codes of Note [Delta write-back]; the host only
// applies them. That needs the GPU to know, for every element, what the bf16 stochastic rounding
// of Note [Stochastic rounding] does to the master theta, without knowing theta:
//   x = theta + acc (fp32, acc = sum_k coeff_k z_k), new = bf16 bits of x rounded up iff r16 < low16(x).
// For |acc| below one bf16 step, low16(x) depends only on theta's sign and exponent e, and on
// whether theta's 7-bit mantissa is zero (x then falls into the binade below, where fp32 steps are
// half as large): with t = |acc| * 2^(23 - e) and m = rint(t) (ties to even, as fp32 addition
// rounds), x = theta + m fp32 steps, so
//   magnitude up   (acc has theta's sign):  Up   iff r16 < m;
//   magnitude down, mantissa != 0:          Down iff r16 >= 2^16 - m;
//   magnitude down, mantissa == 0:          Down iff r16 >= 2^16 - m2,  m2 = rint(2t).
// The fp8 copy carries what this needs when it is packed exponent-exactly (pack_fp8_exact):
//   - the row scale is a power of two, 2^k;
//   - q keeps theta / 2^k in its own binade: rounding to nearest even, except that a value that
//     would round up into the next binade keeps mantissa 111 (110 in the top binade: 0x7F is NaN),
//     and values below e4m3's smallest normal stay subnormal. The error is at most 2^-4 relative
//     (as round-to-nearest) and the bias is negligible (1/16 of each binade rounds down by up to
//     one fp8 step instead of up).
// Then a normal q gives theta's sign and e = E_q - 7 + k exactly, and a nonzero q mantissa proves
// that theta's mantissa is nonzero. When q's mantissa is zero the two scenarios are evaluated and
// agree except for r16 in [2^16 - m2, 2^16 - m). Whatever the GPU cannot decide (subnormal or zero
// q, |acc| of a bf16 step or more, the disagreeing window) is an exception: code 3 plus an entry
// {index, r16, acc}, from which the host computes the rounding exactly, with theta in hand. The
// master thus ends bit for bit where zo_update with the same terms and sr_seed would leave it
// (tests: Fp8Site.*). Preconditions: bf16 master, stochastic rounding, no weight decay, one pass
// (nterms <= kMaxTerms).
// The forward weight the GPU builds is w = dequant(q) + acc (rounded to w's dtype): the fp8
// weight the block travelled as, plus this step's update.
// An entry past the list's capacity is counted but not stored; the host then recomputes every
// exception of that block from the update's seeds (Fp8Recompute), slower but exact.
// The host apply also keeps the fp8 copy current: each changed element is re-packed with its row's
// scale (fp8 bytes are written only where they change); an element that outgrows its row's range
// (|theta| / 2^k >= 512) makes the whole row re-packed with a new scale. All-zero rows are packed
// with the smallest scale, 2^-126, so that their first nonzero value re-packs them (session 9:
// dummy weights' zero biases under scale 1 kept every later bias value at fp8 zero, and their
// scale 2^0 made the block's largest scale, which disabled the apply's re-pack filter).

struct Fp8Entry {
  uint32_t index;   // element index in the list's index space (index_base + i)
  uint32_t r16;     // the stochastic rounding bits
  float acc;        // sum_k coeff_k z_k, in fp32 as the update formed it
  uint32_t reserved;
};
static_assert(sizeof(Fp8Entry) == 16, "Fp8Entry is one 16-byte store");

// The e4m3 bits of v (= theta / 2^k) packed exponent-exactly (Note [fp8 at the GPU site]):
// |v| < 512 and finite, else 0x7F | sign (the caller re-scales first).
ZOFF_HD uint8_t e4m3_exact_bits(float v) {
  const uint32_t u = f32_bits(v);
  const uint8_t s = uint8_t((u >> 24) & 0x80u);
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a >= 0x44000000u) return uint8_t(s | 0x7Fu);  // >= 512, inf, NaN
  if (a >= 0x3C800000u) {                             // >= 2^-6: normal, keep the binade
    const uint32_t e = (a >> 23) - 120u;              // e4m3 exponent field, 1..15
    uint32_t m = ((a & 0x7FFFFFu) + 0x7FFFFu + ((a >> 20) & 1u)) >> 20;
    if (m > 7u) m = 7u;
    if (e == 15u && m == 7u) m = 6u;
    return uint8_t(s | (e << 3) | m);
  }
  const uint8_t q = f32_to_e4m3_bits_rne(v);  // subnormal range: stay below 2^-6
  return (q & 0x7Fu) > 7u ? uint8_t(s | 7u) : q;
}

// The power-of-two scale exponent k of a row whose largest magnitude is amax: the smallest k with
// amax / 2^k <= 448 (0 for an all-zero row).
inline int fp8_exact_scale_exp(float amax) {
  if (!(amax > 0.0f)) return 0;
  int k = int(std::ceil(std::log2(double(amax) / 448.0)));
  while (std::ldexp(double(amax), -k) > 448.0) ++k;
  while (std::ldexp(double(amax), -(k - 1)) <= 448.0) --k;
  return k;
}

// 2^k as a float (-126 <= k <= 127).
ZOFF_HD float pow2f(int k) { return bits_f32(uint32_t(k + 127) << 23); }

// The update's decision for one element (Note [fp8 at the GPU site]): kDeltaSame/Up/Down, or
// kDeltaException when the GPU cannot tell. Written as selects, not early returns: the GPU kernel
// runs it for 8 elements per thread, and the returns' divergence cost more than computing every
// case (session 12: 17 branch instructions per element, 84% branch efficiency). Same results as
// the branching form (tests/kernels/test_fp8_site.cpp keeps it as the oracle).
ZOFF_HD uint32_t fp8_site_code(uint32_t q, int k, float acc, uint32_t r16) {
  const uint32_t au = f32_bits(acc), aa = au & 0x7FFFFFFFu;
  const uint32_t E = (q >> 3) & 15u, M = q & 7u;
  const int e = int(E) - 7 + k;
  bool exc = E == 0 || (q & 0x7Fu) == 0x7Fu || e < -100 || e > 100 || (au & 0x7F800000u) == 0x7F800000u;
  const float t = mul_rn(bits_f32(aa), pow2f(23 - (exc ? 0 : e)));  // exact: a power of two
  exc = exc || !(t < 65535.5f);                                         // m >= 2^16: a whole step or more
  const float tc = exc ? 0.0f : t;
  const uint32_t m = uint32_t(rintf(tc));
  const float t2 = mul_rn(tc, 2.0f);
  const bool exc2 = !(t2 < 65535.5f);
  const uint32_t m2 = uint32_t(rintf(exc2 ? 0.0f : t2));
  const bool up = r16 < m;                                  // same sign: magnitude up
  const bool dn = m > 0 && r16 >= 65536u - m;               // opposite sign: down
  const bool df = m2 > 0 && r16 >= 65536u - m2;             // down, if theta's mantissa were zero
  const uint32_t down = dn ? kDeltaDown : kDeltaSame;
  const uint32_t opp = M != 0 ? down : (exc2 || dn != df) ? kDeltaException : down;
  const uint32_t c = ((au ^ (q << 24)) & 0x80000000u) == 0 ? (up ? kDeltaUp : kDeltaSame) : opp;
  return aa == 0 ? kDeltaSame : exc ? kDeltaException : c;  // theta + -0 / +0 is theta
}

// What the delta of an fp8-site update writes (device-usable pointers; like DeltaOut).
struct Fp8DeltaOut {
  uint8_t* codes;              // code byte of element 0 (its index a multiple of 4)
  Fp8Entry* list;              // `capacity` entries
  int64_t capacity;
  unsigned long long* count;   // exceptions so far (including those past capacity)
  int64_t index_base;          // list index of element 0 (a multiple of 8)
};

// The fp8-site update of one parameter (Note [fp8 at the GPU site]).
struct Fp8UpdateArgs {
  const uint8_t* q;          // n e4m3 bytes, packed exponent-exactly
  const float* row_scales;   // one power of two per row of row_len elements
  int64_t row_len;
  void* w;                   // n outputs: dequant(q) + acc, rounded to nearest in w_elem
  Elem w_elem;               // BF16, F16 or F32
  int64_t n;
  uint64_t pid;
  Dist dist;
  const ZTerm* terms;        // host array, 1 <= nterms <= kMaxTerms
  int nterms;
  uint64_t sr_seed;          // != 0 (the update rounds stochastically)
  int64_t first = 0;         // index of element 0 within the parameter; a multiple of 8
  Fp8DeltaOut delta{};
};

// What zo_update_fp8 (CUDA and reference) requires of its arguments; zoff::Error otherwise.
inline void check_fp8_update_args(const Fp8UpdateArgs& a) {
  ZOFF_CHECK(a.nterms >= 1 && a.nterms <= kMaxTerms, "zo_update_fp8: nterms ", a.nterms, " not in [1, ", kMaxTerms, "]");
  ZOFF_CHECK(a.sr_seed != 0, "zo_update_fp8: needs stochastic rounding (sr_seed != 0)");
  ZOFF_CHECK(a.first % 8 == 0 && a.delta.index_base % 8 == 0, "zo_update_fp8: first and index_base must be multiples of 8");
  ZOFF_CHECK(a.w_elem != Elem::F8E4M3 && a.row_len > 0, "zo_update_fp8: w must be bf16, fp16 or fp32 and row_len > 0");
}

// The bf16 master's new bits after an update whose fp32 term sum is acc, rounded stochastically
// with r16: zo_update's arithmetic with decay 0 (Note [Term passes], Note [Stochastic rounding]).
ZOFF_HD uint16_t bf16_add_sr(uint16_t theta, float acc, uint32_t r16) {
  return f32_to_bf16_bits_sr(add_rn(mul_rn(bf16_bits_to_f32(theta), 1.0f), acc), r16);
}

// Everything needed to recompute an element's update on the host (the list overflowed).
struct Fp8RecomputeParam {
  int64_t offset;  // first element within the block
  int64_t numel;
  uint64_t pid;
};
struct Fp8Recompute {
  const Fp8RecomputeParam* params;  // sorted by offset
  int nparams;
  Dist dist;
  const ZTerm* terms;
  int nterms;
  uint64_t sr_seed;
};

// The same, owning its arrays: what the offload engine keeps per block until the apply.
struct Fp8RecomputeRecipe {
  std::vector<Fp8RecomputeParam> params;
  std::vector<ZTerm> terms;
  Dist dist = Dist::Gaussian;
  uint64_t sr_seed = 0;
  Fp8Recompute view() const {
    return Fp8Recompute{params.data(), int(params.size()), dist, terms.data(), int(terms.size()), sr_seed};
  }
};

// The block's fp8 copy as the host apply keeps it current: row r covers the elements
// [row_start[r], row_start[r + 1]); scales are the block's row scales (powers of two).
struct Fp8RowSegment {
  int64_t offset;  // first element
  int64_t row0;    // its row
  int64_t cols;    // elements per row
};
struct Fp8Copy {
  uint8_t* q;
  float* scales;
  const int64_t* row_start;  // rows + 1 entries
  int64_t rows;
  // Optional: the rows as runs of equal length, in order (a block has a few dozen), so that an
  // element's row is a short scan and one division instead of a binary search over row_start.
  const Fp8RowSegment* segs = nullptr;
  int nsegs = 0;
};

// Applies one block's fp8-site delta to its bf16 master and fp8 copy.
// Fp8Copy::segs of rows described by row_start (rows + 1 entries).
std::vector<Fp8RowSegment> fp8_row_segments(const int64_t* row_start, int64_t rows);

// Host buffers apply_fp8_delta_host reuses across calls (Note [Exceptions by range]); one caller
// at a time.
struct Fp8ApplyScratch {
  std::vector<int64_t> start;   // word ranges + 1 offsets into order
  std::vector<uint32_t> order;  // list slots, grouped by word range
  std::vector<int64_t> hist;    // chunks x ranges counts, then write positions
  std::vector<int64_t> packed;  // packed codes: each range's first packed word (Note [Packed codes])
};

// The host apply's word loop: the widest the CPU has, the portable one, or a named vector one (it
// must be supported: apply_fp8_delta_host refuses one the CPU lacks).
enum class Fp8WordPath : int { Auto = 0, Portable = 1, Avx2 = 2, Avx512 = 3 };
struct ApplyFp8DeltaArgs {
  uint16_t* master;      // n bf16 elements
  const uint8_t* codes;  // (n + 3) / 4 bytes (left as they are)
  int64_t n;
  const Fp8Entry* list;  // `count` entries when count <= capacity
  int64_t count;         // the device's exception count
  int64_t capacity;
  const Fp8Recompute* recompute;  // used when count > capacity (required then)
  Fp8Copy copy;
  Fp8WordPath path = Fp8WordPath::Auto;  // tests and benches pick a word loop (Note [Vector fp8-site apply])
  bool list_by_range = true;  // entries grouped by word range (Note [Exceptions by range]), else in list order
  Fp8ApplyScratch* scratch = nullptr;  // reused buffers for list_by_range (else made per call)
  // Packed codes (Note [Packed codes] in kernels/delta.h): codes holds packed_count nonzero words,
  // bitmap says which. nullptr: dense codes.
  const uint32_t* bitmap = nullptr;
  int64_t packed_count = 0;
};
struct ApplyFp8Result {
  int64_t exceptions = 0;
  int64_t recomputed = 0;  // exceptions recomputed from seeds (list overflow)
  int64_t rescaled_rows = 0;
};

// Whether this CPU runs word path p; the path Auto stands for here (kernels/host/fp8_site_host.cpp).
bool fp8_word_path_supported(Fp8WordPath p);
Fp8WordPath fp8_word_path(Fp8WordPath p);

// CUDA: the update of one parameter (kernels/fp8_site.cu).
void zo_update_fp8(const Fp8UpdateArgs& a, cudaStream_t s);

namespace ref {
// The same on the CPU, bit for bit (codes, w, and the list as a set).
void zo_update_fp8(const Fp8UpdateArgs& a);
// Row-wise exponent-exact packing (scales 2^k, Note [fp8 at the GPU site]) of bf16 rows.
void pack_fp8_exact(const uint16_t* src, int64_t rows, int64_t cols, uint8_t* dst, float* scales);
// One element of zo_update on a bf16 master with decay 0 and stochastic rounding: the reference
// the host recompute and the tests use.
uint16_t update_bf16_one(uint16_t theta, uint64_t pid, int64_t g, Dist d, const ZTerm* terms, int nterms,
                         uint64_t sr_seed);
}  // namespace ref

// Host (oneTBB; skips zero code words). zoff::Error on a bad list index or a missing recompute.
ApplyFp8Result apply_fp8_delta_host(const ApplyFp8DeltaArgs& a);

}  // namespace zoff::k
