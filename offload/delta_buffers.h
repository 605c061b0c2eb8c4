// DeltaBuffers: per streamed block, the host codes, exception list and count of a delta write-back.
#pragma once

#include <ATen/ATen.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/delta.h"
#include "kernels/fp8_site.h"
#include "offload/block_store.h"
#include "offload/host_memory.h"
#include "offload/stream_device.h"

namespace zoff {

// Note [Delta buffers]
// What Note [Delta write-back] (kernels/delta.h) needs around the update kernel, allocated once:
//  - per streamed block b, in pinned host memory that the device writes directly (mapped):
//    codes ((numel + 3) / 4 bytes, all zero at rest) and an exception list of
//    ceil(numel / list_divisor) entries;
//  - two device counters per slot, exceptions and code bytes stored (zeroed by prepare_slot
//    before the block's update, read by the Offload op's 16-byte D2H into the block's pinned
//    host count words).
// Where the kernel writes the codes (Note [Staged codes]): staged (ZOFF_DELTA_CODES=staged)
// into a device buffer per slot, which the Offload op copies to the block's host codes before
// the count; mapped (environment ZOFF_DELTA_CODES=mapped, a tuning knob like ZOFF_HOST_ISA)
// straight into the host codes over PCIe, with sparse_lanes kSparseLanes (Note [Sparse code
// stores]) unless ZOFF_DELTA_SPARSE_LANES says otherwise; or packed (the default,
// Note [Packed codes] in kernels/delta.h; fp8 steps 3-8% faster, bf16 ones ~1%, docs/results.md
// sessions 13 and 14): staged, then the Offload op packs them straight into the block's
// host codes (the nonzero words in order) and its host bitmap, the packed word count in the
// slot's second counter; the host codes then hold 8 ceil(n / 32) bytes and the bitmap
// ceil(n / 1024) words, and a slot has pack_codes_scratch_words of device scratch.
//
// Note [Staged codes]
// Measured on the H200 (docs/results.md, session 5): the update kernel's stores into mapped
// host memory slow the concurrent uploads far more than their bytes suggest. OPT-6.7B moved
// 1.67 GB of codes per step as 64-byte stores and uploads ran at 46-49 GB/s instead of 55;
// storing only the nonzero codes cut that to 0.17 GB but made the step slower (0.308 s against
// 0.284 s): the link pays per transaction, and small stores are many. So the codes go to a
// device buffer (zeroed before the update, so parameter gaps read as unchanged) and travel as
// one DMA copy, at a quarter byte per element, like any other copy. The exception list stays
// mapped: it is small and its stores are grouped (Note [Delta emission]). With staged codes the
// streamed step reached 0.91 / 0.92 of the one-way transfer bound at 13B / 30B (0.81 with mapped
// codes at 13B, 0.76-0.81 with the dense write-back).
// Note [Staged exception list]
// The exception list may be staged too (environment ZOFF_DELTA_LIST=staged; default mapped): the
// kernel appends to a per-slot device list, and the Offload op first runs copy_counted (Note
// [Counted copy]), which copies the first min(count, capacity) entries into the block's mapped
// host list as whole 512-byte warp writes, instead of the update kernel's scattered 8-byte entry
// stores crossing PCIe while uploads run. Costs capacity x 8 bytes of device memory per slot
// (numel / delta_list_divisor entries; not in the planner's estimate while it is a knob).
// Measured (H200, session 7, docs/results.md): no difference, 6.7B 0.2624 / 0.2609 s staged
// against 0.2633 / 0.2615 mapped, 13B within the +-1.5% noise; so the mapped list stays the
// default and the entry stores are not what slows the uploads.
// Environment ZOFF_FP8_LIST=device (a tuning knob; default ranges) applies an fp8-site exception
// list in the device's order after the word pass instead of by word range (Note [Exceptions by
// range] in kernels/host/fp8_site_host.cpp).
// Environment ZOFF_DELTA_APPLY_THREADS=N (a tuning knob) runs apply() in a oneTBB arena of N
// threads instead of all cores: its read-modify-write of the masters competes with the uploads'
// DMA reads for host memory (docs/results.md, session 7), so fewer threads may trade apply time
// for upload rate (measured: it cannot, session 8). Results are the same for any N.
// ZOFF_DEBUG_SKIP_DELTA_APPLY=1 skips the apply (masters stay stale, with a warning): a
// measurement knob that times the step without the host's master traffic.
// apply(b) runs on a host thread once block b's Offload completed: it applies the codes and the
// first min(count, capacity) list entries to b's master (exceptions past capacity were stored in
// the master by the kernel), leaving mapped codes zero again (staged codes are left as
// they are: the next Offload overwrites them whole, keep_codes).
class DeltaBuffers {
 public:
  DeltaBuffers(StreamDevice& dev, BlockStore& store, const std::vector<int>& blocks, int num_slots,
               int64_t list_divisor, bool pin);
  DeltaBuffers(const DeltaBuffers&) = delete;
  DeltaBuffers& operator=(const DeltaBuffers&) = delete;

