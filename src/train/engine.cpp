// Resident and offloaded visit engines (Note [Engines]).
#include "engine.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <thread>

#include "offload/block_store.h"
#include "offload/delta_buffers.h"
#include "offload/env_knob.h"
#include "offload/executor.h"
#include "offload/host_stream_device.h"
#include "offload/plan.h"
#include "offload/resident_blocks.h"
#include "offload/slot_ring.h"
#include "zoff/error.h"
#include "zoff/log.h"
#include "deferred_updates.h"
#include "delta_applier.h"
#include "device_info.h"
#include "zoff/run_plan.h"
#ifdef ZOFF_WITH_CUDA
#include "offload/cuda_stream_device.h"
#endif

namespace zoff {
namespace {

DType dtype_of(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return DType::F32;
    case at::kBFloat16: return DType::BF16;
    case at::kHalf: return DType::F16;
    default: ZOFF_FAIL("unsupported storage dtype ", c10::toString(t));
  }
}

class ResidentEngine : public Engine {
 public:
  ResidentEngine(const Model& m, const GroupInit& init, const EngineOptions& o) : m_(m), o_(o) {
    for (int g = 0; g < m.num_groups(); ++g) {
      at::Tensor cpu = at::zeros({m.group(g).numel}, at::TensorOptions().dtype(o.storage));
      init(g, cpu);
      flats_.push_back(o.device.is_cpu() ? cpu : cpu.to(o.device));
    }
  }
  void run_pass(ZoStep& step, ZoOptimizer*, bool) override {
    for (int g = 0; g < m_.num_groups(); ++g) step.visit(g, flats_[size_t(g)]);
  }
  void flush(ZoOptimizer& opt) override {
    for (int g = 0; g < m_.num_groups(); ++g) opt.apply_update(m_.group(g), flats_[size_t(g)]);
    opt.clear_pending();
  }
  std::vector<at::Tensor> host_groups() override {
    std::vector<at::Tensor> out;
    for (auto& f : flats_) out.push_back(f.to(at::kCPU, at::kFloat, false, /*copy=*/true));
    return out;
  }
  void load_groups(const std::vector<at::Tensor>& flats) override {
    for (size_t g = 0; g < flats_.size(); ++g) flats_[g].copy_(flats.at(g));
  }
  std::string describe() const override {
    int64_t bytes = 0;
    for (auto& f : flats_) bytes += f.numel() * int64_t(f.element_size());
    return "all groups resident on " + o_.device.str() + " (" + format_bytes(bytes) + ")";
  }

