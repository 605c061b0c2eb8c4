// zoff: the command-line program (train, eval, forward, inspect, plan); exit codes in docs/cli.md.
#include <ATen/Context.h>
#include <c10/util/Exception.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <torch/version.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "commands.h"
#include "zoff/collective.h"
#include "zoff/error.h"
#include "zoff/log.h"

#ifndef ZOFF_VERSION
#define ZOFF_VERSION "unknown"
#endif

namespace zoff::cli {
namespace {

std::string version_text() {
#ifdef ZOFF_WITH_CUDA
  const bool compiled = true;
#else
  const bool compiled = false;
#endif
  const std::string backends = zoff::collective_backends();
  std::string s = std::string("zoff ") + ZOFF_VERSION + "\nLibTorch " + TORCH_VERSION +
                  "\nDistributed backends: " + (backends.empty() ? "none" : backends) + "\nCUDA: ";
  if (!compiled) return s + "not compiled in";
  return s + "compiled in, " + (at::hasCUDA() ? "available" : "no device visible");
}

// One of several ranks (zoff launch, torchrun) says which: "zoff: error: [rank 1] ...".
void print_error(const std::string& msg) {
  const char* rank = std::getenv("RANK");
  const char* world = std::getenv("WORLD_SIZE");
  const bool ranked = rank && world && *world && std::string(world) != "1";
  std::fprintf(stderr, "zoff: error: %s%s\n", ranked ? ("[rank " + std::string(rank) + "] ").c_str() : "", msg.c_str());
}

// Note [Exit codes]
// 0 success; 2 bad usage or bad input (CLI11 parse errors, zoff::InputError: the user can fix it
// by changing the command line, a config or a file); 1 any other failure (zoff::Error, ATen's
// c10::Error, std::exception: a bug or the machine, e.g. out of memory); 130 stopped by
// SIGINT/SIGTERM (the shell's 128 + SIGINT). Every failure is one line "zoff: error: <message>"
// on stderr; nothing escapes main() as a crash.
int run_main(int argc, char** argv) {
  CLI::App app{"zoff: zeroth-order fine-tuning of large language models with CPU-GPU offloading.\n"
               "Exit codes: 0 ok, 1 runtime failure, 2 bad usage or input, 130 interrupted.",
               "zoff"};
  app.set_version_flag("--version", version_text, "Print the zoff and LibTorch versions, CUDA status, and exit");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "Log level: trace, debug, info, warn, error, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.require_subcommand(0, 1);  // none: our own message below (CLI11's names no command)
  app.footer("Run 'zoff <command> --help' for a command's options. Full reference: docs/cli.md.");

  std::vector<Command> commands = add_trainer_commands(app);
  commands.push_back(add_forward_command(app));
  commands.push_back(add_inspect_command(app));
  commands.push_back(add_plan_command(app));
  commands.push_back(add_replay_command(app));
  commands.push_back(add_compare_command(app));
  commands.push_back(add_launch_command(app));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    print_error(e.what());
    std::fprintf(stderr, "Run with --help for more information.\n");
    return kExitUsage;
  }
  // Logs go to stderr: stdout carries results (tables, --json) that scripts read.
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("", std::make_shared<spdlog::sinks::stderr_color_sink_mt>()));
  zoff::log::set_level(log_level);
  for (const Command& c : commands)
    if (c.app->parsed()) return c.run();
  print_error("no command given (expected one of: train, eval, forward, inspect, plan, replay)");
  std::fprintf(stderr, "Run with --help for more information.\n");
  return kExitUsage;
}

}  // namespace
}  // namespace zoff::cli

int main(int argc, char** argv) {
  try {
    return zoff::cli::run_main(argc, argv);
  } catch (const zoff::InputError& e) {
    zoff::cli::print_error(e.what());
    return zoff::cli::kExitUsage;
  } catch (const c10::Error& e) {  // ATen: the message without the C++ backtrace
    zoff::cli::print_error(e.what_without_backtrace());
    return zoff::cli::kExitFailure;
  } catch (const std::exception& e) {  // zoff::Error, std::bad_alloc, ...
    zoff::cli::print_error(e.what());
    return zoff::cli::kExitFailure;
  } catch (...) {
    zoff::cli::print_error("unknown exception");
    return zoff::cli::kExitFailure;
  }
}
