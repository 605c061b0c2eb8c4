// zoff replay: rebuild a run's weights from its base checkpoint and seed log (Note [Seed log replay]).
#include <cstdio>
#include <memory>

#include "commands.h"
#include "zoff/replay.h"

namespace zoff::cli {

Command add_replay_command(CLI::App& top) {
  struct Options {
    std::string run, out;
    int64_t up_to = -1;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = top.add_subcommand(
      "replay", "Rebuild the weights of a run from its base checkpoint and seed_log.jsonl (no stored weights needed)");
  app->add_option("--run", o->run, "Run directory (holds config.toml and seed_log.jsonl)")->required();
  app->add_option("--out", o->out, "Folder to write the rebuilt HF checkpoint into")->required();
  app->add_option("--up-to", o->up_to, "Apply the updates of steps <= this step only (-1: all)")
      ->capture_default_str();
  return Command{app, [o] {
                   int64_t n = rebuild_from_seed_log(o->run, o->out, o->up_to);
                   std::printf("replayed %lld updates into %s\n", (long long)n, o->out.c_str());
                   return kExitOk;
                 }};
}

}  // namespace zoff::cli
