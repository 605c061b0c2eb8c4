// One full ZO step per (model size x optimizer x policy) through the Trainer, against transfer and GEMM bounds.
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <fnmatch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
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

struct SizeDef {
  const char* name;
  int64_t hidden, heads, layers, ffn, vocab, max_pos;
};
// The HF shapes of facebook/opt-*; opt-tiny is the test fixture's shape (tests/data/opt-tiny) with
// one more layer, so the budget and streamed policies have blocks to stream on a CPU.
const SizeDef kSizes[] = {
    {"opt-tiny", 64, 4, 4, 256, 512, 64},
    {"opt-1.3b", 2048, 32, 24, 8192, 50272, 2048},
    {"opt-6.7b", 4096, 32, 32, 16384, 50272, 2048},
    {"opt-13b", 5120, 40, 40, 20480, 50272, 2048},
    {"opt-30b", 7168, 56, 48, 28672, 50272, 2048},
};

struct OptDef {
  const char* name;
  OptimizerKind kind;
};
const OptDef kOpts[] = {{"mezo", OptimizerKind::MeZO},
                        {"fzoo8", OptimizerKind::FZOO},
                        {"subzero", OptimizerKind::SubZero},
                        {"svrg", OptimizerKind::SVRG}};
const char* const kPolicies[] = {"all-resident", "stream-bf16", "stream-fp8", "budget"};

