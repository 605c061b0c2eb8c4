// IoPool and BackgroundWriter: Boost.Asio thread pool for parallel shard reads and background saves.
#include "zoff/async_io.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <thread>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "zoff/error.h"
#include "zoff/log.h"

namespace zoff {

struct IoPool::Impl {
  explicit Impl(int n) : pool(static_cast<std::size_t>(n)) {}
  boost::asio::thread_pool pool;
};

IoPool::IoPool(int threads) {
  if (threads <= 0) {
    int hw = static_cast<int>(std::thread::hardware_concurrency());
    threads = std::max(2, std::min(hw, 8));
  }
  threads_ = threads;
  impl_ = std::make_unique<Impl>(threads);
}

IoPool::~IoPool() { impl_->pool.join(); }

void IoPool::post(std::function<void()> task) { boost::asio::post(impl_->pool, std::move(task)); }

void IoPool::run_all(std::vector<std::function<void()>> tasks) {
  if (tasks.empty()) return;
  if (impl_->pool.get_executor().running_in_this_thread()) {
    for (auto& t : tasks) t();  // the first exception propagates; the rest are skipped
    return;
  }
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    size_t left = 0;
    std::exception_ptr error;
    std::atomic<bool> failed{false};
  };
  auto st = std::make_shared<State>();
  st->left = tasks.size();
  for (auto& t : tasks) {
    boost::asio::post(impl_->pool, [st, task = std::move(t)] {
      if (!st->failed.load(std::memory_order_relaxed)) {
        try {
          task();
        } catch (...) {
          std::lock_guard<std::mutex> g(st->mu);
          if (!st->error) st->error = std::current_exception();
          st->failed = true;
        }
      }
      std::lock_guard<std::mutex> g(st->mu);
      if (--st->left == 0) st->cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lk(st->mu);
  st->cv.wait(lk, [&] { return st->left == 0; });
  if (st->error) std::rethrow_exception(st->error);
}

static std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

void IoPool::read_tensors_parallel(const Checkpoint& ckpt, const std::vector<ReadRequest>& requests,
                                   int64_t chunk_bytes) {
  ZOFF_CHECK(chunk_bytes > 0, "read_tensors_parallel: chunk_bytes must be positive");
  std::vector<std::function<void()>> tasks;
  for (const ReadRequest& r : requests) {
    const TensorInfo& t = ckpt.info(r.name);
    ZOFF_INPUT_CHECK(t.shape == r.shape, ckpt.file_of(r.name), ": tensor '", r.name,
                     "' has shape ", shape_str(t.shape), ", expected ", shape_str(r.shape));
    ZOFF_CHECK(r.dst.defined() && r.dst.device().is_cpu() && r.dst.is_contiguous() &&
                   r.dst.numel() == t.numel(),
               "read_tensors_parallel '", r.name,
               "': the destination must be a contiguous CPU tensor of ", t.numel(), " elements");
    const int64_t es = std::max<int64_t>(dtype_size(t.dtype), r.dst.element_size());
    const int64_t step = std::max<int64_t>(1, chunk_bytes / es);
    at::Tensor flat = r.dst.view({-1});
    for (int64_t b = 0; b < t.numel(); b += step) {
      at::Tensor part = flat.narrow(0, b, std::min(step, t.numel() - b));
      tasks.push_back([&ckpt, name = r.name, b, part] { ckpt.load_range_into(name, b, part); });
    }
  }
  run_all(std::move(tasks));
}

BackgroundWriter::~BackgroundWriter() {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return !busy_; });
  if (error_) {
    try {
      std::rethrow_exception(error_);
    } catch (const std::exception& e) {
      log::error("background checkpoint save failed (never collected by wait()): {}", e.what());
    }
  }
}

bool BackgroundWriter::busy() const {
  std::lock_guard<std::mutex> g(mu_);
  return busy_;
}

void BackgroundWriter::wait() {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return !busy_; });
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void BackgroundWriter::save(std::string dir, std::vector<std::pair<std::string, at::Tensor>> snapshot,
                            ExtraFiles extra_files, int64_t max_shard_bytes) {
  for (const auto& kv : snapshot)
    ZOFF_CHECK(kv.second.device().is_cpu(), "BackgroundWriter::save: tensor '", kv.first,
               "' is on ", kv.second.device(), "; snapshots must be host copies");
  wait();
  {
    std::lock_guard<std::mutex> g(mu_);
    busy_ = true;
  }
  pool_.post([this, dir = std::move(dir), snap = std::move(snapshot),
              extra = std::move(extra_files), max_shard_bytes]() mutable {
    std::exception_ptr err;
    try {
      write_checkpoint(dir, snap, max_shard_bytes);
      for (const auto& [name, contents] : extra)
        write_file_atomic((std::filesystem::path(dir) / name).string(), contents);
    } catch (...) {
      err = std::current_exception();
    }
    snap.clear();  // free the snapshot before anyone waiting on us wakes up
    std::lock_guard<std::mutex> g(mu_);
    error_ = err;
    busy_ = false;
    cv_.notify_all();
  });
}

}  // namespace zoff
