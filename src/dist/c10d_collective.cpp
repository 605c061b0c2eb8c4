// c10d rendezvous (TCPStore) and the Gloo backend of Collective; picks the backend for make_collective.
#include "c10d_backend.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef ZOFF_HAVE_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1  // ProcessGroupGloo.hpp is empty without it
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

#include <thread>

#include "zoff/error.h"
#include "zoff/log.h"

namespace zoff {
namespace dist_detail {

std::string what_of(const std::exception& e) {
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

}  // namespace dist_detail

namespace {

using dist_detail::what_of;

// Note [Rendezvous]
// Rank 0 hosts a c10d::TCPStore at MASTER_ADDR:MASTER_PORT and waits (up to the timeout) until
// all WORLD_SIZE ranks have connected; the others connect, retrying until the timeout. The store
// then carries what each backend needs to meet (Gloo's addresses, NCCL's unique id). Both ends
// fail with the address and the variables to check, never wait forever.
// Every rank checks in and waits until all have: TCPStore's own wait for workers differs between
// LibTorch versions, this count does not.
void join(c10d::Store& store, const DistEnv& env, const CollectiveOptions& o) {
  const std::string key = "zoff/joined";
  store.add(key, 1);
  const auto deadline = std::chrono::steady_clock::now() + o.timeout;
  for (;;) {
    const int64_t n = store.add(key, 0);
    if (n >= env.world) return;
    if (std::chrono::steady_clock::now() > deadline)
      ZOFF_FAIL("rank ", env.rank, ": rendezvous at ", env.master_addr, ":", env.master_port, ": only ", n, " of ",
                env.world, " ranks arrived within distributed.timeout_s = ", o.timeout.count() / 1000,
                " s (did every rank start, with the same MASTER_ADDR/MASTER_PORT and WORLD_SIZE?)");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

c10::intrusive_ptr<c10d::Store> connect_store(const DistEnv& env, const CollectiveOptions& o) {
  c10d::TCPStoreOptions so;
  so.port = uint16_t(env.master_port);
  so.isServer = env.rank == 0;
  so.numWorkers = size_t(env.world);
  so.waitWorkers = true;
  so.timeout = o.timeout;
  try {
    auto store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    join(*store, env, o);
    return store;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
    if (env.rank == 0)
      ZOFF_FAIL("rank 0: rendezvous at ", where, " failed (", what_of(e), "); all ", env.world,
                " ranks must start within distributed.timeout_s = ", o.timeout.count() / 1000,
                " s, and MASTER_PORT must be free");
    ZOFF_FAIL("rank ", env.rank, ": cannot reach rank 0's store at ", where, " (", what_of(e),
              "); check MASTER_ADDR/MASTER_PORT and that rank 0 is running");
  }
}

#ifdef ZOFF_HAVE_GLOO
// Note [Gloo collectives]
// CPU tensors over TCP. Every wait is bounded by the process group's timeout; a peer that died
// closes its sockets, which Gloo reports at once as an I/O error.
class GlooCollective : public Collective {
 public:
  GlooCollective(const c10::intrusive_ptr<c10d::Store>& store, const DistEnv& env, const CollectiveOptions& o)
      : rank_(env.rank), world_(env.world), timeout_(o.timeout) {
    auto opts = c10d::ProcessGroupGloo::Options::create(o.timeout);
    // A loopback master means one host: bind to loopback too (the host name may not resolve).
    const bool loopback = env.master_addr == "localhost" || env.master_addr.rfind("127.", 0) == 0;
    opts->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                     : c10d::ProcessGroupGloo::createDefaultDevice());
    try {
      pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank_, world_, opts);
    } catch (const std::exception& e) {
      ZOFF_FAIL("rank ", rank_, ": Gloo process group setup failed: ", what_of(e));
    }
  }
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  const char* backend() const override { return "gloo"; }

  void allreduce_sum(std::vector<double>& v) override {
    if (v.empty()) return;
    std::vector<at::Tensor> t = {at::from_blob(v.data(), {int64_t(v.size())}, at::kDouble)};
    run("all-reduce", [&] { return pg_->allreduce(t); });
  }

  void broadcast(std::string& bytes, int root) override {
    std::vector<at::Tensor> len = {at::full({1}, rank_ == root ? int64_t(bytes.size()) : int64_t(0), at::kLong)};
    c10d::BroadcastOptions bo;
    bo.rootRank = root;
    run("broadcast", [&] { return pg_->broadcast(len, bo); });
    const int64_t n = len[0].item<int64_t>();
    if (rank_ != root) bytes.assign(size_t(n), '\0');
    if (n == 0) return;
    std::vector<at::Tensor> data = {at::from_blob(&bytes[0], {n}, at::kByte)};
    run("broadcast", [&] { return pg_->broadcast(data, bo); });
  }

  void barrier() override {
    run("barrier", [&] { return pg_->barrier(); });
  }

 private:
  template <class F>
  void run(const char* what, F start) {
    try {
      auto work = start();
      work->wait(timeout_);
    } catch (const std::exception& e) {
      ZOFF_FAIL("rank ", rank_, ": Gloo ", what, " failed after at most ", timeout_.count() / 1000,
                " s (a peer died, stopped, or runs a different step): ", what_of(e));
    }
  }
  int rank_, world_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
};
#endif

}  // namespace

std::string collective_backends() {
  std::string s;
#ifdef ZOFF_HAVE_GLOO
  s += "gloo";
#endif
#ifdef ZOFF_HAVE_NCCL
  s += s.empty() ? "nccl" : " nccl";
#endif
  return s;
}

std::unique_ptr<Collective> make_collective(const DistEnv& env, const CollectiveOptions& o) {
  if (!env.distributed()) return make_local_collective();
  std::string backend = o.backend;
  if (backend == "auto") backend = o.cuda_device >= 0 ? "nccl" : "gloo";
  ZOFF_INPUT_CHECK(backend == "gloo" || backend == "nccl", "distributed.backend: unknown backend '", backend, "'");
  const std::string have = collective_backends();
  ZOFF_INPUT_CHECK((" " + have + " ").find(" " + backend + " ") != std::string::npos, "distributed.backend = \"",
                   backend, "\": this zoff was built without it (built with: ",
                   have.empty() ? "none" : have, "; docs/distributed.md says how to build them)");
  ZOFF_INPUT_CHECK(backend != "nccl" || o.cuda_device >= 0,
                   "distributed.backend = \"nccl\" needs train.device = \"cuda\" (NCCL moves GPU buffers)");
  auto store = connect_store(env, o);
  log::info("rank {}/{}: rendezvous at {}:{} done; backend {}", env.rank, env.world, env.master_addr,
            env.master_port, backend);
#ifdef ZOFF_HAVE_NCCL
  if (backend == "nccl") return dist_detail::make_nccl_collective(store, env, o);
#endif
#ifdef ZOFF_HAVE_GLOO
  if (backend == "gloo") return std::make_unique<GlooCollective>(store, env, o);
#endif
  ZOFF_FAIL("unreachable backend ", backend);
}

}  // namespace zoff