struct Options {
  std::string device;  // "cpu" | "cuda"
  std::vector<const SizeDef*> sizes;
  std::vector<std::string> filters;  // fnmatch patterns over "size/optimizer/policy"
  int64_t iterations = 0, warmup = 0, batch = 1, seq = 0;  // seq 0: min(2048, max_positions)
  bool timeline = true;
  std::string runs_dir;   // empty: temporary run folders, removed after each case
  double h2d_bytes_per_s = 0;  // measured at start-up (CUDA only)
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string env_or(const char* key, const std::string& dflt) {
  const char* v = std::getenv(key);
  return v && *v ? std::string(v) : dflt;
}

int64_t env_int(const char* key, int64_t dflt, int64_t lo) {
  const std::string v = env_or(key, "");
  if (v.empty()) return dflt;
  size_t used = 0;
  int64_t x = 0;
  try {
    x = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  ZOFF_INPUT_CHECK(used == v.size() && x >= lo, "environment variable ", key, "='", v,
                   "': expected an integer >= ", lo);
  return x;
}

const SizeDef& find_size(const std::string& want) {
  for (const SizeDef& s : kSizes)
    if (want == s.name || "opt-" + want == s.name || (want == "tiny" && std::string(s.name) == "opt-tiny")) return s;
  std::string names;
  for (const SizeDef& s : kSizes) names += std::string(names.empty() ? "" : ", ") + s.name;
  ZOFF_INPUT_FAIL("environment variable ZOFF_BENCH_SIZES: unknown size '", want, "' (known: ", names, ")");
}

Options read_options() {
  Options o;
  o.device = env_or("ZOFF_BENCH_DEVICE", "auto");
  if (o.device == "auto") o.device = at::hasCUDA() ? "cuda" : "cpu";
  ZOFF_INPUT_CHECK(o.device == "cpu" || o.device == "cuda", "environment variable ZOFF_BENCH_DEVICE='", o.device,
                   "': expected auto, cpu or cuda");
  const bool gpu = o.device == "cuda";
  for (const std::string& s : split_list(env_or("ZOFF_BENCH_SIZES", gpu ? "1.3b,6.7b,13b,30b" : "tiny")))
    o.sizes.push_back(&find_size(s));
  o.filters = split_list(env_or("ZOFF_BENCH_FILTER", gpu ? "*/mezo/stream-bf16,*/mezo/all-resident" : "*"));
  o.iterations = env_int("ZOFF_BENCH_ITERS", gpu ? 4 : 3, 1);
  o.warmup = env_int("ZOFF_BENCH_WARMUP", 2, 0);
  o.batch = env_int("ZOFF_BENCH_BATCH", 1, 1);
  o.seq = env_int("ZOFF_BENCH_SEQ", 0, 0);
  o.timeline = env_int("ZOFF_BENCH_TIMELINE", 1, 0) != 0;
  o.runs_dir = env_or("ZOFF_BENCH_RUNS_DIR", "");
  return o;
}

bool selected(const Options& o, const std::string& name) {
  for (const std::string& f : o.filters)
    if (fnmatch(f.c_str(), name.c_str(), 0) == 0) return true;
  return false;
}

ModelSpec make_spec(const SizeDef& s) {
  const nlohmann::json j = {{"model_type", "opt"},           {"hidden_size", s.hidden},
                            {"num_attention_heads", s.heads}, {"num_hidden_layers", s.layers},
                            {"ffn_dim", s.ffn},               {"vocab_size", s.vocab},
                            {"max_position_embeddings", s.max_pos}, {"word_embed_proj_dim", s.hidden},
                            {"do_layer_norm_before", true},   {"activation_function", "relu"},
                            {"enable_bias", true},            {"tie_word_embeddings", true},
                            {"pad_token_id", 1},              {"bos_token_id", 2},
                            {"eos_token_id", 2}};
  const std::string src = std::string("bench_step ") + s.name;
  ModelSpec spec = model_spec_from_json(j, src);
  spec.validate(src);
  return spec;
}

// The four policies of the bench (docs/bench.md): all bf16 master and compute.
OffloadPolicy make_policy(const std::string& name) {
  OffloadPolicy p;
  p.name = name;
  p.storage_dtype = DType::BF16;
  p.compute_dtype = DType::BF16;
  p.transfer = TransferFormat::Same;
  p.num_slots = 3;
  p.prefetch_depth = 1;
  p.update_site = UpdateSite::Gpu;
  p.offload = name != "all-resident";
  p.resident_blocks = 0;
  if (name == "stream-fp8") {
    p.transfer = TransferFormat::FP8;
    p.update_site = UpdateSite::Cpu;  // Note [Lossy transfers need the CPU update site]
  } else if (name == "budget") {
    p.resident_blocks = -1;
    p.gpu_memory_budget = parse_byte_size("12GiB", "bench_step policy budget");
  }
  return p;
}

RunConfig make_config(const Options& o, const SizeDef& s, const OptDef& od, const std::string& policy) {
  RunConfig c;
  c.source = std::string("bench_step ") + s.name + "/" + od.name + "/" + policy;
  c.model.dummy_weights = true;
  c.model.spec = make_spec(s);
  c.policy = make_policy(policy);
  c.optimizer.kind = od.kind;
  c.optimizer.lr = 1e-7;
  c.optimizer.eps = 1e-3;
  c.optimizer.fzoo_n = 8;
  c.optimizer.svrg_lr_inner = c.optimizer.svrg_lr_full = 1e-7;
  c.data.batch_size = o.batch;
  c.data.max_length = o.seq > 0 ? o.seq : std::min<int64_t>(2048, s.max_pos);
  ZOFF_INPUT_CHECK(c.data.max_length <= s.max_pos, "environment variable ZOFF_BENCH_SEQ=", o.seq, " exceeds ",
                   s.name, "'s max_position_embeddings (", s.max_pos, ")");
  c.train.steps = 1000000;  // only sets the lr schedule's horizon; the bench calls train_step itself
  c.train.device = o.device;
  c.train.timeline = o.timeline;
  c.train.log_every = 0;
  return c;
}

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
  for (std::string key; f >> key;) {
    int64_t kb = 0;
    std::string unit;
    f >> kb >> unit;
    if (key == "MemAvailable:") return kb * 1024;
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
  while (secs < 0.2 && reps < 200) {
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
    std::filesystem::remove_all(p);  // the trainer appends to metrics.jsonl
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
      const std::string msg = "needs " + format_bytes(need) + " of host memory, over 80% of MemAvailable (" +
                              format_bytes(avail) + ")";
      st.SkipWithError(msg.c_str());
      return;
    }
    run_dir = make_run_dir(o, name);
    cfg.train.output_dir = run_dir;
    const int64_t tokens = cfg.data.batch_size * cfg.data.max_length;
    const int forwards = forwards_per_step(cfg.optimizer);
    const double rate = gemm_rate(o, tokens, sz.hidden, sz.ffn);
    release_device_cache(o);
    double setup_s = 0, sum_s = 0;
    int64_t peak = 0;
    {
      const auto t0 = std::chrono::steady_clock::now();
      Trainer trainer(cfg);
      setup_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (int64_t i = 0; i < o.warmup; ++i) trainer.train_step();
      for (auto _ : st) {
        const auto t = std::chrono::steady_clock::now();
        const StepStats s = trainer.train_step();
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
        st.SetIterationTime(dt);
        sum_s += dt;
        peak = std::max(peak, s.gpu_peak_bytes);
      }
    }
    release_device_cache(o);
    const auto lines = last_metrics(run_dir + "/metrics.jsonl", st.iterations());
    double h2d = 0, d2h = 0, used = 0, h2d_busy = 0, compute_busy = 0;
    int busy_n = 0;
    for (const nlohmann::json& l : lines) {
      const nlohmann::json& e = l.at("engine");
      h2d += e.value("h2d_bytes", 0.0);
      d2h += e.value("d2h_bytes", 0.0);
      used = std::max(used, l.value("gpu_used", 0.0));
      if (e.contains("h2d_busy")) {
        h2d_busy += e.at("h2d_busy").get<double>();
        compute_busy += e.value("compute_busy", 0.0);
        ++busy_n;
      }
    }
    const double n = double(lines.size()), step_s = sum_s / n;
    h2d /= n;
    d2h /= n;
    st.counters["s_per_step"] = step_s;
    st.counters["tok_per_s"] = double(tokens) / step_s;
    st.counters["peak_alloc_MiB"] = double(peak) / kMiB;
    st.counters["gpu_used_MiB"] = used / kMiB;
    st.counters["plan_gpu_MiB"] = double(plan.gpu_total) / kMiB;
    st.counters["h2d_GB_per_step"] = h2d / 1e9;
    st.counters["d2h_GB_per_step"] = d2h / 1e9;
    if (o.h2d_bytes_per_s > 0 && h2d > 0) st.counters["fraction_of_transfer_bound"] = h2d / o.h2d_bytes_per_s / step_s;
    const double block_params = double(cfg.model.spec.block_params()) * double(cfg.model.spec.num_layers);
    st.counters["gemm_floor_s"] = forwards * 2.0 * block_params * double(tokens) / rate;
    st.counters["gemm_TFLOPs"] = rate / 1e12;
    if (busy_n > 0) {
      st.counters["h2d_busy"] = h2d_busy / busy_n;
      st.counters["compute_busy"] = compute_busy / busy_n;
    }
    st.counters["forwards"] = forwards;
    st.counters["tokens"] = double(tokens);
    st.counters["setup_s"] = setup_s;
  } catch (const std::exception& e) {
    st.SkipWithError(e.what());
    release_device_cache(o);
  }
  if (o.runs_dir.empty() && !run_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(run_dir, ec);
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
  static zoff::Options o;
  try {
    o = zoff::read_options();
    if (zoff::register_cases(o) == 0) {
      std::fprintf(stderr, "bench_step: no case matches ZOFF_BENCH_FILTER (cases are size/optimizer/policy, e.g. "
                           "opt-13b/mezo/stream-bf16; optimizers mezo fzoo8 subzero svrg; policies all-resident "
                           "stream-bf16 stream-fp8 budget)\n");
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
