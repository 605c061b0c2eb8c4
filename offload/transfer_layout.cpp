// Transfer layouts of blocks: bytes per block for each transfer format (Note [Transfer layout]).
#include "offload/transfer_layout.h"

#include "kernels/split16.h"
#include "zoff/error.h"

namespace zoff {

void check_block_desc(const BlockDesc& b, int index) {
  ZOFF_CHECK(b.numel > 0, "block ", index, ": numel must be positive, got ", b.numel);
  if (b.segments.empty()) return;
  int64_t covered = 0;
  for (const RowSegment& s : b.segments) {
    ZOFF_CHECK(s.rows > 0 && s.cols > 0, "block ", index, ": row segment ", s.rows, "x", s.cols,
               " is empty");
    covered += s.rows * s.cols;
  }
  ZOFF_CHECK(covered == b.numel, "block ", index, ": row segments cover ", covered,
             " elements but the block has ", b.numel);
}

int64_t total_rows(const BlockDesc& b) {
  if (b.segments.empty()) return 1;
  int64_t r = 0;
  for (const RowSegment& s : b.segments) r += s.rows;
  return r;
}

DType transfer_dtype(DType storage, TransferFormat f) {
  switch (f) {
    case TransferFormat::Same: return storage;
    case TransferFormat::BF16: return DType::BF16;
    case TransferFormat::F16: return DType::F16;
    case TransferFormat::FP8: return DType::F8_E4M3;
    case TransferFormat::BF16Split: return DType::U8;
    case TransferFormat::Auto: break;  // resolved before any store or plan is made
  }
  ZOFF_FAIL("transfer format ", transfer_format_name(f), " reached the block layout unresolved");
}

TransferLayout transfer_layout(const BlockDesc& b, DType storage, TransferFormat f) {
  ZOFF_CHECK(storage == DType::F32 || storage == DType::BF16 || storage == DType::F16,
             "block storage dtype must be F32, BF16 or F16, got ", dtype_name(storage));
  TransferLayout l;
  l.dtype = transfer_dtype(storage, f);
  if (f == TransferFormat::BF16Split) {  // Note [Split bf16]: the master is stored split and travels as it is
    ZOFF_CHECK(storage == DType::BF16, "split bf16 transfers need bf16 masters, got ", dtype_name(storage));
    l.payload_bytes = l.total_bytes = k::split_bytes(b.numel);
    return l;
  }
  l.separate_copy = l.dtype != storage;
  l.payload_bytes = b.numel * dtype_size(l.dtype);
  if (l.dtype == DType::F8_E4M3) {
    l.rows = total_rows(b);
    l.scales_offset = (l.payload_bytes + 15) / 16 * 16;
    l.total_bytes = l.scales_offset + l.rows * int64_t(sizeof(float));
  } else {
    l.total_bytes = l.payload_bytes;
  }
  return l;
}

}  // namespace zoff
