// Delta write-back: a 16-bit update as 2-bit change codes plus an exception list (Note [Delta write-back]).
#pragma once

#include <cstdint>

#include "kernels/philox.h"

typedef struct CUstream_st* cudaStream_t;

namespace zoff::k {

// Note [Delta write-back]
// At the GPU update site a streamed block is updated in its slot and used to go back to the host
// master whole (D2H of every byte), which halves the link's rate in each direction (both ways at
// once run at ~46 GB/s each instead of 55). But a 16-bit master with a ZO step's tiny update
// mostly does not change, and an element that does change almost always moves to a neighbour:
// its bits change by exactly +1 or -1 (the bits of a finite bf16/fp16 value of one sign are
// ordered like its magnitude). So the update kernel, which has every element's old and new bits
// in registers, also writes
//   - a 2-bit code per element: 0 unchanged, 1 new = old + 1, 2 new = old - 1 (bits as uint16,
//     modulo 2^16), 3 anything else (an "exception");
//   - for each exception an entry {index, new bits} appended to a list of `capacity` entries,
//     the slot counted in *count (atomically; the count includes entries past capacity);
//   - an exception past capacity is stored straight into the host master (`overflow`).
// The host then applies the codes and the list to the master (apply_delta), bit for bit what the
// dense write-back would have left there. On CUDA, the list lives in mapped pinned host memory
// and the kernel writes it over PCIe as it goes; the codes may too (a warp's codes are 64
// contiguous bytes) or go to device memory and travel as one copy (offload/delta_buffers.h,
// Note [Staged codes]: what zoff does, measured faster).
// Code byte j holds the codes of elements 4j..4j+3, element 4j + e in bits 2e..2e+1.
// Invariant: codes are all zero at rest; the kernel writes the nonzero codes of its range (and
// may skip zero ones, Note [Sparse code stores]), and apply_delta zeroes every byte it consumes,
// so ranges no kernel touched read as unchanged.
// The update must be one pass (nterms <= kMaxTerms, Note [Term passes]): later passes would have
// to compose codes and re-emit exceptions.
//
// Note [Sparse code stores]
// At a MeZO-sized update most code bytes are zero, and since the host's codes are zero at rest a
// zero code need not be stored at all. Stores into mapped memory cross PCIe as they are issued,
// so the CUDA kernel skips them: a warp's row of codes (32 lanes x 2 bytes) is stored whole when
// more than `sparse_lanes` lanes have a nonzero code (one 64-byte write), else only the nonzero
// lanes store (small writes, few of them). sparse_lanes < 0 stores every code byte. `stored`
// (optional) counts the code bytes stored: what the write-back cost the link. The CPU kernels
// store every byte of their range (memory, not a link) and count them all.
enum : uint32_t { kDeltaSame = 0, kDeltaUp = 1, kDeltaDown = 2, kDeltaException = 3 };

struct DeltaEntry {
  uint32_t index;     // element index in the list's index space (index_base + i)
  uint16_t bits;      // the element's new bits
  uint16_t reserved;  // 0
};
static_assert(sizeof(DeltaEntry) == 8, "DeltaEntry is one 8-byte store");

struct DeltaOut {
  uint8_t* codes;              // code byte of theta[0] (theta[0]'s index must be a multiple of 4)
  DeltaEntry* list;            // `capacity` entries (may be nullptr when capacity == 0)
  int64_t capacity;
  unsigned long long* count;   // exceptions emitted so far (device memory on CUDA; zeroed by the caller)
  uint16_t* overflow;          // theta[0] in the host master: exceptions past capacity go here
  int64_t index_base;          // list index of theta[0]; a multiple of 4, index_base + n < 2^32
  unsigned long long* stored = nullptr;  // code bytes stored, added to (optional; like count)
  int sparse_lanes = -1;       // Note [Sparse code stores]; < 0: store every code byte
};

// The code of an element that went from old_bits to new_bits (16-bit values in uint32s).
ZOFF_HD uint32_t delta_code(uint32_t old_bits, uint32_t new_bits) {
  const uint32_t d = (new_bits - old_bits) & 0xFFFFu;
  return d == 0 ? kDeltaSame : d == 1 ? kDeltaUp : d == 0xFFFFu ? kDeltaDown : kDeltaException;
}

// Note [Packed codes]
// The dense codes cost the host's memory a quarter byte per element twice (the DMA writes them,
// the apply reads them), though at a step's rates only ~30% of the 32-element code words are
// nonzero; on the H200 host the fp8 step is bound by host memory bandwidth (docs/offload.md). So
// after a block's update the device may pack its staged codes (ZOFF_DELTA_CODES=packed, Note
// [Delta buffers]): with W = ceil(n / 32) code words (the last partial word read whole: the
// staged buffer is zero past the codes),
//  - bitmap: ceil(W / 32) uint32, bit j of word i set iff code word 32 i + j is nonzero (bits at
//    or past W are zero);
//  - packed: the nonzero code words in word order, their number in *packed_count.
// The CUDA version (kernels/pack_codes.cu) counts each tile of kPackTileWords words, scans the
// tile counts and writes each tile's words from shared memory as one contiguous run, all straight
// into mapped host memory (bitmap and packed in whole-warp runs; no device buffer, no DMA).
// The host applies read them with packed_range_offsets: each word range of the apply
// (kPackTileWords words) finds its first packed word from the bitmap's counts, then walks the
// set bits of its bitmap words, taking the packed words in order (no scratch; a zero word costs
// a bit instead of 8 bytes read).
constexpr int64_t kPackTileWords = 2048;

struct PackCodesArgs {
  const uint8_t* codes;              // (n + 3) / 4 code bytes, readable and zero up to 8 W bytes
  int64_t n;                         // elements
  uint32_t* bitmap;                  // ceil(W / 32) words
  uint64_t* packed;                  // room for W words
  unsigned long long* packed_count;  // set to the number of nonzero words
  uint32_t* scratch;                 // pack_codes_scratch_words(n) words (device memory on CUDA)
};
inline int64_t pack_code_words(int64_t n) { return (n + 31) / 32; }
inline int64_t pack_bitmap_words(int64_t n) { return (pack_code_words(n) + 31) / 32; }
inline int64_t pack_codes_scratch_words(int64_t n) {
  return 2 * ((pack_code_words(n) + kPackTileWords - 1) / kPackTileWords);
}
void pack_codes(const PackCodesArgs& a, cudaStream_t s);

// The first packed word of each kPackTileWords-word range: offsets[r] for r in [0, ranges], the
// last being the total (oneTBB over ranges). Checks it against `packed_count` (codes and bitmap
// of one update) and that no bit past the last word is set; the error names `fn`.
void packed_range_offsets(const uint32_t* bitmap, int64_t n, int64_t packed_count, int64_t* offsets, const char* fn);
// Applies one block's codes and exception list to its host master (16-bit elements).
struct ApplyDeltaArgs {
  uint16_t* master;          // n elements
  uint8_t* codes;            // (n + 3) / 4 bytes; every byte read is left zero (unless keep_codes)
  int64_t n;
  const DeltaEntry* list;    // `entries` entries, indices in [0, n)
  int64_t entries;           // min(count, capacity); indices are unique (one pass reports an element once)
  // Leaves the codes as they are: for codes that the next update's write-back overwrites whole
  // (staged codes, Note [Staged codes]), zeroing them is a wasted write of n / 4 bytes.
  bool keep_codes = false;
  // Packed codes (Note [Packed codes]): codes holds packed_count nonzero words, bitmap says which
  // (codes are then left as they are). nullptr: dense codes.
  const uint32_t* bitmap = nullptr;
  int64_t packed_count = 0;
};

// Note [Counted copy]: copies the first min(*count, cap) elements of elem_bytes each from src to
// dst, where *count is only known on the device (an exception list staged in device memory, copied
// into the mapped host list after the update that filled it). dst and src 16-byte aligned.
void copy_counted(void* dst, const void* src, const unsigned long long* count, int64_t cap, int64_t elem_bytes,
                  cudaStream_t s);

namespace ref {
// Element by element (oneTBB over code bytes), then the list in order.
void apply_delta(const ApplyDeltaArgs& a);
// copy_counted on the CPU (count in host memory).
void copy_counted(void* dst, const void* src, const unsigned long long* count, int64_t cap, int64_t elem_bytes);
// pack_codes on the CPU, element for element what the CUDA version writes.
void pack_codes(const PackCodesArgs& a);
// The dense codes (8 W bytes) of a packed block; checks bitmap and count against each other.
void unpack_codes(const uint32_t* bitmap, const uint64_t* packed, int64_t packed_count, int64_t n, uint8_t* codes);
}  // namespace ref

}  // namespace zoff::k
