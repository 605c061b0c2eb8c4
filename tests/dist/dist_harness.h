// Test harness for tests/dist: runs this test binary as N worker processes with torchrun-style env.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace zoff::testing {

inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

inline std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Outcome of one worker process: its exit code (-signal when killed) and whether the harness had
// to kill it because the job outlived `limit` (a hang).
struct WorkerResult {
  int code = -1;
  bool hung = false;
};

// Runs `<this binary> --worker args...` as `world` processes (world == 1: no distributed env at
// all, like a plain run), each with RANK/LOCAL_RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT set and
// OMP_NUM_THREADS=1 (the same thread count everywhere, so CPU kernels reduce in the same order).
// extra_env[r] adds "K=V" strings for rank r. Kills everything after `limit`.
inline std::vector<WorkerResult> run_workers(int world, const std::vector<std::string>& args,
                                             std::chrono::seconds limit = std::chrono::seconds(240),
                                             const std::vector<std::vector<std::string>>& extra_env = {}) {
  const int port = free_port();
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = '\0';
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> a = {exe, "--worker"};
    a.insert(a.end(), args.begin(), args.end());
    std::vector<std::string> env = {"OMP_NUM_THREADS=1", "OMP_WAIT_POLICY=PASSIVE"};
    if (world > 1) {
      env.push_back("RANK=" + std::to_string(r));
      env.push_back("LOCAL_RANK=" + std::to_string(r));
      env.push_back("WORLD_SIZE=" + std::to_string(world));
      env.push_back("MASTER_ADDR=127.0.0.1");
      env.push_back("MASTER_PORT=" + std::to_string(port));
    }
    if (size_t(r) < extra_env.size()) env.insert(env.end(), extra_env[size_t(r)].begin(), extra_env[size_t(r)].end());
    std::vector<char*> argv, envp;
    for (auto& s : a) argv.push_back(const_cast<char*>(s.c_str()));
    argv.push_back(nullptr);
    for (char** e = environ; *e; ++e) {
      const std::string v = *e;
      if (v.rfind("RANK=", 0) && v.rfind("WORLD_SIZE=", 0) && v.rfind("LOCAL_RANK=", 0) && v.rfind("OMP_", 0))
        envp.push_back(*e);
    }
    for (auto& s : env) envp.push_back(const_cast<char*>(s.c_str()));
    envp.push_back(nullptr);
    const pid_t p = ::fork();
    if (p == 0) {
      ::execve(exe, argv.data(), envp.data());
      ::_exit(127);
    }
    pids.push_back(p);
  }
  std::vector<WorkerResult> res(static_cast<size_t>(world));
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int left = world;
  while (left > 0) {
    int st = 0;
    const pid_t p = ::waitpid(-1, &st, WNOHANG);
    if (p > 0) {
      for (int r = 0; r < world; ++r)
        if (pids[size_t(r)] == p) {
          res[size_t(r)].code = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
          pids[size_t(r)] = 0;
          --left;
        }
      continue;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      for (int r = 0; r < world; ++r)
        if (pids[size_t(r)] > 0) {
          ::kill(pids[size_t(r)], SIGKILL);
          res[size_t(r)].hung = true;
        }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return res;
}

}  // namespace zoff::testing