 private:
  const Model& m_;
  EngineOptions o_;
  std::vector<at::Tensor> flats_;
};

std::unique_ptr<StreamDevice> make_stream_device(const at::Device& d) {
  if (d.is_cpu()) return std::make_unique<HostStreamDevice>();
#ifdef ZOFF_WITH_CUDA
  if (d.is_cuda()) return std::make_unique<CudaStreamDevice>(d.has_index() ? d.index() : 0);
#endif
  ZOFF_FAIL("no stream device for ", d.str());
}

class OffloadEngine : public Engine {
 public:
  OffloadEngine(const Model& m, const GroupInit& init, const EngineOptions& o, const OffloadPolicy& pol,
                const PlanReport& report)
      : m_(m), o_(o), pol_(pol), dev_(make_stream_device(o.device)) {
    const int L = m.num_layers();
    std::vector<BlockDesc> descs;
    for (int l = 0; l < L; ++l) descs.push_back(block_desc(m.group(m.layer_group(l))));
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    store_ = std::make_unique<BlockStore>(std::move(descs), block_store_options(pol));
    const auto t1 = Clock::now();
    // HostBuffers come zero-filled (Note [Pinning at scale]), so init writes straight in; split
    // masters (Note [Split bf16 masters]) through one bf16 block that write_block encodes.
    if (store_->split()) {
      at::Tensor tmp = split_temp();
      for (int l = 0; l < L; ++l) {
        at::Tensor t = tmp.narrow(0, 0, store_->numel(l));
        t.zero_();
        init(m.layer_group(l), t);
        store_->write_block(l, t);
      }
    } else {
      for (int l = 0; l < L; ++l) {
        init(m.layer_group(l), store_->view(l));
        store_->refresh_transfer_copy(l);
      }
    }
    const double alloc_s = std::chrono::duration<double>(t1 - t0).count();
    log::info("host store: {} {} in {:.1f} s ({:.1f} GB/s), weights in {:.1f} s", format_bytes(store_->host_bytes()),
              store_->all_pinned() ? "mapped and pinned" : "mapped (pageable)", alloc_s,
              double(store_->host_bytes()) / 1e9 / std::max(alloc_s, 1e-9),
              std::chrono::duration<double>(Clock::now() - t1).count());
    auto resident_part = [&](int g) {
      at::Tensor cpu = at::zeros({m.group(g).numel}, at::TensorOptions().dtype(o.storage));
      init(g, cpu);
      return o.device.is_cpu() ? cpu : cpu.to(o.device);
    };
    embed_ = resident_part(m.embed_group());
    head_ = resident_part(m.head_group());
    std::vector<bool> resident = report.resident;
    resident.resize(size_t(L), false);
    bool any_streamed = false;
    for (bool r : resident) any_streamed |= !r;
    resident_ = std::make_unique<ResidentBlocks>(*dev_, *store_, resident);
    resident_->load_from_host();
    if (any_streamed) ring_ = std::make_unique<SlotRing>(*dev_, pol.num_slots, store_->max_transfer_bytes());
    ExecutorOptions eo;
    eo.timeline = o.timeline;
    exec_ = std::make_unique<Executor>(*dev_, *store_, ring_.get(), resident_.get(), eo);
    plan_ = build_plan(plan_config(pol, L, resident));
    exec_->prepare(plan_);
    if (pol.update_site == UpdateSite::Deferred && any_streamed) {
      ZOFF_CHECK(!store_->has_transfer_copy() && !store_->split(),
                 "the deferred update site needs blocks to travel in their storage dtype");
      deferred_ = std::make_unique<DeferredUpdates>(m, *store_, *dev_, plan_.streamed, pol.deferred_max_lag);
      catchup_.resize(size_t(L));
    }
    if (any_streamed && uses_delta_write_back(pol) && (!store_->has_transfer_copy() || store_->fp8_exact()))
      make_delta_buffers();
    ZOFF_INPUT_CHECK(!any_streamed || !store_->split() || delta_ != nullptr,
                     "split bf16 masters at the GPU update site return every update as a delta (Note [Split bf16 "
                     "masters]), which needs pinned host masters and host memory for the codes (see the warning "
                     "above); use policy.transfer = \"same\"");
    if (store_->split())
      for (int b = 0; b < L; ++b) split_escapes_.push_back(dev_->mapped_pointer(store_->split_escapes(b)->e));
    ZOFF_INPUT_CHECK(!any_streamed || !store_->fp8_exact() || delta_ != nullptr,
                     "fp8 transfers at the GPU update site return every update as a delta (Note [fp8 at the GPU "
                     "site]), which needs pinned host masters and host memory for the codes (see the warning "
                     "above); use policy.update_site = \"cpu\" or policy.transfer = \"same\"");
  }

  ~OffloadEngine() override {
    if (host_updates_.valid()) host_updates_.wait();
    finish_delta_applies(true);  // then applier_, declared last, joins its thread first
  }

