// HostStreamDevice and FakeTransferDevice (Note [Host streams]).
#include "offload/host_stream_device.h"

#include <cstring>

#include "offload/host_memory.h"
#include "zoff/error.h"

namespace zoff {

const char* stream_name(StreamId s) {
  switch (s) {
    case StreamId::Upload: return "upload";
    case StreamId::Compute: return "compute";
    case StreamId::Offload: return "offload";
  }
  return "?";
}

HostStreamDevice::HostStreamDevice() {
  for (Worker& w : workers_) w.thread = std::thread([this, &w] { worker_loop(&w); });
}

HostStreamDevice::~HostStreamDevice() { stop_workers(); }

void HostStreamDevice::stop_workers() {
  if (stopped_) return;
  stopped_ = true;
  for (Worker& w : workers_) {
    {
      std::lock_guard<std::mutex> lk(w.mu);
      w.stop = true;
    }
    w.cv.notify_all();
  }
  for (Worker& w : workers_)
    if (w.thread.joinable()) w.thread.join();
}

void HostStreamDevice::worker_loop(Worker* w) {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lk(w->mu);
      w->cv.wait(lk, [&] { return w->stop || !w->queue.empty(); });
      if (w->queue.empty()) return;  // stop requested and drained
      task = std::move(w->queue.front());
      w->queue.pop_front();
      w->running = true;
    }
    task();  // tasks catch their own exceptions (set_error)
    {
      std::lock_guard<std::mutex> lk(w->mu);
      w->running = false;
      if (w->queue.empty()) w->idle_cv.notify_all();
    }
  }
}

void HostStreamDevice::enqueue(StreamId s, std::function<void()> task) {
  Worker& w = workers_[int(s)];
  {
    std::lock_guard<std::mutex> lk(w.mu);
    ZOFF_CHECK(!w.stop, "HostStreamDevice: work issued after shutdown");
    w.queue.push_back(std::move(task));
  }
  w.cv.notify_one();
}

void HostStreamDevice::set_error(std::exception_ptr e) {
  std::lock_guard<std::mutex> lk(err_mu_);
  if (!first_error_) first_error_ = e;
  failed_ = true;
}

EventId HostStreamDevice::create_event() {
  std::lock_guard<std::mutex> lk(ev_mu_);
  events_.emplace_back();
  note_offload_allocation();
  return EventId(events_.size() - 1);
}

TimerId HostStreamDevice::create_timer() {
  std::lock_guard<std::mutex> lk(ev_mu_);
  timers_.emplace_back();
  timer_set_.push_back(false);
  note_offload_allocation();
  return TimerId(timers_.size() - 1);
}

void HostStreamDevice::run_copy(StreamId, CopyDir, void* dst, const void* src, size_t bytes, int) {
  std::memcpy(dst, src, bytes);
}

void HostStreamDevice::run_launch(StreamId, const std::function<void()>& fn, int) { fn(); }

void HostStreamDevice::copy_h2d(StreamId s, void* dst, const void* src, size_t bytes, int tag) {
  enqueue(s, [this, s, dst, src, bytes, tag] {
    if (failed_) return;
    try {
      run_copy(s, CopyDir::H2D, dst, src, bytes, tag);
    } catch (...) {
      set_error(std::current_exception());
    }
  });
}

void HostStreamDevice::copy_d2h(StreamId s, void* dst, const void* src, size_t bytes, int tag) {
  enqueue(s, [this, s, dst, src, bytes, tag] {
    if (failed_) return;
    try {
      run_copy(s, CopyDir::D2H, dst, src, bytes, tag);
    } catch (...) {
      set_error(std::current_exception());
    }
  });
}

void HostStreamDevice::launch(StreamId s, std::function<void()> fn, int tag) {
  enqueue(s, [this, s, fn = std::move(fn), tag] {
    if (failed_) return;
    try {
      run_launch(s, fn, tag);
    } catch (...) {
      set_error(std::current_exception());
    }
  });
}

bool HostStreamDevice::record_done(const EventState& ev, uint64_t n) const {
  return n <= ev.done_upto || ev.done_ahead.count(n) != 0;
}

void HostStreamDevice::complete_record(EventId e, uint64_t n) {
  {
    std::lock_guard<std::mutex> lk(ev_mu_);
    EventState& ev = events_[size_t(e)];
    if (n == ev.done_upto + 1) {
      ev.done_upto = n;
      while (ev.done_ahead.erase(ev.done_upto + 1)) ++ev.done_upto;
    } else {
      ev.done_ahead.insert(n);
    }
  }
  ev_cv_.notify_all();
}

