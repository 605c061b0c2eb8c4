// Executor: issues a Plan's ops on a StreamDevice (Note [Executor]).
#include "offload/executor.h"

#include <chrono>

#include "zoff/error.h"

namespace zoff {

Executor::Executor(StreamDevice& dev, BlockStore& store, SlotRing* ring, ResidentBlocks* resident,
                   ExecutorOptions opts)
    : dev_(dev), store_(store), ring_(ring), resident_(resident), opts_(opts) {}

void Executor::prepare(const Plan& plan) {
  const PlanConfig& c = plan.config;
  const int B = store_.num_blocks(), K = c.num_slots;
  ZOFF_CHECK(c.num_blocks == B, "executor: the plan has ", c.num_blocks, " blocks, the store ", B);
  validate_plan(plan);
  for (int b = 0; b < B; ++b) {
    const bool dev_res = resident_ != nullptr && resident_->is_resident(b);
    ZOFF_CHECK(bool(c.resident[size_t(b)]) == dev_res, "executor: block ", b, " is ",
               c.resident[size_t(b)] ? "" : "not ", "resident in the plan but ", dev_res ? "" : "not ",
               "in the resident set");
  }
  if (!plan.streamed.empty()) {
    ZOFF_CHECK(ring_ != nullptr, "executor: the plan streams ", plan.streamed.size(), " blocks but there is no slot ring");
    ZOFF_CHECK(ring_->num_slots() == K, "executor: the plan uses ", K, " slots, the ring has ", ring_->num_slots());
    for (int b : plan.streamed)
      ZOFF_CHECK(store_.transfer_bytes(b) <= ring_->slot_bytes(), "executor: block ", b, " needs ",
                 store_.transfer_bytes(b), " bytes, a slot holds ", ring_->slot_bytes());
    ZOFF_CHECK(c.site == UpdateSite::Cpu || !store_.has_transfer_copy() || store_.fp8_exact(),
               "executor: the GPU update site writes slots back into the masters, so blocks must travel "
               "in their storage dtype (transfer ", transfer_format_name(store_.transfer_format()), " with storage ",
               dtype_name(store_.storage_dtype()), ")");
  }
  while (int(events_.size()) < 3 * K) events_.push_back(dev_.create_event());
  if (c.site == UpdateSite::Gpu && !plan.streamed.empty())
    while (int(done_.size()) < B) done_.push_back(dev_.create_event());
  if (opts_.timeline) {
    if (start_timer_ < 0) start_timer_ = dev_.create_timer();
    while (timers_.size() < 2 * plan.ops.size()) timers_.push_back(dev_.create_timer());
    timeline_.reserve(plan.ops.size());
  }
  views_.resize(size_t(B));
  view_slots_.resize(size_t(B), -2);
  for (int b = 0; b < B; ++b) {
    const int k = plan.slot_of_block[size_t(b)];
    if (view_slots_[size_t(b)] == k && views_[size_t(b)].defined()) continue;
    if (k < 0)
      views_[size_t(b)] = resident_->buffer(b);
    else if (store_.transfer_dtype() == DType::F8_E4M3 || store_.split())
      views_[size_t(b)] = ring_->view(k, DType::U8, store_.transfer_bytes(b));
    else
      views_[size_t(b)] = ring_->view(k, store_.transfer_dtype(), store_.numel(b));
    view_slots_[size_t(b)] = k;
  }
}

void Executor::issue(const Plan& plan, const ComputeFn& compute, const HostUpdateWaitFn& host_update_wait,
                     const UploadIssuedFn& upload_issued, const WriteBackSpec& wb) {
  const int K = plan.config.num_slots;
  const bool timed = opts_.timeline;

  if (timed) dev_.mark(StreamId::Upload, start_timer_);
  for (size_t i = 0; i < plan.ops.size(); ++i) {
    const PlanOp& op = plan.ops[i];
    const int b = op.block;
    if (op.kind == OpKind::WaitHostUpdate) {
      const auto t0 = std::chrono::steady_clock::now();
      host_update_wait(b);
      host_wait_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      continue;
    }
    if (op.kind == OpKind::Upload && upload_gate_) {
      const auto t0 = std::chrono::steady_clock::now();
      upload_gate_(b);
      gate_wait_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    const StreamId s = op.stream;
    for (const EventRef& e : op.waits) dev_.wait(s, ev(e, K));
    if (timed) dev_.mark(s, timers_[2 * i]);
    switch (op.kind) {
      case OpKind::Upload:
        dev_.copy_h2d(s, ring_->data(op.slot), store_.transfer_data(b), size_t(store_.transfer_bytes(b)), b);
        break;
      case OpKind::Compute: {
        at::Tensor view = views_[size_t(b)];
        dev_.launch(s, [&compute, b, view] { compute(b, view); }, b);
        break;
      }
      case OpKind::Offload:
        if (wb.mode == WriteBackMode::Dense) {
          // Note [fp8 at the GPU site]: a slot of fp8 bytes is never the master; only a delta goes back.
          // Split slots (Note [Split bf16 masters]) are the master's bytes, but the update happens
          // in a decoded copy: only a delta carries it back.
          ZOFF_CHECK(!store_.has_transfer_copy() && !store_.split(), "executor: a dense write-back would copy ",
                     transfer_format_name(store_.transfer_format()), " slots over the masters");
          dev_.copy_d2h(s, store_.data(b), ring_->data(op.slot), size_t(store_.bytes(b)), b);
        }
        else if (wb.mode == WriteBackMode::Delta) {
          if (wb.list_copy) dev_.launch(s, [&wb, slot = op.slot, b] { wb.list_copy(slot, b); }, b);
          if (wb.codes_pack) dev_.launch(s, [&wb, slot = op.slot, b] { wb.codes_pack(slot, b); }, b);
          else if (wb.codes_src) dev_.copy_d2h(s, wb.codes_dst(b), wb.codes_src(op.slot), wb.codes_bytes(b), b);
          dev_.copy_d2h(s, wb.count_dst(b), wb.count_src(op.slot), wb.count_bytes, b);
        }
        break;
      case OpKind::WaitHostUpdate:
        break;
    }
    if (timed) dev_.mark(s, timers_[2 * i + 1]);
    for (const EventRef& e : op.records) dev_.record(s, ev(e, K));
    if (op.kind == OpKind::Upload && upload_issued) upload_issued(b, ev({SlotEvent::Loaded, op.slot}, K));
    if (op.kind == OpKind::Offload && wb.offload_issued) {
      dev_.record(s, done_[size_t(b)]);
      wb.offload_issued(b, done_[size_t(b)]);
    }
  }
}

void Executor::run_step(const Plan& plan, const ComputeFn& compute, const HostUpdateWaitFn& host_update_wait,
                        const UploadIssuedFn& upload_issued, const WriteBackSpec& write_back) {
  prepare(plan);
  ZOFF_CHECK(bool(compute), "executor: run_step needs a compute callback");
  ZOFF_CHECK(plan.config.site == UpdateSite::Gpu || plan.streamed.empty() || bool(host_update_wait),
             "executor: the CPU update site needs a host_update_wait callback");
  ZOFF_CHECK(write_back.mode != WriteBackMode::Delta ||
                 (write_back.count_src && write_back.count_dst && write_back.count_bytes > 0),
             "executor: a delta write-back needs count_src, count_dst and count_bytes");
  ZOFF_CHECK(!write_back.codes_src || (write_back.codes_dst && write_back.codes_bytes),
             "executor: staged delta codes need codes_dst and codes_bytes");
  ZOFF_CHECK(!write_back.codes_src || !write_back.codes_pack, "executor: delta codes are copied or packed, not both");
  timeline_.clear();
  host_wait_ms_ = 0;
  gate_wait_ms_ = 0;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    issue(plan, compute, host_update_wait, upload_issued, write_back);
    dev_.synchronize_all();
  } catch (...) {
    // Queued work refers to `compute` and the buffers: let it drain before unwinding.
    try {
      dev_.synchronize_all();
    } catch (...) {
    }
    throw;
  }
  wall_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (opts_.timeline) {
    for (size_t i = 0; i < plan.ops.size(); ++i) {
      const PlanOp& op = plan.ops[i];
      if (op.kind == OpKind::WaitHostUpdate) continue;
      OpTiming t;
      t.op = int(i);
      t.kind = op.kind;
      t.block = op.block;
      t.slot = op.slot;
      t.stream = op.stream;
      t.start_ms = dev_.elapsed_ms(start_timer_, timers_[2 * i]);
      t.end_ms = dev_.elapsed_ms(start_timer_, timers_[2 * i + 1]);
      timeline_.push_back(t);
    }
  }
  ++steps_;
}

}  // namespace zoff
