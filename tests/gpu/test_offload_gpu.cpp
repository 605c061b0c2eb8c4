// Offload engine on CudaStreamDevice: the +1 identity through pinned memory and real streams, and timeline sanity.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <future>
#include <thread>

#include "offload/cuda_stream_device.h"
#include "offload/host_memory.h"
#include "offload/offload_test_util.h"
#include "offload/planner.h"

namespace zoff {
namespace {

using test::Rig;

bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

TEST(OffloadGpu, LaunchRunsOnTheComputeStream) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  CudaStreamDevice dev(0);
  cudaStream_t seen = nullptr;
  dev.launch(StreamId::Compute, [&] { seen = c10::cuda::getCurrentCUDAStream(0).stream(); }, 0);
  EXPECT_EQ(seen, dev.stream(StreamId::Compute));
  EXPECT_NE(c10::cuda::getCurrentCUDAStream(0).stream(), dev.stream(StreamId::Compute)) << "guard not restored";
}

TEST(OffloadGpu, PinnedStoreGpuSiteIdentity) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  CudaStreamDevice dev(0);
  const int B = 7, S = 4;
  for (int K : {2, 3})
    for (int mode = 0; mode < 2; ++mode) {
      std::vector<bool> res = mode == 0 ? std::vector<bool>(B, false) : spread_resident(B, 3);
      Rig rig(dev, {B, K, K - 1, res, UpdateSite::Gpu}, {DType::F32, TransferFormat::Same, true}, {}, 4096);
      EXPECT_TRUE(rig.store->all_pinned());
      test::fill_initial(*rig.store);
      rig.resident->load_from_host();
      rig.exec->prepare(rig.plan);
      const int64_t allocs = offload_allocations();
      for (int s = 0; s < S; ++s)
        rig.exec->run_step(rig.plan, [](int, at::Tensor buf) {
          ASSERT_TRUE(buf.is_cuda());
          buf.add_(1.0);
        });
      EXPECT_EQ(offload_allocations(), allocs);
      rig.resident->store_to_host();
      for (int b = 0; b < B; ++b)
        EXPECT_EQ(test::mismatches(*rig.store, b, float(S)), 0) << "K=" << K << " mode=" << mode << " block " << b;
    }
}

TEST(OffloadGpu, CpuSiteUploadsAfterHostUpdate) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  CudaStreamDevice dev(0);
  const int B = 6;
  for (int K : {2, 3}) {
    Rig rig(dev, {B, K, 1, {}, UpdateSite::Cpu}, {DType::F32, TransferFormat::Same, true}, {}, 4096);
    test::fill_initial(*rig.store);
    // What each compute saw, copied on the compute stream into preallocated device buffers.
    std::vector<at::Tensor> seen;
    for (int b = 0; b < B; ++b) seen.push_back(at::empty({rig.store->numel(b)}, at::TensorOptions().dtype(at::kFloat).device(dev.device())));
    for (int s = 0; s < 2; ++s) {
      std::vector<std::promise<void>> done(B);
      std::vector<std::shared_future<void>> fut;
      for (auto& p : done) fut.push_back(p.get_future().share());
      std::thread updater([&] {
        for (int b = 0; b < B; ++b) {
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          rig.store->view(b).add_(1.0);
          done[size_t(b)].set_value();
        }
      });
      rig.exec->run_step(rig.plan, [&](int b, at::Tensor buf) { seen[size_t(b)].copy_(buf); },
                         [&](int b) { fut[size_t(b)].wait(); });
      updater.join();
      for (int b = 0; b < B; ++b) {
        at::Tensor got = seen[size_t(b)].cpu();
        EXPECT_TRUE(at::equal(got, rig.store->view(b))) << "K=" << K << " step " << s << " block " << b;
      }
    }
    for (int b = 0; b < B; ++b) EXPECT_EQ(test::mismatches(*rig.store, b, 2.f), 0);
  }
}

TEST(OffloadGpu, TimelineIsOrderedAndOverlaps) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  CudaStreamDevice dev(0);
  ExecutorOptions eo;
  eo.timeline = true;
  const int B = 8;
  // 4-8 MiB blocks: uploads take ~0.1 ms each at PCIe speed.
  Rig rig(dev, {B, 3, 1, {}, UpdateSite::Gpu}, {DType::F32, TransferFormat::Same, true}, eo, 1 << 20);
  test::fill_initial(*rig.store);
  auto compute = [](int, at::Tensor buf) {
    at::Tensor m = buf.narrow(0, 0, 1 << 20).view({1024, 1024});
    for (int i = 0; i < 4; ++i) (void)at::mm(m, m);  // some device time, result discarded
    buf.add_(1.0);
  };
  rig.exec->run_step(rig.plan, compute);  // warm-up (cuBLAS handles, allocator)
  rig.exec->run_step(rig.plan, compute);
  const std::vector<OpTiming>& tl = rig.exec->timeline();
  ASSERT_EQ(tl.size(), rig.plan.ops.size());
  const OpTiming* up[B] = {};
  const OpTiming* co[B] = {};
  const OpTiming* off[B] = {};
  for (const OpTiming& o : tl) {
    EXPECT_GE(o.start_ms, -0.05);
    EXPECT_GE(o.end_ms, o.start_ms);
    (o.kind == OpKind::Upload ? up : o.kind == OpKind::Compute ? co : off)[o.block] = &o;
  }
  const double eps = 0.02;  // ms: event timestamps have ~0.5 us resolution
  for (int b = 0; b < B; ++b) {
    ASSERT_TRUE(up[b] && co[b] && off[b]);
    EXPECT_GE(co[b]->start_ms, up[b]->end_ms - eps) << "compute " << b << " before its upload finished";
    EXPECT_GE(off[b]->start_ms, co[b]->end_ms - eps) << "offload " << b << " before its compute finished";
    if (b >= 3) {
      EXPECT_GE(up[b]->start_ms, off[b - 3]->end_ms - eps) << "slot reused before it was free";
    }
    if (b >= 1) {
      EXPECT_GE(up[b]->start_ms, up[b - 1]->end_ms - eps) << "uploads share one stream";
    }
  }
  const double h2d = rig.exec->h2d_busy_fraction();
  EXPECT_GT(h2d, 0.0);
  EXPECT_LE(h2d, 1.0 + 1e-9);
  const double up_ms = up[1]->end_ms - up[1]->start_ms;
  const double gbps = double(rig.store->transfer_bytes(1)) / (up_ms * 1e6);
  EXPECT_GT(gbps, 2.0) << "pinned H2D at " << gbps << " GB/s";
  std::printf("offload gpu timeline: step %.3f ms, H2D busy %.2f, D2H busy %.2f, compute busy %.2f, H2D %.1f GB/s\n",
              rig.exec->step_ms(), h2d, rig.exec->d2h_busy_fraction(), rig.exec->compute_busy_fraction(), gbps);
  rig.exec->write_chrome_trace(std::string(ZOFF_BINARY_DIR) + "/offload_gpu_trace.json");
  for (int b = 0; b < B; ++b) EXPECT_EQ(test::mismatches(*rig.store, b, 2.f), 0);
}

}  // namespace
}  // namespace zoff
