// The NCCL backend of Collective: NCCL's own API, unique id exchanged through the c10d store.
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "../c10d_backend.h"
#include "zoff/error.h"
#include "zoff/log.h"

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 14, 0)
#error "zoff needs NCCL >= 2.14 (non-blocking communicators, ncclCommGetAsyncError)"
#endif

namespace zoff::dist_detail {
namespace {

#define ZOFF_CUDA_OK(expr)                                                                     \
  do {                                                                                         \
    cudaError_t e_ = (expr);                                                                   \
    ZOFF_CHECK(e_ == cudaSuccess, #expr, ": ", cudaGetErrorString(e_));                        \
  } while (0)

// Note [NCCL without ProcessGroupNCCL]
// zoff calls NCCL directly (ncclGetUniqueId on rank 0, the id through the TCPStore,
// ncclCommInitRankConfig, ncclAllReduce/ncclBroadcast on the compute stream) instead of
// c10d::ProcessGroupNCCL because: (1) ProcessGroupNCCL's C++ API changed between LibTorch 1.13 and
// 2.x (ProcessGroup vs Backend, Options, Work, watchdog threads and their env vars) while NCCL's C
// API is stable; (2) we need a handful of doubles per step, not tensor lists, bucketing or the
// watchdog's extra threads; (3) timeouts are ours: the communicator is non-blocking, every wait
// polls ncclCommGetAsyncError and the stream with a deadline, and on expiry ncclCommAbort ends
// the communicator, so a dead peer is an error after distributed.timeout_s, never a hang. The
// library is the one LibTorch itself loads (pip's nvidia-nccl-cu13, found by CMakeLists.txt).
class NcclCollective : public Collective {
 public:
  NcclCollective(const c10::intrusive_ptr<c10d::Store>& store, const DistEnv& env, const CollectiveOptions& o)
      : rank_(env.rank), world_(env.world), device_(o.cuda_device), timeout_(o.timeout) {
    ZOFF_CUDA_OK(cudaSetDevice(device_));
    ncclUniqueId id;
    const std::string key = "zoff/nccl_unique_id";
    if (rank_ == 0) {
      check(ncclGetUniqueId(&id), "ncclGetUniqueId");
      store->set(key, std::vector<uint8_t>(reinterpret_cast<uint8_t*>(&id), reinterpret_cast<uint8_t*>(&id) + sizeof id));
    } else {
      std::vector<uint8_t> v;
      try {
        v = store->get(key);  // blocks up to the store's timeout
      } catch (const std::exception& e) {
        ZOFF_FAIL("rank ", rank_, ": no NCCL id from rank 0 within the timeout: ", what_of(e));
      }
      ZOFF_CHECK(v.size() == sizeof id, "NCCL id of ", v.size(), " bytes (expected ", sizeof id, ")");
      std::memcpy(&id, v.data(), sizeof id);
    }
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    check(ncclCommInitRankConfig(&comm_, world_, id, rank_, &cfg), "ncclCommInitRankConfig");
    wait_comm("ncclCommInitRankConfig");
    ZOFF_CUDA_OK(cudaMalloc(&dev_, kCapacity));
    ZOFF_CUDA_OK(cudaMallocHost(&host_, kCapacity));
    ZOFF_CUDA_OK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
    int version = 0;
    ncclGetVersion(&version);
    log::info("rank {}: NCCL {} communicator on cuda:{}", rank_, version, device_);
  }

  ~NcclCollective() override {
    if (done_) (void)cudaEventDestroy(done_);
    if (dev_) (void)cudaFree(dev_);
    if (host_) (void)cudaFreeHost(host_);
    if (comm_) {
      if (aborted_) return;
      (void)ncclCommFinalize(comm_);
      ncclResult_t st = ncclInProgress;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (ncclCommGetAsyncError(comm_, &st) == ncclSuccess && st == ncclInProgress &&
             std::chrono::steady_clock::now() < deadline)
        std::this_thread::yield();
      if (st == ncclSuccess) (void)ncclCommDestroy(comm_);
      else (void)ncclCommAbort(comm_);
    }
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  const char* backend() const override { return "nccl"; }

  void allreduce_sum(std::vector<double>& v) override {
    if (v.empty()) return;
    const size_t bytes = v.size() * sizeof(double);
    ZOFF_CHECK(bytes <= kCapacity, "NCCL all-reduce of ", v.size(), " doubles exceeds the buffer");
    cudaStream_t s = stream();
    std::memcpy(host_, v.data(), bytes);
    ZOFF_CUDA_OK(cudaMemcpyAsync(dev_, host_, bytes, cudaMemcpyHostToDevice, s));
    check(ncclAllReduce(dev_, dev_, v.size(), ncclDouble, ncclSum, comm_, s), "ncclAllReduce");
    wait_comm("ncclAllReduce");
    ZOFF_CUDA_OK(cudaMemcpyAsync(host_, dev_, bytes, cudaMemcpyDeviceToHost, s));
    wait_stream(s, "all-reduce");
    std::memcpy(v.data(), host_, bytes);
  }

  void broadcast(std::string& bytes, int root) override {
    int64_t n = rank_ == root ? int64_t(bytes.size()) : 0;
    bcast(&n, sizeof n, root);
    if (rank_ != root) bytes.assign(size_t(n), '\0');
    for (int64_t off = 0; off < n; off += int64_t(kCapacity))
      bcast(&bytes[size_t(off)], size_t(std::min<int64_t>(n - off, int64_t(kCapacity))), root);
  }

  void barrier() override {
    std::vector<double> one = {0.0};
    allreduce_sum(one);
  }

 private:
  static constexpr size_t kCapacity = size_t(1) << 20;

  cudaStream_t stream() const { return c10::cuda::getCurrentCUDAStream(c10::DeviceIndex(device_)).stream(); }

  void bcast(void* host, size_t bytes, int root) {
    cudaStream_t s = stream();
    if (rank_ == root) {
      std::memcpy(host_, host, bytes);
      ZOFF_CUDA_OK(cudaMemcpyAsync(dev_, host_, bytes, cudaMemcpyHostToDevice, s));
    }
    check(ncclBroadcast(dev_, dev_, bytes, ncclUint8, root, comm_, s), "ncclBroadcast");
    wait_comm("ncclBroadcast");
    ZOFF_CUDA_OK(cudaMemcpyAsync(host_, dev_, bytes, cudaMemcpyDeviceToHost, s));
    wait_stream(s, "broadcast");
    std::memcpy(host, host_, bytes);
  }

  void check(ncclResult_t r, const char* what) {
    if (r == ncclSuccess || r == ncclInProgress) return;
    fail(what, ncclGetErrorString(r));
  }

  [[noreturn]] void fail(const char* what, const std::string& why) {
    if (comm_ && !aborted_) {
      aborted_ = true;
      (void)ncclCommAbort(comm_);
    }
    ZOFF_FAIL("rank ", rank_, ": NCCL ", what, " failed (a peer died, stopped, or runs a different step): ", why);
  }

  // Non-blocking calls return ncclInProgress until NCCL has taken them; poll with a deadline.
  void wait_comm(const char* what) {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
      ncclResult_t st = ncclSuccess;
      ncclResult_t r = ncclCommGetAsyncError(comm_, &st);
      if (r != ncclSuccess) fail(what, ncclGetErrorString(r));
      if (st == ncclSuccess) return;
      if (st != ncclInProgress) fail(what, ncclGetErrorString(st));
      if (std::chrono::steady_clock::now() > deadline)
        fail(what, "timed out after " + std::to_string(timeout_.count() / 1000) + " s (distributed.timeout_s)");
      std::this_thread::yield();
    }
  }

  // The stream's work (the collective kernel and the copy back) with a deadline: a collective
  // whose peer never arrives spins on the GPU forever, so only the host can give up on it.
  void wait_stream(cudaStream_t s, const char* what) {
    ZOFF_CUDA_OK(cudaEventRecord(done_, s));
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
      cudaError_t e = cudaEventQuery(done_);
      if (e == cudaSuccess) return;
      ZOFF_CHECK(e == cudaErrorNotReady, "NCCL ", what, ": ", cudaGetErrorString(e));
      ncclResult_t st = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &st) != ncclSuccess || (st != ncclSuccess && st != ncclInProgress))
        fail(what, ncclGetErrorString(st));
      if (std::chrono::steady_clock::now() > deadline)
        fail(what, "timed out after " + std::to_string(timeout_.count() / 1000) + " s (distributed.timeout_s)");
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  int rank_, world_, device_;
  std::chrono::milliseconds timeout_;
  ncclComm_t comm_ = nullptr;
  void* dev_ = nullptr;
  void* host_ = nullptr;  // pinned: a copy from pageable memory could block the host on a stuck kernel
  cudaEvent_t done_ = nullptr;
  bool aborted_ = false;
};

}  // namespace

std::unique_ptr<Collective> make_nccl_collective(const c10::intrusive_ptr<c10d::Store>& store, const DistEnv& env,
                                                 const CollectiveOptions& opts) {
  return std::make_unique<NcclCollective>(store, env, opts);
}

}  // namespace zoff::dist_detail
