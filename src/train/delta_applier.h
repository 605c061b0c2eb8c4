// DeltaApplier: the host thread that applies streamed blocks' deltas to their masters, within a pass or across passes (Note [Applies across passes]).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "offload/delta_buffers.h"
#include "offload/stream_device.h"

namespace zoff {

// Note [Applies across passes]
// At the GPU update site with a delta write-back, a host thread applies each streamed block's
// delta (codes and exceptions, Note [Delta write-back]) to its master once the block's Offload
// completed, in plan order. What the next pass needs from that work is narrow: the Upload of block
// b reads b's master (or, with fp8 transfers, b's fp8 copy that the apply re-packs), and the
// Offload of b overwrites b's host codes. So instead of joining the thread when a pass ends, the
// executor's upload gate waits, before it issues the Upload of b, until b has no apply pending
// (wait_block). The applies of a pass's last blocks then run while the next pass uploads and
// computes its first blocks, and the host apply only has to keep up with the device on average.
// The Offload of b in the next pass comes after its Upload, so it cannot overwrite codes still
// being read. Measured (OPT-13B, fp8 at the GPU site, H200, session 10): the pass ended 80-114 ms
// after the device, all of it the host finishing the last blocks' applies, with the apply thread
// busy 340-380 ms of a 410-440 ms step.
// Whatever reads or writes masters outside a pass drains first (flush, host_groups, load_groups):
// after drain() every pass's applies are done. An apply that throws makes every later
// wait_block, drain and begin_pass rethrow its error (the masters are then unreliable).
// The engine lags only the fp8 GPU site: the bf16 delta's fallback to a dense write-back (Note
// [Delta fallback]) is decided from a pass's exception count as the pass ends, and its apply is
// short (1-9 ms after the device at 13B, docs/results.md).
// Environment ZOFF_DELTA_APPLY_LAG (a measurement knob): 0 makes the fp8 site drain as the pass
// ends too; 1 lags the bf16 delta as well (its dense fallback is then decided from the latest
// complete pass's exceptions, one pass late). Measured for bf16 at OPT-30B: 1-3% faster
// (docs/results.md, session 12), less than the host's noise, so the default stays.
// Environment ZOFF_DEBUG_DELTA_APPLY_DELAY_MS=N (tests) sleeps N ms before each block's apply, so
// that a test can make the applies lag behind the device on any machine;
// ZOFF_DEBUG_DELTA_APPLY_FAIL_AT=N (tests) makes the N-th apply (from 0) throw instead.
struct ApplyPassStats {
  int64_t exceptions = 0;  // delta exceptions of the pass's blocks
  int64_t code_bytes = 0;  // code bytes that crossed the link
  double busy_ms = 0;      // the thread's time inside DeltaBuffers::apply
};

class DeltaApplier {
 public:
  DeltaApplier(StreamDevice& dev, DeltaBuffers& delta, int num_blocks);
  ~DeltaApplier();  // drops what is queued and joins; never throws
  DeltaApplier(const DeltaApplier&) = delete;
  DeltaApplier& operator=(const DeltaApplier&) = delete;

  // A pass that will enqueue n blocks. Earlier passes' applies go first (one thread, FIFO).
  void begin_pass(size_t n);
  // Issuing thread, after block b's Offload and its `done` event were issued.
  void enqueue(int b, EventId done);
  // Blocks until block b has no apply pending (the upload gate); returns the ms waited.
  double wait_block(int b);
  // Blocks until every queued apply is done; returns the ms waited.
  double drain();
  // After an error while issuing: drops the queued applies (their masters miss those updates) and
  // waits for the one running. Never throws; an apply's own error stays for the next rethrow.
  void abort();
  // The most recent pass whose applies all finished (zeros before the first).
  ApplyPassStats last_complete() const;
  bool pass_pending() const;  // whether the latest pass still has applies to run
  ApplyPassStats total() const;  // every apply so far

 private:
  struct Item {
    int block;
    EventId done;
    uint64_t pass;
  };
  struct PassRecord {
    uint64_t id;
    size_t expected, enqueued, applied;
    ApplyPassStats stats;
  };
  void run();
  void rethrow_locked() const;
  void account_locked(uint64_t pass, size_t blocks, const ApplyPassStats& s);

  StreamDevice& dev_;
  DeltaBuffers& delta_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // the thread: an item or stop
  std::condition_variable done_cv_;  // waiters: an apply finished, or failed
  std::deque<Item> queue_;
  std::vector<uint8_t> pending_;  // per block: an apply is queued or running
  std::deque<PassRecord> passes_;  // begun, not all applied
  ApplyPassStats last_, total_;
  uint64_t next_pass_ = 0;
  bool busy_ = false, stop_ = false;
  std::exception_ptr error_;
  int delay_ms_ = 0;  // ZOFF_DEBUG_DELTA_APPLY_DELAY_MS
  int64_t fail_at_ = -1, started_ = 0;  // ZOFF_DEBUG_DELTA_APPLY_FAIL_AT; applies begun (thread only)
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace zoff
