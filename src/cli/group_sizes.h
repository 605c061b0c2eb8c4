// Per-group sizes for inspect and plan: parameters, bytes stored, bytes moved over PCIe.
#pragma once

#include <cstdint>

#include "zoff/model.h"
#include "zoff/policy.h"

namespace zoff::cli {

// Parameters of a group (its flat buffer's numel less the 16-byte alignment padding).
int64_t group_params(const GroupLayout& g);
// Bytes of a group's flat buffer (padding included) stored in `storage`.
int64_t group_bytes(const GroupLayout& g, DType storage);
// Bytes one transfer of the group moves (Note [Transfer layout]: fp8 adds one float scale per row).
int64_t group_transfer_bytes(const GroupLayout& g, DType storage, TransferFormat transfer);

}  // namespace zoff::cli