  void run_pass(ZoStep& step, ZoOptimizer* opt, bool apply_pending) override {
    // Note [Batch before the pass]: begin_pass() put the batch, mask and positions on the device
    // from the caller's current stream; the offload streams are non-blocking, so wait for that
    // work before the compute stream reads it (compute-sanitizer racecheck caught the embedding
    // gather reading ids still in flight).
    sync_current_stream(o_.device);
    if (deferred_) return run_deferred_pass(step, opt, apply_pending);
    const bool cpu_site = pol_.update_site == UpdateSite::Cpu;
    const bool updates = apply_pending && opt && !opt->pending().empty();
    const bool host_update = updates && cpu_site;
    if (host_update) start_host_updates(*opt);
    // Note [Write-back per pass]: a pass that applies no update changes no slot (perturbations go
    // to scratch buffers), so nothing goes back; an update goes back as a delta where it can.
    // Note [Delta fallback]: a delta costs a quarter byte per element plus 8 bytes per exception;
    // when a pass had more than kDeltaMaxExceptions of its elements as exceptions (a large
    // learning rate, or masters near zero), the next kDeltaBackoff update passes go back dense
    // (cheaper, and no list overflowing into scattered PCIe stores), then delta is tried again.
    WriteBackSpec wb;
    const bool fp8_site = delta_ && delta_->fp8();
    const bool split_site = delta_ && delta_->split();
    const bool delta_only = fp8_site || split_site;
    const bool delta_now = delta_ && opt && opt->delta_ok(opt->pending()) && (dense_passes_left_ == 0 || delta_only);
    // Note [fp8 at the GPU site]: the device never holds an fp8 block's master, so nothing but a
    // delta can bring its update back; nor does it hold a split master's bytes as updated (Note
    // [Split bf16 masters]).
    ZOFF_CHECK(!(updates && delta_only && !delta_now), "offload: ", fp8_site ? "fp8 transfers" : "split bf16 masters",
               " at the GPU site need the update as a delta, but this update has ",
               opt ? opt->pending().terms.size() : 0, " terms (at most ", k::kMaxTerms, " fit one pass)");
    wb.mode = !updates ? WriteBackMode::Skip : delta_now ? WriteBackMode::Delta : WriteBackMode::Dense;
    if (updates && delta_ && dense_passes_left_ > 0) --dense_passes_left_;
    last_write_back_ = cpu_site ? WriteBackMode::Skip : wb.mode;
    if (wb.mode == WriteBackMode::Delta) start_delta_applies(wb);
    dev_->launch(StreamId::Compute, [&] { step.visit(m_.embed_group(), embed_); }, -1);
    auto compute = [&](int b, at::Tensor buf) {
      const bool res = resident_->is_resident(b);
      if (split_site && !res) {
        const bool upd = wb.mode == WriteBackMode::Delta;
        const int k = plan_.slot_of_block[size_t(b)];
        if (upd) delta_->prepare_slot(k);
        const k::DeltaOut d = upd ? delta_->out(b, k) : k::DeltaOut{};
        ZoStep::SplitVisit v;
        v.escapes = static_cast<const k::SplitEscape*>(split_escapes_[size_t(b)]);
        v.escape_count = store_->split_escapes(b)->count;
        v.delta = upd ? &d : nullptr;
        v.recipe = upd ? delta_->split_recipe(b) : nullptr;
        return step.visit_split(m_.layer_group(b), buf, upd, v);
      }
      if (wb.mode == WriteBackMode::Delta && !res) {
        const int k = plan_.slot_of_block[size_t(b)];
        delta_->prepare_slot(k);
        if (fp8_site) {
          const ZoStep::Fp8Visit v{delta_->out_fp8(b, k), delta_->recipe(b)};
          return step.visit(m_.layer_group(b), buf, true, nullptr, &v);
        }
        const k::DeltaOut d = delta_->out(b, k);
        return step.visit(m_.layer_group(b), buf, true, &d);
      }
      step.visit(m_.layer_group(b), buf, !cpu_site || res);
    };
    auto wait = [&](int b) { wait_host_update(b); };
    try {
      exec_->run_step(plan_, compute, host_update ? HostUpdateWaitFn(wait) : HostUpdateWaitFn(skip_wait_), {}, wb);
      dev_->launch(StreamId::Compute, [&] { step.visit(m_.head_group(), head_); }, -1);
      dev_->synchronize_all();
    } catch (...) {
      finish_delta_applies(true);
      throw;
    }
    finish_delta_applies(false);
    if (wb.mode == WriteBackMode::Delta && !delta_only &&
        double(pass_exceptions_) > kDeltaMaxExceptions * double(streamed_numel_)) {
      dense_passes_left_ = kDeltaBackoff;
      if (!warned_fallback_)
        log::info("offload: {} of {} streamed elements changed by more than one step of their bits; the next {} "
                  "updates go back whole (Note [Delta fallback])", pass_exceptions_, streamed_numel_, kDeltaBackoff);
      warned_fallback_ = true;
    }
    if (host_updates_.valid()) host_updates_.get();
  }

