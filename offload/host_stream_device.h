// HostStreamDevice: the three streams as worker threads with CUDA's event semantics (CPU builds, tests).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "offload/stream_device.h"

namespace zoff {

// Note [Host streams]
// Each stream is one worker thread draining a FIFO, so work on a stream runs in issue order and
// streams run concurrently, as on a GPU. An event keeps a count of records issued and the set of
// records completed: record(s, e) takes the next number n at issue time and marks n complete when
// s reaches it; wait(s, e) captures the number of the latest record at issue time and blocks s's
// worker until that record is complete. Records on different streams may complete out of order,
// so "complete" is tracked per record number, not as a high-water mark -- exactly what
// cudaStreamWaitEvent promises. Copies are memcpy on the stream's worker; launch runs fn there.
// A throwing task poisons the device: later copies and launches are skipped (records and waits
// still run, so nothing deadlocks) and synchronize_all() rethrows the first error, then clears it.
class HostStreamDevice : public StreamDevice {
 public:
  HostStreamDevice();
  ~HostStreamDevice() override;
  HostStreamDevice(const HostStreamDevice&) = delete;
  HostStreamDevice& operator=(const HostStreamDevice&) = delete;

  at::Device device() const override { return at::Device(at::kCPU); }
  const char* name() const override { return "host"; }
  EventId create_event() override;
  TimerId create_timer() override;
  void copy_h2d(StreamId s, void* dst, const void* src, size_t bytes, int tag) override;
  void copy_d2h(StreamId s, void* dst, const void* src, size_t bytes, int tag) override;
  void launch(StreamId s, std::function<void()> fn, int tag) override;
  void record(StreamId s, EventId e) override;
  void wait(StreamId s, EventId e) override;
  void host_wait(EventId e) override;
  void mark(StreamId s, TimerId t) override;
  double elapsed_ms(TimerId from, TimerId to) override;
  void synchronize_all() override;

 protected:
  enum class CopyDir { H2D, D2H };
  // Run on stream s's worker. Defaults: memcpy / fn(). FakeTransferDevice adds delays and a timeline.
  virtual void run_copy(StreamId s, CopyDir dir, void* dst, const void* src, size_t bytes, int tag);
  virtual void run_launch(StreamId s, const std::function<void()>& fn, int tag);
  // Subclasses must call this first in their destructor so no worker runs their overrides after
  // their members are gone.
  void stop_workers();

 private:
  struct Worker {
    std::thread thread;
    std::mutex mu;
    std::condition_variable cv;       // new work or stop
    std::condition_variable idle_cv;  // queue drained and nothing running
    std::deque<std::function<void()>> queue;
    bool running = false;
    bool stop = false;
  };
  struct EventState {
    uint64_t issued = 0;          // records issued so far (the latest has this number)
    uint64_t done_upto = 0;       // records 1..done_upto are complete
    std::set<uint64_t> done_ahead;  // complete records above done_upto (out-of-order streams)
  };
  using Clock = std::chrono::steady_clock;

  void enqueue(StreamId s, std::function<void()> task);
  void worker_loop(Worker* w);
  void set_error(std::exception_ptr e);
  bool record_done(const EventState& ev, uint64_t n) const;
  void complete_record(EventId e, uint64_t n);

  Worker workers_[kNumStreams];
  std::mutex ev_mu_;  // guards events_ and timers_
  std::condition_variable ev_cv_;
  std::deque<EventState> events_;
  std::deque<Clock::time_point> timers_;
  std::deque<bool> timer_set_;
  std::mutex err_mu_;
  std::exception_ptr first_error_;
  std::atomic<bool> failed_{false};
  bool stopped_ = false;
};

// One op a FakeTransferDevice ran: which stream, what ("h2d", "d2h", "launch"), its tag, and its
// start and end in ms since the device was built (or since clear_timeline()).
struct DeviceOpRecord {
  StreamId stream;
  const char* op;
  int tag;
  double start_ms;
  double end_ms;
};

// A HostStreamDevice whose copies take at least an injected time (fixed per copy plus per byte)
// and which records every copy and launch on a timeline, so tests can check overlap.
struct FakeTransferTiming {
  std::chrono::microseconds h2d{0};
  std::chrono::microseconds d2h{0};
  double h2d_gbps = 0;  // >0 adds bytes / (gbps * 1e9) seconds to each h2d copy
  double d2h_gbps = 0;
};

class FakeTransferDevice : public HostStreamDevice {
 public:
  explicit FakeTransferDevice(FakeTransferTiming t);
  ~FakeTransferDevice() override;
  const char* name() const override { return "fake-transfer"; }
  std::vector<DeviceOpRecord> timeline() const;
  void clear_timeline();

 protected:
  void run_copy(StreamId s, CopyDir dir, void* dst, const void* src, size_t bytes, int tag) override;
  void run_launch(StreamId s, const std::function<void()>& fn, int tag) override;

 private:
  double ms_since_origin(std::chrono::steady_clock::time_point t) const;
  FakeTransferTiming timing_;
  mutable std::mutex mu_;
  std::chrono::steady_clock::time_point origin_;
  std::vector<DeviceOpRecord> timeline_;
};

}  // namespace zoff
