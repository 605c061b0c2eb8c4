// Per-group sizes for inspect and plan: parameters, bytes stored, bytes moved over PCIe.
#include "group_sizes.h"

#include "offload/transfer_layout.h"
#include "zoff/run_plan.h"

namespace zoff::cli {

int64_t group_params(const GroupLayout& g) {
  int64_t n = 0;
  for (const ParamInfo& p : g.params) n += p.numel;
  return n;
}

int64_t group_bytes(const GroupLayout& g, DType storage) { return g.numel * dtype_size(storage); }

int64_t group_transfer_bytes(const GroupLayout& g, DType storage, TransferFormat transfer) {
  return transfer_layout(block_desc(g), storage, transfer).total_bytes;
}

}  // namespace zoff::cli
