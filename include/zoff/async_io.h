// Host async I/O on a Boost.Asio thread pool: parallel checkpoint reads and background saves.
#pragma once

#include <ATen/ATen.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "zoff/safetensors.h"

namespace zoff {

// One tensor to read: checked against `shape`, converted into `dst` (contiguous CPU memory,
// pinned or not, numel == product(shape), any dtype the stored one converts to).
struct ReadRequest {
  std::string name;
  std::vector<int64_t> shape;
  at::Tensor dst;
};

// Note [IoPool]
// A boost::asio::thread_pool behind a pimpl (Asio headers stay out of everyone else's compile).
// Reads are memcpy/convert work out of mmap'ed shards: page faults make them I/O-bound on a cold
// page cache and CPU-bound on a warm one, and both scale with threads. Big tensors are split into
// chunks so one huge embedding does not serialise a load. run_all called from a pool thread runs
// its tasks inline (blocking a worker on the pool itself could deadlock).
class IoPool {
 public:
  // threads <= 0: min(hardware threads, 8), at least 2.
  explicit IoPool(int threads = 0);
  ~IoPool();  // finishes all queued work first
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  int threads() const { return threads_; }

  // Runs all tasks on the pool and returns when every one has finished or been skipped. After a
  // task throws, tasks not yet started are skipped; the first exception thrown is rethrown.
  void run_all(std::vector<std::function<void()>> tasks);

  // Fills every request's dst from the checkpoint in parallel. Names, shapes and destinations
  // are checked up front in the calling thread (InputError naming file and tensor).
  void read_tensors_parallel(const Checkpoint& ckpt, const std::vector<ReadRequest>& requests,
                             int64_t chunk_bytes = int64_t(16) << 20);

  // Queues one task (fire and forget): it must not throw.
  void post(std::function<void()> task);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int threads_ = 0;
};

// Extra files written after a checkpoint's tensors, e.g. {"config.json", text}.
using ExtraFiles = std::map<std::string, std::string>;

// Writes checkpoints in the background (write_checkpoint, then each extra file atomically) while
// training goes on. At most one save runs at a time: save() first waits for the previous one.
class BackgroundWriter {
 public:
  explicit BackgroundWriter(IoPool& pool) : pool_(pool) {}
  ~BackgroundWriter();  // waits for a running save; an error nobody collected is logged
  BackgroundWriter(const BackgroundWriter&) = delete;
  BackgroundWriter& operator=(const BackgroundWriter&) = delete;

  // `snapshot` must be host (CPU) tensors the caller will not modify: copies, not the live
  // parameters. Waits for the previous save and rethrows its error (then nothing new starts).
  void save(std::string dir, std::vector<std::pair<std::string, at::Tensor>> snapshot,
            ExtraFiles extra_files = {}, int64_t max_shard_bytes = int64_t(5) << 30);
  // Blocks until no save is running; rethrows (once) the error of the last save, if any.
  void wait();
  bool busy() const;

 private:
  IoPool& pool_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool busy_ = false;
  std::exception_ptr error_;
};

}  // namespace zoff
