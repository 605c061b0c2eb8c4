// Executor: runs a Plan for one step on a StreamDevice, calling back into the trainer per block.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

#include "offload/block_store.h"
#include "offload/plan.h"
#include "offload/resident_blocks.h"
#include "offload/slot_ring.h"
#include "offload/stream_device.h"
#include "offload/timeline.h"

namespace zoff {

// Called on the compute stream for each block in order with the block's flat buffer: the slot
// view (transfer dtype, numel elements; fp8: the whole transfer range as bytes, Note [Transfer
// layout]) or, for a resident block, its resident buffer (storage dtype). Whatever it writes into
// the buffer is written back to the host master at the GPU update site.
using ComputeFn = std::function<void(int block, at::Tensor buffer)>;
// CPU update site: blocks the issuing thread until the host-side update of `block` (and the
// refresh of its transfer copy) is finished -- typically waits on a future the trainer started
// at the beginning of the step.
using HostUpdateWaitFn = std::function<void(int block)>;
// Called on the issuing thread right after block's Upload (and its loaded-event record) was
// issued: `loaded` completes once the copy has landed, so the host may then write the block's
// master again (the deferred update site's host thread waits on it).
using UploadIssuedFn = std::function<void(int block, EventId loaded)>;
// Called on the issuing thread before each Upload op (after its WaitHostUpdate, if any), on every
// step until replaced: may block until the host is done with the block's master (the delta
// applies of an earlier step, Note [Applies across passes] in src/train/delta_applier.h).
using UploadGateFn = std::function<void(int block)>;

// How this step's Offload ops (GPU update site) return a slot to its block's master.
//   Dense: copy the whole block back (storage bytes).
//   Delta: copy only `count_bytes` from count_src(slot) to count_dst(block): the block's change
//          travelled already as codes and exceptions written by the update kernel into mapped
//          host memory (Note [Delta write-back]); the host applies them after `done`.
//   Skip:  copy nothing: the step changed no slot (a pass that applies no update).
// offload_issued, if set, is called on the issuing thread after block's Offload op and its own
// `done` event (one per block, recorded after the op) were issued.
enum class WriteBackMode { Dense, Delta, Skip };
struct WriteBackSpec {
  WriteBackMode mode = WriteBackMode::Dense;
  std::function<const void*(int slot)> count_src;
  std::function<void*(int block)> count_dst;
  size_t count_bytes = 0;
  // Optional: the codes, staged in device memory per slot, copied before the count.
  std::function<const void*(int slot)> codes_src;
  std::function<void*(int block)> codes_dst;
  std::function<size_t(int block)> codes_bytes;
  // Optional: copies slot's staged exception list to block's host list (launched first).
  std::function<void(int slot, int block)> list_copy;
  // Optional, instead of codes_src: packs slot's staged codes into block's host codes (Note
  // [Packed codes] in kernels/delta.h; launched after list_copy, before the count copy).
  std::function<void(int slot, int block)> codes_pack;
  std::function<void(int block, EventId done)> offload_issued;
};

struct ExecutorOptions {
  bool timeline = false;  // time every op (timing events / steady_clock)
};

// Note [Executor]
// run_step issues the plan's ops in order: for each op, wait on its events, (mark its start),
// issue the copy or launch, (mark its end), record its events. The issuing thread never waits
// on the device inside a step; the only host waits are WaitHostUpdate ops (CPU site), the upload
// gate (set_upload_gate) and one synchronize_all at the end, so a step's device work is finished when run_step returns.
// If anything throws while issuing, run_step still synchronises before rethrowing (the queued
// work refers to the callback and buffers). Events, timers and tensor views are made by
// prepare() (called by the first run_step of a plan shape); later steps allocate nothing.
class Executor {
 public:
  // ring may be null when no block is streamed; resident may be null when none is resident.
  Executor(StreamDevice& dev, BlockStore& store, SlotRing* ring, ResidentBlocks* resident,
           ExecutorOptions opts = {});

  // Checks that the plan fits the store, ring and resident set, validates it, and creates the
  // events, timers and views it needs (only what earlier plans did not already create).
  void prepare(const Plan& plan);
  void run_step(const Plan& plan, const ComputeFn& compute, const HostUpdateWaitFn& host_update_wait = {},
                const UploadIssuedFn& upload_issued = {}, const WriteBackSpec& write_back = {});

  void set_upload_gate(UploadGateFn gate) { upload_gate_ = std::move(gate); }

  // The last step. Timeline-derived values need ExecutorOptions::timeline.
  const std::vector<OpTiming>& timeline() const { return timeline_; }
  double wall_ms() const { return wall_ms_; }               // run_step's host wall time
  double host_wait_ms() const { return host_wait_ms_; }     // spent in WaitHostUpdate
  double gate_wait_ms() const { return gate_wait_ms_; }     // spent in the upload gate
  double step_ms() const { return timeline_span_ms(timeline_); }
  double h2d_busy_fraction() const { return busy_fraction(timeline_, OpKind::Upload); }
  double d2h_busy_fraction() const { return busy_fraction(timeline_, OpKind::Offload); }
  double compute_busy_fraction() const { return busy_fraction(timeline_, OpKind::Compute); }
  void write_chrome_trace(const std::string& path) const { zoff::write_chrome_trace(timeline_, path); }
  int64_t steps() const { return steps_; }

 private:
  void issue(const Plan& plan, const ComputeFn& compute, const HostUpdateWaitFn& host_update_wait,
             const UploadIssuedFn& upload_issued, const WriteBackSpec& wb);
  EventId ev(EventRef e, int num_slots) const { return events_[size_t(event_index(e, num_slots))]; }

  StreamDevice& dev_;
  BlockStore& store_;
  SlotRing* ring_;
  ResidentBlocks* resident_;
  ExecutorOptions opts_;
  std::vector<EventId> events_;
  std::vector<EventId> done_;  // per block, recorded after its Offload when offload_issued is set
  std::vector<TimerId> timers_;  // [0] step start, then 2 per op
  TimerId start_timer_ = -1;
  std::vector<at::Tensor> views_;     // per block: what the compute callback gets
  std::vector<int> view_slots_;       // the slot each view was made for (-1 resident)
  std::vector<OpTiming> timeline_;
  double wall_ms_ = 0;
  double host_wait_ms_ = 0;
  double gate_wait_ms_ = 0;
  UploadGateFn upload_gate_;
  int64_t steps_ = 0;
};

}  // namespace zoff
