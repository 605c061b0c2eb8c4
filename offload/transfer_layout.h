// How a block is laid out in host memory, in the slots and over PCIe, for each transfer format.
#pragma once

#include <cstdint>
#include <vector>

#include "zoff/dtype.h"
#include "zoff/policy.h"

namespace zoff {

// A run of `rows` rows of `cols` elements inside a block's flat buffer (one weight matrix, or a
// vector as one row). Only fp8 transfers look at rows: they carry one float scale per row.
struct RowSegment {
  int64_t rows = 0;
  int64_t cols = 0;
};

// One block as the offload engine sees it: `numel` elements of the storage dtype, optionally
// described as consecutive row segments covering exactly numel (empty: one row of numel).
struct BlockDesc {
  int64_t numel = 0;
  std::vector<RowSegment> segments;
};

// Throws zoff::Error when numel <= 0 or the segments do not cover exactly numel elements.
void check_block_desc(const BlockDesc& b, int index);
int64_t total_rows(const BlockDesc& b);

// The dtype a block travels in: Same -> the storage dtype, BF16, F16, FP8 -> F8_E4M3, BF16Split -> U8.
DType transfer_dtype(DType storage, TransferFormat f);

// Note [Transfer layout]
// A block travels as one contiguous byte range, so one cudaMemcpyAsync moves it:
//   Same/BF16/F16: numel elements of the transfer dtype;
//   BF16Split:     the split bf16 planes (k::split_bytes(numel), Note [Split bf16] in
//                  kernels/split16.h), which are the master itself (no separate copy);
//   FP8:           numel e4m3 bytes, padding up to a multiple of 16, then one float scale per row
//                  (k::ref::pack_fp8_rows' layout, rows in segment order).
// separate_copy says whether the host keeps a transfer copy next to the master (the transfer dtype
// differs from the storage dtype); otherwise the master itself is uploaded.
struct TransferLayout {
  DType dtype = DType::F32;
  int64_t payload_bytes = 0;
  int64_t scales_offset = 0;  // FP8 only, else 0
  int64_t rows = 0;           // FP8 only, else 0
  int64_t total_bytes = 0;
  bool separate_copy = false;
};
TransferLayout transfer_layout(const BlockDesc& b, DType storage, TransferFormat f);

}  // namespace zoff
