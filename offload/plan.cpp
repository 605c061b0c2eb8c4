// build_plan and Plan::to_string (Note [Slot events], Note [Plan phases]).
#include "offload/plan.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "zoff/error.h"

namespace zoff {

const char* op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::WaitHostUpdate: return "wait-host-update";
    case OpKind::Upload: return "upload";
    case OpKind::Compute: return "compute";
    case OpKind::Offload: return "offload";
  }
  return "?";
}

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::Prologue: return "prologue";
    case Phase::Steady: return "steady";
    case Phase::Epilogue: return "epilogue";
  }
  return "?";
}

const char* slot_event_name(SlotEvent e) {
  switch (e) {
    case SlotEvent::Loaded: return "loaded";
    case SlotEvent::Computed: return "computed";
    case SlotEvent::Free: return "free";
  }
  return "?";
}

PlanConfig plan_config(const OffloadPolicy& p, int num_blocks, std::vector<bool> resident) {
  PlanConfig c;
  c.num_blocks = num_blocks;
  c.num_slots = p.num_slots;
  c.prefetch_depth = p.prefetch_depth;
  c.resident = std::move(resident);
  // The deferred site issues the CPU site's plan: no write-back, and a host hook before each upload.
  c.site = p.update_site == UpdateSite::Deferred ? UpdateSite::Cpu : p.update_site;
  return c;
}

Plan build_plan(const PlanConfig& cfg) {
  ZOFF_CHECK(cfg.num_blocks > 0, "build_plan: num_blocks must be positive, got ", cfg.num_blocks);
  ZOFF_INPUT_CHECK(cfg.num_slots >= 2, "offload policy: num_slots must be >= 2, got ", cfg.num_slots);
  ZOFF_INPUT_CHECK(cfg.prefetch_depth >= 0 && cfg.prefetch_depth < cfg.num_slots,
                   "offload policy: prefetch_depth must be in [0, num_slots) = [0, ", cfg.num_slots,
                   "), got ", cfg.prefetch_depth);
  ZOFF_INPUT_CHECK(cfg.resident.empty() || int(cfg.resident.size()) == cfg.num_blocks,
                   "offload policy: the resident-block mask has ", cfg.resident.size(),
                   " entries for ", cfg.num_blocks, " blocks");
  Plan plan;
  plan.config = cfg;
  if (plan.config.resident.empty()) plan.config.resident.assign(size_t(cfg.num_blocks), false);
  const std::vector<bool>& res = plan.config.resident;
  const int K = cfg.num_slots, d = cfg.prefetch_depth;
  const bool gpu = cfg.site == UpdateSite::Gpu;

  plan.slot_of_block.assign(size_t(cfg.num_blocks), -1);
  for (int b = 0; b < cfg.num_blocks; ++b)
    if (!res[size_t(b)]) {
      plan.slot_of_block[size_t(b)] = int(plan.streamed.size()) % K;
      plan.streamed.push_back(b);
    }
  const int n = int(plan.streamed.size());
  auto& ops = plan.ops;

  auto emit_upload = [&](int j, Phase ph) {
    const int b = plan.streamed[size_t(j)], k = j % K;
    if (!gpu) ops.push_back({OpKind::WaitHostUpdate, ph, b, k, StreamId::Upload, {}, {}});
    PlanOp up{OpKind::Upload, ph, b, k, StreamId::Upload, {}, {{SlotEvent::Loaded, k}}};
    if (j >= K) up.waits.push_back({SlotEvent::Free, k});
    ops.push_back(std::move(up));
  };

  for (int j = 0; j < std::min(d, n); ++j) emit_upload(j, Phase::Prologue);
  Phase phase = Phase::Prologue;
  int j = 0;  // next streamed block to compute
  for (int b = 0; b < cfg.num_blocks; ++b) {
    if (res[size_t(b)]) {
      ops.push_back({OpKind::Compute, phase, b, -1, StreamId::Compute, {}, {}});
      continue;
    }
    const int k = j % K;
    phase = j + d < n ? Phase::Steady : Phase::Epilogue;
    if (j + d < n) emit_upload(j + d, phase);
    ops.push_back({OpKind::Compute, phase, b, k, StreamId::Compute, {{SlotEvent::Loaded, k}},
                   {{gpu ? SlotEvent::Computed : SlotEvent::Free, k}}});
    if (gpu)
      ops.push_back({OpKind::Offload, phase, b, k, StreamId::Offload, {{SlotEvent::Computed, k}},
                     {{SlotEvent::Free, k}}});
    ++j;
    // After the last streamed block, the resident blocks that follow belong to the epilogue.
    if (j == n) phase = Phase::Epilogue;
  }
  return plan;
}

namespace {
std::string events_str(const std::vector<EventRef>& evs) {
  if (evs.empty()) return "-";
  std::string s;
  for (const EventRef& e : evs) {
    if (!s.empty()) s += ",";
    s += std::string(slot_event_name(e.kind)) + "[" + std::to_string(e.slot) + "]";
  }
  return s;
}
}  // namespace

std::string Plan::to_string() const {
  std::ostringstream os;
  const int nres = int(config.num_blocks) - int(streamed.size());
  os << "plan: " << config.num_blocks << " blocks (" << streamed.size() << " streamed, " << nres
     << " resident), " << config.num_slots << " slots, prefetch depth " << config.prefetch_depth
     << ", update site " << update_site_name(config.site) << ", " << ops.size() << " ops\n";
  bool first = true;
  Phase cur = Phase::Prologue;
  for (size_t i = 0; i < ops.size(); ++i) {
    const PlanOp& op = ops[i];
    if (first || op.phase != cur) {
      os << phase_name(op.phase) << ":\n";
      cur = op.phase;
      first = false;
    }
    char head[96];
    std::string where;
    switch (op.kind) {
      case OpKind::WaitHostUpdate: where = "host"; break;
      default: where = stream_name(op.stream);
    }
    std::snprintf(head, sizeof head, "  #%-4zu %-16s block %-4d %-9s %-8s", i, op_kind_name(op.kind),
                  op.block, op.slot >= 0 ? ("slot " + std::to_string(op.slot)).c_str() : "resident",
                  where.c_str());
    os << head << " waits " << events_str(op.waits) << "  records " << events_str(op.records) << "\n";
  }
  return os.str();
}

}  // namespace zoff
