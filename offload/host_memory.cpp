// HostBuffer: pinned or aligned pageable host memory, and the offload allocation counter.
#include "offload/host_memory.h"

#include <atomic>
#include <cstdlib>
#include <utility>

#include "zoff/error.h"
#include "zoff/log.h"

namespace zoff {

namespace {
std::atomic<int64_t> g_allocations{0};
constexpr size_t kPage = 4096;
}  // namespace

int64_t offload_allocations() { return g_allocations.load(); }
void note_offload_allocation() { g_allocations.fetch_add(1); }

HostBuffer::HostBuffer(size_t bytes, bool want_pinned, const char* what) : bytes_(bytes) {
  ZOFF_CHECK(bytes > 0, "HostBuffer: zero-byte buffer for ", what);
#ifdef ZOFF_WITH_CUDA
  if (want_pinned) {
    const char* err = nullptr;
    data_ = detail::cuda_host_alloc(bytes, &err);
    if (data_) {
      pinned_ = true;
    } else {
      log::warn("offload: pinning {} bytes for {} failed ({}); using pageable memory, transfers "
                "of it will be slower and synchronous", bytes, what, err ? err : "?");
    }
  }
#else
  (void)want_pinned;
#endif
  if (!data_) {
    size_t rounded = (bytes + kPage - 1) / kPage * kPage;
    data_ = std::aligned_alloc(kPage, rounded);
    ZOFF_CHECK(data_ != nullptr, "out of host memory allocating ", bytes, " bytes for ", what);
  }
  note_offload_allocation();
}

HostBuffer::~HostBuffer() { release(); }

HostBuffer::HostBuffer(HostBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)),
      pinned_(std::exchange(o.pinned_, false)) {}

HostBuffer& HostBuffer::operator=(HostBuffer&& o) noexcept {
  if (this != &o) {
    release();
    data_ = std::exchange(o.data_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
    pinned_ = std::exchange(o.pinned_, false);
  }
  return *this;
}

void HostBuffer::release() {
  if (!data_) return;
#ifdef ZOFF_WITH_CUDA
  if (pinned_) {
    detail::cuda_host_free(data_);
    data_ = nullptr;
    return;
  }
#endif
  std::free(data_);
  data_ = nullptr;
}

}  // namespace zoff
