// Executor on HostStreamDevice: the +1 identity over many plans, the CPU update site, no per-step allocations.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <future>
#include <random>

#include "offload/host_memory.h"
#include "offload/host_stream_device.h"
#include "offload/planner.h"
#include "offload_test_util.h"
#include "zoff/error.h"

namespace zoff {
namespace {

using test::Rig;

std::vector<bool> mask_for(int B, int mode) {
  if (mode == 0) return std::vector<bool>(size_t(B), false);
  if (mode == 1) return spread_resident(B, (B + 1) / 2);
  std::vector<bool> m(size_t(B), false);  // alternate, starting streamed
  for (int b = 1; b < B; b += 2) m[size_t(b)] = true;
  return m;
}

// GPU site: compute adds 1 to the slot (or resident buffer) and the slot is written back, so
// after S steps every block is initial + S bit for bit.
TEST(Executor, GpuSiteIdentityAddsOnePerStep) {
  HostStreamDevice dev;
  const int S = 3;
  int combos = 0;
  for (int B : {1, 4, 7})
    for (int K : {2, 3, 4})
      for (int d = 0; d < K; ++d)
        for (int mode = 0; mode < 3; ++mode) {
          Rig rig(dev, {B, K, d, mask_for(B, mode), UpdateSite::Gpu}, {DType::F32, TransferFormat::Same, false});
          test::fill_initial(*rig.store);
          rig.resident->load_from_host();
          std::vector<int> order;
          for (int s = 0; s < S; ++s) {
            order.clear();
            rig.exec->run_step(rig.plan, [&](int b, at::Tensor buf) {
              order.push_back(b);
              ASSERT_EQ(buf.numel(), rig.store->numel(b));
              buf.add_(1.0);
            });
          }
          rig.resident->store_to_host();
          std::vector<int> want(static_cast<size_t>(B));
          for (int b = 0; b < B; ++b) want[size_t(b)] = b;
          EXPECT_EQ(order, want);
          for (int b = 0; b < B; ++b)
            EXPECT_EQ(test::mismatches(*rig.store, b, float(S)), 0)
                << "B=" << B << " K=" << K << " d=" << d << " mode=" << mode << " block " << b;
          ++combos;
        }
  EXPECT_EQ(combos, 3 * 9 * 3);
}

// Resident blocks live on the "device": without store_to_host the host master is stale.
TEST(Executor, ResidentBlocksNeedStoreToHost) {
  HostStreamDevice dev;
  Rig rig(dev, {3, 2, 1, {true, false, false}, UpdateSite::Gpu}, {DType::F32, TransferFormat::Same, false});
  test::fill_initial(*rig.store);
  rig.resident->load_from_host();
  rig.exec->run_step(rig.plan, [](int, at::Tensor buf) { buf.add_(1.0); });
  EXPECT_EQ(test::mismatches(*rig.store, 0, 0.f), 0);
  EXPECT_EQ(test::mismatches(*rig.store, 1, 1.f), 0);
  rig.resident->store_to_host();
  EXPECT_EQ(test::mismatches(*rig.store, 0, 1.f), 0);
}

// CPU site: the host adds 1 to each streamed master (asynchronously, per block) before that block
// is uploaded; compute checks it sees the updated value, and updates resident blocks itself.
struct HostUpdater {
  BlockStore& store;
  std::vector<std::promise<void>> done;
  std::vector<std::future<void>> futures;
  std::thread worker;
  void start(const std::vector<int>& streamed, int delay_us) {
    done = std::vector<std::promise<void>>(size_t(store.num_blocks()));
    futures.clear();
    for (auto& p : done) futures.push_back(p.get_future());
    worker = std::thread([this, streamed, delay_us] {
      for (int b : streamed) {
        if (delay_us) std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
        store.view(b).add_(1.0);
        store.refresh_transfer_copy(b);
        done[size_t(b)].set_value();
      }
    });
  }
  void wait(int b) { futures[size_t(b)].wait(); }
  void join() { worker.join(); }
};

TEST(Executor, CpuSiteUploadsAfterHostUpdate) {
  HostStreamDevice dev;
  const int S = 3;
  for (int B : {1, 5})
    for (int K : {2, 3})
      for (int d = 0; d < K; ++d)
        for (int mode = 0; mode < 3; ++mode) {
          Rig rig(dev, {B, K, d, mask_for(B, mode), UpdateSite::Cpu}, {DType::F32, TransferFormat::Same, false});
          test::fill_initial(*rig.store);
          rig.resident->load_from_host();
          std::atomic<int64_t> stale{0};
          for (int s = 0; s < S; ++s) {
            HostUpdater up{*rig.store, {}, {}, {}};
            up.start(rig.plan.streamed, 200);
            rig.exec->run_step(
                rig.plan,
                [&](int b, at::Tensor buf) {
                  // The slot must hold the master after this step's host update: initial + s + 1.
                  const float* p = buf.data_ptr<float>();
                  if (!rig.resident->is_resident(b))
                    for (int64_t i = 0; i < buf.numel(); ++i) stale += p[i] != test::initial_value(b, i) + float(s + 1);
                  buf.add_(1.0);  // resident: the device-side update; streamed: discarded
                },
                [&](int b) { up.wait(b); });
            up.join();
          }
          rig.resident->store_to_host();
          EXPECT_EQ(stale.load(), 0) << "B=" << B << " K=" << K << " d=" << d << " mode=" << mode;
          for (int b = 0; b < B; ++b) EXPECT_EQ(test::mismatches(*rig.store, b, float(S)), 0) << "block " << b;
        }
}

TEST(Executor, CpuSiteWithBf16TransferUploadsTheRefreshedCopy) {
  HostStreamDevice dev;
  Rig rig(dev, {4, 3, 2, {}, UpdateSite::Cpu}, {DType::F32, TransferFormat::BF16, false});
  test::fill_initial(*rig.store);
  std::atomic<int64_t> bad{0};
  for (int s = 0; s < 2; ++s) {
    HostUpdater up{*rig.store, {}, {}, {}};
    up.start(rig.plan.streamed, 0);
    rig.exec->run_step(
        rig.plan,
        [&](int b, at::Tensor buf) {
          EXPECT_EQ(buf.scalar_type(), at::kBFloat16);
          at::Tensor want = rig.store->view(b).to(at::kBFloat16).contiguous();
          bad += std::memcmp(buf.data_ptr(), want.data_ptr(), size_t(want.numel()) * 2) != 0;
        },
        [&](int b) { up.wait(b); });
    up.join();
  }
  EXPECT_EQ(bad.load(), 0);
}

TEST(Executor, Fp8TransferHandsOverTheWholePackedRange) {
  HostStreamDevice dev;
  Rig rig(dev, {3, 2, 1, {}, UpdateSite::Cpu}, {DType::F32, TransferFormat::FP8, false});
  test::fill_initial(*rig.store);
  for (int b = 0; b < 3; ++b) rig.store->refresh_transfer_copy(b);
  std::atomic<int64_t> bad{0};
  rig.exec->run_step(
      rig.plan,
      [&](int b, at::Tensor buf) {
        EXPECT_EQ(buf.scalar_type(), at::kByte);
        EXPECT_EQ(buf.numel(), rig.store->transfer_bytes(b));
        bad += std::memcmp(buf.data_ptr(), rig.store->transfer_data(b), size_t(buf.numel())) != 0;
      },
      [](int) {});
  EXPECT_EQ(bad.load(), 0);
}

TEST(Executor, NoAllocationsPerStep) {
  HostStreamDevice dev;
  ExecutorOptions eo;
  eo.timeline = true;
  Rig rig(dev, {6, 3, 1, spread_resident(6, 2), UpdateSite::Gpu}, {DType::F32, TransferFormat::Same, false}, eo);
  test::fill_initial(*rig.store);
  rig.resident->load_from_host();
  rig.exec->prepare(rig.plan);
  const int64_t before = offload_allocations();
  for (int s = 0; s < 5; ++s) rig.exec->run_step(rig.plan, [](int, at::Tensor buf) { buf.add_(1.0); });
  EXPECT_EQ(offload_allocations(), before);
  EXPECT_EQ(rig.exec->steps(), 5);
  rig.resident->store_to_host();
  for (int b = 0; b < 6; ++b) EXPECT_EQ(test::mismatches(*rig.store, b, 5.f), 0);
}

TEST(Executor, ComputeErrorPropagatesAndNextStepRuns) {
  HostStreamDevice dev;
  Rig rig(dev, {4, 2, 1, {}, UpdateSite::Gpu}, {DType::F32, TransferFormat::Same, false});
  test::fill_initial(*rig.store);
  EXPECT_THROW(rig.exec->run_step(rig.plan,
                                  [](int b, at::Tensor) {
                                    if (b == 2) ZOFF_FAIL("compute of block 2 failed");
                                  }),
               Error);
  rig.exec->run_step(rig.plan, [](int, at::Tensor buf) { buf.add_(1.0); });
  for (int b = 0; b < 4; ++b) EXPECT_EQ(test::mismatches(*rig.store, b, 1.f), 0);
}

TEST(Executor, RejectsMismatchedSetup) {
  HostStreamDevice dev;
  Rig rig(dev, {4, 2, 1, {}, UpdateSite::Gpu}, {DType::F32, TransferFormat::Same, false});
  Plan other = build_plan({4, 3, 1, {}, UpdateSite::Gpu});  // 3 slots, ring has 2
  EXPECT_THROW(rig.exec->run_step(other, [](int, at::Tensor) {}), Error);
  Plan res = build_plan({4, 2, 1, {true, false, false, false}, UpdateSite::Gpu});  // resident set differs
  EXPECT_THROW(rig.exec->run_step(res, [](int, at::Tensor) {}), Error);
  Plan cpu = build_plan({4, 2, 1, {}, UpdateSite::Cpu});
  EXPECT_THROW(rig.exec->run_step(cpu, [](int, at::Tensor) {}), Error);  // no host-update callback
  // GPU site with a bf16 transfer copy would write bf16 back into an f32 master.
  Rig bf(dev, {4, 2, 1, {}, UpdateSite::Cpu}, {DType::F32, TransferFormat::BF16, false});
  Plan gpu = build_plan({4, 2, 1, {}, UpdateSite::Gpu});
  EXPECT_THROW(bf.exec->run_step(gpu, [](int, at::Tensor) {}), Error);
}

// Write-back modes (Note [Delta write-back]): Skip leaves the masters alone; Delta copies only the
// count word of each streamed block's slot to its destination and reports every Offload once, in
// plan order, with an event that completes after that copy.
TEST(Executor, WriteBackSkipAndDelta) {
  HostStreamDevice dev;
  const int B = 5;
  Rig rig(dev, {B, 2, 1, spread_resident(B, 1), UpdateSite::Gpu}, {DType::F32, TransferFormat::Same, false});
  test::fill_initial(*rig.store);
  rig.resident->load_from_host();
  WriteBackSpec skip;
  skip.mode = WriteBackMode::Skip;
  rig.exec->run_step(rig.plan, [](int, at::Tensor buf) { buf.add_(1.0); }, {}, {}, skip);
  for (int b : rig.plan.streamed) EXPECT_EQ(test::mismatches(*rig.store, b, 0.f), 0) << "skip wrote block " << b;

  uint64_t src[2] = {0, 0}, dst[B] = {};
  uint32_t csrc[2][3] = {}, cdst[B][3] = {};  // staged codes (Note [Staged codes]): 4 + b bytes of 12
  std::vector<int> issued;
  WriteBackSpec delta;
  delta.mode = WriteBackMode::Delta;
  delta.count_bytes = sizeof(uint64_t);
  delta.count_src = [&](int k) { return static_cast<const void*>(&src[k]); };
  delta.count_dst = [&](int b) { return static_cast<void*>(&dst[b]); };
  delta.codes_src = [&](int k) { return static_cast<const void*>(csrc[k]); };
  delta.codes_dst = [&](int b) { return static_cast<void*>(cdst[b]); };
  delta.codes_bytes = [&](int b) { return size_t(4 + b); };
  delta.offload_issued = [&](int b, EventId e) {
    issued.push_back(b);
    dev.host_wait(e);
    EXPECT_EQ(dst[b], uint64_t(100 + b)) << "the event completed before block " << b << "'s count arrived";
    const uint8_t* c = reinterpret_cast<const uint8_t*>(cdst[b]);
    for (int i = 0; i < 12; ++i) EXPECT_EQ(c[i], i < 4 + b ? uint8_t(b + 1) : 0) << "block " << b << " code byte " << i;
  };
  rig.exec->run_step(
      rig.plan,
      [&](int b, at::Tensor buf) {
        buf.add_(1.0);
        const int k = rig.plan.slot_of_block[size_t(b)];
        if (k >= 0) src[k] = uint64_t(100 + b), std::memset(csrc[k], b + 1, sizeof(csrc[k]));
      },
      {}, {}, delta);
  EXPECT_EQ(issued, rig.plan.streamed);
  for (int b : rig.plan.streamed) EXPECT_EQ(test::mismatches(*rig.store, b, 0.f), 0) << "delta copied block " << b;
  WriteBackSpec bad;
  bad.mode = WriteBackMode::Delta;
  EXPECT_THROW(rig.exec->run_step(rig.plan, [](int, at::Tensor) {}, {}, {}, bad), Error);
}

}  // namespace
}  // namespace zoff