  // The group-level DeltaOut for block b updated in slot k (device-usable pointers, index_base 0).
  k::DeltaOut out(int b, int k) const;
  // fp8 mode (the store's fp8 copies are exponent-exact, Note [fp8 at the GPU site] in
  // kernels/fp8_site.h): lists hold k::Fp8Entry, and apply() updates master and fp8 copy.
  bool fp8() const { return fp8_; }
  k::Fp8DeltaOut out_fp8(int b, int k) const;
  // Where the update of block b leaves what the host needs if b's list overflows (set while the
  // update is issued, read by apply(b)).
  k::Fp8RecomputeRecipe* recipe(int b);
  // Split mode (the store's masters are split bf16, Note [Split bf16 masters] in
  // offload/block_store.h): out() has no overflow pointer (ZoStep::visit_split points it at its
  // work buffer) and apply() updates the planes and escapes, recomputing a list's overflow from
  // the recipe the update left.
  bool split() const { return split_; }
  k::SplitRecipe* split_recipe(int b);
  // Split mode: blocks re-encoded because their escapes outgrew the capacity, since construction.
  int64_t reencoded() const { return reencoded_.load(); }
  int64_t entry_bytes() const { return fp8_ ? int64_t(sizeof(k::Fp8Entry)) : int64_t(sizeof(k::DeltaEntry)); }
  // Enqueues the zeroing of slot k's counters (and staged codes) on the current stream (the
  // compute callback's), before the update that fills them.
  void prepare_slot(int k);
  const void* device_count(int k) const;
  void* host_count(int b) const;
  bool staged() const { return staged_; }
  bool packed() const { return packed_; }
  // Packed codes only: enqueues, on the current stream, the packing of slot k's staged codes into
  // block b's host codes and bitmap (after the update of b in slot k, before its count copy).
  void pack_codes(int k, int b) const;
  const void* device_codes(int k) const;  // staged only
  bool list_staged() const { return list_staged_; }
  // Staged list only: enqueues, on the current stream, the copy of slot k's list into block b's host
  // list (after the update of b in slot k, before its count copy).
  void copy_list(int k, int b) const;
  void* host_codes(int b) const;
  size_t code_bytes(int b) const;
  // Code bytes of block b's last update that crossed the link.
  int64_t d2h_code_bytes(int b) const;
  static constexpr size_t kCountBytes = 2 * sizeof(unsigned long long);
  // Mapped codes: every code stored (sparse stores measured slower, Note [Staged codes]).
  static constexpr int kSparseLanes = -1;
  int sparse_lanes() const { return sparse_lanes_; }

  // Applies block b's change to its master; returns the exceptions it had.
  int64_t apply(int b);
  // The code bytes block b's last update stored (its Offload completed).
  int64_t stored(int b) const;
  int64_t capacity(int b) const { return cap_.at(size_t(b)); }
  int64_t host_bytes() const { return host_bytes_; }
  // Exceptions, and those that overflowed the list, since construction (readable while another
  // thread applies: Note [Applies across passes]).
  int64_t exceptions() const { return exceptions_.load(); }
  int64_t overflowed() const { return overflowed_.load(); }
  // fp8 mode: rows re-packed with a new scale since construction.
  int64_t rescaled_rows() const { return rescaled_rows_.load(); }

 private:
  struct Mapped {
    uint8_t* codes = nullptr;
    uint32_t* bitmap = nullptr;  // packed codes only
    void* list = nullptr;  // k::DeltaEntry, or k::Fp8Entry in fp8 mode
    uint16_t* master = nullptr;
  };
  int64_t apply_fp8(int b, int i, int64_t count);
  int64_t apply_split(int b, int i, int64_t count);
  BlockStore& store_;
  std::vector<int64_t> cap_;     // per block (0 for blocks that are not streamed)
  std::vector<int> index_;       // per block: index into codes_/lists_, -1 if none
  std::vector<HostBuffer> codes_, lists_, bitmaps_;  // bitmaps_: packed codes only
  HostBuffer counts_;            // two words per block
  std::vector<Mapped> mapped_;   // per block, as the device sees them
  at::Tensor counters_;          // 2 x num_slots int64 on the device
  int sparse_lanes_ = kSparseLanes;
  bool staged_ = true;
  at::Tensor slot_codes_;        // staged: num_slots x max code bytes, uint8, on the device
  bool packed_ = false;
  at::Tensor pack_scratch_;      // packed: num_slots x scratch words, int32, on the device
  int64_t pack_stride_ = 0;      // words
  bool list_staged_ = false;
  at::Tensor slot_lists_;        // staged list: num_slots x max capacity entries, on the device
  int64_t list_stride_ = 0;      // entries
  int64_t slot_stride_ = 0;
  int64_t host_bytes_ = 0;
  std::atomic<int64_t> exceptions_{0}, overflowed_{0}, rescaled_rows_{0};
  bool fp8_ = false;
  bool split_ = false;
  std::vector<k::SplitRecipe> split_recipes_;  // split mode, per block
  k::SplitApplyScratch split_scratch_;         // apply_split's reused buffers
  std::atomic<int64_t> reencoded_{0};
  std::vector<k::Fp8RecomputeRecipe> recipes_;  // fp8 mode, per block
  std::unique_ptr<tbb::task_arena> arena_;  // set by ZOFF_DELTA_APPLY_THREADS
  bool skip_apply_ = false;                  // ZOFF_DEBUG_SKIP_DELTA_APPLY (measurement only)
  bool fp8_list_by_range_ = true;            // ZOFF_FP8_LIST=ranges|device (Note [Exceptions by range])
  k::Fp8ApplyScratch fp8_scratch_;           // apply_fp8's reused buffers (apply runs on one thread at a time)
};

}  // namespace zoff
