// Reading and writing safetensors files and HF checkpoint folders (single file or sharded).
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "zoff/dtype.h"

namespace zoff {

// One tensor's entry in a safetensors header. offset/nbytes are relative to the data section.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  int64_t offset = 0;
  int64_t nbytes = 0;
  int64_t numel() const;
};

// Note [Safetensors mapping]
// A SafetensorsFile mmaps the whole file read-only. Views handed out (data(), Checkpoint::view)
// point into the mapping and keep it alive through a shared_ptr, so a zero-copy at::Tensor view
// stays valid after the Checkpoint that made it is gone. The header is validated completely on
// open (JSON, dtypes, shapes vs byte ranges, ranges inside the file, no overlaps), so later reads
// cannot run past the mapping.
class SafetensorsFile {
 public:
  // Throws InputError naming the file (and tensor/field) on any malformed input.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in data-offset order
  const TensorInfo* find(const std::string& name) const;               // nullptr if absent
  const void* data(const TensorInfo& t) const;                         // into the mapping
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  int64_t file_size() const { return size_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  const uint8_t* base_ = nullptr;  // start of the mapping
  int64_t size_ = 0;
  int64_t data_start_ = 0;  // 8 + header length
};

// An HF checkpoint folder: model.safetensors, or shards listed in model.safetensors.index.json.
class Checkpoint {
 public:
  // dir must contain model.safetensors or model.safetensors.index.json (InputError otherwise).
  // The index wins when both exist. `dir` may also name a single .safetensors file.
  static Checkpoint open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  bool has(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  const TensorInfo& info(const std::string& name) const;  // InputError naming dir+tensor if absent
  const std::string& file_of(const std::string& name) const;

  // A CPU tensor sharing the mapping (no copy); dtype as stored (F8_E4M3 comes as uint8).
  at::Tensor view(const std::string& name) const;
  // Checks the stored shape equals `shape` (InputError naming file, tensor, both shapes) and
  // returns a contiguous CPU tensor converted to `dtype` (F8_E4M3 is decoded).
  at::Tensor load(const std::string& name, const std::vector<int64_t>& shape,
                  at::ScalarType dtype) const;
  // Same checks; converts into dst (contiguous, numel == product(shape), any float dtype,
  // CPU memory, e.g. a slice of a pinned block buffer).
  void load_into(const std::string& name, const std::vector<int64_t>& shape, at::Tensor dst) const;
  // Converts elements [begin, begin + dst.numel()) of the flattened stored tensor into dst
  // (contiguous CPU, any shape). No shape check: lets callers split one big tensor over threads.
  void load_range_into(const std::string& name, int64_t begin, at::Tensor dst) const;

 private:
  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index into files_
};

// Writes tensors (any device; copied to CPU) to `path` atomically: a temp file in the same
// folder, fsync, rename, fsync of the folder. A crash never leaves a half-written `path`.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// One tensor with an explicit stored dtype: its bytes must already be in that dtype's layout
// (element size dtype_size(dtype)), e.g. raw e4m3fn bytes held as kByte written as F8_E4M3.
struct RawTensor {
  std::string name;
  at::Tensor data;
  DType dtype;
};
void write_safetensors_raw(const std::string& path, const std::vector<RawTensor>& tensors,
                           const std::map<std::string, std::string>& metadata = {});

// Writes a small file (JSON, text) atomically, like write_safetensors.
void write_file_atomic(const std::string& path, const std::string& contents);

// Writes an HF-layout checkpoint into dir: one model.safetensors when it fits in
// max_shard_bytes, else model-0000i-of-0000n.safetensors + model.safetensors.index.json.
// Each file is written atomically; the index last. See Note [Checkpoint overwrite].
void write_checkpoint(const std::string& dir,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      int64_t max_shard_bytes = int64_t(5) << 30);

// at::ScalarType <-> DType. F8_E4M3 maps to kByte on every LibTorch (Note [F8_E4M3 as bytes]);
// from_scalar_type also takes kFloat8_e4m3fn on LibTorch 2.x.
at::ScalarType to_scalar_type(DType t);
DType from_scalar_type(at::ScalarType t);

}  // namespace zoff
