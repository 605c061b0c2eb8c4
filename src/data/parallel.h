// parallel_for over indices with a deterministic error: the lowest failing index's exception.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>

namespace zoff {

// Note [Parallel preparation]
// Records are independent: oneTBB's parallel_for runs f(i) for every i in [0, n), each writing
// only slot i of a pre-sized output, so the result is in input order whatever the scheduling.
// When records fail, the exception of the lowest failing index is rethrown (the first bad line
// of the file, as a sequential reader would report): indices above a known failure are skipped,
// indices below it always run, so the minimum is always found.
template <typename F>
void parallel_for_each_index(int64_t n, F&& f, int64_t grain = 16) {
  std::mutex mu;
  std::exception_ptr err;
  int64_t bad = n;
  std::atomic<int64_t> bad_hint{n};
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, grain), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i) {
      if (i > bad_hint.load(std::memory_order_relaxed)) return;
      try {
        f(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (i < bad) {
          bad = i;
          err = std::current_exception();
          bad_hint.store(i, std::memory_order_relaxed);
        }
        return;
      }
    }
  });
  if (err) std::rethrow_exception(err);
}

}  // namespace zoff
