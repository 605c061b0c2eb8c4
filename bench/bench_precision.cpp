// Precision study (docs/precision.md): final teacher-student loss after N MeZO steps per
// storage x transfer x compute dtype, through the offload engine, with bytes moved per step.
#include <benchmark/benchmark.h>

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/version.h>  // TORCH_VERSION_MAJOR
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "src/train/engine.h"
#include "tests/common/teacher_student.h"
#include "zoff/config.h"
#include "zoff/error.h"
#include "zoff/optimizer.h"
#include "zoff/run_plan.h"
#include "zoff/safetensors.h"  // to_scalar_type

namespace zoff {
namespace {

// Note [Precision bench cases]
// Every case streams every decoder block through the offload engine (resident_blocks = 0, K = 3),
// on the CPU too: HostStreamDevice runs the same executor and the same transfer copies (bf16, fp8
// with per-row scales) as the GPU, so a lossy transfer really rounds what the forwards see while
// the update goes to the master (Note [Lossy transfers need the CPU update site]). The policy of
// each case comes from the real config loader (a [policy] TOML through load_policy_file): a
// combination is first tried at update_site = "gpu" (stream-all's site: the block is updated on
// the device and written back, so D2H = H2D) and, when the loader rejects that, at "cpu"; the
// case's label and its gpu_site_rejected counter say so. Extra cases: "nosr" replaces the
// directions by ones that round updates to nearest (sr_seed = 0) instead of stochastically,
// "resident" runs the resident engine (no transfer, the all-resident policy), "seed:S" repeats a
// case with another optimizer seed (z draws) on the same task, so seed noise can be told from
// precision effects, "lrx0.1" runs at a tenth of the learning rate: there a bf16 master's
// updates are mostly below half an ulp, the regime stochastic rounding exists for (real MeZO
// runs use lr 1e-6..1e-7, far below what moves a bf16 weight of 0.02 by one ulp, 2^-13).
constexpr uint64_t kBaseSeed = 77;

struct Options {
  std::string device = "cpu";
  std::string checkpoint;
  int steps = 500;
  int seeds = 3;  // seeds of the seed-spread cases (kBaseSeed, kBaseSeed + 1, ...)
  double lr = 2e-4, eps = 1e-3;
};

std::string env_or(const char* key, const std::string& dflt) {
  const char* v = std::getenv(key);
  return v && *v ? std::string(v) : dflt;
}

int env_int(const char* key, int dflt, int lo) {
  const std::string v = env_or(key, "");
  if (v.empty()) return dflt;
  size_t used = 0;
  int x = 0;
  try {
    x = std::stoi(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  ZOFF_INPUT_CHECK(used == v.size() && x >= lo, "environment variable ", key, "='", v, "': expected an integer >= ", lo);
  return x;
}

double env_double(const char* key, double dflt) {
  const std::string v = env_or(key, "");
  if (v.empty()) return dflt;
  size_t used = 0;
  double x = 0;
  try {
    x = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  ZOFF_INPUT_CHECK(used == v.size() && x > 0, "environment variable ", key, "='", v, "': expected a number > 0");
  return x;
}

Options read_options() {
  Options o;
  o.device = env_or("ZOFF_BENCH_DEVICE", "cpu");
  ZOFF_INPUT_CHECK(o.device == "cpu" || o.device == "cuda", "environment variable ZOFF_BENCH_DEVICE='", o.device,
                   "': expected cpu or cuda");
  ZOFF_INPUT_CHECK(o.device == "cpu" || at::hasCUDA(),
                   "ZOFF_BENCH_DEVICE=cuda but this build or machine has no CUDA device");
  o.checkpoint = env_or("ZOFF_BENCH_CHECKPOINT", std::string(ZOFF_TEST_DATA) + "/opt-tiny/model");
  o.steps = env_int("ZOFF_BENCH_STEPS", 500, 1);
  o.seeds = env_int("ZOFF_BENCH_SEEDS", 3, 1);
  o.lr = env_double("ZOFF_BENCH_LR", o.lr);
  o.eps = env_double("ZOFF_BENCH_EPS", o.eps);
  return o;
}

struct Case {
  DType storage = DType::F32;
  TransferFormat transfer = TransferFormat::Same;
  DType compute = DType::F32;
  bool sr = true;         // stochastic rounding of 16-bit masters (the library always does it)
  bool resident = false;  // resident engine instead of streaming every block
  uint64_t seed = kBaseSeed;
  double lr_scale = 1;    // x the base learning rate (Note [Precision bench cases])

  std::string name() const {
    std::string n = std::string("precision/") + config_dtype_name(storage) + "/" +
                    (resident ? "resident" : transfer_format_name(transfer)) + "/" + config_dtype_name(compute);
    if (lr_scale != 1) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "/lrx%g", lr_scale);
      n += buf;
    }
    if (!sr) n += "/nosr";
    if (seed != kBaseSeed) n += "/seed:" + std::to_string(seed);
    return n;
  }
};

// Round-to-nearest updates: the stochastic-rounding key is dropped (Note [Stochastic rounding]).
class NearestRoundingDirections : public ElementwiseDirections {
 public:
  NearestRoundingDirections() : ElementwiseDirections(k::Dist::Gaussian) {}
  void update(const ParamInfo& p, at::Tensor theta, const std::vector<DirTerm>& terms, double decay,
              uint64_t, const k::DeltaOut* delta) override {
    ElementwiseDirections::update(p, theta, terms, decay, 0, delta);
  }
};

// The case's policy through load_policy_file (the loader's cross-key checks apply).
OffloadPolicy load_case_policy(const Case& c, const std::string& site, bool pinned) {
  char path[] = "/tmp/zoff_bench_precision_XXXXXX";
  const int fd = mkstemp(path);
  ZOFF_CHECK(fd >= 0, "bench_precision: cannot create a temporary policy file");
  close(fd);
  {
    std::ofstream f(path);
    f << "[policy]\nname = \"precision\"\n"
      << "storage_dtype = \"" << config_dtype_name(c.storage) << "\"\n"
      << "transfer = \"" << transfer_format_name(c.resident ? TransferFormat::Same : c.transfer) << "\"\n"
      << "compute_dtype = \"" << config_dtype_name(c.compute) << "\"\n"
      << "offload = " << (c.resident ? "false" : "true") << "\n"
      << "num_slots = 3\nprefetch_depth = 1\nresident_blocks = 0\n"
      << "update_site = \"" << site << "\"\n"
      << "pin_memory = " << (pinned ? "true" : "false") << "\n";
  }
  try {
    OffloadPolicy p = load_policy_file(path);
    std::remove(path);
    return p;
  } catch (...) {
    std::remove(path);
    throw;
  }
}

const teacher_student::Task& task(const Options& o) {
  static const teacher_student::Task t = [&] {
    c10::InferenceMode guard;
    teacher_student::Options to;
    to.checkpoint = o.checkpoint;
    return teacher_student::make_task(to);
  }();
  return t;
}

void run_case_or_throw(benchmark::State& st, const Options& o, const Case& c) {
  c10::InferenceMode guard;
#if !(defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2)
  // LibTorch 1.13 has no CPU kernels for Half layer_norm or matmul.
  if (o.device == "cpu" && c.compute == DType::F16) {
    st.SkipWithError("fp16 compute on the CPU needs LibTorch >= 2 (1.13 has no CPU Half layer_norm/matmul)");
    return;
  }
#endif
  const teacher_student::Task& ts = task(o);
  const Model& m = *ts.model;
  // Policy: the GPU update site when the loader accepts it, else the CPU site.
  bool gpu_rejected = false;
  std::string rejection;
  OffloadPolicy pol;
  try {
    pol = load_case_policy(c, "gpu", o.device == "cuda");
  } catch (const InputError& e) {
    gpu_rejected = true;
    rejection = e.what();
    const size_t at_key = rejection.find("policy.");  // drop the temporary file's name
    if (at_key != std::string::npos) rejection = rejection.substr(at_key);
    pol = load_case_policy(c, "cpu", o.device == "cuda");
  }
  RunConfig cfg;
  cfg.source = "bench_precision " + c.name();
  cfg.model.spec = m.spec();
  cfg.policy = pol;
  cfg.optimizer.kind = OptimizerKind::MeZO;
  cfg.optimizer.lr = o.lr * c.lr_scale;
  cfg.optimizer.eps = o.eps;
  cfg.data.batch_size = ts.train.at(0).input_ids.size(0);
  cfg.data.max_length = ts.train.at(0).input_ids.size(1);
  cfg.train.steps = o.steps;

  EngineOptions eo;
  eo.device = o.device == "cuda" ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  eo.storage = to_scalar_type(pol.storage_dtype);
  eo.compute = to_scalar_type(pol.compute_dtype);
  GroupInit init = [&](int g, at::Tensor flat) { flat.copy_(ts.student.flats.at(size_t(g))); };
  PlanReport plan = plan_offload(planner_input(m, cfg), pol);
  std::unique_ptr<Engine> engine =
      pol.offload ? make_offload_engine(m, init, eo, pol, plan) : make_resident_engine(m, init, eo);
  auto opt = make_optimizer(cfg.optimizer, c.seed, o.steps, cfg.source,
                            c.sr ? nullptr : std::make_unique<NearestRoundingDirections>());
  ZoStep zo(m, opt.get(), eo.compute, eo.device);
  zo.set_mirror(!pol.offload);  // as the Trainer does (Note [Mirror forwards])
  const std::vector<at::Tensor> initial_w = engine->host_groups();
  const double initial = teacher_student::clean_loss(m, initial_w, ts.eval);

  double seconds = 0, last_train = 0, h2d = 0, d2h = 0, sum_abs_g = 0;
  int tail = 0;
  for (auto _ : st) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < o.steps; ++t) {
      StepRequest req = opt->begin_step(t);
      zo.begin_pass(req, ts.train[size_t(t) % ts.train.size()], true);
      engine->run_pass(zo, opt.get(), true);
      const std::vector<double> losses = zo.losses();
      const nlohmann::json info = opt->end_step(losses);
      if (info.contains("projected_grad") && info["projected_grad"].is_number())
        sum_abs_g += std::fabs(info["projected_grad"].get<double>());
      if (t == 0) {
        const nlohmann::json s = engine->last_pass_stats();
        h2d = double(s.value("h2d_bytes", int64_t(0)));
        d2h = double(s.value("d2h_bytes", int64_t(0)));
      }
      if (t >= o.steps - 50) {
        last_train += 0.5 * (losses.at(0) + losses.at(1));
        ++tail;
      }
    }
    engine->flush(*opt);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const std::vector<at::Tensor> final_w = engine->host_groups();
  const double final_loss = teacher_student::clean_loss(m, final_w, ts.eval);
  ZOFF_CHECK(std::isfinite(final_loss), c.name(), ": the final loss is not finite");
  st.counters["final_loss"] = final_loss;
  st.counters["initial_loss"] = initial;
  st.counters["final_agreement"] = teacher_student::agreement(m, final_w, ts.eval);
  st.counters["initial_agreement"] = teacher_student::agreement(m, initial_w, ts.eval);
  st.counters["lr"] = cfg.optimizer.lr;
  st.counters["mean_abs_projected_grad"] = sum_abs_g / o.steps;
  st.counters["teacher_loss"] = teacher_student::clean_loss(m, ts.teacher.flats, ts.eval);
  st.counters["final_train_loss"] = tail > 0 ? last_train / tail : 0;
  st.counters["bytes_h2d_per_step"] = h2d;
  st.counters["bytes_d2h_per_step"] = d2h;
  st.counters["plan_h2d_per_step"] = double(plan.h2d_bytes_per_step);
  st.counters["seconds"] = seconds;
  st.counters["steps"] = o.steps;
  st.counters["seed"] = double(c.seed);
  st.counters["gpu_site_rejected"] = gpu_rejected ? 1 : 0;
  st.counters["update_site_cpu"] = pol.update_site == UpdateSite::Cpu ? 1 : 0;
  std::string label = "device=" + o.device + "; update_site=" + update_site_name(pol.update_site);
  if (gpu_rejected) label += "; gpu rejected by the config: " + rejection;
  st.SetLabel(label);
}

void run_case(benchmark::State& st, const Options& o, const Case& c) {
  try {
    run_case_or_throw(st, o, c);
  } catch (const std::exception& e) {
    st.SkipWithError(e.what());
  }
}

std::vector<Case> all_cases(const Options& o) {
  std::vector<Case> cases;
  const DType dtypes[] = {DType::F32, DType::BF16, DType::F16};
  const TransferFormat transfers[] = {TransferFormat::Same, TransferFormat::BF16, TransferFormat::FP8};
  const DType computes[] = {DType::BF16, DType::F16, DType::F32};
  for (DType s : dtypes)
    for (TransferFormat t : transfers)
      for (DType c : computes) cases.push_back(Case{s, t, c});
  // Seed spread: the fp32 reference and the shipped presets (all-resident with bf16 compute on a
  // GPU, stream-all, stream-all-fp8), plus the fp32-master streamed alternatives.
  const Case spread[] = {{DType::F32, TransferFormat::Same, DType::F32},
                         {DType::F32, TransferFormat::Same, DType::BF16},
                         {DType::BF16, TransferFormat::Same, DType::BF16},
                         {DType::BF16, TransferFormat::FP8, DType::BF16},
                         {DType::F32, TransferFormat::BF16, DType::BF16},
                         {DType::F32, TransferFormat::FP8, DType::BF16}};
  for (int s = 1; s < o.seeds; ++s)
    for (Case c : spread) {
      c.seed = kBaseSeed + uint64_t(s);
      cases.push_back(c);
    }
  // Stochastic rounding off (Note [Stochastic rounding]) for the bf16 master, at the base and at a
  // tenth of the learning rate (there with the fp32 master and SR on beside it), every seed; fp16
  // master once.
  for (int s = 0; s < o.seeds; ++s) {
    const uint64_t seed = kBaseSeed + uint64_t(s);
    Case off{DType::BF16, TransferFormat::Same, DType::BF16, false, false, seed};
    cases.push_back(off);
    Case lo_off = off, lo_on = off, lo_f32 = off;
    lo_off.lr_scale = lo_on.lr_scale = lo_f32.lr_scale = 0.1;
    lo_on.sr = true;
    lo_f32.storage = DType::F32;
    lo_f32.sr = true;
    cases.push_back(lo_f32);
    cases.push_back(lo_on);
    cases.push_back(lo_off);
  }
  cases.push_back(Case{DType::F16, TransferFormat::Same, DType::BF16, false});
  // The resident engine: no transfers; on the CPU it must equal the streamed fp32 case bit for bit.
  cases.push_back(Case{DType::F32, TransferFormat::Same, DType::F32, true, true});
  return cases;
}

}  // namespace
}  // namespace zoff

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  try {
    static const zoff::Options o = zoff::read_options();
    for (const zoff::Case& c : zoff::all_cases(o))
      benchmark::RegisterBenchmark(c.name().c_str(), [c](benchmark::State& st) { zoff::run_case(st, o, c); })
          ->Iterations(1)
          ->Unit(benchmark::kSecond);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_precision: %s\n", e.what());
    return 1;
  }
  return 0;
}
