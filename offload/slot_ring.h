// SlotRing: K preallocated device (or host, on a host device) slots that streamed blocks pass through.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "offload/stream_device.h"
#include "zoff/dtype.h"

namespace zoff {

// Note [Slot ring]
// One at::empty of K * stride bytes on the device's memory (CUDA caching allocator on a GPU, host
// memory on a host device), made once in the constructor; slot k starts at k * stride, stride =
// slot_bytes rounded up to 256 so every slot is aligned for any dtype and vector loads. Streamed
// block j of a step lands in slot j mod K (offload/plan.h). Nothing is allocated afterwards: the
// views handed to the compute callback are made once per (slot, dtype, numel) by the executor.
class SlotRing {
 public:
  SlotRing(const StreamDevice& dev, int num_slots, int64_t slot_bytes);

  int num_slots() const { return num_slots_; }
  int64_t slot_bytes() const { return slot_bytes_; }
  int64_t stride() const { return stride_; }
  void* data(int k) const;
  // A flat view of the first numel elements of slot k as `dtype` (on the device).
  at::Tensor view(int k, DType dtype, int64_t numel) const;
  const at::Tensor& arena() const { return arena_; }

 private:
  int num_slots_;
  int64_t slot_bytes_;
  int64_t stride_;
  at::Tensor arena_;
};

}  // namespace zoff