  void flush(ZoOptimizer& opt) override {
    drain_applies();
    if (deferred_) return flush_deferred(opt);
    if (opt.pending().empty()) return;
    if (delta_ && delta_->fp8()) return flush_fp8(opt);
    if (store_->split()) return flush_split(opt);
    const bool cpu_site = pol_.update_site == UpdateSite::Cpu;
    if (cpu_site) start_host_updates(opt);
    dev_->launch(StreamId::Compute, [&] { opt.apply_update(m_.group(m_.embed_group()), embed_); }, -1);
    auto compute = [&](int b, at::Tensor buf) {
      if (!cpu_site || resident_->is_resident(b)) opt.apply_update(m_.group(m_.layer_group(b)), buf);
    };
    exec_->run_step(plan_, compute, cpu_site ? HostUpdateWaitFn([&](int b) { wait_host_update(b); })
                                             : HostUpdateWaitFn(skip_wait_));
    dev_->launch(StreamId::Compute, [&] { opt.apply_update(m_.group(m_.head_group()), head_); }, -1);
    dev_->synchronize_all();
    if (host_updates_.valid()) host_updates_.get();
    opt.clear_pending();
  }

  // Enqueues opt's pending update of the groups that live on the device: embed, head and the
  // resident blocks (flushes of the sites whose streamed blocks are updated elsewhere).
  void update_device_groups(ZoOptimizer& opt) {
    dev_->launch(StreamId::Compute, [&] {
      opt.apply_update(m_.group(m_.embed_group()), embed_);
      for (int b = 0; b < m_.num_layers(); ++b)
        if (resident_->is_resident(b)) opt.apply_update(m_.group(m_.layer_group(b)), resident_->buffer(b));
      opt.apply_update(m_.group(m_.head_group()), head_);
    }, -1);
  }

  // Note [fp8 at the GPU site]: the device has no master to update for streamed fp8 blocks, so a
  // flush updates their host masters directly (host kernels, bit for bit what the device's delta
  // would have left) and re-packs their fp8 copies; resident groups update on the device.
  void flush_fp8(ZoOptimizer& opt) {
    update_device_groups(opt);
    for (int b : plan_.streamed) {
      opt.apply_update(m_.group(m_.layer_group(b)), store_->view(b));
      store_->refresh_transfer_copy(b);
    }
    dev_->synchronize_all();
    opt.clear_pending();
  }

  // Note [Split bf16 masters]: likewise for split masters, through one decoded bf16 block.
  void flush_split(ZoOptimizer& opt) {
    update_device_groups(opt);
    at::Tensor tmp = split_temp();
    for (int b : plan_.streamed) {
      at::Tensor t = tmp.narrow(0, 0, store_->numel(b));
      store_->read_block(b, t);
      opt.apply_update(m_.group(m_.layer_group(b)), t);
      store_->write_block(b, t);
    }
    dev_->synchronize_all();
    opt.clear_pending();
  }

  // A host bf16 buffer of the largest block (split masters are read and written through it).
  at::Tensor split_temp() const {
    int64_t big = 0;
    for (int b = 0; b < store_->num_blocks(); ++b) big = std::max(big, store_->numel(b));
    return at::empty({big}, at::TensorOptions().dtype(at::kBFloat16));
  }

  std::vector<at::Tensor> host_groups() override {
    dev_->synchronize_all();
    drain_applies();
    if (deferred_) deferred_->drain();
    resident_->store_to_host();
    std::vector<at::Tensor> out;
    // copy=true: never alias the live buffers (the store's memory dies with the engine).
    out.push_back(embed_.to(at::kCPU, at::kFloat, false, true));
    for (int l = 0; l < m_.num_layers(); ++l) {
      at::Tensor f = at::empty({store_->numel(l)}, at::TensorOptions().dtype(at::kFloat));
      store_->read_block(l, f);
      out.push_back(f);
    }
    out.push_back(head_.to(at::kCPU, at::kFloat, false, true));
    return out;
  }

  void load_groups(const std::vector<at::Tensor>& flats) override {
    dev_->synchronize_all();
    drain_applies();
    if (deferred_) deferred_->drain();  // nothing may replay onto the loaded weights
    embed_.copy_(flats.at(size_t(m_.embed_group())));
    head_.copy_(flats.at(size_t(m_.head_group())));
    for (int l = 0; l < m_.num_layers(); ++l) store_->write_block(l, flats.at(size_t(m_.layer_group(l))));
    resident_->load_from_host();
  }

