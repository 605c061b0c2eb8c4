// Deferred update site: the host replay thread and the issuing thread's hooks (Note [Deferred update site]).
#include "deferred_updates.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "zoff/error.h"

namespace zoff {

DeferredUpdates::DeferredUpdates(const Model& m, BlockStore& store, StreamDevice& dev, std::vector<int> streamed,
                                 int max_lag)
    : m_(m), store_(store), dev_(dev), streamed_(std::move(streamed)), max_lag_(max_lag) {
  ZOFF_CHECK(max_lag_ >= 1, "deferred update site: max lag must be >= 1, got ", max_lag_);
  const size_t B = size_t(store.num_blocks());
  done_.assign(B, 0);
  busy_.assign(B, 0);
  uploading_.assign(B, 0);
  loaded_.assign(B, -1);
  pass_of_.assign(B, -1);
  pos_.assign(B, 0);
  for (size_t j = 0; j < streamed_.size(); ++j) pos_[size_t(streamed_[j])] = j;
  for (int b : streamed_) ZOFF_CHECK(b >= 0 && size_t(b) < B, "deferred update site: bad block ", b);
  // Test hook: slow the host thread down so masters lag (tests/train/test_identity.cpp).
  if (const char* d = std::getenv("ZOFF_DEFERRED_HOST_DELAY_MS")) host_delay_ms_ = std::atoi(d);
  thread_ = std::thread([this] { run(); });
}

DeferredUpdates::~DeferredUpdates() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void DeferredUpdates::push(const ZoOptimizer& opt, const PendingUpdate& u) {
  ZOFF_CHECK(!u.empty(), "deferred update site: pushing an empty update");
  {
    std::lock_guard<std::mutex> lk(mu_);
    ZOFF_CHECK(opt_ == nullptr || opt_ == &opt, "deferred update site: updates from two optimizers");
    opt_ = &opt;
    history_.push_back(std::make_shared<const PendingUpdate>(u));
    ++total_;
  }
  cv_.notify_all();
}

void DeferredUpdates::begin_pass() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++pass_;
    issue_pos_ = 0;
  }
  cv_.notify_all();
}

std::vector<DeferredUpdates::Entry> DeferredUpdates::before_upload(int b) {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return error_ || (!busy_[size_t(b)] && total_ - done_[size_t(b)] <= max_lag_); });
  if (error_) std::rethrow_exception(error_);
  issue_wait_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  uploading_[size_t(b)] = 1;
  const int64_t from = done_[size_t(b)];
  max_lag_seen_ = std::max(max_lag_seen_, int(total_ - from));
  std::vector<Entry> out(history_.begin() + (from - base_), history_.end());
  device_updates_ += int64_t(out.size());
  return out;
}

void DeferredUpdates::upload_issued(int b, EventId loaded) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    uploading_[size_t(b)] = 0;
    loaded_[size_t(b)] = loaded;
    pass_of_[size_t(b)] = pass_;
    issue_pos_ = pos_[size_t(b)] + 1;
  }
  cv_.notify_all();
}

void DeferredUpdates::catch_up(int b, const std::vector<Entry>& updates, const at::Tensor& buf) const {
  if (updates.empty()) return;
  const ZoOptimizer* opt = nullptr;
  {
    std::lock_guard<std::mutex> lk(mu_);
    opt = opt_;
  }
  const GroupLayout& g = m_.group(m_.layer_group(b));
  for (const Entry& u : updates) opt->apply_update(*u, g, buf);
}

int DeferredUpdates::next_block_locked() const {
  const size_t n = streamed_.size();
  for (size_t i = 0; i < n; ++i) {
    const size_t j = (cursor_ + i) % n;
    const int b = streamed_[j];
    if (done_[size_t(b)] >= total_ || uploading_[size_t(b)]) continue;
    const bool behind = pass_of_[size_t(b)] == pass_;
    const bool far_ahead = j >= issue_pos_ && j - issue_pos_ >= (streamed_.size() + 1) / 2;
    if (draining_ || behind || far_ahead || total_ - done_[size_t(b)] >= max_lag_) return int(j);
  }
  return -1;
}

void DeferredUpdates::run() {
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    int j = -1;
    cv_.wait(lk, [&] { return stop_ || (!error_ && (j = next_block_locked()) >= 0); });
    if (stop_) return;
    const int b = streamed_[size_t(j)];
    busy_[size_t(b)] = 1;
    const EventId ev = loaded_[size_t(b)];
    const int64_t from = done_[size_t(b)], to = total_;
    std::vector<Entry> missing(history_.begin() + (from - base_), history_.begin() + (to - base_));
    const ZoOptimizer* opt = opt_;
    lk.unlock();
    try {
      // The block's latest upload must have landed before its master changes (no upload of b
      // can be issued meanwhile: before_upload waits while busy_[b]).
      if (ev >= 0) dev_.host_wait(ev);
      if (host_delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(host_delay_ms_));
      const GroupLayout& g = m_.group(m_.layer_group(b));
      for (const Entry& u : missing) opt->apply_update(*u, g, store_.view(b));
      lk.lock();
      loaded_[size_t(b)] = -1;
      done_[size_t(b)] = to;
      host_updates_ += to - from;
      cursor_ = (size_t(j) + 1) % streamed_.size();
      // Forget updates every master has had (devices take theirs in before_upload, under mu_).
      int64_t low = total_;
      for (int s : streamed_) low = std::min(low, done_[size_t(s)]);
      while (base_ < low) history_.pop_front(), ++base_;
    } catch (...) {
      lk.lock();
      error_ = std::current_exception();
    }
    busy_[size_t(b)] = 0;
    cv_.notify_all();
  }
}

void DeferredUpdates::drain() {
  std::unique_lock<std::mutex> lk(mu_);
  draining_ = true;
  cv_.notify_all();
  cv_.wait(lk, [&] {
    if (error_) return true;
    for (int b : streamed_)
      if (done_[size_t(b)] < total_ || busy_[size_t(b)]) return false;
    return true;
  });
  draining_ = false;
  if (error_) std::rethrow_exception(error_);
  history_.clear();
  base_ = total_;
}

void DeferredUpdates::rethrow_if_failed() {
  std::lock_guard<std::mutex> lk(mu_);
  if (error_) std::rethrow_exception(error_);
}

}  // namespace zoff
