// Seed-log replay: base weights + logged (seed, scalar) updates -> the trained weights.
#include "zoff/replay.h"

#include <c10/core/InferenceMode.h>

#include <fstream>
#include <memory>

#include "kernels/philox.h"  // kGaussianSampler
#include "zoff/config.h"
#include "zoff/error.h"
#include "zoff/log.h"
#include "zoff/optimizer.h"
#include "zoff/safetensors.h"
#include "zoff/weights.h"

namespace zoff {

at::ScalarType scalar_type_of(DType t);  // trainer.cpp

int64_t rebuild_from_seed_log(const std::string& run_dir, const std::string& out_dir, int64_t up_to) {
  c10::InferenceMode guard;
  const std::string cfg_path = run_dir + "/config.toml", log_path = run_dir + "/seed_log.jsonl";
  RunConfig cfg = load_run_config(cfg_path);
  Model m(cfg.model.spec);
  const at::ScalarType storage = scalar_type_of(cfg.policy.storage_dtype);
  ModelWeights w = cfg.model.checkpoint.empty() ? dummy_weights(m, cfg.model.dummy_seed, storage)
                                                : load_weights(m, cfg.model.checkpoint, storage);
  auto opt = make_optimizer(cfg.optimizer, cfg.train.seed, cfg.train.steps, cfg_path);
  std::ifstream in(log_path);
  ZOFF_INPUT_CHECK(in.good(), log_path, ": cannot read the seed log");
  std::string line;
  int64_t applied = 0, lineno = 0, last = -1;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    PendingUpdate p;
    std::string sampler;
    try {
      auto j = nlohmann::json::parse(line);
      p.step = j.at("step").get<int64_t>();
      for (auto& t : j.at("terms"))
        p.terms.push_back(DirTerm{t.at(0).get<uint64_t>(), t.at(1).get<double>(), t.at(2).get<int64_t>()});
      p.decay = j.at("decay").get<double>();
      p.lr = j.at("lr").get<double>();
      sampler = j.value("z", std::string());
    } catch (const std::exception& e) {
      ZOFF_INPUT_FAIL(log_path, ":", lineno, ": bad seed-log line: ", e.what());
    }
    // The directions are regenerated, so they must come from the same sampler (kGaussianSampler);
    // a line without the field predates it and was drawn by the same Box-Muller.
    ZOFF_INPUT_CHECK(sampler.empty() || sampler == k::kGaussianSampler, log_path, ":", lineno, ": field \"z\" is '",
                     sampler, "', but this zoff draws '", k::kGaussianSampler,
                     "' z; replay the log with the zoff that wrote it (the run's saved checkpoints are unaffected)");
    ZOFF_INPUT_CHECK(p.step > last, log_path, ":", lineno, ": step ", p.step, " is not after step ", last,
                     " (a resumed run must append to the same log in order)");
    last = p.step;
    if (up_to >= 0 && p.step > up_to) break;
    opt->set_pending(p);
    for (int g = 0; g < m.num_groups(); ++g) opt->apply_update(m.group(g), w.flats[size_t(g)]);
    ++applied;
  }
  opt->clear_pending();
  ModelWeights f32;
  for (auto& f : w.flats) f32.flats.push_back(f.to(at::kFloat));
  write_checkpoint(out_dir, named_tensors(m, f32));
  write_file_atomic(out_dir + "/config.json", model_spec_to_json(m.spec()).dump(2));
  log::info("replayed {} updates from {} into {}", applied, log_path, out_dir);
  return applied;
}

}  // namespace zoff
