// One full ZO step per (model size x optimizer x policy) through the Trainer, against transfer and GEMM bounds.
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "zoff/remove_tree.h"
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "offload/planner.h"
#include "zoff/config.h"
#include "zoff/error.h"
#include "zoff/model.h"
#include "zoff/model_spec.h"
#include "zoff/run_plan.h"
#include "zoff/trainer.h"
#include "bench/step_cases.h"

#ifdef ZOFF_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>

#include "bench/cuda_bench.h"
#endif

// Note [Step bench]
// Each case builds a whole run in memory (dummy OPT weights, synthetic token batches of
// batch x seq, no dataset) and a Trainer for it, runs `warmup` steps (the first steps allocate:
// caching-allocator blocks, executor events and views, optimizer state), then times `iterations`
// Trainer::train_step calls with a steady clock: train_step returns once the device is done, so
// each timed value is the step's wall time including its final synchronisation (UseManualTime).
// The per-step engine figures (h2d bytes, busy fractions) and the driver-reported device memory
// come from the metrics.jsonl lines the trainer appends, one per step. Bounds, per case:
//   fraction_of_transfer_bound = (h2d bytes / pinned H2D bandwidth) / step time, with the
//     bandwidth measured once at start-up in this process (Note [Reference H2D bandwidth]);
//     1.0 means the step runs exactly at the PCIe limit for the bytes it moves.
//   gemm_floor_s = forwards x 2 x (parameters in the decoder blocks) x tokens / R, R the bf16 GEMM
//     rate measured on this device for the model's MLP up-projection ([tokens, H] -> [tokens, F]);
//     it leaves out the LM head and attention, so it is a floor, not an estimate.
// Cases are chosen by environment variables so the GPU script needs no rebuild (docs/bench.md).
// Each case gets a fresh Trainer; between cases the Trainer is destroyed and the caching
// allocator emptied, so gpu_used (what NVML reports: total - free) belongs to the case.

