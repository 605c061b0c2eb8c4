// Writing safetensors files and HF checkpoint folders atomically (temp file, fsync, rename).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "zoff/error.h"
#include "zoff/log.h"
#include "zoff/safetensors.h"

namespace zoff {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Note [Atomic writes]
// Every file is written to "<path>.tmp.<pid>.<n>" in the same folder (so rename stays within
// one filesystem), fsync'ed, renamed over <path>, and then the folder is fsync'ed so the rename
// itself is durable. A crash leaves either the old file or the new one, plus at worst a stray
// .tmp file. Readers that mmap'ed the old file keep its inode and never see the new bytes.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)) {
    static std::atomic<uint64_t> counter{0};
    tmp_ = path_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    ZOFF_INPUT_CHECK(fd_ >= 0, "cannot write ", path_, ": creating ", tmp_, " failed: ",
                     std::strerror(errno));
  }
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      // Linux writes at most ~2 GiB per call; chunk so large tensors go through.
      ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t(1) << 30));
      if (w < 0 && errno == EINTR) continue;
      ZOFF_CHECK(w > 0, "writing ", path_, " failed: ", std::strerror(errno));
      p += w;
      n -= static_cast<size_t>(w);
    }
  }

  void commit() {
    ZOFF_CHECK(::fsync(fd_) == 0, "fsync of ", tmp_, " failed: ", std::strerror(errno));
    int rc = ::close(fd_);
    fd_ = -1;
    ZOFF_CHECK(rc == 0, "closing ", tmp_, " failed: ", std::strerror(errno));
    ZOFF_CHECK(::rename(tmp_.c_str(), path_.c_str()) == 0, "renaming ", tmp_, " to ", path_,
               " failed: ", std::strerror(errno));
    committed_ = true;
    fsync_dir(fs::path(path_).parent_path().string());
  }

  static void fsync_dir(std::string dir) {
    if (dir.empty()) dir = ".";
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ZOFF_CHECK(fd >= 0, "cannot open folder ", dir, " to fsync it: ", std::strerror(errno));
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    ZOFF_CHECK(rc == 0, "fsync of folder ", dir, " failed: ", std::strerror(err));
  }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

int64_t stored_bytes(const at::Tensor& t) { return t.numel() * dtype_size(from_scalar_type(t.scalar_type())); }

}  // namespace

void write_file_atomic(const std::string& path, const std::string& contents) {
  AtomicFile f(path);
  f.write(contents.data(), contents.size());
  f.commit();
}

