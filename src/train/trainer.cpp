// Trainer: run setup (device, model, engine, optimizer, data), the step loop, eval and checkpoints.
#include "zoff/trainer.h"

#include <c10/core/InferenceMode.h>
#include <torch/version.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "device_info.h"
#include "engine.h"
#include "kernels/philox.h"  // kGaussianSampler
#include "zoff/async_io.h"
#include "zoff/dataset.h"
#include "zoff/distributed.h"
#include "zoff/error.h"
#include "zoff/log.h"
#include "zoff/run_plan.h"
#include "zoff/safetensors.h"
#include "zoff/tokenizer.h"

namespace zoff {

// The dtype weights are held in: F32, BF16 or F16 (the config layer validates this already).
at::ScalarType scalar_type_of(DType t) {
  ZOFF_INPUT_CHECK(t == DType::F32 || t == DType::BF16 || t == DType::F16, "dtype ", dtype_name(t),
                   " cannot hold weights");
  return to_scalar_type(t);
}

struct Trainer::Impl {
  RunConfig cfg;
  at::Device device = at::kCPU;
  std::unique_ptr<Model> model;
  std::unique_ptr<ZoOptimizer> opt;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<ZoStep> zo;
  std::unique_ptr<Tokenizer> tok;
  std::shared_ptr<const Dataset> train_set;
  std::unique_ptr<DataLoader> loader;
  std::unique_ptr<Distributed> dist;  // a world of one unless WORLD_SIZE > 1 (Note [Distributed ZO step])
  bool stop_agreed = false;           // every rank saw some rank's stop request in the last step
  PlanReport plan;
  int64_t step = 0;
  std::ofstream metrics, seeds;
  IoPool io{2};
  BackgroundWriter writer{io};
  uint64_t synth_counter = 0;

  at::ScalarType storage() const { return scalar_type_of(cfg.policy.storage_dtype); }
  at::ScalarType compute() const { return scalar_type_of(cfg.policy.compute_dtype); }
  int64_t pad_id() const { return tok ? tok->pad_id() : std::max<int64_t>(0, model->spec().pad_token_id); }

  std::shared_ptr<const Dataset> load_split(const std::string& path) const {
    DataOptions o;
    o.max_length = cfg.data.max_length;
    o.vocab_size = model->spec().vocab_size;
    if (cfg.data.task == "classification") o.format = DatasetFormat::kClassification;
    else if (cfg.data.task == "pretokenized") o.format = DatasetFormat::kTokens;
    ZOFF_INPUT_CHECK(tok || cfg.data.task == "pretokenized", cfg.source,
                     ": data.tokenizer: no tokenizer found (set data.tokenizer, or give a checkpoint "
                     "folder that holds tokenizer files) for ", path);
    return std::make_shared<const Dataset>(load_dataset(path, tok.get(), o));
  }

  // A training batch: the next loader batch (classification: only the correct candidates'
  // rows, so the loss is the NLL of the right answer), or synthetic ids when there is no data.
  StepBatch next_train_batch() {
    if (!loader) {
      const int64_t B = cfg.data.batch_size, T = cfg.data.max_length;
      at::Tensor ids = at::empty({B, T}, at::kLong);
      uint64_t x = k::splitmix64(cfg.train.seed ^ (0xDA7A0000ull + synth_counter++));
      auto* p = ids.data_ptr<int64_t>();
      for (int64_t i = 0; i < B * T; ++i) p[i] = int64_t((x = k::splitmix64(x)) % uint64_t(model->spec().vocab_size));
      return StepBatch{ids, at::ones({B, T}, at::kLong), at::Tensor()};
    }
    return to_step_batch(loader->next(), true);
  }

  static StepBatch to_step_batch(const Batch& b, bool correct_only) {
    if (!correct_only || b.example_label.empty() || b.example_label[0] < 0)
      return StepBatch{b.input_ids, b.attention_mask, b.labels};
    std::vector<int64_t> rows;
    for (int64_t e = 0; e < b.num_examples(); ++e) rows.push_back(b.row_offset(e) + b.example_label[size_t(e)]);
    at::Tensor idx = at::tensor(rows, at::kLong);
    return StepBatch{b.input_ids.index_select(0, idx), b.attention_mask.index_select(0, idx),
                     b.labels.index_select(0, idx)};
  }

