// zoff train / zoff eval: thin wrappers over zoff::Trainer, with SIGINT/SIGTERM handling for train.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "zoff/config.h"
#include "zoff/error.h"
#include "zoff/trainer.h"

namespace zoff::cli {
namespace {

// Note [Stopping on a signal]
// The first SIGINT/SIGTERM asks the running Trainer to stop: request_stop() only stores an atomic
// flag (lock-free, so async-signal-safe); train() then finishes its step, flushes the pending
// update, saves a checkpoint and returns false, and zoff exits 130. A second signal, or one that
// arrives while no Trainer is running (loading, eval), exits at once with 130 through _exit(),
// which is async-signal-safe; nothing the user saved is touched (checkpoints are written
// atomically, Note [Checkpoint overwrite]).
std::atomic<Trainer*> g_trainer{nullptr};
std::atomic<int> g_signals{0};
static_assert(std::atomic<Trainer*>::is_always_lock_free && std::atomic<int>::is_always_lock_free,
              "the signal handler needs lock-free atomics");

void write_stderr(const char* s) {
  size_t n = 0;
  while (s[n]) ++n;
  ssize_t r = ::write(2, s, n);
  (void)r;
}

extern "C" void on_stop_signal(int) {
  Trainer* t = g_trainer.load();
  if (g_signals.fetch_add(1) == 0 && t != nullptr) {
    t->request_stop();
    write_stderr("\nzoff: stopping after this step (checkpoint follows); press Ctrl-C again to quit at once\n");
    return;
  }
  write_stderr("\nzoff: interrupted\n");
  ::_exit(kExitInterrupted);
}

void install_stop_handlers() {
  struct sigaction sa = {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// Clears g_trainer when the Trainer goes away, whatever the exit path.
struct TrainerRegistration {
  explicit TrainerRegistration(Trainer* t) { g_trainer.store(t); }
  ~TrainerRegistration() { g_trainer.store(nullptr); }
};

struct TrainOptions {
  std::string config;
  std::vector<std::string> sets;
  std::string resume;
};

struct EvalOptions {
  std::string config;
  std::vector<std::string> sets;
  std::string split;
  std::string checkpoint;
  bool json = false;
};

int run_train(const TrainOptions& o) {
  install_stop_handlers();
  RunConfig cfg = load_run_config(o.config, o.sets);
  Trainer trainer(std::move(cfg));
  TrainerRegistration reg(&trainer);
  if (!o.resume.empty()) trainer.resume_from(o.resume);
  const bool finished = trainer.train();
  const std::string& out = trainer.config().train.output_dir;
  if (!finished) {
    std::fprintf(stderr, "zoff: stopped at step %lld; checkpoint in %s/checkpoint-%lld\n", (long long)trainer.step(),
                 out.c_str(), (long long)trainer.step());
    return kExitInterrupted;
  }
  std::printf("trained %lld steps; outputs in %s (metrics.jsonl, checkpoint-final)\n", (long long)trainer.step(),
              out.c_str());
  return kExitOk;
}

int run_eval(const EvalOptions& o) {
  install_stop_handlers();  // no Trainer registered: a signal exits at once (130)
  std::vector<std::string> sets = o.sets;
  // The checkpoint replaces the config's weights as the last layer (docs/config.md: a checkpoint
  // set later supersedes a preset's spec); its config.json gives the architecture.
  if (!o.checkpoint.empty()) sets.push_back("model.checkpoint=" + o.checkpoint);
  RunConfig cfg = load_run_config(o.config, sets);
  Trainer trainer(std::move(cfg));
  const EvalResult r = trainer.evaluate(o.split);
  if (o.json) {
    nlohmann::json j = {{"loss", r.loss}, {"perplexity", r.perplexity}, {"examples", r.examples}, {"tokens", r.tokens}};
    if (r.accuracy >= 0) j["accuracy"] = r.accuracy;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("eval: loss %.6f, perplexity %.4f", r.loss, r.perplexity);
    if (r.accuracy >= 0) std::printf(", accuracy %.2f%%", 100 * r.accuracy);
    std::printf(" (%lld examples, %lld tokens)\n", (long long)r.examples, (long long)r.tokens);
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> add_trainer_commands(CLI::App& top) {
  auto t = std::make_shared<TrainOptions>();
  CLI::App* train = top.add_subcommand(
      "train",
      "Fine-tune with a ZO optimizer as the run file says. Writes output_dir/{config.toml, metrics.jsonl, "
      "seed_log.jsonl, checkpoint-*/}. Ctrl-C (SIGINT/SIGTERM) stops after the current step with a checkpoint "
      "and exit code 130; a second Ctrl-C quits at once.");
  train->add_option("--config", t->config, "run file (configs/runs/*.toml)")->required();
  train->add_option("--set", t->sets, "override a config key, key=value, e.g. optimizer.lr=1e-5 (repeatable)")
      ->allow_extra_args(false);
  train->add_option("--resume", t->resume, "continue from a checkpoint folder written by zoff train");

  auto e = std::make_shared<EvalOptions>();
  CLI::App* eval = top.add_subcommand(
      "eval", "Evaluate with clean forwards: mean token loss and perplexity (and accuracy for classification).");
  eval->add_option("--config", e->config, "run file (configs/runs/*.toml)")->required();
  eval->add_option("--set", e->sets, "override a config key, key=value (repeatable)")->allow_extra_args(false);
  eval->add_option("--split", e->split, "JSONL split to evaluate (default: data.eval of the config)");
  eval->add_option("--checkpoint", e->checkpoint,
                   "HF checkpoint folder to evaluate instead of the config's weights (e.g. a checkpoint-* of a run)");
  eval->add_flag("--json", e->json, "print the result as one JSON object");
  return {{train, [t] { return run_train(*t); }}, {eval, [e] { return run_eval(*e); }}};
}

}  // namespace zoff::cli
