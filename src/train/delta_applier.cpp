// DeltaApplier: the host thread that applies streamed blocks' deltas (Note [Applies across passes]).
#include "delta_applier.h"

#include <algorithm>
#include <chrono>

#include "offload/env_knob.h"
#include "zoff/error.h"

namespace zoff {

using Clock = std::chrono::steady_clock;

static double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

DeltaApplier::DeltaApplier(StreamDevice& dev, DeltaBuffers& delta, int num_blocks)
    : dev_(dev), delta_(delta), pending_(size_t(std::max(num_blocks, 0)), 0) {
  delay_ms_ = int(env_int("ZOFF_DEBUG_DELTA_APPLY_DELAY_MS", 0, 60000, 0));
  fail_at_ = env_int("ZOFF_DEBUG_DELTA_APPLY_FAIL_AT", 0, 1L << 40, -1);
  thread_ = std::thread([this] { run(); });
}

DeltaApplier::~DeltaApplier() {
  abort();
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
}

void DeltaApplier::rethrow_locked() const {
  if (error_) std::rethrow_exception(error_);
}

void DeltaApplier::begin_pass(size_t n) {
  std::lock_guard<std::mutex> lk(mu_);
  rethrow_locked();
  passes_.push_back({next_pass_++, n, 0, 0, {}});
  account_locked(passes_.back().id, 0, {});  // a pass of no blocks is complete at once
}

void DeltaApplier::enqueue(int b, EventId done) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    ZOFF_CHECK(!passes_.empty() && passes_.back().enqueued < passes_.back().expected, "delta applier: block ", b,
               " enqueued outside a pass, or more blocks than the pass announced");
    ZOFF_CHECK(b >= 0 && size_t(b) < pending_.size(), "delta applier: block ", b, " out of range");
    ZOFF_CHECK(!pending_[size_t(b)], "delta applier: block ", b,
               " was offloaded again before its previous apply finished (the upload gate was skipped)");
    pending_[size_t(b)] = 1;
    ++passes_.back().enqueued;
    queue_.push_back({b, done, passes_.back().id});
  }
  work_cv_.notify_one();
}

double DeltaApplier::wait_block(int b) {
  const auto t0 = Clock::now();
  std::unique_lock<std::mutex> lk(mu_);
  done_cv_.wait(lk, [&] { return !pending_.at(size_t(b)) || error_; });
  rethrow_locked();
  return ms_since(t0);
}

double DeltaApplier::drain() {
  const auto t0 = Clock::now();
  std::unique_lock<std::mutex> lk(mu_);
  done_cv_.wait(lk, [&] { return (queue_.empty() && !busy_) || error_; });
  rethrow_locked();
  return ms_since(t0);
}

void DeltaApplier::abort() {
  std::unique_lock<std::mutex> lk(mu_);
  queue_.clear();
  passes_.clear();
  done_cv_.wait(lk, [&] { return !busy_; });
  std::fill(pending_.begin(), pending_.end(), uint8_t(0));
  lk.unlock();
  done_cv_.notify_all();
}

ApplyPassStats DeltaApplier::last_complete() const {
  std::lock_guard<std::mutex> lk(mu_);
  return last_;
}

ApplyPassStats DeltaApplier::total() const {
  std::lock_guard<std::mutex> lk(mu_);
  return total_;
}

bool DeltaApplier::pass_pending() const {
  std::lock_guard<std::mutex> lk(mu_);
  return !passes_.empty();
}

// Adds `blocks` applied blocks and their figures to a pass; retires the passes at the front whose
// blocks are all applied.
void DeltaApplier::account_locked(uint64_t pass, size_t blocks, const ApplyPassStats& s) {
  total_.exceptions += s.exceptions;
  total_.code_bytes += s.code_bytes;
  total_.busy_ms += s.busy_ms;
  for (PassRecord& r : passes_)
    if (r.id == pass) {
      r.applied += blocks;
      r.stats.exceptions += s.exceptions;
      r.stats.code_bytes += s.code_bytes;
      r.stats.busy_ms += s.busy_ms;
      break;
    }
  while (!passes_.empty() && passes_.front().applied >= passes_.front().expected) {
    last_ = passes_.front().stats;
    passes_.pop_front();
  }
}

void DeltaApplier::run() {
  for (;;) {
    Item it{};
    {
      std::unique_lock<std::mutex> lk(mu_);
      work_cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopped
      it = queue_.front();
      queue_.pop_front();
      busy_ = true;
    }
    ApplyPassStats s;
    std::exception_ptr err;
    try {
      dev_.host_wait(it.done);
      if (delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
      ZOFF_CHECK(started_++ != fail_at_, "delta apply of block ", it.block,
                 " failed (ZOFF_DEBUG_DELTA_APPLY_FAIL_AT, a test knob)");
      const auto t0 = Clock::now();
      s.exceptions = delta_.apply(it.block);
      s.busy_ms = ms_since(t0);
      s.code_bytes = delta_.d2h_code_bytes(it.block);
    } catch (...) {
      err = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      busy_ = false;
      pending_[size_t(it.block)] = 0;
      if (err) {
        if (!error_) error_ = err;
        queue_.clear();
        passes_.clear();
        std::fill(pending_.begin(), pending_.end(), uint8_t(0));
      } else {
        account_locked(it.pass, 1, s);
      }
    }
    done_cv_.notify_all();
  }
}

}  // namespace zoff