namespace zoff {
namespace {

using namespace bench_step;

// Host bytes the run will hold: the planner's masters (+ transfer copies) when streaming; the
// whole model when the "device" is the CPU; otherwise one group's init staging.
int64_t host_bytes_needed(const Model& m, const RunConfig& c, const PlanReport& plan) {
  const int64_t es = dtype_size(c.policy.storage_dtype);
  int64_t all = 0, largest = 0;
  for (const GroupLayout& g : m.groups()) {
    all += g.numel * es;
    largest = std::max(largest, g.numel * (es + 4));
  }
  if (c.train.device == "cpu") return std::max(all, plan.host_bytes);
  return c.policy.offload ? plan.host_bytes + largest : largest;
}

// MemAvailable from /proc/meminfo in bytes; -1 when it cannot be read.
int64_t mem_available() {
  std::ifstream f("/proc/meminfo");
  for (std::string line; std::getline(f, line);) {
    std::istringstream ls(line);
    std::string key;
    int64_t kb = 0;
    if (ls >> key >> kb && key == "MemAvailable:") return kb * 1024;
  }
  return -1;
}

void sync_device(const Options& o) {
#ifdef ZOFF_WITH_CUDA
  if (o.device == "cuda") ZOFF_CUDA_OK(cudaDeviceSynchronize());
#endif
}

void release_device_cache(const Options& o) {
#ifdef ZOFF_WITH_CUDA
  if (o.device == "cuda" && at::hasCUDA()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
}

// bf16 GEMM rate (FLOP/s) of at::linear([m, k], W[n, k], b[n]) -- the op OPT's projections use --
// on the bench device, cached per shape.
double gemm_rate(const Options& o, int64_t m, int64_t k, int64_t n) {
  static std::map<std::vector<int64_t>, double> cache;
  auto it = cache.find({m, k, n});
  if (it != cache.end()) return it->second;
  const auto opts = at::TensorOptions().dtype(at::kBFloat16).device(o.device == "cuda" ? at::kCUDA : at::kCPU);
  at::Tensor a = at::randn({m, k}, opts), w = at::randn({n, k}, opts), bias = at::randn({n}, opts), c;
  for (int i = 0; i < 2; ++i) c = at::linear(a, w, bias);
  sync_device(o);
  int reps = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double secs = 0;
  while (secs < 0.2 && reps < 1000) {
    for (int i = 0; i < 5; ++i, ++reps) c = at::linear(a, w, bias);
    sync_device(o);
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double rate = 2.0 * double(m) * double(k) * double(n) * reps / secs;
  cache[{m, k, n}] = rate;
  return rate;
}

std::vector<nlohmann::json> last_metrics(const std::string& path, int64_t n) {
  std::ifstream f(path);
  ZOFF_CHECK(f.good(), "cannot read ", path);
  std::vector<nlohmann::json> all;
  for (std::string line; std::getline(f, line);)
    if (!line.empty()) all.push_back(nlohmann::json::parse(line));
  ZOFF_CHECK(int64_t(all.size()) >= n, path, " has ", all.size(), " lines, expected at least ", n);
  return std::vector<nlohmann::json>(all.end() - n, all.end());
}

std::string make_run_dir(const Options& o, const std::string& name) {
  if (!o.runs_dir.empty()) {
    std::string leaf = name;
    std::replace(leaf.begin(), leaf.end(), '/', '_');
    const std::filesystem::path p = std::filesystem::path(o.runs_dir) / leaf;
    zoff::remove_tree(p.string());  // the trainer appends to metrics.jsonl
    std::filesystem::create_directories(p);
    return p.string();
  }
  std::string tmpl = (std::filesystem::temp_directory_path() / "zoff-bench-XXXXXX").string();
  ZOFF_CHECK(mkdtemp(tmpl.data()) != nullptr, "mkdtemp(", tmpl, ") failed");
  return tmpl;
}

constexpr double kMiB = 1024.0 * 1024.0;

void run_case(benchmark::State& st, const Options& o, const SizeDef& sz, const OptDef& od, const std::string& pol) {
  const std::string name = std::string(sz.name) + "/" + od.name + "/" + pol;
  std::string run_dir;
  try {
    RunConfig cfg = make_config(o, sz, od, pol);
    const Model model(cfg.model.spec);
    const PlanReport plan = plan_offload(planner_input(model, cfg), cfg.policy);
    const int64_t need = host_bytes_needed(model, cfg, plan), avail = mem_available();
    if (avail > 0 && double(need) > 0.8 * double(avail)) {
      const std::string msg = "needs " + format_bytes(need) + " of host memory; MemAvailable is " +
                              format_bytes(avail) + " and a case may take 80% of it (" +
                              format_bytes(int64_t(0.8 * double(avail))) + ")";
      st.SkipWithError(msg.c_str());
      return;
    }
    run_dir = make_run_dir(o, name);
    cfg.train.output_dir = run_dir;
    const int64_t tokens = cfg.data.batch_size * cfg.data.max_length;
    const int forwards = forwards_per_step(cfg.optimizer);
    const double rate = gemm_rate(o, tokens, sz.hidden, sz.ffn);
    release_device_cache(o);
    double setup_s = 0, sum_s = 0, abs_g = 0, tail_ms = 0, timed_exc = -1, timed_busy = -1;
    int64_t peak = 0, g_n = 0;
    {
      const auto t0 = std::chrono::steady_clock::now();
      Trainer trainer(cfg);
      setup_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (int64_t i = 0; i < o.warmup; ++i) trainer.train_step();
      // Note [Applies across passes]: host work that trails the warm-up is not the timed steps'; what
      // trails the last timed step is, so it is waited for and added to the total.
      trainer.wait_background();
      const nlohmann::json before = trainer.engine_stats();
      for (auto _ : st) {
        const auto t = std::chrono::steady_clock::now();
        const StepStats s = trainer.train_step();
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
        st.SetIterationTime(dt);
        sum_s += dt;
        peak = std::max(peak, s.gpu_peak_bytes);
        if (s.info.contains("projected_grad") && s.info.at("projected_grad").is_number()) {
          abs_g += std::fabs(s.info.at("projected_grad").get<double>());
          ++g_n;
        }
      }
      tail_ms = trainer.wait_background();
      sum_s += tail_ms / 1e3;
      // With lagged applies a step's metrics line reports the latest pass whose applies had
      // finished, one pass behind; the engine's totals give the timed passes exactly.
      const nlohmann::json after = trainer.engine_stats();
      if (before.contains("delta_exceptions_total") && after.contains("delta_exceptions_total")) {
        timed_exc = after.at("delta_exceptions_total").get<double>() - before.at("delta_exceptions_total").get<double>();
        timed_busy = after.at("delta_apply_busy_total_ms").get<double>() - before.at("delta_apply_busy_total_ms").get<double>();
      }
    }
    release_device_cache(o);
    const auto lines = last_metrics(run_dir + "/metrics.jsonl", st.iterations());
    double h2d = 0, d2h = 0, used = 0, h2d_busy = 0, compute_busy = 0, exc = 0, apply_wait = 0, apply_busy = 0;
    int busy_n = 0;
    for (const nlohmann::json& l : lines) {
      const nlohmann::json& e = l.at("engine");
      h2d += e.value("h2d_bytes", 0.0);
      d2h += e.value("d2h_bytes", 0.0);
      exc += e.value("delta_exceptions", 0.0);
      apply_wait += e.value("delta_apply_wait_ms", 0.0);
      apply_busy += e.value("delta_apply_busy_ms", 0.0);
      used = std::max(used, l.value("gpu_used", 0.0));
      if (e.contains("h2d_busy")) {
        h2d_busy += e.at("h2d_busy").get<double>();
        compute_busy += e.value("compute_busy", 0.0);
        ++busy_n;
      }
    }
    if (timed_exc >= 0) exc = timed_exc, apply_busy = timed_busy;
    const double n = double(lines.size()), step_s = sum_s / n;
    h2d /= n;
    d2h /= n;
    st.counters["s_per_step"] = step_s;  // the timed steps and what trailed them, per step
    st.counters["tail_ms"] = tail_ms;
    st.counters["tok_per_s"] = double(tokens) / step_s;
    st.counters["peak_alloc_MiB"] = double(peak) / kMiB;
    st.counters["gpu_used_MiB"] = used / kMiB;
    st.counters["plan_gpu_MiB"] = double(plan.gpu_total) / kMiB;
    st.counters["h2d_GB_per_step"] = h2d / 1e9;
    st.counters["d2h_GB_per_step"] = d2h / 1e9;
    if (exc > 0 || apply_wait > 0) {  // Note [Delta write-back]
      st.counters["delta_exceptions"] = exc / n;
      st.counters["delta_apply_wait_ms"] = apply_wait / n;
      st.counters["delta_apply_busy_ms"] = apply_busy / n;
    }
    if (o.h2d_bytes_per_s > 0 && h2d > 0) st.counters["fraction_of_transfer_bound"] = h2d / o.h2d_bytes_per_s / step_s;
    const double block_params = double(cfg.model.spec.block_params()) * double(cfg.model.spec.num_layers);
    st.counters["gemm_floor_s"] = forwards * 2.0 * block_params * double(tokens) / rate;
    st.counters["gemm_TFLOPs"] = rate / 1e12;
    if (busy_n > 0) {
      st.counters["h2d_busy"] = h2d_busy / busy_n;
      st.counters["compute_busy"] = compute_busy / busy_n;
    }
    // The delta write-back's exceptions (D2H bytes, host apply time) grow with |lr g z|: report the
    // projected gradients of the measured steps so step times compare across runs and z streams.
    if (g_n > 0) st.counters["abs_projected_grad"] = abs_g / double(g_n);
    st.counters["forwards"] = forwards;
    st.counters["tokens"] = double(tokens);
    st.counters["setup_s"] = setup_s;
  } catch (const std::exception& e) {
    st.SkipWithError(e.what());
    release_device_cache(o);
  }
  if (o.runs_dir.empty() && !run_dir.empty()) {
    zoff::remove_tree(run_dir);
  }
}

int register_cases(const Options& o) {
  int count = 0;
  for (const SizeDef* s : o.sizes)
    for (const OptDef& od : kOpts)
      for (const char* pol : kPolicies) {
        const std::string name = std::string(s->name) + "/" + od.name + "/" + pol;
        if (!selected(o, name)) continue;
        const std::string policy = pol;
        benchmark::RegisterBenchmark(("step/" + name).c_str(),
                                     [&o, s, od, policy](benchmark::State& st) { run_case(st, o, *s, od, policy); })
            ->UseManualTime()
            ->Iterations(o.iterations)
            ->Unit(benchmark::kMillisecond);
        ++count;
      }
  return count;
}

}  // namespace
}  // namespace zoff

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  static zoff::bench_step::Options o;
  try {
    o = zoff::bench_step::read_options();
    if (zoff::register_cases(o) == 0) {
      std::fprintf(stderr, "bench_step: no case matches ZOFF_BENCH_FILTER (cases are size/optimizer/policy, e.g. "
                           "opt-13b/mezo/stream-bf16; optimizers mezo fzoo8 subzero svrg; policies all-resident "
                           "stream-bf16 stream-deferred stream-fp8 stream-fp8-cpu budget)\n");
      return 2;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_step: %s\n", e.what());
    return 2;
  }
  benchmark::AddCustomContext("zoff_device", o.device);
  std::string sizes;
  for (const auto* s : o.sizes) sizes += std::string(sizes.empty() ? "" : ",") + s->name;
  benchmark::AddCustomContext("zoff_sizes", sizes);
#ifdef ZOFF_WITH_CUDA
  if (o.device == "cuda") {
    try {
      benchmark::AddCustomContext("zoff_gpu", zoff::bench::device_name());
      o.h2d_bytes_per_s = zoff::bench::measure_pinned_h2d(size_t(1) << 30, 5);
      benchmark::AddCustomContext("zoff_h2d_pinned_GBps", std::to_string(o.h2d_bytes_per_s / 1e9));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_step: pinned H2D measurement failed (no transfer bound): %s\n", e.what());
    }
  }
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
