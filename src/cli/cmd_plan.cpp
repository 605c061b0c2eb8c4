// zoff plan: the memory and transfer plan of a run, from shapes alone (no weights, no GPU needed).
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "commands.h"
#include "group_sizes.h"
#include "offload/planner.h"
#include "offload/transfer_layout.h"
#include "zoff/config.h"
#include "zoff/error.h"
#include "zoff/model.h"
#include "zoff/run_plan.h"

namespace zoff::cli {
namespace {

struct PlanOptions {
  std::string config;
  std::vector<std::string> sets;
  double h2d_gbps = PlannerInput{}.h2d_gbps;
  double d2h_gbps = PlannerInput{}.d2h_gbps;
  double both_gbps = PlannerInput{}.both_gbps;
  double gemm_tflops = PlannerInput{}.gemm_tflops;
};

// One line per run of consecutive groups with identical sizes ("layers.0 .. layers.95 (96)").
void print_groups(const Model& m, const OffloadPolicy& p) {
  const DType tdt = transfer_dtype(p.storage_dtype, p.transfer);
  std::printf("parameter groups (stored %s, moved %s%s):\n", config_dtype_name(p.storage_dtype),
              tdt == DType::F8_E4M3 ? "fp8" : config_dtype_name(tdt), tdt == DType::F8_E4M3 ? " + row scales" : "");
  std::printf("  %-28s %16s %12s %12s\n", "group", "params", "stored", "moved");
  for (int g = 0; g < m.num_groups();) {
    const GroupLayout& first = m.group(g);
    int end = g + 1;
    const bool layer = g != m.embed_group() && g != m.head_group();
    while (layer && end < m.head_group() && m.group(end).numel == first.numel) ++end;
    std::string name = end - g > 1 ? first.name + " .. " + m.group(end - 1).name + " (" + std::to_string(end - g) + ")"
                                   : first.name;
    std::printf("  %-28s %16lld %12s %12s%s\n", name.c_str(), (long long)group_params(first),
                format_bytes(group_bytes(first, p.storage_dtype)).c_str(),
                layer ? format_bytes(group_transfer_bytes(first, p.storage_dtype, p.transfer)).c_str() : "-",
                end - g > 1 ? "  each" : (layer ? "" : "  always on the device"));
    g = end;
  }
}

int64_t host_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? int64_t(pages) * int64_t(page) : 0;
}

int run_plan(const PlanOptions& o) {
  RunConfig cfg = load_run_config(o.config, o.sets);
  std::string auto_why;  // a plan is for the GPU: Note [Auto transfer] in src/train/run_plan.cpp
  if (cfg.policy.transfer == TransferFormat::Auto) cfg.policy.transfer = auto_transfer(cfg, true, false, &auto_why);
  const OffloadPolicy& p = cfg.policy;
  Model m(cfg.model.spec);  // shapes only: the constructor allocates no weights
  PlannerInput in = planner_input(m, cfg);
  in.h2d_gbps = o.h2d_gbps;
  in.d2h_gbps = o.d2h_gbps;
  in.both_gbps = o.both_gbps;
  in.gemm_tflops = o.gemm_tflops;

  std::printf("plan for %s\n", o.config.c_str());
  std::printf("model: %s, %lld parameters, %d layers%s\n", arch_name(m.spec().arch), (long long)m.num_params(),
              m.num_layers(), cfg.model.dummy_weights ? " (dummy weights)" : "");
  std::printf("policy '%s': storage %s, transfer %s, compute %s, %s, %d slots, prefetch %d, update site %s\n",
              p.name.c_str(), config_dtype_name(p.storage_dtype), transfer_format_name(p.transfer),
              config_dtype_name(p.compute_dtype), p.offload ? "offload" : "all resident", p.num_slots,
              p.prefetch_depth, update_site_name(p.update_site));
  if (!auto_why.empty()) std::printf("transfer = \"auto\" on one GPU: %s\n", auto_why.c_str());
  std::printf("optimizer %s: %d forwards per step over batch %lld x %lld tokens\n",
              optimizer_kind_name(cfg.optimizer.kind), in.num_perturbations, (long long)cfg.data.batch_size,
              (long long)cfg.data.max_length);
  print_groups(m, p);
  std::printf("planner inputs (Note [Activation estimate] in src/train/run_plan.cpp):\n");
  std::printf("  activations per forward %14s   (the hidden state each forward carries)\n",
              format_bytes(in.activation_bytes_per_perturbation).c_str());
  std::printf("  perturbation scratch    %14s   (largest matrix, %s)\n", format_bytes(in.scratch_bytes).c_str(),
              config_dtype_name(p.compute_dtype));
  std::printf("  workspace               %14s   (one forward's transients, allocator and cuBLAS slack)\n",
              format_bytes(in.workspace_bytes).c_str());
  std::printf("  FLOPs per step          %14.4g   at %g TFLOP/s\n", in.flops_per_step, in.gemm_tflops);
  std::printf("  PCIe GB/s               H2D %g, D2H %g, both %g\n\n", in.h2d_gbps, in.d2h_gbps, in.both_gbps);
  std::fflush(stdout);

  // InputError listing every component when over budget; auto's split may yield to "same" here
  std::string fallback;
  const PlanReport r = plan_auto(in, &cfg.policy, !auto_why.empty() && p.transfer == TransferFormat::BF16Split, &fallback);
  if (!fallback.empty()) std::printf("transfer = \"auto\": %s\n", fallback.c_str());
  std::printf("%s", r.to_string().c_str());
  const int64_t host = host_memory_bytes();
  if (host > 0 && r.host_bytes > host)
    std::printf("note: the host copies need %s; this machine has %s of memory\n", format_bytes(r.host_bytes).c_str(),
                format_bytes(host).c_str());
  return kExitOk;
}

}  // namespace

Command add_plan_command(CLI::App& top) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* sub = top.add_subcommand(
      "plan",
      "Print a run's offload plan from shapes alone (no weights are allocated, no GPU is needed): per-group "
      "bytes, planner inputs, the GPU memory table, bytes moved and the predicted step time. Exits 2 when "
      "the policy's gpu_memory_budget cannot hold the plan, listing every component.");
  sub->add_option("--config", o->config, "run file (configs/runs/*.toml)")->required();
  sub->add_option("--set", o->sets, "override a config key, key=value (repeatable)")->allow_extra_args(false);
  sub->add_option("--h2d-gbps", o->h2d_gbps, "host-to-device bandwidth, GB/s")
      ->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--d2h-gbps", o->d2h_gbps, "device-to-host bandwidth, GB/s")
      ->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--both-gbps", o->both_gbps, "H2D + D2H together when both directions run at once, GB/s")
      ->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--tflops", o->gemm_tflops, "GEMM throughput in the compute dtype, TFLOP/s")
      ->check(CLI::PositiveNumber)->capture_default_str();
  return {sub, [o] { return run_plan(*o); }};
}

}  // namespace zoff::cli
