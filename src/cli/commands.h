// The zoff subcommands: each registers its options on the app and returns how to run it.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace zoff::cli {

// A registered subcommand. run() is called after a successful parse when `app` was selected; it
// returns the process exit code (0 ok, 1 runtime failure, 2 bad input, 130 interrupted) and
// throws zoff::InputError / zoff::Error for the failures main() reports.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command add_forward_command(CLI::App& top);
Command add_compare_command(CLI::App& top);
Command add_inspect_command(CLI::App& top);
Command add_plan_command(CLI::App& top);
Command add_replay_command(CLI::App& top);
// zoff launch: N ranks of one job (cmd_launch.cpp, docs/distributed.md).
Command add_launch_command(CLI::App& top);
// train and eval share the signal handling (cmd_train.cpp).
std::vector<Command> add_trainer_commands(CLI::App& top);

// Exit codes (docs/cli.md).
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInterrupted = 130;

}  // namespace zoff::cli