  std::string describe() const override {
    return std::string("offloaded on ") + dev_->name() + ": " + std::to_string(plan_.streamed.size()) +
           " of " + std::to_string(m_.num_layers()) + " blocks streamed through " +
           std::to_string(ring_ ? ring_->num_slots() : 0) + " slots (" +
           transfer_format_name(pol_.transfer) + " transfers, " + update_site_name(pol_.update_site) +
           " update site), host master " + format_bytes(store_->host_bytes()) +
           (store_->all_pinned() ? " pinned" : " PAGEABLE");
  }

  nlohmann::json last_pass_stats() const override {
    int64_t h2d = 0, d2h = 0;
    for (int b : plan_.streamed) {
      h2d += store_->transfer_bytes(b);
      if (pol_.update_site == UpdateSite::Gpu) d2h += store_->transfer_bytes(b);
    }
    if (last_write_back_ != WriteBackMode::Dense) d2h = 0;
    if (last_write_back_ == WriteBackMode::Delta) {
      d2h += int64_t(plan_.streamed.size() * DeltaBuffers::kCountBytes) + pass_code_bytes_;
      d2h += std::min(pass_exceptions_, pass_capacity_) * delta_->entry_bytes();
    }
    nlohmann::json j = {{"h2d_bytes", h2d}, {"d2h_bytes", d2h}, {"host_wait_ms", exec_->host_wait_ms()}};
    if (pol_.update_site == UpdateSite::Gpu && !plan_.streamed.empty()) {
      j["write_back"] = last_write_back_ == WriteBackMode::Delta ? "delta"
                        : last_write_back_ == WriteBackMode::Dense ? "dense" : "none";
      if (delta_) {
        j["delta_exceptions"] = pass_exceptions_;
        j["delta_code_bytes"] = pass_code_bytes_;
        j["delta_apply_wait_ms"] = delta_wait_ms_;
        j["delta_apply_busy_ms"] = delta_busy_ms_;
        // Note [Applies across passes]: with lagged applies the figures above are those of the
        // latest pass whose applies finished; this says whether the last pass's still run.
        j["delta_applies_lag"] = lag_applies_;
        j["delta_applies_pending"] = applier_->pass_pending();
        const ApplyPassStats total = applier_->total();
        j["delta_exceptions_total"] = total.exceptions;
        j["delta_apply_busy_total_ms"] = total.busy_ms;
        if (delta_->split()) j["split_reencoded_blocks"] = delta_->reencoded();  // since the engine started
        if (delta_->fp8()) {  // since the engine started
          j["fp8_rescaled_rows"] = delta_->rescaled_rows();
          j["delta_overflowed"] = delta_->overflowed();
        }
      }
    }
    if (deferred_) {
      j["deferred_max_lag"] = deferred_->max_lag_seen();
      j["deferred_host_updates"] = deferred_->host_updates();
      j["deferred_device_updates"] = deferred_->device_updates();
    }
    if (o_.timeline) {
      j["step_ms"] = exec_->step_ms();
      j["h2d_busy"] = exec_->h2d_busy_fraction();
      j["compute_busy"] = exec_->compute_busy_fraction();
    }
    return j;
  }
  void write_timeline(const std::string& path) const override { exec_->write_chrome_trace(path); }

 private:
  // Note [Deferred update site] (deferred_updates.h): streamed blocks get the updates their
  // master lacks on the device, before the forwards; nothing is written back.
  void run_deferred_pass(ZoStep& step, ZoOptimizer* opt, bool apply_pending) {
    deferred_->rethrow_if_failed();
    ZOFF_CHECK(opt == nullptr || dynamic_cast<ElementwiseDirections*>(&opt->directions()) != nullptr,
               "the deferred update site replays updates from seeds; ", opt ? opt->name() : "",
               " directions cannot be replayed (Note [Deferred site preconditions])");
    if (apply_pending && opt && !opt->pending().empty()) deferred_->push(*opt, opt->pending());
    deferred_->begin_pass();
    dev_->launch(StreamId::Compute, [&] { step.visit(m_.embed_group(), embed_); }, -1);
    auto compute = [&](int b, at::Tensor buf) {
      const bool res = resident_->is_resident(b);
      if (!res) deferred_->catch_up(b, catchup_[size_t(b)], buf);
      step.visit(m_.layer_group(b), buf, res);
    };
    auto before = [&](int b) { catchup_[size_t(b)] = deferred_->before_upload(b); };
    auto issued = [&](int b, EventId e) { deferred_->upload_issued(b, e); };
    exec_->run_step(plan_, compute, before, issued);
    dev_->launch(StreamId::Compute, [&] { step.visit(m_.head_group(), head_); }, -1);
    dev_->synchronize_all();
    for (auto& c : catchup_) c.clear();
  }

