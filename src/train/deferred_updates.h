// Deferred update site: a host thread replays ZO updates onto streamed masters behind the uploads.
#pragma once

#include <ATen/ATen.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "offload/block_store.h"
#include "offload/stream_device.h"
#include "zoff/model.h"
#include "zoff/optimizer.h"

namespace zoff {

// Note [Deferred update site]
// At the GPU site every streamed block is written back after its visit (a D2H as large as the
// upload, so both PCIe directions are busy and each runs at ~46 instead of ~55 GB/s); at the CPU
// site the upload of block b waits until the host has updated b's master, so the host's update
// rate caps the step. The deferred site does neither:
//   * every update the optimizer produces is kept, numbered 0, 1, 2, ... (push);
//   * master b has had done[b] of them; when b is uploaded the device receives that version and
//     applies updates done[b] .. n-1 to its slot copy before the forwards (catch-up), so the
//     forwards see exactly the weights the GPU site would -- the same kernels, the same
//     stochastic-rounding bits (keyed by the update's step), bit for bit;
//   * nothing is written back; one host thread walks the streamed blocks in plan order and
//     applies the missing updates to each master, but only once the block's latest upload has
//     landed (it waits on the slot's loaded event) and never while the issuing thread is about
//     to upload it (before_upload marks it), so no DMA ever reads a half-written master;
//   * it takes blocks already uploaded in this pass (their next upload is a pass away) or at
//     least half the plan ahead of the issuing thread (the tail of the plan, early in a pass),
//     so the issuing thread rarely finds a block busy; and any block at max_lag, whose upload
//     would wait anyway;
//   * if the host falls behind by more than max_lag updates on a block, its upload waits.
// In the steady state the host applies step t's update to block b during step t+1, after b was
// uploaded, and the device applies exactly one update per visit, as at the GPU site. The device
// copy never returns, so the master catches up only through the host: drain() applies what is
// left before checkpoints, evaluation, and the end. Preconditions: blocks travel in their storage
// dtype, and updates replay from seeds (Note [Deferred site preconditions], config_resolve.cpp).
class DeferredUpdates {
 public:
  using Entry = std::shared_ptr<const PendingUpdate>;

  // streamed: the streamed blocks in plan order. Starts the host thread.
  DeferredUpdates(const Model& m, BlockStore& store, StreamDevice& dev, std::vector<int> streamed, int max_lag);
  ~DeferredUpdates();
  DeferredUpdates(const DeferredUpdates&) = delete;
  DeferredUpdates& operator=(const DeferredUpdates&) = delete;

  // A finished step's update (copied): from now on devices apply it, the host replays it.
  // `opt` must outlive this object's use of the update (until drain() or destruction).
  void push(const ZoOptimizer& opt, const PendingUpdate& u);
  // A pass (every streamed block uploaded once, in plan order) starts.
  void begin_pass();
  // Issuing thread, before block b's upload: waits while the host thread writes b's master or b
  // lags by more than max_lag, then marks b as uploading. Returns the updates the device must
  // apply to the copy it receives.
  std::vector<Entry> before_upload(int b);
  // Issuing thread, right after b's upload was issued; `loaded` completes once it has landed.
  void upload_issued(int b, EventId loaded);
  // The device-side catch-up: applies `updates` (from before_upload) to block b's slot copy.
  void catch_up(int b, const std::vector<Entry>& updates, const at::Tensor& buf) const;
  // Brings every streamed master up to date, waits for it and forgets the history. Call with no
  // upload in flight (after a step's synchronize_all).
  void drain();
  // Rethrows an error the host thread hit (it stops at the first one).
  void rethrow_if_failed();

  // Statistics of the passes so far.
  double issue_wait_ms() const { return issue_wait_ms_; }  // issuing thread waiting in before_upload
  int64_t host_updates() const { return host_updates_; }   // (block, update) pairs replayed on the host
  int64_t device_updates() const { return device_updates_; }  // ... and applied on devices
  int max_lag_seen() const { return max_lag_seen_; }

 private:
  void run();
  int next_block_locked() const;  // index into streamed_ of a block with work, or -1

  const Model& m_;
  BlockStore& store_;
  StreamDevice& dev_;
  std::vector<int> streamed_;
  int max_lag_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Entry> history_;  // updates [base_, total_)
  const ZoOptimizer* opt_ = nullptr;
  int64_t base_ = 0, total_ = 0;
  std::vector<int64_t> done_;      // per block id: updates applied to the master
  std::vector<char> busy_;         // host thread writing the master
  std::vector<char> uploading_;    // between before_upload and upload_issued
  std::vector<EventId> loaded_;    // latest upload's loaded event, -1 once known to have landed
  std::vector<int64_t> pass_of_;   // pass in which the block was last uploaded
  std::vector<size_t> pos_;        // block id -> position in streamed_
  int64_t pass_ = 0;
  size_t issue_pos_ = 0;           // position of the next block the issuing thread uploads
  bool draining_ = false;
  size_t cursor_ = 0;              // host thread's position in streamed_
  bool stop_ = false;
  std::exception_ptr error_;
  double issue_wait_ms_ = 0;
  int64_t host_updates_ = 0, device_updates_ = 0;
  int max_lag_seen_ = 0;
  int host_delay_ms_ = 0;
  std::thread thread_;
};

}  // namespace zoff
