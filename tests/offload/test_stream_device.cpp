// HostStreamDevice follows CUDA's stream/event semantics; FakeTransferDevice delays copies and records them.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>
#include <vector>

#include "offload/host_memory.h"
#include "offload/host_stream_device.h"
#include "zoff/error.h"

namespace zoff {
namespace {

using namespace std::chrono_literals;

TEST(HostStreamDevice, StreamRunsInIssueOrder) {
  HostStreamDevice dev;
  std::vector<int> seen;
  for (int i = 0; i < 50; ++i) dev.launch(StreamId::Compute, [&seen, i] { seen.push_back(i); }, i);
  dev.synchronize_all();
  ASSERT_EQ(seen.size(), size_t(50));
  for (int i = 0; i < 50; ++i) EXPECT_EQ(seen[size_t(i)], i);
}

TEST(HostStreamDevice, WaitOrdersAcrossStreams) {
  HostStreamDevice dev;
  EventId e = dev.create_event();
  std::atomic<int> x{0};
  int seen = -1;
  dev.launch(StreamId::Compute, [&] { std::this_thread::sleep_for(30ms); x = 1; }, 0);
  dev.record(StreamId::Compute, e);
  dev.wait(StreamId::Upload, e);
  dev.launch(StreamId::Upload, [&] { seen = x.load(); }, 0);
  dev.synchronize_all();
  EXPECT_EQ(seen, 1);
}

TEST(HostStreamDevice, NeverRecordedEventIsComplete) {
  HostStreamDevice dev;
  EventId e = dev.create_event();
  bool ran = false;
  dev.wait(StreamId::Upload, e);
  dev.launch(StreamId::Upload, [&] { ran = true; }, 0);
  dev.host_wait(e);
  dev.synchronize_all();
  EXPECT_TRUE(ran);
}

TEST(HostStreamDevice, WaitTargetsLatestRecordAtIssueTimeNotLaterOnes) {
  // cudaStreamWaitEvent semantics: a re-record issued after the wait does not move its target.
  HostStreamDevice dev;
  EventId e = dev.create_event();
  std::promise<void> gate;
  std::shared_future<void> gate_f = gate.get_future().share();
  std::promise<void> upload_ran;
  dev.launch(StreamId::Compute, [] {}, 0);
  dev.record(StreamId::Compute, e);  // record #1: completes at once
  dev.wait(StreamId::Upload, e);     // targets #1
  dev.launch(StreamId::Compute, [gate_f] { gate_f.wait(); }, 1);
  dev.record(StreamId::Compute, e);  // record #2: blocked behind the gate
  dev.launch(StreamId::Upload, [&] { upload_ran.set_value(); }, 0);
  const bool ran = upload_ran.get_future().wait_for(5s) == std::future_status::ready;
  gate.set_value();
  dev.synchronize_all();
  EXPECT_TRUE(ran) << "the upload stream waited for a record issued after its wait";
}

TEST(HostStreamDevice, RecordsCompletingOutOfOrderAreTrackedPerRecord) {
  HostStreamDevice dev;
  EventId e = dev.create_event();
  std::promise<void> gate;
  std::shared_future<void> gate_f = gate.get_future().share();
  std::atomic<bool> upload_done{false};
  dev.launch(StreamId::Compute, [gate_f] { gate_f.wait(); }, 0);
  dev.record(StreamId::Compute, e);  // #1, blocked
  dev.wait(StreamId::Upload, e);     // targets #1
  dev.launch(StreamId::Upload, [&] { upload_done = true; }, 0);
  dev.record(StreamId::Offload, e);  // #2, completes at once
  dev.host_wait(e);                  // targets #2: must return although #1 is pending
  EXPECT_FALSE(upload_done.load()) << "record #2 completing must not complete record #1";
  gate.set_value();
  dev.synchronize_all();
  EXPECT_TRUE(upload_done.load());
}

TEST(HostStreamDevice, CopiesMoveBytes) {
  HostStreamDevice dev;
  std::vector<float> a(1000), b(1000, 0.f), c(1000, 0.f);
  for (int i = 0; i < 1000; ++i) a[size_t(i)] = float(i) * 0.5f;
  EventId e = dev.create_event();
  dev.copy_h2d(StreamId::Upload, b.data(), a.data(), a.size() * 4, 0);
  dev.record(StreamId::Upload, e);
  dev.wait(StreamId::Offload, e);
  dev.copy_d2h(StreamId::Offload, c.data(), b.data(), b.size() * 4, 0);
  dev.synchronize_all();
  EXPECT_EQ(a, c);
}

TEST(HostStreamDevice, ErrorsPropagateAtSynchronizeAndDeviceRecovers) {
  HostStreamDevice dev;
  EventId e = dev.create_event();
  bool later_ran = false;
  dev.launch(StreamId::Compute, [] { throw std::runtime_error("boom"); }, 0);
  dev.record(StreamId::Compute, e);
  dev.wait(StreamId::Upload, e);
  dev.launch(StreamId::Upload, [&] { later_ran = true; }, 0);
  EXPECT_THROW(
      {
        try {
          dev.synchronize_all();
        } catch (const std::runtime_error& ex) {
          EXPECT_STREQ(ex.what(), "boom");
          throw;
        }
      },
      std::runtime_error);
  EXPECT_FALSE(later_ran) << "work after a failure is skipped";
  dev.launch(StreamId::Upload, [&] { later_ran = true; }, 0);
  EXPECT_NO_THROW(dev.synchronize_all());
  EXPECT_TRUE(later_ran);
}

TEST(HostStreamDevice, TimersMeasureStreamTime) {
  HostStreamDevice dev;
  TimerId a = dev.create_timer(), b = dev.create_timer();
  dev.mark(StreamId::Compute, a);
  dev.launch(StreamId::Compute, [] { std::this_thread::sleep_for(20ms); }, 0);
  dev.mark(StreamId::Compute, b);
  dev.synchronize_all();
  EXPECT_GE(dev.elapsed_ms(a, b), 19.0);
  EXPECT_LT(dev.elapsed_ms(a, b), 1000.0);
}

TEST(HostStreamDevice, EventsAndTimersCountAsAllocations) {
  HostStreamDevice dev;
  const int64_t before = offload_allocations();
  dev.create_event();
  dev.create_timer();
  EXPECT_EQ(offload_allocations(), before + 2);
}

TEST(FakeTransferDevice, CopiesTakeTheInjectedTimeAndAreRecorded) {
  FakeTransferTiming t;
  t.h2d = 15ms;
  t.d2h = 5ms;
  FakeTransferDevice dev(t);
  std::vector<char> a(64, 'x'), b(64, 0), c(64, 'y'), d(64, 0);
  dev.copy_h2d(StreamId::Upload, b.data(), a.data(), 64, 7);
  dev.copy_d2h(StreamId::Offload, d.data(), c.data(), 64, 8);
  dev.launch(StreamId::Compute, [] {}, 9);
  dev.synchronize_all();
  std::vector<DeviceOpRecord> tl = dev.timeline();
  ASSERT_EQ(tl.size(), size_t(3));
  for (const DeviceOpRecord& r : tl) {
    if (std::string(r.op) == "h2d") {
      EXPECT_EQ(r.tag, 7);
      EXPECT_EQ(r.stream, StreamId::Upload);
      EXPECT_GE(r.end_ms - r.start_ms, 14.9);
    } else if (std::string(r.op) == "d2h") {
      EXPECT_EQ(r.tag, 8);
      EXPECT_GE(r.end_ms - r.start_ms, 4.9);
    } else {
      EXPECT_STREQ(r.op, "launch");
      EXPECT_EQ(r.tag, 9);
    }
  }
  EXPECT_EQ(b[10], 'x');
  EXPECT_EQ(d[63], 'y');
  dev.clear_timeline();
  EXPECT_TRUE(dev.timeline().empty());
}

}  // namespace
}  // namespace zoff
