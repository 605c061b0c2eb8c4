// HostBuffer: pinned or page-aligned pageable host memory, and the offload allocation counter.
#include "offload/host_memory.h"

#include <sys/mman.h>
#include <tbb/parallel_for.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>

#include "zoff/error.h"
#include "zoff/log.h"

namespace zoff {

namespace {
std::atomic<int64_t> g_allocations{0};
constexpr size_t kPage = 4096;
constexpr size_t kChunk = size_t(2) << 20;  // one transparent huge page

// Maps `bytes` of anonymous memory and faults every page in on all cores (Note [Pinning at scale]).
void* map_and_touch(size_t bytes, const char* what) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ZOFF_CHECK(p != MAP_FAILED, "out of host memory mapping ", bytes, " bytes for ", what, ": ",
             std::strerror(errno));
#ifdef MADV_HUGEPAGE
  if (bytes >= kChunk) (void)madvise(p, bytes, MADV_HUGEPAGE);  // advice only: ignore failure
#endif
  char* c = static_cast<char*>(p);
  const size_t chunks = (bytes + kChunk - 1) / kChunk;
  tbb::parallel_for(size_t(0), chunks, [&](size_t i) {
    const size_t end = std::min(bytes, (i + 1) * kChunk);
    for (size_t o = i * kChunk; o < end; o += kPage) static_cast<volatile char*>(c)[o] = 0;
  });
  return p;
}

HostAlloc parse_pin_method() {
  const char* e = std::getenv("ZOFF_PIN_METHOD");
  if (!e || !*e || std::strcmp(e, "register") == 0) return HostAlloc::Register;
  if (std::strcmp(e, "alloc") == 0) return HostAlloc::CudaAlloc;
  ZOFF_FAIL("environment variable ZOFF_PIN_METHOD='", e, "': expected 'register' or 'alloc'");
}
}  // namespace

int64_t offload_allocations() { return g_allocations.load(); }
void note_offload_allocation() { g_allocations.fetch_add(1); }

int64_t host_memory_available() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return -1;
}

HostAlloc default_pinned_alloc() {
  static const HostAlloc h = parse_pin_method();
  return h;
}

HostBuffer::HostBuffer(size_t bytes, bool want_pinned, const char* what)
    : HostBuffer(bytes, want_pinned ? default_pinned_alloc() : HostAlloc::Pageable, what) {}

HostBuffer::HostBuffer(size_t bytes, HostAlloc how, const char* what) : bytes_(bytes) {
  ZOFF_CHECK(bytes > 0, "HostBuffer: zero-byte buffer for ", what);
#ifdef ZOFF_WITH_CUDA
  const char* err = nullptr;
  if (how == HostAlloc::CudaAlloc) {
    data_ = detail::cuda_host_alloc(bytes, &err);
    if (data_) {
      how_ = HostAlloc::CudaAlloc;
      char* c = static_cast<char*>(data_);
      tbb::parallel_for(size_t(0), (bytes + kChunk - 1) / kChunk, [&](size_t i) {
        std::memset(c + i * kChunk, 0, std::min(kChunk, bytes - i * kChunk));
      });
    }
  }
#endif
  if (!data_) {
    mapped_ = (bytes + kPage - 1) / kPage * kPage;
    data_ = map_and_touch(mapped_, what);
  }
#ifdef ZOFF_WITH_CUDA
  if (how == HostAlloc::Register && detail::cuda_host_register(data_, mapped_, &err))
    how_ = HostAlloc::Register;
  if (how != HostAlloc::Pageable && how_ == HostAlloc::Pageable)
    log::warn("offload: pinning {} bytes for {} failed ({}); using pageable memory, transfers "
              "of it will be slower and synchronous", bytes, what, err ? err : "?");
#else
  (void)how;
#endif
  note_offload_allocation();
}

HostBuffer::~HostBuffer() { release(); }

HostBuffer::HostBuffer(HostBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)),
      mapped_(std::exchange(o.mapped_, 0)), how_(std::exchange(o.how_, HostAlloc::Pageable)) {}

HostBuffer& HostBuffer::operator=(HostBuffer&& o) noexcept {
  if (this != &o) {
    release();
    data_ = std::exchange(o.data_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
    mapped_ = std::exchange(o.mapped_, 0);
    how_ = std::exchange(o.how_, HostAlloc::Pageable);
  }
  return *this;
}

void HostBuffer::release() {
  if (!data_) return;
#ifdef ZOFF_WITH_CUDA
  if (how_ == HostAlloc::CudaAlloc) detail::cuda_host_free(data_);
  if (how_ == HostAlloc::Register) detail::cuda_host_unregister(data_);
#endif
  if (mapped_) munmap(data_, mapped_);
  data_ = nullptr;
  mapped_ = 0;
  how_ = HostAlloc::Pageable;
}

}  // namespace zoff