  void flush_deferred(ZoOptimizer& opt) {
    if (!opt.pending().empty()) {
      deferred_->push(opt, opt.pending());
      update_device_groups(opt);
      dev_->synchronize_all();
    }
    deferred_->drain();
    opt.clear_pending();
  }

  // Note [Host update thread]
  // At the CPU site one background thread applies the pending update to each streamed block's
  // master in plan order (each block TBB-parallel inside the reference kernel) and refreshes its
  // transfer copy; the executor's WaitHostUpdate b blocks until block b is done.
  void start_host_updates(ZoOptimizer& opt) {
    const int L = m_.num_layers();
    done_ = std::vector<std::promise<void>>(size_t(L));
    futures_.clear();
    for (auto& p : done_) futures_.push_back(p.get_future().share());
    host_updates_ = std::async(std::launch::async, [this, &opt, L] {
      for (int b : plan_.streamed) {
        try {
          opt.apply_update(m_.group(m_.layer_group(b)), store_->view(b));
          store_->refresh_transfer_copy(b);
          done_[size_t(b)].set_value();
        } catch (...) {
          for (int r : plan_.streamed)
            try { done_[size_t(r)].set_exception(std::current_exception()); } catch (...) {}
          throw;
        }
      }
      (void)L;
    });
  }
  void wait_host_update(int b) { futures_.at(size_t(b)).get(); }

  // Note [Delta buffers] (offload/delta_buffers.h). Falls back to the dense write-back, with a
  // warning, where the device cannot store into the masters or the host lacks the memory.
  void make_delta_buffers() {
    if (!o_.device.is_cpu() && !store_->all_pinned()) {
      log::warn("offload: the host masters are not pinned, so the device cannot write deltas into them; "
                "streamed blocks go back whole (policy.write_back = \"dense\")");
      return;
    }
    int64_t need = 0;
    for (int b : plan_.streamed)
      need += (store_->numel(b) + 3) / 4 + (store_->fp8_exact() ? store_->numel(b) / pol_.delta_list_divisor * 4
                                                                 : store_->numel(b) / pol_.delta_list_divisor * 8);
    const int64_t avail = host_memory_available();
    if (avail >= 0 && need > avail) {
      log::warn("offload: the delta write-back needs {} of host memory for codes and exception lists but {} "
                "are available; streamed blocks go back whole (policy.write_back = \"dense\")",
                format_bytes(need), format_bytes(avail));
      return;
    }
    delta_ = std::make_unique<DeltaBuffers>(*dev_, *store_, plan_.streamed, pol_.num_slots, pol_.delta_list_divisor,
                                            pol_.pin_memory);
    applier_ = std::make_unique<DeltaApplier>(*dev_, *delta_, m_.num_layers());
    lag_applies_ = env_either("ZOFF_DELTA_APPLY_LAG", "1", "0", delta_->fp8());
    exec_->set_upload_gate([this](int b) { applier_->wait_block(b); });
    for (int b : plan_.streamed) streamed_numel_ += store_->numel(b), pass_capacity_ += delta_->capacity(b);
  }

