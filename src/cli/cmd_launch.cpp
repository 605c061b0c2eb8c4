// zoff launch: starts N zoff processes (one per GPU) with torchrun-style env and supervises them.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "commands.h"
#include "zoff/error.h"

namespace zoff::cli {
namespace {

struct LaunchOptions {
  int nproc = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
  int grace_s = 30;
  std::vector<std::string> command;
};

// Note [Launcher signals]
// The children run in process groups of their own, so a Ctrl-C in the terminal reaches only the
// launcher, which forwards it once to every child: each stops after the same step (Note
// [Stopping together]), rank 0 saves a checkpoint, all exit 130. A second Ctrl-C is forwarded
// too and ends them at once (Note [Stopping on a signal]). PR_SET_PDEATHSIG makes a child die
// with the launcher even when the launcher is killed with SIGKILL. The handler only calls kill()
// and touches lock-free atomics (async-signal-safe).
constexpr int kMaxProcs = 1024;
std::atomic<pid_t> g_children[kMaxProcs];
std::atomic<int> g_nchildren{0};
std::atomic<int> g_forwarded{0};

extern "C" void forward_signal(int sig) {
  g_forwarded.fetch_add(1);
  const int n = g_nchildren.load();
  for (int i = 0; i < n; ++i) {
    const pid_t p = g_children[i].load();
    if (p > 0) ::kill(p, sig);
  }
}

// A free TCP port on this host (bound then released: a small window in which another program
// could take it; rank 0's store then reports the port as busy).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ZOFF_CHECK(fd >= 0, "socket(): ", std::strerror(errno));
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(fd);
  ZOFF_CHECK(ok, "cannot find a free port: ", std::strerror(errno));
  return ntohs(a.sin_port);
}

std::string describe_status(int st) {
  if (WIFEXITED(st)) return "exited with code " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) {
    const char* name = strsignal(WTERMSIG(st));
    return "was killed by signal " + std::to_string(WTERMSIG(st)) + (name ? std::string(" (") + name + ")" : "");
  }
  return "ended with status " + std::to_string(st);
}

