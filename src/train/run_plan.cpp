// Planner inputs for a run: block layouts, activation and scratch estimates, FLOPs per step.
#include "zoff/run_plan.h"

#include <torch/version.h>  // TORCH_VERSION_MAJOR

#include <algorithm>
#include <thread>

#include "device_info.h"
#include "offload/transfer_layout.h"

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