void write_safetensors_raw(const std::string& path, const std::vector<RawTensor>& tensors,
                           const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> host;
  host.reserve(tensors.size());
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  int64_t offset = 0;
  for (const RawTensor& r : tensors) {
    ZOFF_CHECK(!r.name.empty() && r.name != "__metadata__", "write_safetensors ", path,
               ": bad tensor name '", r.name, "'");
    ZOFF_CHECK(!header.contains(r.name), "write_safetensors ", path, ": tensor '", r.name,
               "' given twice");
    at::Tensor t = r.data.to(at::kCPU).contiguous();
    const int64_t nbytes = t.numel() * int64_t(t.element_size());
    ZOFF_CHECK(int64_t(t.element_size()) == dtype_size(r.dtype), "write_safetensors ", path,
               ": tensor '", r.name, "' has ", t.element_size(), "-byte elements but ",
               dtype_name(r.dtype), " needs ", dtype_size(r.dtype));
    header[r.name] = {{"dtype", dtype_name(r.dtype)},
                      {"shape", t.sizes().vec()},
                      {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    host.push_back(std::move(t));
  }
  // The format recommends padding the header with spaces so the data section starts 8-aligned.
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  const uint64_t n = h.size();

  AtomicFile f(path);
  f.write(&n, 8);  // little-endian on every machine zoff runs on
  f.write(h.data(), h.size());
  for (const at::Tensor& t : host) f.write(t.data_ptr(), size_t(t.numel()) * t.element_size());
  f.commit();
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<RawTensor> raw;
  raw.reserve(tensors.size());
  for (const auto& [name, t] : tensors) raw.push_back({name, t, from_scalar_type(t.scalar_type())});
  write_safetensors_raw(path, raw, metadata);
}

// Note [Checkpoint overwrite]
// Saving into a folder that already holds a checkpoint must never leave a mix of old and new
// tensors that still loads: HF shard names (model-00001-of-00004...) would collide with the old
// shards, and overwriting them one by one under the old index would produce exactly that. So
// when a planned shard name is already listed by the folder's current index, the new shards get
// a unique infix (model-<id>-00001-of-00004.safetensors; loaders follow the index, names are
// free). New files are complete before the index (or model.safetensors) that makes them live
// is renamed in; only then are the old checkpoint's files removed.
void write_checkpoint(const std::string& dir,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      int64_t max_shard_bytes) {
  ZOFF_CHECK(max_shard_bytes > 0, "write_checkpoint: max_shard_bytes must be positive");
  std::error_code ec;
  fs::create_directories(dir, ec);
  ZOFF_INPUT_CHECK(!ec && fs::is_directory(dir), "cannot create checkpoint folder ", dir, ": ",
                   ec ? ec.message() : std::string("not a folder"));
  const fs::path d(dir);
  const std::string index_path = (d / "model.safetensors.index.json").string();
  const std::string single_path = (d / "model.safetensors").string();
  const std::map<std::string, std::string> meta = {{"format", "pt"}};

  // The files of the checkpoint there now (best effort: an unreadable index is left alone).
  std::set<std::string> old_files;
  if (fs::exists(index_path, ec)) {
    try {
      std::ifstream in(index_path);
      json j = json::parse(in);
      for (auto& v : j.at("weight_map")) old_files.insert(v.get<std::string>());
    } catch (const std::exception& e) {
      log::warn("write_checkpoint: ignoring unreadable old index {}: {}", index_path, e.what());
    }
  }
  if (fs::exists(single_path, ec)) old_files.insert("model.safetensors");

  int64_t total = 0;
  for (const auto& kv : tensors) total += stored_bytes(kv.second);

  auto remove_old = [&](const std::set<std::string>& keep) {
    for (const std::string& f : old_files) {
      if (keep.count(f) || f.find('/') != std::string::npos) continue;
      fs::remove(d / f, ec);
      if (ec) log::warn("write_checkpoint: could not remove old file {}: {}", (d / f).string(), ec.message());
    }
  };

  if (total <= max_shard_bytes) {
    write_safetensors(single_path, tensors, meta);
    fs::remove(index_path, ec);  // the index would shadow the new model.safetensors
    ZOFF_CHECK(!ec, "cannot remove the old index ", index_path, ": ", ec.message());
    remove_old({"model.safetensors"});
    AtomicFile::fsync_dir(dir);
    return;
  }

  // Greedy in the given order; a tensor larger than a shard gets a shard of its own.
  std::vector<std::vector<size_t>> shards(1);
  int64_t cur = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    int64_t b = stored_bytes(tensors[i].second);
    if (!shards.back().empty() && cur + b > max_shard_bytes) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(i);
    cur += b;
  }
  const size_t n = shards.size();
  auto shard_name = [&](size_t i, const std::string& infix) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%05zu-of-%05zu", i + 1, n);
    return "model-" + infix + buf + ".safetensors";
  };
  std::string infix;
  for (size_t i = 0; i < n && infix.empty(); ++i)
    if (old_files.count(shard_name(i, ""))) {
      auto ticks = std::chrono::steady_clock::now().time_since_epoch().count();
      char buf[32];
      std::snprintf(buf, sizeof buf, "%08llx-", static_cast<unsigned long long>(ticks) & 0xffffffffull);
      infix = buf;
    }

  json weight_map = json::object();
  std::set<std::string> new_files;
  for (size_t i = 0; i < n; ++i) {
    const std::string name = shard_name(i, infix);
    std::vector<std::pair<std::string, at::Tensor>> part;
    for (size_t k : shards[i]) {
      part.push_back(tensors[k]);
      weight_map[tensors[k].first] = name;
    }
    write_safetensors((d / name).string(), part, meta);
    new_files.insert(name);
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_file_atomic(index_path, index.dump(2) + "\n");
  remove_old(new_files);
  AtomicFile::fsync_dir(dir);
}

}  // namespace zoff
