// Planner inputs for a run: block layouts, activation and scratch estimates, FLOPs per step.
#include "zoff/run_plan.h"

#include <torch/version.h>  // TORCH_VERSION_MAJOR

#include <algorithm>
#include <cstdio>
#include <thread>

#include "device_info.h"
#include "kernels/zo_kernels.h"  // kMaxTerms
#include "offload/transfer_layout.h"
#include "zoff/error.h"

namespace zoff {

int forwards_per_step(const OptimizerConfig& o) {
  switch (o.kind) {
    case OptimizerKind::MeZO: return 2 * o.mezo_q;
    case OptimizerKind::SubZero: return 2 * o.mezo_q;
    case OptimizerKind::FZOO: return o.fzoo_n + 1;
    case OptimizerKind::SVRG: return 4;
  }
  return 2;
}

// Note [Auto transfer]
// transfer = "auto" asks for the fastest lossless way to move bf16 masters. Split bf16 (Note [Split
// bf16] in kernels/split16.h) moves 75% of plain bf16's bytes with the same values, bit for bit; on
// the H100 host the streamed MeZO step took 0.78-0.82x of plain bf16's time at 6.7B, 13B and 30B
// and the same at 1.3B, where the step is compute-bound (docs/results.md, sessions 18 and 19). So
// auto is split wherever split runs, and "same" elsewhere:
//   - a CUDA device: on the CPU nothing crosses a link, and the decode is pure cost;
//   - offload = true, storage_dtype = "bf16", update_site = "gpu", write_back not "dense" and
//     pin_memory = true: split masters return every update as a delta into pinned host memory
//     (Note [Split bf16 masters] in offload/block_store.h);
//   - an update of element-wise directions that fits one delta pass: MeZO with q <= kMaxTerms,
//     FZOO with N <= kMaxTerms, SVRG (two terms); not SubZero, whose low-rank update reports no
//     change codes;
//   - one process: split has not been measured with several ranks (docs/distributed.md).
// Under a GPU memory budget split's decode buffer (one bf16 block) can cost resident blocks; there
// the planner prices both (plan_auto) and split stays only if it fits and is predicted no slower.
// The engine can still find at run time that it cannot return deltas (host masters that would not
// pin, no host memory for the codes); the trainer then builds it again with "same" and says so.
TransferFormat auto_transfer(const RunConfig& cfg, bool cuda, bool distributed, std::string* why) {
  const OffloadPolicy& p = cfg.policy;
  const OptimizerConfig& o = cfg.optimizer;
  if (p.transfer != TransferFormat::Auto) return p.transfer;
  auto same = [&](const std::string& reason) {
    if (why) *why = "same (" + reason + ")";
    return TransferFormat::Same;
  };
  if (!p.offload) return same("nothing is streamed");
  if (!cuda) return same("not on a CUDA device");
  if (p.storage_dtype != DType::BF16) return same("storage_dtype is not bf16");
  if (p.update_site != UpdateSite::Gpu) return same("update_site is not gpu");
  if (p.write_back == WriteBack::Dense) return same("write_back is dense");
  if (!p.pin_memory) return same("pin_memory is off");
  if (o.kind == OptimizerKind::SubZero) return same("SubZero's low-rank updates report no change codes");
  const int terms = o.kind == OptimizerKind::FZOO ? o.fzoo_n : o.kind == OptimizerKind::SVRG ? 2 : o.mezo_q;
  if (terms > k::kMaxTerms)
    return same("the update has " + std::to_string(terms) + " terms, more than one delta pass takes (" +
                std::to_string(k::kMaxTerms) + ")");
  if (distributed) return same("split is not measured with several processes");
  if (why) *why = "bf16-split (lossless, 1.5 bytes per element)";
  return TransferFormat::BF16Split;
}

PlanReport plan_auto(const PlannerInput& in, OffloadPolicy* p, bool auto_split, std::string* why) {
  if (!auto_split || p->transfer != TransferFormat::BF16Split) return plan_offload(in, *p);
  OffloadPolicy same = *p;
  same.transfer = TransferFormat::Same;
  PlanReport s = plan_offload(in, same);  // split's slots and decode buffer never fit where these do not
  auto use_same = [&](const std::string& reason) {
    *p = same;
    if (why) *why = "same (" + reason + ")";
    return s;
  };
  PlanReport split;
  try {
    split = plan_offload(in, *p);
  } catch (const InputError&) {
    return use_same("bf16-split's decode buffer does not fit policy.gpu_memory_budget");
  }
  if (split.step_seconds > s.step_seconds) {
    char b[160];
    std::snprintf(b, sizeof b, "under policy.gpu_memory_budget bf16-split keeps %d blocks resident against %d: %.3f s "
                  "per step predicted against %.3f s", split.resident_count, s.resident_count, split.step_seconds,
                  s.step_seconds);
    return use_same(b);
  }
  return split;
}

BlockDesc block_desc(const GroupLayout& g) {
  BlockDesc d;
  d.numel = g.numel;
  int64_t covered = 0;
  for (auto& p : g.params) {
    if (p.offset > covered) d.segments.push_back(RowSegment{1, p.offset - covered});  // padding
    if (p.shape.size() == 2)
      d.segments.push_back(RowSegment{p.shape[0], p.shape[1]});
    else
      d.segments.push_back(RowSegment{1, p.numel});
    covered = p.offset + p.numel;
  }
  if (g.numel > covered) d.segments.push_back(RowSegment{1, g.numel - covered});
  return d;
}

int64_t resident_part_bytes(const Model& m, DType storage) {
  return (m.group(m.embed_group()).numel + m.group(m.head_group()).numel) * dtype_size(storage);
}

// Note [Activation estimate]
// Per perturbation the step keeps one hidden state [B,T,H] between blocks (compute dtype).
// One block forward at a time additionally holds q, k, v, attention output, two residual-sized
// temporaries and the MLP intermediates (2 x [B,T,F]) -- (6H + 2F) B T elements -- and the 2.x
// attention kernels need no [T,T] scores; 1.13's explicit path adds B heads T T floats. The head
// holds logits and log-probs in fp32: 2 B T V x 4 bytes. Block and head transients are never alive
// at once, so the workspace holds the larger, plus 256 MiB of allocator and cuBLAS slack.
PlannerInput planner_input(const Model& m, const RunConfig& cfg) {
  const ModelSpec& s = m.spec();
  const OffloadPolicy& pol = cfg.policy;
  PlannerInput in;
  for (int l = 0; l < m.num_layers(); ++l) in.blocks.push_back(block_desc(m.group(m.layer_group(l))));
  in.resident_part_bytes = resident_part_bytes(m, pol.storage_dtype);
  const int64_t B = cfg.data.batch_size, T = cfg.data.max_length, H = s.hidden_size;
  const int64_t cb = dtype_size(pol.compute_dtype);
  in.num_perturbations = forwards_per_step(cfg.optimizer);
  in.activation_bytes_per_perturbation = B * T * H * cb;
  int64_t big = 0;
  for (auto& g : m.groups())
    for (auto& p : g.params)
      if (p.shape.size() == 2) big = std::max(big, p.numel);
  in.scratch_bytes = big * cb;
  // The mirror buffer of Note [Mirror forwards] (trainer.cpp), on for fp8 transfers at the GPU site.
  if (pol.offload && fp8_gpu_site(pol)) {
    int64_t group = 0;
    for (auto& g : m.groups()) group = std::max(group, g.numel);
    in.scratch_bytes += group * cb;
  }
  int64_t block_transient = (6 * H + 2 * s.ffn_dim) * B * T * cb;
#if !(defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2)
  block_transient += B * s.num_heads * T * T * 4;
#endif
  const int64_t head_transient = 2 * B * T * s.vocab_size * 4;
  const int64_t transient = std::max(block_transient, head_transient);  // never alive together
  in.workspace_bytes = transient + (int64_t(256) << 20);
  // Note [CUDA context]: policy.gpu_memory_budget bounds what nvidia-smi (NVML) shows for the
  // process, the figure ZO2 is compared on, not only LibTorch's allocations. Before its first
  // allocation a zoff process on the H100 (CUDA 13, LibTorch 2.11) already holds 579-639 MiB:
  // the context, its loaded kernels and cuBLAS handles. The allocator's cache over what it hands
  // out is kept small by expandable segments (Note [Expandable segments] in device_info.cpp).
  const std::string& dev = cfg.train.device;
  if (dev.rfind("cuda", 0) == 0 || (dev == "auto" && cuda_available())) in.context_bytes = int64_t(640) << 20;
  // Note [Host update cost]
  // At the CPU site a host thread applies each streamed block's pending update to its master and
  // re-packs its transfer copy; at the deferred site it only applies updates. Both are bound by
  // the host kernels (kernels/host), measured per core on the H100 machine's 16-core Xeon
  // (docs/results.md, session 2 host rows, bytes read + written): a Gaussian term ~2.1 core-ns
  // per element (Philox + Box-Muller), a Rademacher term ~0.6, stochastic rounding of a 16-bit
  // master +0.6, the fp8 / 16-bit re-pack ~1.0. Checked end to end: OPT-13B stream-fp8 predicted
  // 2.9 s, measured 3.15 s per step (16 cores); OPT-175B on the 64-core x4 host predicted 10.1 s,
  // measured 14.7 s (that Xeon's cores are slower per core). Other CPUs differ: the figure is a
  // guide for choosing a site, not a promise. Terms per update: MeZO and SubZero q, FZOO N, SVRG 2.
  if (pol.offload && pol.update_site != UpdateSite::Gpu) {
    int terms = 1;
    switch (cfg.optimizer.kind) {
      case OptimizerKind::MeZO:
      case OptimizerKind::SubZero: terms = cfg.optimizer.mezo_q; break;
      case OptimizerKind::FZOO: terms = cfg.optimizer.fzoo_n; break;
      case OptimizerKind::SVRG: terms = 2; break;
    }
    const bool gauss = cfg.optimizer.direction != "rademacher";
    in.host_cores = int(std::max(1u, std::thread::hardware_concurrency()));
    in.host_update_ns = terms * (gauss ? 2.1 : 0.6) + (pol.storage_dtype != DType::F32 ? 0.6 : 0.0);
    in.host_pack_ns = transfer_dtype(pol.storage_dtype, pol.transfer) != pol.storage_dtype ? 1.0 : 0.0;
  }
  // fp8 at the GPU site (Note [fp8 at the GPU site]): the host applies the device's codes to the
  // bf16 master and keeps the fp8 copy current. Measured on the H200 host (16 cores, docs/
  // results.md session 11, with Note [Applies across passes], so the step is the larger of device
  // and host): OPT-13B's step took 0.363-0.388 s host-bound for 12.6 G streamed elements and
  // OPT-30B's 0.870-0.964 s for 29.6 G, ~0.49 core-ns per element (session 10, applies joined at
  // each pass's end: 0.53; session 9's walk: 0.75). With packed codes (Note [Packed codes],
  // session 14, call 3) OPT-30B's host-bound step took 0.804-0.809 s: ~0.435 core-ns. It does not
  // depend on the optimizer's terms (the device draws z).
  if (fp8_gpu_site(pol)) {
    in.host_cores = int(std::max(1u, std::thread::hardware_concurrency()));
    in.host_update_ns = 0.435;
  }
  double per_token = 0;
  for (int l = 0; l < m.num_layers(); ++l) per_token += 2.0 * double(m.group(m.layer_group(l)).numel);
  per_token += 2.0 * double(s.vocab_size) * double(s.word_embed_proj_dim > 0 ? s.word_embed_proj_dim : H);
  per_token += 4.0 * double(T) * double(H) * double(s.num_layers);  // attention scores and mix
  in.flops_per_step = per_token * double(B * T) * in.num_perturbations;
  return in;
}

}  // namespace zoff