pid_t spawn(const std::string& exe, const LaunchOptions& o, int rank) {
  // Everything the child needs is built before fork(): after it only async-signal-safe calls.
  std::vector<std::string> args = {exe};
  args.insert(args.end(), o.command.begin(), o.command.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::vector<std::pair<std::string, std::string>> env = {
      {"RANK", std::to_string(rank)},          {"LOCAL_RANK", std::to_string(rank)},
      {"WORLD_SIZE", std::to_string(o.nproc)}, {"LOCAL_WORLD_SIZE", std::to_string(o.nproc)},
      {"MASTER_ADDR", o.master_addr},          {"MASTER_PORT", std::to_string(o.master_port)}};
  const std::string err = "zoff launch: rank " + std::to_string(rank) + ": cannot run " + exe + "\n";
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  ZOFF_CHECK(pid >= 0, "fork(): ", std::strerror(errno));
  if (pid > 0) return pid;
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) ::_exit(kExitFailure);  // the launcher died before prctl
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  for (auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
  ::execv(exe.c_str(), argv.data());
  ssize_t w = ::write(2, err.data(), err.size());
  (void)w;
  ::_exit(127);
}

int run_launch(LaunchOptions o) {
  ZOFF_INPUT_CHECK(o.nproc >= 1 && o.nproc <= kMaxProcs, "launch: --nproc must be in [1, ", kMaxProcs, "], got ",
                   o.nproc);
  ZOFF_INPUT_CHECK(!o.command.empty(), "launch: no command to run; usage: zoff launch --nproc N -- train --config F");
  ZOFF_INPUT_CHECK(o.command[0] != "launch", "launch: the command cannot be another launch");
  const char* ws = std::getenv("WORLD_SIZE");
  ZOFF_INPUT_CHECK(!ws || !*ws, "launch: WORLD_SIZE=", ws ? ws : "",
                   " is already set (running under another launcher); run zoff train directly there");
  if (o.master_port == 0) o.master_port = free_port();
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  ZOFF_CHECK(n > 0, "cannot find the zoff executable (/proc/self/exe): ", std::strerror(errno));
  const std::string exe(buf, size_t(n));

  struct sigaction sa = {};
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::vector<pid_t> pids(size_t(o.nproc), 0);
  for (int r = 0; r < o.nproc; ++r) {
    pids[size_t(r)] = spawn(exe, o, r);
    g_children[r].store(pids[size_t(r)]);
    g_nchildren.store(r + 1);
    std::fprintf(stderr, "zoff launch: rank %d is pid %d (MASTER_ADDR=%s MASTER_PORT=%d WORLD_SIZE=%d)\n", r,
                 int(pids[size_t(r)]), o.master_addr.c_str(), o.master_port, o.nproc);
  }

  // Supervise: the first rank to fail is the cause; the others get SIGTERM, then SIGKILL after the
  // grace period (a rank blocked in a collective with a dead peer may not notice soon).
  int alive = o.nproc, first_bad = -1, first_status = 0;
  auto kill_deadline = std::chrono::steady_clock::time_point::max();
  std::vector<int> status(size_t(o.nproc), 0);
  while (alive > 0) {
    int st = 0;
    const pid_t p = ::waitpid(-1, &st, WNOHANG);
    if (p < 0 && errno != EINTR) break;
    if (p <= 0) {
      if (std::chrono::steady_clock::now() > kill_deadline) {
        for (int r = 0; r < o.nproc; ++r)
          if (g_children[r].load() > 0) ::kill(pids[size_t(r)], SIGKILL);
        kill_deadline = std::chrono::steady_clock::time_point::max();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    int r = 0;
    while (r < o.nproc && pids[size_t(r)] != p) ++r;
    if (r == o.nproc) continue;
    g_children[r].store(0);
    --alive;
    status[size_t(r)] = st;
    const bool ok = WIFEXITED(st) && (WEXITSTATUS(st) == 0 || (g_forwarded.load() > 0 && WEXITSTATUS(st) == kExitInterrupted));
    if (!ok && first_bad < 0) {
      first_bad = r;
      first_status = st;
      if (alive > 0) {
        std::fprintf(stderr, "zoff launch: rank %d %s; stopping the other %d rank(s)\n", r, describe_status(st).c_str(),
                     alive);
        for (int k = 0; k < o.nproc; ++k)
          if (g_children[k].load() > 0) ::kill(pids[size_t(k)], SIGTERM);
        kill_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.grace_s);
      }
    }
  }
  if (first_bad >= 0) {
    std::fprintf(stderr, "zoff launch: failed: rank %d %s\n", first_bad, describe_status(first_status).c_str());
    if (WIFEXITED(first_status) && (WEXITSTATUS(first_status) == kExitUsage || WEXITSTATUS(first_status) == kExitInterrupted))
      return WEXITSTATUS(first_status);
    return kExitFailure;
  }
  for (int st : status)
    if (WIFEXITED(st) && WEXITSTATUS(st) == kExitInterrupted) return kExitInterrupted;
  return kExitOk;
}

}  // namespace

Command add_launch_command(CLI::App& top) {
  auto o = std::make_shared<LaunchOptions>();
  CLI::App* app = top.add_subcommand(
      "launch",
      "Run a zoff command in N processes (one per GPU) that train together: sets RANK, LOCAL_RANK, WORLD_SIZE, "
      "MASTER_ADDR, MASTER_PORT for each, forwards Ctrl-C (SIGINT/SIGTERM), and if one rank fails stops the others "
      "and exits non-zero naming it. Example: zoff launch --nproc 2 -- train --config run.toml (docs/distributed.md).");
  app->add_option("--nproc", o->nproc, "number of processes (ranks), one per GPU on a CUDA run")->required();
  app->add_option("--master-addr", o->master_addr, "address of rank 0's rendezvous store")->capture_default_str();
  app->add_option("--master-port", o->master_port, "port of rank 0's rendezvous store (0: pick a free one)")
      ->capture_default_str();
  app->add_option("--grace", o->grace_s, "seconds the other ranks get to exit after one failed, then SIGKILL")
      ->capture_default_str();
  app->add_option("command", o->command, "the zoff command each rank runs, after --, e.g. -- train --config F")
      ->required();
  return {app, [o] { return run_launch(*o); }};
}

}  // namespace zoff::cli
