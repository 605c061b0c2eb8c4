// ResidentBlocks: one device arena for the resident blocks (Note [Resident blocks]).
#include "offload/resident_blocks.h"

#include "offload/aten_dtype.h"
#include "offload/host_memory.h"
#include "zoff/error.h"

namespace zoff {

namespace {
int64_t align256(int64_t x) { return (x + 255) / 256 * 256; }
}  // namespace

ResidentBlocks::ResidentBlocks(StreamDevice& dev, BlockStore& store, std::vector<bool> resident)
    : dev_(dev), store_(store), resident_(std::move(resident)) {
  const int n = store.num_blocks();
  if (resident_.empty()) resident_.assign(size_t(n), false);
  ZOFF_CHECK(int(resident_.size()) == n, "ResidentBlocks: mask has ", resident_.size(),
             " entries for ", n, " blocks");
  views_.resize(size_t(n));
  int64_t total = 0;
  std::vector<int64_t> offsets(size_t(n), -1);
  for (int b = 0; b < n; ++b) {
    if (!resident_[size_t(b)]) continue;
    offsets[size_t(b)] = total;
    total += align256(store.numel(b) * dtype_size(store.storage_dtype()));
    ++count_;
  }
  if (count_ == 0) return;
  arena_ = at::empty({total}, at::TensorOptions().dtype(at::kByte).device(dev.device()));
  note_offload_allocation();
  const at::TensorOptions opts =
      at::TensorOptions().dtype(offload_scalar_type(store.storage_dtype())).device(dev.device());
  char* base = static_cast<char*>(arena_.data_ptr());
  for (int b = 0; b < n; ++b)
    if (resident_[size_t(b)]) views_[size_t(b)] = at::from_blob(base + offsets[size_t(b)], {store.numel(b)}, opts);
}

bool ResidentBlocks::is_resident(int b) const {
  ZOFF_CHECK(b >= 0 && b < int(resident_.size()), "ResidentBlocks: block ", b, " out of range");
  return resident_[size_t(b)];
}

const at::Tensor& ResidentBlocks::buffer(int b) const {
  ZOFF_CHECK(is_resident(b), "ResidentBlocks: block ", b, " is not resident");
  return views_[size_t(b)];
}

void ResidentBlocks::load_from_host() {
  for (int b = 0; b < int(resident_.size()); ++b)
    if (resident_[size_t(b)] && store_.split()) {
      at::Tensor tmp = at::empty({store_.numel(b)}, at::TensorOptions().dtype(at::kBFloat16));
      store_.read_block(b, tmp);
      views_[size_t(b)].copy_(tmp);
    } else if (resident_[size_t(b)])
      dev_.copy_h2d(StreamId::Upload, views_[size_t(b)].data_ptr(), store_.data(b), size_t(store_.bytes(b)), b);
  dev_.synchronize_all();
}

void ResidentBlocks::store_to_host() {
  for (int b = 0; b < int(resident_.size()); ++b)
    if (resident_[size_t(b)] && store_.split())
      store_.write_block(b, views_[size_t(b)].to(at::kCPU));
    else if (resident_[size_t(b)])
      dev_.copy_d2h(StreamId::Offload, store_.data(b), views_[size_t(b)].data_ptr(), size_t(store_.bytes(b)), b);
  dev_.synchronize_all();
}

}  // namespace zoff
