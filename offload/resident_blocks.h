// ResidentBlocks: device copies of the blocks that skip the slot ring, allocated and loaded once.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "offload/block_store.h"
#include "offload/stream_device.h"

namespace zoff {

// Note [Resident blocks]
// A resident block's master lives on the device for the whole run: one arena (at::empty on the
// device, each block 256-byte aligned) holds all of them in the storage dtype. load_from_host()
// copies the host masters in once (Upload stream); store_to_host() copies them back (Offload
// stream) before a checkpoint, eval on the host or exit. Whatever the update site, a resident
// block's update must be applied on the device (the host master is stale between stores).
// On a host device the "device" copy is separate host memory, so CPU tests exercise the same
// protocol (forgetting store_to_host() shows up as a stale host master).
// Split masters (Note [Split bf16 masters]) are resident in bf16: the loads decode on the host and
// the stores encode (synchronous ATen copies through a host bf16 tensor).
class ResidentBlocks {
 public:
  ResidentBlocks(StreamDevice& dev, BlockStore& store, std::vector<bool> resident);
  ResidentBlocks(const ResidentBlocks&) = delete;
  ResidentBlocks& operator=(const ResidentBlocks&) = delete;

  const std::vector<bool>& mask() const { return resident_; }
  bool is_resident(int b) const;
  int count() const { return count_; }
  int64_t device_bytes() const { return count_ ? arena_.numel() : 0; }
  // The block's flat device buffer in the storage dtype (undefined tensor if not resident).
  const at::Tensor& buffer(int b) const;

  // Synchronous whole-set copies (not meant for the inside of a step).
  void load_from_host();
  void store_to_host();

 private:
  StreamDevice& dev_;
  BlockStore& store_;
  std::vector<bool> resident_;
  int count_ = 0;
  at::Tensor arena_;
  std::vector<at::Tensor> views_;
};

}  // namespace zoff
