// Split bf16: a lossless 12-bit-per-element layout of bf16 masters for transfers (Note [Split bf16]).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/delta.h"
#include "kernels/host/zo_host.h"
#include "kernels/zo_kernels.h"

typedef struct CUstream_st* cudaStream_t;

namespace zoff::k {

// Note [Split bf16]
// At 30B the bf16 step is bound by the link and by host memory (the DMA reads every master byte
// while the host apply read-modify-writes the changed lines), so the same bf16 values in fewer
// bytes are a faster step. A bf16 value's high byte (sign and the exponent's top 7 bits) varies
// little within a small run of weights, its low byte (exponent lsb and mantissa) not at all
// predictably, so a block of n bf16 values is stored as three planes plus a short list:
//   lo   n bytes: each element's low byte (bits & 0xFF), verbatim;
//   nib  ceil(n / 2) bytes: one nibble per element (element i in byte i / 2, the low nibble for
//        even i, the high one for odd i); nibble v = (s << 3) | d:
//          d in 0..6   high byte (s << 7) | (base - d), base the element's group base;
//          v == 7      high byte 0x00 (+0, positive subnormals, the two smallest positive binades);
//          v == 15     escape: the high byte is in the escape list;
//   base ceil(n / kSplitGroup) bytes: per group of kSplitGroup consecutive elements, base =
//        the largest (high byte & 0x7F) of the group when it was encoded;
//   escapes: {index, high byte} of every element that no nibble can say (its high 7 bits are
//        more than 6 below the base or, after updates, above it; negative values whose high
//        7 bits are 0 and more than 6 below the base), sorted by index, at most `capacity`.
// The planes are one contiguous buffer (each starting 16-byte aligned, split_*_offset below)
// that travels as one copy: 1.5 bytes per element and a base byte per 256, 75.4% of bf16. The
// escape list stays in pinned host memory that the device reads directly (it is a few entries per
// ten thousand elements for weights: uniform or Gaussian groups need values 2^-12 below the
// group's largest to escape). decode is exact for every bit pattern (NaN payloads, infinities,
// both zeros, subnormals): the high byte always comes back as it went in.
// Updates arrive as the bf16 delta of Note [Delta write-back] (codes +-1 on the 16-bit pattern,
// exceptions with their new bits): +-1 changes only the low byte unless it carries (low byte
// 0xFF -> 0x00 up, 0x00 -> 0xFF down: 1 in 256 changes), and a carry or an exception that
// changes the high byte re-encodes that element's nibble, or moves it into or out of the escape
// list. Bases stay as encoded (a drifted element escapes); when the list would outgrow its
// capacity the block is re-encoded with fresh bases, and only a block that still does not fit
// (more than `capacity` values the format cannot say even then) is an error.
constexpr int64_t kSplitGroup = 256;
constexpr uint32_t kSplitZeroNibble = 7;
constexpr uint32_t kSplitEscapeNibble = 15;

struct SplitEscape {
  uint32_t index;  // element index within the block
  uint32_t hi;     // the element's high byte (bits >> 8), 0..255
};
static_assert(sizeof(SplitEscape) == 8, "SplitEscape is 8 bytes");

inline int64_t split_align16(int64_t x) { return (x + 15) / 16 * 16; }
inline int64_t split_nib_offset(int64_t n) { return split_align16(n); }
inline int64_t split_base_offset(int64_t n) { return split_nib_offset(n) + split_align16((n + 1) / 2); }
inline int64_t split_groups(int64_t n) { return (n + kSplitGroup - 1) / kSplitGroup; }
inline int64_t split_bytes(int64_t n) { return split_base_offset(n) + split_align16(split_groups(n)); }
// The escape capacity a block of n elements gets: n / 128, at least 1024 (Note [Split bf16]).
inline int64_t split_escape_capacity(int64_t n) { return n / 128 > 1024 ? n / 128 : 1024; }

// One block's planes inside its buffer (split_bytes(n) bytes at `buf`).
struct SplitPlanes {
  uint8_t* lo;
  uint8_t* nib;
  uint8_t* base;
  int64_t n;
};
inline SplitPlanes split_planes(void* buf, int64_t n) {
  uint8_t* p = static_cast<uint8_t*>(buf);
  return SplitPlanes{p, p + split_nib_offset(n), p + split_base_offset(n), n};
}

// A block's escape list: `count` entries sorted by index, room for `capacity`.
struct SplitEscapes {
  SplitEscape* e;
  int64_t count;
  int64_t capacity;
};

// The nibble for high byte `hi` under group base `base` (0..127): kSplitEscapeNibble when no
// nibble says it.
ZOFF_HD uint32_t split_nibble(uint32_t hi, uint32_t base) {
  const uint32_t h7 = hi & 0x7Fu, s = hi >> 7;
  if (hi == 0u) return kSplitZeroNibble;
  if (h7 > base || base - h7 > 6u) return kSplitEscapeNibble;
  return (s << 3) | (base - h7);
}
// The high byte a (non-escape) nibble says under `base`.
ZOFF_HD uint32_t split_hi(uint32_t v, uint32_t base) {
  return v == kSplitZeroNibble ? 0u : (((v >> 3) << 7) | ((base - (v & 7u)) & 0x7Fu));
}

// Everything needed to recompute an exception's new bits when the delta list overflowed: the
// update's element-wise terms (Note [Term passes]: one pass) per parameter of the block.
struct SplitRecomputeParam {
  int64_t offset;  // first element within the block
  int64_t numel;
  uint64_t pid;
  float keep;      // 1 - decay for this parameter (1 when it does not decay)
};
struct SplitRecipe {
  std::vector<SplitRecomputeParam> params;  // sorted by offset
  std::vector<ZTerm> terms;
  Dist dist = Dist::Gaussian;
  uint64_t sr_seed = 0;  // 0: round to nearest even
};

// Host scratch apply_split_delta_host reuses across calls; one caller at a time.
struct SplitApplyScratch {
  std::vector<SplitEscape> inserts, merged;
  std::vector<uint32_t> removes;
  std::vector<int64_t> packed;  // packed codes: each range's first packed word
  std::vector<uint16_t> bf16;   // re-encoding: the block as bf16
};

// Applies one bf16 delta (Note [Delta write-back], kernels/delta.h) to a split block.
struct ApplySplitDeltaArgs {
  SplitPlanes planes;
  SplitEscapes* escapes;      // updated (count) in place
  uint8_t* codes;             // dense (n + 3) / 4 bytes, or packed words (bitmap != nullptr)
  bool keep_codes = false;    // dense codes: leave them as they are (else every byte read is zeroed)
  const uint32_t* bitmap = nullptr;  // packed codes (Note [Packed codes])
  int64_t packed_count = 0;
  const DeltaEntry* list;     // min(count, capacity) entries, indices in [0, n)
  int64_t count;              // the device's exception count
  int64_t capacity;           // the list's
  const SplitRecipe* recipe;  // required when count > capacity: every code-3 element is recomputed
  SplitApplyScratch* scratch = nullptr;  // reused buffers (else made per call)
};
struct ApplySplitResult {
  int64_t exceptions = 0;  // code-3 elements applied
  int64_t recomputed = 0;  // of those, recomputed from the recipe (list overflow)
  int64_t escapes_added = 0, escapes_removed = 0;
  bool reencoded = false;  // the escape list outgrew its capacity and the block got fresh bases
};

// Host (oneTBB; skips zero code words). zoff::Error on a bad list index, a missing recipe, or a
// block that does not fit its escape capacity even re-encoded (the planes then hold the update
// already; the message says so). `isa` forces a path (tests; Note [Split apply lanes]): Avx2 and
// Avx512 take the vector word path, Scalar and Ref the element-by-element one.
ApplySplitResult apply_split_delta_host(const ApplySplitDeltaArgs& a, HostIsa isa = HostIsa::Auto);

// CUDA: out[i] = bf16 bits of element i (n elements; planes and out in device memory, escapes
// readable by the device: mapped host memory). kernels/split16.cu.
void split16_decode(const SplitPlanes& planes, const SplitEscape* escapes, int64_t escape_count, uint16_t* out,
                    cudaStream_t s);

namespace ref {
// bf16 bits -> planes and escapes (oneTBB over groups). Returns false, leaving esc->count at the
// number that would be needed, when they do not fit esc->capacity.
bool split16_encode(const uint16_t* src, const SplitPlanes& planes, SplitEscapes* esc);
// planes and escapes -> bf16 bits (oneTBB).
void split16_decode(const SplitPlanes& planes, const SplitEscape* escapes, int64_t escape_count, uint16_t* out);
// The new bits of one exception recomputed from the recipe (element g of parameter p, old bits theta).
uint16_t split_recompute_one(uint16_t theta, const SplitRecipe& r, const SplitRecomputeParam& p, int64_t g);
}  // namespace ref

}  // namespace zoff::k