void HostStreamDevice::record(StreamId s, EventId e) {
  uint64_t n;
  {
    std::lock_guard<std::mutex> lk(ev_mu_);
    ZOFF_CHECK(e >= 0 && size_t(e) < events_.size(), "record: unknown event ", e);
    n = ++events_[size_t(e)].issued;
  }
  enqueue(s, [this, e, n] { complete_record(e, n); });
}

void HostStreamDevice::wait(StreamId s, EventId e) {
  uint64_t target;
  {
    std::lock_guard<std::mutex> lk(ev_mu_);
    ZOFF_CHECK(e >= 0 && size_t(e) < events_.size(), "wait: unknown event ", e);
    target = events_[size_t(e)].issued;
  }
  if (target == 0) return;  // never recorded: complete, as in CUDA
  enqueue(s, [this, e, target] {
    std::unique_lock<std::mutex> lk(ev_mu_);
    ev_cv_.wait(lk, [&] { return record_done(events_[size_t(e)], target); });
  });
}

void HostStreamDevice::host_wait(EventId e) {
  std::unique_lock<std::mutex> lk(ev_mu_);
  ZOFF_CHECK(e >= 0 && size_t(e) < events_.size(), "host_wait: unknown event ", e);
  const uint64_t target = events_[size_t(e)].issued;
  if (target == 0) return;
  ev_cv_.wait(lk, [&] { return record_done(events_[size_t(e)], target); });
}

void HostStreamDevice::mark(StreamId s, TimerId t) {
  {
    std::lock_guard<std::mutex> lk(ev_mu_);
    ZOFF_CHECK(t >= 0 && size_t(t) < timers_.size(), "mark: unknown timer ", t);
  }
  enqueue(s, [this, t] {
    auto now = Clock::now();
    std::lock_guard<std::mutex> lk(ev_mu_);
    timers_[size_t(t)] = now;
    timer_set_[size_t(t)] = true;
  });
}

double HostStreamDevice::elapsed_ms(TimerId from, TimerId to) {
  std::lock_guard<std::mutex> lk(ev_mu_);
  ZOFF_CHECK(from >= 0 && size_t(from) < timers_.size() && to >= 0 && size_t(to) < timers_.size(),
             "elapsed_ms: unknown timer");
  ZOFF_CHECK(timer_set_[size_t(from)] && timer_set_[size_t(to)], "elapsed_ms: timer not reached yet");
  return std::chrono::duration<double, std::milli>(timers_[size_t(to)] - timers_[size_t(from)]).count();
}

void HostStreamDevice::synchronize_all() {
  for (Worker& w : workers_) {
    std::unique_lock<std::mutex> lk(w.mu);
    w.idle_cv.wait(lk, [&] { return w.queue.empty() && !w.running; });
  }
  std::exception_ptr e;
  {
    std::lock_guard<std::mutex> lk(err_mu_);
    e = first_error_;
    first_error_ = nullptr;
    failed_ = false;
  }
  if (e) std::rethrow_exception(e);
}

// ---- FakeTransferDevice ----

FakeTransferDevice::FakeTransferDevice(FakeTransferTiming t)
    : timing_(t), origin_(std::chrono::steady_clock::now()) {
  timeline_.reserve(4096);
}

FakeTransferDevice::~FakeTransferDevice() { stop_workers(); }

double FakeTransferDevice::ms_since_origin(std::chrono::steady_clock::time_point t) const {
  return std::chrono::duration<double, std::milli>(t - origin_).count();
}

std::vector<DeviceOpRecord> FakeTransferDevice::timeline() const {
  std::lock_guard<std::mutex> lk(mu_);
  return timeline_;
}

void FakeTransferDevice::clear_timeline() {
  std::lock_guard<std::mutex> lk(mu_);
  timeline_.clear();
  origin_ = std::chrono::steady_clock::now();
}

void FakeTransferDevice::run_copy(StreamId s, CopyDir dir, void* dst, const void* src, size_t bytes,
                                  int tag) {
  const auto start = std::chrono::steady_clock::now();
  std::memcpy(dst, src, bytes);
  const bool h2d = dir == CopyDir::H2D;
  std::chrono::duration<double, std::micro> d(h2d ? timing_.h2d : timing_.d2h);
  const double gbps = h2d ? timing_.h2d_gbps : timing_.d2h_gbps;
  if (gbps > 0) d += std::chrono::duration<double, std::micro>(double(bytes) / (gbps * 1e3));
  std::this_thread::sleep_until(start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(d));
  const auto end = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lk(mu_);
  timeline_.push_back({s, h2d ? "h2d" : "d2h", tag, ms_since_origin(start), ms_since_origin(end)});
}

void FakeTransferDevice::run_launch(StreamId s, const std::function<void()>& fn, int tag) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  const auto end = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lk(mu_);
  timeline_.push_back({s, "launch", tag, ms_since_origin(start), ms_since_origin(end)});
}

}  // namespace zoff
