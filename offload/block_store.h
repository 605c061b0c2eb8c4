// BlockStore: every block's host master (pinned when possible) and optional transfer copy, allocated once.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "kernels/fp8_site.h"
#include "kernels/split16.h"
#include "offload/host_memory.h"
#include "offload/transfer_layout.h"
#include "zoff/policy.h"

namespace zoff {

struct BlockStoreOptions {
  DType storage_dtype = DType::F32;  // F32, BF16 or F16
  TransferFormat transfer = TransferFormat::Same;
  bool pin_memory = true;  // cudaHostAlloc in CUDA builds; pageable fallback warns
  // fp8 transfers packed exponent-exactly (power-of-two row scales; Note [fp8 at the GPU site] in
  // kernels/fp8_site.h): what the GPU update site needs to update bf16 masters from fp8 copies.
  bool fp8_exact = false;
};
BlockStoreOptions block_store_options(const OffloadPolicy& p);

// Note [Block store]
// Block b is one contiguous host buffer of numel(b) storage-dtype elements: the master copy the
// optimizer updates (CPU site) or the GPU writes back into (GPU site). When the transfer dtype
// differs from the storage dtype (Note [Transfer layout]) each block also owns a transfer copy,
// refreshed from the master by refresh_transfer_copy() (oneTBB, kernels/ref packers) after each
// host-side update and uploaded instead of the master. All buffers are allocated in the
// constructor and freed in the destructor; the tensor views are built once too, so handing them
// out allocates nothing.
class BlockStore {
 public:
  BlockStore(std::vector<BlockDesc> blocks, BlockStoreOptions opts);
  BlockStore(const BlockStore&) = delete;
  BlockStore& operator=(const BlockStore&) = delete;

  int num_blocks() const { return int(blocks_.size()); }
  const BlockDesc& desc(int b) const { return blocks_[check(b)]; }
  DType storage_dtype() const { return opts_.storage_dtype; }
  TransferFormat transfer_format() const { return opts_.transfer; }
  DType transfer_dtype() const;

  // The master: numel(b) elements of the storage dtype (split: Note [Split bf16 masters]).
  int64_t numel(int b) const { return blocks_[check(b)].numel; }
  int64_t bytes(int b) const;  // of the master buffer (split: the planes)
  void* data(int b) const { return masters_[check(b)].data(); }
  const at::Tensor& view(int b) const;  // flat, CPU; not for split masters (read_block, write_block)

  // Note [Split bf16 masters]
  // With transfer = bf16-split each master is stored only as its split planes (the upload's bytes)
  // plus an escape list in a pinned buffer of its own (k::split_escape_capacity entries) that the
  // device reads in place: 1.5 bytes per element and the list, instead of 2. There is no bf16
  // view of such a block; read_block decodes it and write_block encodes (both work for every
  // store, so callers that load or save weights need not care how they are stored).
  bool split() const { return opts_.transfer == TransferFormat::BF16Split; }
  k::SplitPlanes split_planes(int b) const;
  k::SplitEscapes* split_escapes(int b);
  // The block's values into `out` (CPU, numel(b) elements, any float dtype; bf16 for split is a
  // straight decode).
  void read_block(int b, at::Tensor out) const;
  // Sets the block's values from `in` (CPU, numel(b) elements) and refreshes its transfer copy.
  // Split: zoff::Error when the values need more escapes than the block's capacity (the message
  // names the block and how many; the block is then partly written and the run cannot go on).
  void write_block(int b, const at::Tensor& in);

  // What travels: the transfer copy when there is one, else the master itself.
  bool has_transfer_copy() const { return !copies_.empty(); }
  const TransferLayout& layout(int b) const { return layouts_[check(b)]; }
  int64_t transfer_bytes(int b) const { return layouts_[check(b)].total_bytes; }
  int64_t max_transfer_bytes() const;
  void* transfer_data(int b) const;
  // Flat view of the transfer payload in the transfer dtype (fp8: numel bytes, kByte).
  const at::Tensor& transfer_view(int b) const;
  // fp8 transfers: the per-row scales inside the transfer copy; nullptr otherwise.
  float* transfer_scales(int b) const;
  // Re-derives block b's transfer copy from its master (no-op without a transfer copy).
  void refresh_transfer_copy(int b);
  bool fp8_exact() const { return opts_.fp8_exact; }
  // fp8 transfers: where each row of block b starts (rows + 1 entries, the last numel(b)).
  const std::vector<int64_t>& row_starts(int b) const { return row_starts_[size_t(check(b))]; }
  // The same rows as runs of equal length (k::Fp8Copy::segs).
  const std::vector<k::Fp8RowSegment>& row_segments(int b) const { return row_segments_[size_t(check(b))]; }

  bool all_pinned() const;
  int64_t host_bytes() const;  // masters + transfer copies
  int64_t allocation_count() const { return allocations_; }  // host buffers this store made

 private:
  int check(int b) const;
  std::vector<BlockDesc> blocks_;
  BlockStoreOptions opts_;
  std::vector<TransferLayout> layouts_;
  std::vector<HostBuffer> masters_;
  std::vector<HostBuffer> copies_;  // empty when blocks travel in the storage dtype
  std::vector<HostBuffer> escape_bufs_;         // split only: per block
  std::vector<k::SplitEscapes> escapes_;        // split only: per block
  std::vector<at::Tensor> master_views_;
  std::vector<at::Tensor> transfer_views_;
  std::vector<std::vector<int64_t>> row_starts_;  // per block; fp8 transfers only
  std::vector<std::vector<k::Fp8RowSegment>> row_segments_;
  int64_t allocations_ = 0;
};

}  // namespace zoff
