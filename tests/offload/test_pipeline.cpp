// Overlap on FakeTransferDevice: a pipelined step takes ~(B+1) block times, not 2B; chrome traces parse.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "offload/host_stream_device.h"
#include "offload_test_util.h"
#include "zoff/error.h"

namespace zoff {
namespace {

using namespace std::chrono_literals;
using test::Rig;

double overlap_ms(const OpTiming& a, const OpTiming& b) {
  return std::min(a.end_ms, b.end_ms) - std::max(a.start_ms, b.start_ms);
}

const OpTiming* find(const std::vector<OpTiming>& t, OpKind k, int block) {
  for (const OpTiming& o : t)
    if (o.kind == k && o.block == block) return &o;
  return nullptr;
}

// B=8, K=3, upload 20 ms, compute 20 ms, CPU site (nothing travels back): serial would be
// 2*B*20 = 320 ms, pipelined about (B+1)*20 = 180 ms.
TEST(Pipeline, UploadsOverlapComputeCpuSite) {
  FakeTransferTiming t;
  t.h2d = 20ms;
  FakeTransferDevice dev(t);
  ExecutorOptions eo;
  eo.timeline = true;
  const int B = 8;
  Rig rig(dev, {B, 3, 1, {}, UpdateSite::Cpu}, {DType::F32, TransferFormat::Same, false}, eo);
  test::fill_initial(*rig.store);
  dev.clear_timeline();
  rig.exec->run_step(
      rig.plan, [](int, at::Tensor buf) { std::this_thread::sleep_for(20ms); buf.add_(1.0); }, [](int) {});
  const double serial = 2.0 * B * 20.0;
  const double step = rig.exec->step_ms();
  EXPECT_LT(rig.exec->wall_ms(), 0.75 * serial) << "step " << rig.exec->wall_ms() << " ms";
  EXPECT_GE(step, (B + 1) * 20.0 - 1.0);
  const std::vector<OpTiming>& tl = rig.exec->timeline();
  for (int i = 0; i + 1 < B; ++i) {
    const OpTiming* up = find(tl, OpKind::Upload, i + 1);
    const OpTiming* co = find(tl, OpKind::Compute, i);
    ASSERT_TRUE(up && co);
    EXPECT_GT(overlap_ms(*up, *co), 5.0) << "upload " << i + 1 << " [" << up->start_ms << ", " << up->end_ms
                                         << "] vs compute " << i << " [" << co->start_ms << ", " << co->end_ms << "]";
  }
  // Uploads are back to back except where slots are full: the link is busy most of the step.
  EXPECT_GT(rig.exec->h2d_busy_fraction(), 0.6);
  EXPECT_LE(rig.exec->h2d_busy_fraction(), 1.0);
  // The fake device's own timeline agrees: 8 h2d copies, 8 launches.
  int h2d = 0, launches = 0;
  for (const DeviceOpRecord& r : dev.timeline()) {
    h2d += std::string(r.op) == "h2d";
    launches += std::string(r.op) == "launch";
  }
  EXPECT_EQ(h2d, B);
  EXPECT_EQ(launches, B);
}

// GPU site with 20 ms write-backs too: serial 3*B*20 = 480 ms, pipelined about (B+2)*20 = 200 ms;
// the identity still holds with real overlap.
TEST(Pipeline, UploadComputeOffloadOverlapGpuSite) {
  FakeTransferTiming t;
  t.h2d = 20ms;
  t.d2h = 20ms;
  FakeTransferDevice dev(t);
  ExecutorOptions eo;
  eo.timeline = true;
  const int B = 8;
  Rig rig(dev, {B, 3, 1, {}, UpdateSite::Gpu}, {DType::F32, TransferFormat::Same, false}, eo);
  test::fill_initial(*rig.store);
  rig.exec->run_step(rig.plan, [](int, at::Tensor buf) { std::this_thread::sleep_for(20ms); buf.add_(1.0); });
  EXPECT_LT(rig.exec->wall_ms(), 0.75 * 3.0 * B * 20.0);
  const std::vector<OpTiming>& tl = rig.exec->timeline();
  int triple = 0;  // offload i-1, compute i, upload i+1 running at once
  for (int i = 1; i + 1 < B; ++i) {
    const OpTiming *off = find(tl, OpKind::Offload, i - 1), *co = find(tl, OpKind::Compute, i),
                   *up = find(tl, OpKind::Upload, i + 1);
    ASSERT_TRUE(off && co && up);
    triple += overlap_ms(*off, *co) > 5.0 && overlap_ms(*up, *co) > 5.0;
  }
  EXPECT_GE(triple, B - 3);
  for (int b = 0; b < B; ++b) EXPECT_EQ(test::mismatches(*rig.store, b, 1.f), 0);
}

TEST(Pipeline, ChromeTraceParses) {
  FakeTransferTiming t;
  t.h2d = 1ms;
  t.d2h = 1ms;
  FakeTransferDevice dev(t);
  ExecutorOptions eo;
  eo.timeline = true;
  Rig rig(dev, {5, 2, 1, {false, true, false, false, false}, UpdateSite::Gpu},
          {DType::F32, TransferFormat::Same, false}, eo);
  rig.resident->load_from_host();
  rig.exec->run_step(rig.plan, [](int, at::Tensor) {});
  const std::string path = std::string(ZOFF_BINARY_DIR) + "/test_offload_trace.json";
  rig.exec->write_chrome_trace(path);
  std::ifstream f(path);
  nlohmann::json j = nlohmann::json::parse(f);
  ASSERT_TRUE(j.contains("traceEvents"));
  int complete = 0;
  for (const auto& e : j["traceEvents"]) {
    if (e["ph"] == "X") {
      ++complete;
      EXPECT_GE(e["dur"].get<double>(), 0.0);
      EXPECT_GE(e["tid"].get<int>(), 0);
      EXPECT_LT(e["tid"].get<int>(), 3);
    }
  }
  EXPECT_EQ(complete, int(rig.plan.ops.size()));  // GPU site: no host-wait ops, every op timed
  std::remove(path.c_str());
  EXPECT_THROW(rig.exec->write_chrome_trace("/nonexistent-dir/x/trace.json"), InputError);
}

}  // namespace
}  // namespace zoff
