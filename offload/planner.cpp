// plan_offload: resident-set choice and step-cost prediction (Note [Planner]).
#include "offload/planner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "zoff/error.h"

namespace zoff {

std::vector<bool> spread_resident(int num_blocks, int count) {
  ZOFF_CHECK(count >= 0 && count <= num_blocks, "spread_resident: ", count, " of ", num_blocks, " blocks");
  std::vector<bool> r(size_t(num_blocks), false);
  if (count == 1) r[0] = true;
  for (int i = 0; count > 1 && i < count; ++i)
    r[size_t(std::llround(double(i) * double(num_blocks - 1) / double(count - 1)))] = true;
  return r;
}

namespace {

int64_t align256(int64_t x) { return (x + 255) / 256 * 256; }

std::string components_str(const std::vector<MemoryComponent>& c, int64_t total) {
  std::string s;
  for (const MemoryComponent& m : c) s += "\n  " + m.name + ": " + format_bytes(m.bytes);
  return s + "\n  total: " + format_bytes(total);
}

}  // namespace

PlanReport plan_offload(const PlannerInput& in, const OffloadPolicy& p) {
  const int B = int(in.blocks.size());
  ZOFF_CHECK(B > 0, "plan_offload: no blocks");
  for (int b = 0; b < B; ++b) check_block_desc(in.blocks[size_t(b)], b);
  ZOFF_INPUT_CHECK(p.storage_dtype == DType::F32 || p.storage_dtype == DType::BF16 || p.storage_dtype == DType::F16,
                   "offload policy '", p.name, "': storage_dtype must be fp32, bf16 or fp16, got ",
                   dtype_name(p.storage_dtype));
  ZOFF_INPUT_CHECK(p.gpu_memory_budget >= 0, "offload policy '", p.name, "': gpu_memory_budget is negative");
  ZOFF_INPUT_CHECK(in.num_perturbations >= 1, "planner: num_perturbations must be >= 1, got ", in.num_perturbations);
  ZOFF_INPUT_CHECK(in.h2d_gbps > 0 && in.d2h_gbps > 0 && in.both_gbps > 0 && in.gemm_tflops > 0,
                   "planner: bandwidths and GEMM throughput must be positive");
  const DType tdt = transfer_dtype(p.storage_dtype, p.transfer);
  if (p.offload) {
    ZOFF_INPUT_CHECK(p.num_slots >= 2, "offload policy '", p.name, "': num_slots must be >= 2, got ", p.num_slots);
    ZOFF_INPUT_CHECK(p.prefetch_depth >= 0 && p.prefetch_depth < p.num_slots, "offload policy '", p.name,
                     "': prefetch_depth must be in [0, num_slots), got ", p.prefetch_depth);
    ZOFF_INPUT_CHECK(p.update_site == UpdateSite::Cpu || tdt == p.storage_dtype ||
                         (p.update_site == UpdateSite::Gpu && (fp8_gpu_site(p) || split_gpu_site(p))),
                     "offload policy '", p.name, "': update_site = ", update_site_name(p.update_site),
                     " applies updates to the uploaded copy, so transfer must be the storage dtype (",
                     dtype_name(p.storage_dtype), "), got ", transfer_format_name(p.transfer),
                     "; use update_site = cpu, or fp8 / bf16-split transfers of bf16 masters at the GPU site");
    ZOFF_INPUT_CHECK(p.resident_blocks >= -1 && p.resident_blocks <= B, "offload policy '", p.name,
                     "': resident_blocks must be -1 (planner decides) or in [0, ", B, "], got ", p.resident_blocks);
  }

  PlanReport r;
  r.num_blocks = B;
  r.site = p.update_site;
  r.transfer = p.transfer;
  r.gpu_budget = p.gpu_memory_budget;

  std::vector<int64_t> storage(static_cast<size_t>(B)), transfer(static_cast<size_t>(B));
  int64_t max_transfer = 0, max_numel = 0, all_storage = 0;
  for (int b = 0; b < B; ++b) {
    const BlockDesc& d = in.blocks[size_t(b)];
    storage[size_t(b)] = d.numel * dtype_size(p.storage_dtype);
    const TransferLayout l = transfer_layout(d, p.storage_dtype, p.transfer);
    transfer[size_t(b)] = l.total_bytes;
    r.host_bytes += storage[size_t(b)] + (l.separate_copy ? l.total_bytes : 0);
    max_transfer = std::max(max_transfer, l.total_bytes);
    max_numel = std::max(max_numel, d.numel);
    all_storage += storage[size_t(b)];
  }

  std::vector<MemoryComponent> common = {
      {"resident parts", in.resident_part_bytes},
      {"activations (" + std::to_string(in.num_perturbations) + " x " +
           format_bytes(in.activation_bytes_per_perturbation) + ")",
       in.activation_bytes_per_perturbation * in.num_perturbations},
      {"perturbation scratch", in.scratch_bytes},
      {"workspace", in.workspace_bytes}};
  if (in.context_bytes > 0) common.push_back({"CUDA context", in.context_bytes});
  int64_t common_total = 0;
  for (const MemoryComponent& m : common) common_total += m.bytes;
  const int64_t budget = p.gpu_memory_budget;
  auto resident_sum = [&](const std::vector<bool>& res) {
    int64_t s = 0;
    for (int b = 0; b < B; ++b) s += res[size_t(b)] ? storage[size_t(b)] : 0;
    return s;
  };

  std::vector<MemoryComponent> ring;  // slots (+ unpack) when something is streamed
  if (!p.offload || (budget > 0 && common_total + all_storage <= budget)) {
    r.resident.assign(size_t(B), true);
    if (!p.offload && budget > 0) {
      std::vector<MemoryComponent> all = common;
      all.push_back({"resident blocks (" + std::to_string(B) + ")", all_storage});
      ZOFF_INPUT_CHECK(common_total + all_storage <= budget, "offload policy '", p.name,
                       "': every block resident needs more than gpu_memory_budget = ", format_bytes(budget),
                       " (set offload = true to stream blocks):", components_str(all, common_total + all_storage));
    }
  } else {
    r.num_slots = p.num_slots;
    r.slot_bytes = max_transfer;
    ring.push_back({"slots (" + std::to_string(p.num_slots) + " x " + format_bytes(max_transfer) + ")",
                    int64_t(p.num_slots) * align256(max_transfer)});
    // Note [Staged codes] (offload/delta_buffers.h): the delta write-back's codes, a quarter byte
    // per element of the largest block, per slot.
    if (uses_delta_write_back(p))
      ring.push_back({"delta codes (" + std::to_string(p.num_slots) + " x " + format_bytes((max_numel + 3) / 4) + ")",
                      int64_t(p.num_slots) * align256((max_numel + 3) / 4)});
    // No fp8 unpack buffer at the CPU site: ZoStep dequantises each matrix straight into the
    // perturbation scratch when the forward asks for it (Note [fp8 groups] in src/optim/zo_step.cpp).
    // At the GPU site the update writes the block's forward weights, one bf16 block (Note [fp8 at
    // the GPU site]).
    if (fp8_gpu_site(p)) ring.push_back({"fp8 update buffer (1 x " + format_bytes(2 * max_numel) + ")", align256(2 * max_numel)});
    // Split masters are decoded into one bf16 block (Note [Split bf16 masters]).
    if (split_gpu_site(p)) ring.push_back({"split decode buffer (1 x " + format_bytes(2 * max_numel) + ")", align256(2 * max_numel)});
    int64_t fixed = common_total;
    for (const MemoryComponent& m : ring) fixed += m.bytes;
    std::vector<MemoryComponent> fixed_list = ring;
    fixed_list.insert(fixed_list.end(), common.begin(), common.end());
    ZOFF_INPUT_CHECK(budget == 0 || fixed <= budget, "offload policy '", p.name, "': gpu_memory_budget = ",
                     format_bytes(budget), " is too small even with every block streamed:",
                     components_str(fixed_list, fixed));
    int R = 0;
    if (p.resident_blocks >= 0) {
      R = p.resident_blocks;
      const int64_t need = fixed + resident_sum(spread_resident(B, R));
      ZOFF_INPUT_CHECK(budget == 0 || need <= budget, "offload policy '", p.name, "': resident_blocks = ", R,
                       " needs ", format_bytes(need), " of GPU memory, over gpu_memory_budget = ",
                       format_bytes(budget));
    } else if (budget > 0) {
      for (R = B - 1; R > 0; --R)
        if (fixed + resident_sum(spread_resident(B, R)) <= budget) break;
    }
    r.resident = spread_resident(B, R);
    if (R == B) {  // everything resident after all: no ring
      ring.clear();
      r.num_slots = 0;
      r.slot_bytes = 0;
    }
  }

  r.resident_count = int(std::count(r.resident.begin(), r.resident.end(), true));
  r.gpu = ring;
  r.gpu.insert(r.gpu.end(), common.begin(), common.end());
  r.gpu.push_back({"resident blocks (" + std::to_string(r.resident_count) + ")", resident_sum(r.resident)});
  for (const MemoryComponent& m : r.gpu) r.gpu_total += m.bytes;

  for (int b = 0; b < B; ++b) {
    if (r.resident[size_t(b)]) continue;
    r.h2d_bytes_per_step += transfer[size_t(b)];
    // Note [Delta write-back]: 2-bit codes (a quarter byte per element, one DMA copy, Note
    // [Staged codes]) plus the exception list, ~1% of the elements at 8 bytes each at MeZO's
    // learning rates (docs/results.md). The codes are packed by default (Note [Packed codes]):
    // ~31% of the code words nonzero at those rates, 0.08 B per element, plus the bitmap; the
    // fp8 site's ~0.15% exceptions at 16 bytes: ~0.11 B; bf16: ~0.17 B.
    if (p.update_site == UpdateSite::Gpu)
      r.d2h_bytes_per_step += uses_delta_write_back(p) ? in.blocks[size_t(b)].numel * (fp8_gpu_site(p) ? 11 : 17) / 100
                                                       : storage[size_t(b)];
  }
  const double h2d_s = double(r.h2d_bytes_per_step) / (in.h2d_gbps * 1e9);
  r.transfer_seconds = h2d_s;
  if (r.d2h_bytes_per_step > 0)
    r.transfer_seconds = std::max({h2d_s, double(r.d2h_bytes_per_step) / (in.d2h_gbps * 1e9),
                                   double(r.h2d_bytes_per_step + r.d2h_bytes_per_step) / (in.both_gbps * 1e9)});
  r.compute_seconds = in.flops_per_step / (in.gemm_tflops * 1e12);
  if ((p.update_site != UpdateSite::Gpu || fp8_gpu_site(p)) && in.host_cores > 0) {
    int64_t host_elems = 0;
    for (int b = 0; b < B; ++b)
      if (!r.resident[size_t(b)]) host_elems += in.blocks[size_t(b)].numel;
    const double ns = in.host_update_ns + (p.update_site == UpdateSite::Cpu ? in.host_pack_ns : 0.0);
    r.host_seconds = double(host_elems) * ns * 1e-9 / in.host_cores;
    r.host_cores = in.host_cores;
  }
  r.step_seconds = std::max({r.transfer_seconds, r.compute_seconds, r.host_seconds});
  return r;
}

std::string PlanReport::to_string() const {
  std::ostringstream os;
  char line[160];
  os << "offload plan: " << num_blocks << " blocks, " << resident_count << " resident, "
     << (num_blocks - resident_count) << " streamed";
  if (num_slots > 0) os << " through " << num_slots << " slots of " << format_bytes(slot_bytes);
  os << "; update site " << update_site_name(site) << ", transfer " << transfer_format_name(transfer) << "\n";
  os << "GPU memory\n";
  for (const MemoryComponent& m : gpu) {
    std::snprintf(line, sizeof line, "  %-40s %14s\n", m.name.c_str(), format_bytes(m.bytes).c_str());
    os << line;
  }
  std::snprintf(line, sizeof line, "  %-40s %14s%s\n", "total", format_bytes(gpu_total).c_str(),
                gpu_budget > 0 ? (" of " + format_bytes(gpu_budget) + " budget").c_str() : " (no budget)");
  os << line;
  std::snprintf(line, sizeof line, "host memory (masters + transfer copies) %14s\n", format_bytes(host_bytes).c_str());
  os << line;
  std::snprintf(line, sizeof line, "per step: H2D %s, D2H %s\n", format_bytes(h2d_bytes_per_step).c_str(),
                format_bytes(d2h_bytes_per_step).c_str());
  os << line;
  std::snprintf(line, sizeof line, "predicted step: transfer %.3f s, compute %.3f s", transfer_seconds,
                compute_seconds);
  os << line;
  if (host_seconds > 0) {
    std::snprintf(line, sizeof line, ", host updates %.3f s on %d cores", host_seconds, host_cores);
    os << line;
  }
  const char* bound = host_seconds > std::max(transfer_seconds, compute_seconds) ? "host"
                      : transfer_seconds >= compute_seconds                     ? "transfer"
                                                                                : "compute";
  std::snprintf(line, sizeof line, " -> %.3f s (%s-bound)\n", step_seconds, bound);
  os << line;
  return os.str();
}

}  // namespace zoff
