// SlotRing: one device arena split into K aligned slots (Note [Slot ring]).
#include "offload/slot_ring.h"

#include "offload/aten_dtype.h"
#include "offload/host_memory.h"
#include "zoff/error.h"

namespace zoff {

SlotRing::SlotRing(const StreamDevice& dev, int num_slots, int64_t slot_bytes)
    : num_slots_(num_slots), slot_bytes_(slot_bytes), stride_((slot_bytes + 255) / 256 * 256) {
  ZOFF_CHECK(num_slots >= 2, "SlotRing: need at least 2 slots, got ", num_slots);
  ZOFF_CHECK(slot_bytes > 0, "SlotRing: slot size must be positive, got ", slot_bytes);
  arena_ = at::empty({int64_t(num_slots) * stride_}, at::TensorOptions().dtype(at::kByte).device(dev.device()));
  note_offload_allocation();
}

void* SlotRing::data(int k) const {
  ZOFF_CHECK(k >= 0 && k < num_slots_, "SlotRing: slot ", k, " out of range [0, ", num_slots_, ")");
  return static_cast<char*>(arena_.data_ptr()) + int64_t(k) * stride_;
}

at::Tensor SlotRing::view(int k, DType dtype, int64_t numel) const {
  ZOFF_CHECK(numel * dtype_size(dtype) <= slot_bytes_, "SlotRing: ", numel, " x ", dtype_name(dtype),
             " does not fit a slot of ", slot_bytes_, " bytes");
  return at::from_blob(data(k), {numel},
                       at::TensorOptions().dtype(offload_scalar_type(dtype)).device(arena_.device()));
}

}  // namespace zoff