  // Runs this rank's part of a request over one batch (or every batch of the full-batch set):
  // its forwards' mean losses (perturbation mode, one process) or its rows' NLL sums (data mode).
  LocalLosses evaluate_request(const StepRequest& full) {
    const StepRequest req = dist->local_request(full);
    const bool data = dist->active() && dist->mode() == DistMode::Data;
    const size_t F = req.forwards.size();
    LocalLosses out;
    if (data) {
      out.nll.assign(F, 0.0);
      out.tokens.assign(F, 0.0);
    }
    auto run = [&](const StepBatch& global, bool first) {
      bool counts = true;
      const StepBatch b = dist->local_batch(global, &counts);
      zo->begin_pass(req, b, first, data);
      engine->run_pass(*zo, opt.get(), first);
      std::vector<double> L = zo->losses();
      const double t = counts ? double(zo->scored_tokens()) : 0.0;
      out.evaluated_tokens += t * double(F);
      if (data && counts) {
        const at::Tensor n = zo->row_nll().to(at::kDouble).sum(1), c = zo->row_count().sum(1);
        for (size_t f = 0; f < F; ++f) {
          out.nll[f] += n[int64_t(f)].item<double>();
          out.tokens[f] += double(c[int64_t(f)].item<int64_t>());
        }
      }
      return L;
    };
    if (!req.full_batch || !train_set) {
      out.mean = run(next_train_batch(), true);
      return out;
    }
    // Note [Full-batch passes]: SVRG's anchor estimate averages each forward's loss over the
    // full-batch set, token-weighted; the pending update is applied in the first pass only.
    int64_t n = cfg.optimizer.svrg_full_batch_size > 0 ? std::min(cfg.optimizer.svrg_full_batch_size, train_set->size())
                                                       : train_set->size();
    std::vector<double> sum(F, 0.0);
    double tokens = 0;
    bool first = true;
    for (int64_t i = 0; i < n; i += cfg.data.batch_size) {
      std::vector<int64_t> idx;
      for (int64_t j = i; j < std::min(n, i + cfg.data.batch_size); ++j) idx.push_back(j);
      auto L = run(to_step_batch(collate(*train_set, idx, pad_id()), true), first);
      const double t = double(zo->scored_tokens());
      for (size_t f = 0; f < L.size(); ++f) sum[f] += L[f] * t;
      tokens += t;
      first = false;
    }
    for (auto& s : sum) s /= std::max(1.0, tokens);
    out.mean = std::move(sum);
    return out;
  }
};

Trainer::Trainer(RunConfig cfg) : cfg_(std::move(cfg)), impl_(std::make_unique<Impl>()) {
  configure_cuda_allocator();  // before anything touches the GPU
  Impl& I = *impl_;
  I.cfg = cfg_;
  const std::string& dev = cfg_.train.device;
  const DistEnv denv = DistEnv::from_env();
  // One process per GPU: rank r of a host trains on GPU LOCAL_RANK (docs/distributed.md).
  const int gpu = denv.distributed() ? denv.local_rank : 0;
  if (dev == "cuda") {
    ZOFF_INPUT_CHECK(cuda_available(), cfg_.source, ": train.device = \"cuda\" but ",
                     "this zoff has no usable CUDA device (built without CUDA or no GPU)");
    I.device = at::Device(at::kCUDA, c10::DeviceIndex(gpu));
  } else if (dev == "auto") {
    I.device = cuda_available() ? at::Device(at::kCUDA, c10::DeviceIndex(gpu)) : at::Device(at::kCPU);
  }
#if TORCH_VERSION_MAJOR < 2
  // LibTorch 1.x has no CPU fp16 layer_norm / matmul: say so before the first forward fails deep
  // inside ATen (docs/precision.md).
  ZOFF_INPUT_CHECK(!(I.device.is_cpu() && cfg_.policy.compute_dtype == DType::F16), cfg_.source,
                   ": policy.compute_dtype = \"fp16\" needs a GPU with this LibTorch (",
                   TORCH_VERSION_MAJOR, ".", TORCH_VERSION_MINOR,
                   " has no fp16 on the CPU); use \"bf16\" or \"fp32\" on the CPU");
#endif
  if (I.device.is_cuda() && denv.distributed()) {
    ZOFF_INPUT_CHECK(gpu < cuda_device_count(), "environment: LOCAL_RANK=", gpu, " but this process sees ",
                     cuda_device_count(), " CUDA device(s) (one GPU per process: zoff launch --nproc <= GPUs)");
    select_cuda_device(gpu);
  }
  const bool auto_transfer_asked = cfg_.policy.transfer == TransferFormat::Auto;
  if (auto_transfer_asked) {  // Note [Auto transfer] in run_plan.cpp
    std::string why;
    cfg_.policy.transfer = I.cfg.policy.transfer = auto_transfer(cfg_, I.device.is_cuda(), denv.distributed(), &why);
    log::info("policy.transfer = \"auto\": {}", why);
  }
  for (const ConfigProblem& pr : {fp8_gpu_site_problem(cfg_), split_problem(cfg_)})
    if (!pr.key.empty()) throw InputError(cfg_.source + ": " + pr.key + ": " + pr.message, "trainer.cpp");
  I.dist = std::make_unique<Distributed>(cfg_.distributed, cfg_.source, denv, I.device.is_cuda() ? gpu : -1);
  I.dist->check_same_config(dump_resolved_config(cfg_));
  if (I.dist->active() && I.dist->mode() == DistMode::Data)
    ZOFF_INPUT_CHECK(cfg_.data.batch_size >= I.dist->world(), cfg_.source, ": data.batch_size = ",
                     cfg_.data.batch_size, " is the global batch of distributed.mode = \"data\" and must be at ",
                     "least the number of ranks (", I.dist->world(), ")");
  const auto setup_t0 = std::chrono::steady_clock::now();
  I.model = std::make_unique<Model>(cfg_.model.spec);
  const Model& m = *I.model;
  // Tokenizer: data.tokenizer, else the checkpoint folder when it holds tokenizer files.
  std::string tok_dir = cfg_.data.tokenizer;
  if (tok_dir.empty() && !cfg_.model.checkpoint.empty() &&
      (std::filesystem::exists(cfg_.model.checkpoint + "/tokenizer.json") ||
       std::filesystem::exists(cfg_.model.checkpoint + "/vocab.json") ||
       std::filesystem::exists(cfg_.model.checkpoint + "/tokenizer.model")))
    tok_dir = cfg_.model.checkpoint;
  if (!tok_dir.empty()) I.tok = load_tokenizer(tok_dir);
  if (!cfg_.data.train.empty()) {
    I.train_set = I.load_split(cfg_.data.train);
    LoaderOptions lo;
    lo.batch_size = cfg_.data.batch_size;
    lo.shuffle = cfg_.data.shuffle;
    lo.seed = cfg_.train.seed;
    I.loader = std::make_unique<DataLoader>(I.train_set, I.pad_id(), lo);
  }
  I.opt = make_optimizer(cfg_.optimizer, cfg_.train.seed, cfg_.train.steps, cfg_.source);
  // Placement.
  PlannerInput pin = planner_input(m, cfg_);
  {
    std::string why;
    const bool auto_split = auto_transfer_asked && cfg_.policy.transfer == TransferFormat::BF16Split;
    I.plan = plan_auto(pin, &cfg_.policy, auto_split, &why);
    I.cfg.policy.transfer = cfg_.policy.transfer;
    if (!why.empty()) log::info("policy.transfer = \"auto\": {}", why);
  }
  EngineOptions eo;
  eo.device = I.device;
  eo.storage = I.storage();
  eo.compute = I.compute();
  eo.timeline = cfg_.train.timeline;
  std::shared_ptr<Checkpoint> ckpt;
  if (!cfg_.model.checkpoint.empty()) ckpt = std::make_shared<Checkpoint>(Checkpoint::open(cfg_.model.checkpoint));
  const uint64_t dseed = cfg_.model.dummy_seed;
  GroupInit init = [&m, ckpt, dseed](int g, at::Tensor flat) {
    if (ckpt) load_group(m, *ckpt, g, flat);
    else init_dummy_group(m, g, dseed, flat);
  };
  if (!cfg_.policy.offload) {
    I.engine = make_resident_engine(m, init, eo);
  } else if (auto_transfer_asked && cfg_.policy.transfer == TransferFormat::BF16Split) {
    try {
      I.engine = make_offload_engine(m, init, eo, cfg_.policy, I.plan);
    } catch (const InputError& e) {  // Note [Auto transfer]: split could not return deltas here
      log::warn("policy.transfer = \"auto\": bf16-split cannot run here ({}); using \"same\"", e.what());
      cfg_.policy.transfer = I.cfg.policy.transfer = TransferFormat::Same;
      I.plan = plan_offload(pin, cfg_.policy);
      I.engine = make_offload_engine(m, init, eo, cfg_.policy, I.plan);
    }
  } else {
    I.engine = make_offload_engine(m, init, eo, cfg_.policy, I.plan);
  }
  I.zo = std::make_unique<ZoStep>(m, I.opt.get(), I.compute(), I.device);
  // Note [Mirror forwards]: one z generation for both MeZO forwards, at the price of a group-sized
  // buffer: worth it where the step is compute-bound: weights resident, or fp8 transfers at the
  // GPU site (half the bytes, and the update kernel on the device: Note [fp8 at the GPU site]),
  // not under a bf16 streaming budget.
  I.zo->set_mirror(!cfg_.policy.offload || fp8_gpu_site(cfg_.policy));
  log::info("model: {} ({} parameters, {} layers); {}; set up in {:.1f} s", arch_name(m.spec().arch),
            m.num_params(), m.num_layers(), I.engine->describe(),
            std::chrono::duration<double>(std::chrono::steady_clock::now() - setup_t0).count());
  // Run directory: rank 0 writes every output (the ranks hold identical weights).
  if (!I.dist->is_root()) return;
  std::filesystem::create_directories(cfg_.train.output_dir);
  write_file_atomic(cfg_.train.output_dir + "/config.toml", dump_resolved_config(cfg_));
  I.metrics.open(cfg_.train.output_dir + "/metrics.jsonl", std::ios::app);
  I.seeds.open(cfg_.train.output_dir + "/seed_log.jsonl", std::ios::app);
  ZOFF_INPUT_CHECK(I.metrics && I.seeds, "cannot write into train.output_dir '", cfg_.train.output_dir, "'");
}

Trainer::~Trainer() {
  try {
    impl_->writer.wait();
  } catch (const std::exception& e) {
    log::error("background checkpoint write failed: {}", e.what());
  }
}

int64_t Trainer::step() const { return impl_->step; }

nlohmann::json Trainer::engine_stats() const { return impl_->engine->last_pass_stats(); }

std::string Trainer::plan_report() const { return impl_->plan.to_string(); }

StepStats Trainer::train_step() {
  c10::InferenceMode guard;
  Impl& I = *impl_;
  auto t0 = std::chrono::steady_clock::now();
  gpu_reset_peak(I.device);
  StepRequest req = I.opt->begin_step(I.step);
  LocalLosses local = I.evaluate_request(req);
  local.stop = stop_.load();
  // Note [Stopping together]: a signal may reach the ranks in different steps, so the stop travels
  // with the step's losses and every rank stops after the same step.
  GlobalLosses global = I.dist->combine(int64_t(req.forwards.size()), local);
  I.stop_agreed = global.stop;
  const std::vector<double>& L = global.losses;
  nlohmann::json info = I.opt->end_step(L);
  const auto& pend = I.opt->pending();
  if (!pend.empty() && I.dist->is_root()) {
    nlohmann::json terms = nlohmann::json::array();
    for (auto& t : pend.terms) terms.push_back({t.seed, t.coeff, t.basis});
    I.seeds << nlohmann::json{{"step", I.step},   {"terms", terms}, {"decay", pend.decay},
                              {"lr", pend.lr},     {"z", k::kGaussianSampler}}
                   .dump()
            << "\n";
    I.seeds.flush();
  }
  StepStats s;
  s.step = I.step;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.loss = info.value("loss", L.at(0));
  s.tokens_per_second = global.evaluated_tokens / std::max(1e-9, s.seconds);
  s.gpu_peak_bytes = gpu_peak_allocated(I.device);
  s.info = info;
  ++I.step;
  if (!I.dist->is_root()) return s;
  nlohmann::json line = {{"step", I.step}, {"loss", s.loss}, {"seconds", s.seconds},
                         {"tokens_per_second", s.tokens_per_second}, {"losses", L}, {"info", info},
                         {"gpu_peak_allocated", s.gpu_peak_bytes}, {"gpu_used", gpu_used_bytes(I.device)},
                         {"engine", I.engine->last_pass_stats()},
                         {"direction_state_bytes", I.opt->directions().state_bytes()}};
  if (I.dist->active()) line["ranks"] = I.dist->world();
  I.metrics << line.dump() << "\n";
  I.metrics.flush();
  return s;
}

static std::string human_seconds(double s) {
  char b[32];
  if (s >= 3600) std::snprintf(b, sizeof b, "%dh%02dm", int(s / 3600), int(std::fmod(s, 3600) / 60));
  else if (s >= 60) std::snprintf(b, sizeof b, "%dm%02ds", int(s / 60), int(std::fmod(s, 60)));
  else std::snprintf(b, sizeof b, "%.1fs", s);
  return b;
}

bool Trainer::train() {
  Impl& I = *impl_;
  const bool tty = isatty(2);
  const int64_t total = cfg_.train.steps;
  double ema = 0;
  const bool root = I.dist->is_root();
  while (I.step < total) {
    if (I.dist->active() ? I.stop_agreed : stop_.load()) {
      log::warn("stop requested at step {}: flushing the pending update and saving", I.step);
      save_checkpoint(cfg_.train.output_dir + "/checkpoint-" + std::to_string(I.step));
      I.writer.wait();
      return false;
    }
    StepStats s = train_step();
    ema = ema == 0 ? s.seconds : 0.9 * ema + 0.1 * s.seconds;
    const bool log_now = cfg_.train.log_every > 0 && (I.step % cfg_.train.log_every == 0 || I.step == total);
    if (root && (tty || log_now)) {
      char line[256];
      std::snprintf(line, sizeof line, "step %lld/%lld  loss %.4f  %.0f tok/s  %.3f s/step  ETA %s%s",
                    (long long)I.step, (long long)total, s.loss, s.tokens_per_second, s.seconds,
                    human_seconds(ema * double(total - I.step)).c_str(),
                    s.gpu_peak_bytes ? ("  GPU " + format_bytes(s.gpu_peak_bytes)).c_str() : "");
      if (tty) std::fprintf(stderr, "\r%s\x1b[K%s", line, log_now ? "\n" : "");
      else log::info("{}", line);
    }
    if (root && cfg_.train.timeline && I.step == 1) I.engine->write_timeline(cfg_.train.output_dir + "/timeline.json");
    if (cfg_.train.eval_every > 0 && I.step % cfg_.train.eval_every == 0 && !cfg_.data.eval.empty()) {
      EvalResult r = evaluate();
      if (root)
        log::info("eval at step {}: loss {:.4f}{}", I.step, r.loss,
                r.accuracy >= 0 ? fmt::format(", accuracy {:.2f}%", 100 * r.accuracy) : std::string());
    }
    if (cfg_.train.save_every > 0 && I.step % cfg_.train.save_every == 0 && I.step < total)
      save_checkpoint(cfg_.train.output_dir + "/checkpoint-" + std::to_string(I.step));
  }
  if (cfg_.train.save_final) save_checkpoint(cfg_.train.output_dir + "/checkpoint-final");
  I.writer.wait();
  return true;
}

EvalResult Trainer::evaluate(const std::string& split_path) {
  c10::InferenceMode guard;
  Impl& I = *impl_;
  const std::string path = split_path.empty() ? cfg_.data.eval : split_path;
  ZOFF_INPUT_CHECK(!path.empty(), cfg_.source, ": data.eval is empty and no split was given");
  auto data = I.load_split(path);
  I.engine->flush(*I.opt);
  ZoStep step(*I.model, nullptr, I.compute(), I.device);
  StepRequest req;
  req.forwards.resize(1);
  EvalResult r;
  double nll = 0, correct = 0, tokens = 0;
  const bool cls = data->is_classification();
  // Batch k goes to rank k % world; the sums meet below (a world of one: every batch, as before).
  int64_t k = -1;
  for (int64_t i = 0; i < data->size(); i += cfg_.data.batch_size) {
    if (++k % I.dist->world() != I.dist->rank()) continue;
    std::vector<int64_t> idx;
    for (int64_t j = i; j < std::min(data->size(), i + cfg_.data.batch_size); ++j) idx.push_back(j);
    Batch b = collate(*data, idx, I.pad_id());
    step.begin_pass(req, StepBatch{b.input_ids, b.attention_mask, b.labels}, false, true);
    I.engine->run_pass(step, nullptr, false);
    step.losses();
    at::Tensor rn = step.row_nll()[0], rc = step.row_count()[0];
    if (cls) {
      at::Tensor mean = rn / rc.clamp_min(1).to(at::kFloat);
      auto pred = predict_candidates(b, mean);
      for (int64_t e = 0; e < b.num_examples(); ++e) {
        correct += pred[size_t(e)] == b.example_label[size_t(e)] ? 1 : 0;
        int64_t row = b.row_offset(e) + b.example_label[size_t(e)];
        nll += rn[row].item<double>();
        tokens += double(rc[row].item<int64_t>());
      }
    } else {
      nll += rn.sum().item<double>();
      tokens += double(rc.sum().item<int64_t>());
    }
    r.examples += b.num_examples();
  }
  const std::vector<double> tot = I.dist->sum({nll, correct, tokens, double(r.examples)});
  nll = tot[0];
  correct = tot[1];
  tokens = tot[2];
  r.examples = int64_t(tot[3]);
  r.tokens = int64_t(tokens);
  r.loss = nll / std::max(1.0, tokens);
  r.perplexity = std::exp(r.loss);
  if (cls) r.accuracy = correct / std::max<double>(1, double(r.examples));
  return r;
}

double Trainer::wait_background() {
  const auto t0 = std::chrono::steady_clock::now();
  impl_->engine->wait_background();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<at::Tensor> Trainer::snapshot_weights() {
  c10::InferenceMode guard;
  impl_->engine->flush(*impl_->opt);
  return impl_->engine->host_groups();
}

void Trainer::save_checkpoint(const std::string& dir) {
  c10::InferenceMode guard;
  Impl& I = *impl_;
  I.engine->flush(*I.opt);  // on every rank: the pending update leaves all of them at the same point
  if (!I.dist->is_root()) return;
  ModelWeights w;
  w.flats = I.engine->host_groups();
  auto tensors = named_tensors(*I.model, w);
  nlohmann::json state = {{"step", I.step}, {"optimizer", I.opt->state()}, {"config_source", cfg_.source}};
  if (I.loader) state["data"] = {{"epoch", I.loader->position().epoch}, {"position", I.loader->position().position}};
  state["synthetic_batches"] = I.synth_counter;
  ExtraFiles extra = {{"config.json", model_spec_to_json(I.model->spec()).dump(2)},
                      {"trainer_state.json", state.dump(2)}};
  I.writer.save(dir, std::move(tensors), std::move(extra));
  log::info("checkpoint -> {} (step {})", dir, I.step);
}

void Trainer::resume_from(const std::string& dir) {
  c10::InferenceMode guard;
  Impl& I = *impl_;
  I.writer.wait();
  std::ifstream f(dir + "/trainer_state.json");
  ZOFF_INPUT_CHECK(f.good(), dir, ": no trainer_state.json (not a checkpoint written by zoff train)");
  nlohmann::json st;
  try {
    st = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    ZOFF_INPUT_FAIL(dir, "/trainer_state.json: ", e.what());
  }
  Checkpoint ck = Checkpoint::open(dir);
  std::vector<at::Tensor> flats;
  for (int g = 0; g < I.model->num_groups(); ++g) {
    at::Tensor t = at::zeros({I.model->group(g).numel}, at::kFloat);
    load_group(*I.model, ck, g, t);
    flats.push_back(t.to(I.storage()));
  }
  I.engine->load_groups(flats);
  I.opt->load_state(st.at("optimizer"));
  I.step = st.at("step").get<int64_t>();
  I.synth_counter = st.value("synthetic_batches", uint64_t(0));
  if (I.loader && st.contains("data"))
    I.loader->seek(LoaderPosition{st["data"]["epoch"].get<int64_t>(), st["data"]["position"].get<int64_t>()});
  log::info("resumed from {} at step {}", dir, I.step);
}

}  // namespace zoff
