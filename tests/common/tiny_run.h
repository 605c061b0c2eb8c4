// Test helper: a short CPU run of the opt-tiny fixture in a fresh temporary output folder.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>

#include "zoff/config.h"
#include "zoff/model_spec.h"

namespace zoff::testing {

// opt-tiny (ZOFF_TEST_DATA), batch 2 x 16 tokens, `steps` steps on the CPU, no log lines, output
// in a new folder /tmp/<prefix>XXXXXX.
inline RunConfig tiny_cpu_run(const std::string& source, const std::string& prefix, int64_t steps) {
  RunConfig c;
  c.source = source;
  c.model.checkpoint = std::string(ZOFF_TEST_DATA) + "/opt-tiny/model";
  c.model.spec = parse_hf_config(c.model.checkpoint + "/config.json");
  c.data.batch_size = 2;
  c.data.max_length = 16;
  c.train.steps = steps;
  c.train.device = "cpu";
  c.train.log_every = 0;
  std::string t = "/tmp/" + prefix + "XXXXXX";
  c.train.output_dir = mkdtemp(t.data());
  return c;
}

// The optimizer of those runs: `kind` at `lr`, eps 1e-3, FZOO with 3 directions, SVRG with q = 3
// and `lr` in both phases.
inline void small_optimizer(RunConfig& c, OptimizerKind kind, double lr) {
  c.optimizer.kind = kind;
  c.optimizer.lr = lr;
  c.optimizer.eps = 1e-3;
  c.optimizer.fzoo_n = 3;
  c.optimizer.svrg_q = 3;
  c.optimizer.svrg_lr_full = lr;
  c.optimizer.svrg_lr_inner = lr;
}

}  // namespace zoff::testing