  // Note [Applies across passes] (delta_applier.h): the applier's thread applies each streamed
  // block's change to its master once the block's Offload (the count copy) completed, in plan
  // order; the executor's upload gate holds a block's next upload until then. The fp8 GPU site
  // lets a pass end with applies still running; otherwise run_pass drains them as the pass ends.
  void start_delta_applies(WriteBackSpec& wb) {
    applier_->begin_pass(plan_.streamed.size());
    delta_pass_ = true;
    wb.count_bytes = DeltaBuffers::kCountBytes;
    wb.count_src = [this](int k) { return delta_->device_count(k); };
    wb.count_dst = [this](int b) { return delta_->host_count(b); };
    if (delta_->packed()) {
      wb.codes_pack = [this](int k, int b) { delta_->pack_codes(k, b); };
    } else if (delta_->staged()) {
      wb.codes_src = [this](int k) { return delta_->device_codes(k); };
      wb.codes_dst = [this](int b) { return delta_->host_codes(b); };
      wb.codes_bytes = [this](int b) { return delta_->code_bytes(b); };
    }
    if (delta_->list_staged()) wb.list_copy = [this](int k, int b) { delta_->copy_list(k, b); };
    wb.offload_issued = [this](int b, EventId e) { applier_->enqueue(b, e); };
  }

  // Ends a delta pass: drains its applies (unless they lag) and takes the latest complete pass's
  // figures. After an error while issuing, drops the applies still queued.
  void finish_delta_applies(bool failed) {
    if (!applier_ || !delta_pass_) return;
    delta_pass_ = false;
    if (failed) return applier_->abort();
    delta_wait_ms_ = lag_applies_ ? exec_->gate_wait_ms() : applier_->drain();
    const ApplyPassStats st = applier_->last_complete();
    pass_exceptions_ = st.exceptions;
    pass_code_bytes_ = st.code_bytes;
    delta_busy_ms_ = st.busy_ms;
  }

  void wait_background() override { drain_applies(); }

  // Before anything outside a pass reads or writes the masters.
  void drain_applies() {
    if (applier_) applier_->drain();
  }

  const Model& m_;
  EngineOptions o_;
  OffloadPolicy pol_;
  std::unique_ptr<StreamDevice> dev_;
  std::unique_ptr<BlockStore> store_;
  std::unique_ptr<ResidentBlocks> resident_;
  std::unique_ptr<SlotRing> ring_;
  std::unique_ptr<Executor> exec_;
  std::unique_ptr<DeferredUpdates> deferred_;  // deferred site only; declared after what it uses
  std::vector<std::vector<DeferredUpdates::Entry>> catchup_;  // per block, this pass
  Plan plan_;
  at::Tensor embed_, head_;
  std::vector<std::promise<void>> done_;
  std::vector<std::shared_future<void>> futures_;
  std::future<void> host_updates_;
  HostUpdateWaitFn skip_wait_ = [](int) {};
  std::unique_ptr<DeltaBuffers> delta_;  // GPU site with delta write-back only
  std::vector<void*> split_escapes_;     // split masters: each block's escape list as the device reads it
  WriteBackMode last_write_back_ = WriteBackMode::Dense;
  bool delta_pass_ = false;   // a delta pass's applies were started and not yet finished
  bool lag_applies_ = false;  // Note [Applies across passes]: the fp8 GPU site
  int64_t pass_exceptions_ = 0, pass_code_bytes_ = 0;
  double delta_wait_ms_ = 0;  // the pass's end waiting for its applies, or (lagged) its upload gates
  double delta_busy_ms_ = 0;  // the apply thread's time in apply() (latest complete pass)
  int64_t streamed_numel_ = 0;
  int64_t pass_capacity_ = 0;  // list entries of all streamed blocks
  int dense_passes_left_ = 0;
  bool warned_fallback_ = false;
  static constexpr double kDeltaMaxExceptions = 0.1;
  static constexpr int kDeltaBackoff = 16;
  std::unique_ptr<DeltaApplier> applier_;  // last: its thread uses delta_, store_ and dev_
};

}  // namespace

std::unique_ptr<Engine> make_resident_engine(const Model& m, const GroupInit& init, const EngineOptions& o) {
  return std::make_unique<ResidentEngine>(m, init, o);
}

std::unique_ptr<Engine> make_offload_engine(const Model& m, const GroupInit& init, const EngineOptions& o,
                                            const OffloadPolicy& policy, const PlanReport& plan) {
  ZOFF_CHECK(dtype_of(o.storage) == policy.storage_dtype, "engine storage dtype differs from the policy's");
  ZOFF_CHECK(policy.transfer != TransferFormat::Auto,
             "policy.transfer = \"auto\" must be resolved (auto_transfer, Note [Auto transfer]) before the engine");
  return std::make_unique<OffloadEngine>(m, init, o, policy, plan);
}

}  // namespace zoff
