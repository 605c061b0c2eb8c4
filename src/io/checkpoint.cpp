// Checkpoint: one HF checkpoint folder (single file or sharded), zero-copy views and converting loads.
#include <torch/version.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "zoff/error.h"
#include "zoff/safetensors.h"

namespace zoff {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ZOFF_INPUT_CHECK(in.good(), "cannot open ", path);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::parse_error& e) {
    ZOFF_INPUT_FAIL(path, ": not valid JSON: ", e.what());
  }
}

// Note [F8_E4M3 decoding]
// e4m3fn (OCP FP8): 1 sign bit, 4 exponent bits (bias 7), 3 mantissa bits, no infinities; only
// S.1111.111 is NaN, so the largest value is 1.75 * 2^8 = 448. Exponent 0 is subnormal:
// m/8 * 2^-6. All 256 values are exact in float, half and bfloat16 (at most 4 significant bits,
// exponents 2^-9 .. 2^8), so decoding straight into any of them loses nothing.
struct F8Table {
  float v[256];
  F8Table() {
    for (int b = 0; b < 256; ++b) {
      int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
      float x;
      if (e == 15 && m == 7) x = std::nanf("");
      else if (e == 0) x = std::ldexp(float(m) / 8.0f, -6);
      else x = std::ldexp(1.0f + float(m) / 8.0f, e - 7);
      v[b] = s ? -x : x;
    }
  }
};
const F8Table& f8_table() {
  static const F8Table t;
  return t;
}

template <typename T>
void decode_f8(const uint8_t* src, int64_t n, T* dst) {
  const float* lut = f8_table().v;
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(lut[src[i]]);
}

// Note [Conversions without ATen threads]
// load_range_into runs on IoPool threads. at::Tensor::copy_ would start an OpenMP team from each
// of them (oversubscribing the cores several times over), so float <-> half/bfloat16 conversions
// are plain loops here; c10::Half and c10::BFloat16 round to nearest even like copy_ does, so
// the bits are the same. Rarer pairs (integers, bool) still go through copy_.
template <typename S, typename D>
void convert(const void* src, int64_t n, void* dst) {
  const S* s = static_cast<const S*>(src);
  D* d = static_cast<D*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = static_cast<D>(static_cast<float>(s[i]));
}

template <typename S>
bool convert_from(const void* src, int64_t n, at::ScalarType to, void* dst) {
  switch (to) {
    case at::kFloat: convert<S, float>(src, n, dst); return true;
    case at::kHalf: convert<S, at::Half>(src, n, dst); return true;
    case at::kBFloat16: convert<S, at::BFloat16>(src, n, dst); return true;
    default: return false;
  }
}

// Float-to-float conversions by hand; false if (from, to) is not such a pair.
bool convert_floats(const void* src, int64_t n, at::ScalarType from, at::ScalarType to, void* dst) {
  switch (from) {
    case at::kFloat: return convert_from<float>(src, n, to, dst);
    case at::kHalf: return convert_from<at::Half>(src, n, to, dst);
    case at::kBFloat16: return convert_from<at::BFloat16>(src, n, to, dst);
    default: return false;
  }
}

bool is_f8_bytes(at::ScalarType t) {
#if TORCH_VERSION_MAJOR >= 2
  if (t == at::kFloat8_e4m3fn) return true;
#endif
  return t == at::kByte;
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& dir) {
  Checkpoint c;
  c.dir_ = dir;
  auto add = [&](const std::shared_ptr<SafetensorsFile>& f) {
    c.files_.push_back(f);
    for (const TensorInfo& t : f->tensors()) c.where_[t.name] = c.files_.size() - 1;
  };
  std::error_code ec;
  if (fs::is_regular_file(dir, ec)) {
    add(SafetensorsFile::open(dir));
    return c;
  }
  ZOFF_INPUT_CHECK(fs::is_directory(dir, ec), "checkpoint ", dir, " does not exist");
  const std::string index = (fs::path(dir) / "model.safetensors.index.json").string();
  const std::string single = (fs::path(dir) / "model.safetensors").string();
  if (!fs::exists(index, ec)) {
    ZOFF_INPUT_CHECK(fs::exists(single, ec), "checkpoint folder ", dir,
                     " has neither model.safetensors nor model.safetensors.index.json");
    add(SafetensorsFile::open(single));
    return c;
  }

  json j = read_json_file(index);
  ZOFF_INPUT_CHECK(j.is_object() && j.contains("weight_map"), index,
                   ": field 'weight_map' is missing");
  const json& wm = j["weight_map"];
  ZOFF_INPUT_CHECK(wm.is_object(), index, ": field 'weight_map' must be an object, got ",
                   wm.type_name());
  std::map<std::string, size_t> shard_of_file;
  for (auto it = wm.begin(); it != wm.end(); ++it) {
    ZOFF_INPUT_CHECK(it->is_string(), index, ": field 'weight_map.", it.key(),
                     "' must be a shard file name, got ", it->dump());
    const std::string shard = it->get<std::string>();
    auto f = shard_of_file.find(shard);
    if (f == shard_of_file.end()) {
      const std::string p = (fs::path(dir) / shard).string();
      ZOFF_INPUT_CHECK(fs::exists(p, ec), index, " lists shard '", shard, "' (for tensor '",
                       it.key(), "'), but ", p, " does not exist");
      c.files_.push_back(SafetensorsFile::open(p));
      f = shard_of_file.emplace(shard, c.files_.size() - 1).first;
    }
    ZOFF_INPUT_CHECK(c.files_[f->second]->find(it.key()) != nullptr, index, " maps tensor '",
                     it.key(), "' to ", c.files_[f->second]->path(), ", which has no such tensor");
    c.where_[it.key()] = f->second;
  }
  return c;
}

bool Checkpoint::has(const std::string& name) const { return where_.count(name) != 0; }

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  auto it = where_.find(name);
  ZOFF_INPUT_CHECK(it != where_.end(), "checkpoint ", dir_, " has no tensor '", name, "'");
  return *files_[it->second]->find(name);
}

const std::string& Checkpoint::file_of(const std::string& name) const {
  auto it = where_.find(name);
  ZOFF_INPUT_CHECK(it != where_.end(), "checkpoint ", dir_, " has no tensor '", name, "'");
  return files_[it->second]->path();
}

at::Tensor Checkpoint::view(const std::string& name) const {
  const TensorInfo& t = info(name);
  std::shared_ptr<SafetensorsFile> keep = files_[where_.at(name)];
  // The mapping is read-only: the view must never be written to (that would SIGSEGV).
  void* p = const_cast<void*>(keep->data(t));
  return at::from_blob(
      p, t.shape, [keep](void*) mutable { keep.reset(); },
      at::TensorOptions().dtype(to_scalar_type(t.dtype)));
}

static void check_shape(const Checkpoint& c, const TensorInfo& t,
                        const std::vector<int64_t>& shape) {
  ZOFF_INPUT_CHECK(t.shape == shape, c.file_of(t.name), ": tensor '", t.name, "' has shape ",
                   shape_str(t.shape), ", expected ", shape_str(shape));
}

at::Tensor Checkpoint::load(const std::string& name, const std::vector<int64_t>& shape,
                            at::ScalarType dtype) const {
  check_shape(*this, info(name), shape);
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(dtype));
  load_range_into(name, 0, out);
  return out;
}

void Checkpoint::load_into(const std::string& name, const std::vector<int64_t>& shape,
                           at::Tensor dst) const {
  const TensorInfo& t = info(name);
  check_shape(*this, t, shape);
  ZOFF_CHECK(dst.numel() == t.numel(), "load_into '", name, "': destination has ", dst.numel(),
             " elements, the tensor ", t.numel());
  load_range_into(name, 0, dst);
}

void Checkpoint::load_range_into(const std::string& name, int64_t begin, at::Tensor dst) const {
  const TensorInfo& t = info(name);
  const int64_t n = dst.numel();
  ZOFF_CHECK(dst.device().is_cpu() && dst.is_contiguous(), "load of '", name,
             "': the destination must be a contiguous CPU tensor");
  ZOFF_CHECK(begin >= 0 && begin + n <= t.numel(), "load of '", name, "': elements [", begin, ", ",
             begin + n, ") are outside its ", t.numel());
  if (n == 0) return;
  const int64_t es = dtype_size(t.dtype);
  const uint8_t* src = static_cast<const uint8_t*>(files_[where_.at(name)]->data(t)) + begin * es;
  const at::ScalarType to = dst.scalar_type();

  if (t.dtype == DType::F8_E4M3) {
    if (is_f8_bytes(to)) {
      std::memcpy(dst.data_ptr(), src, static_cast<size_t>(n));
    } else if (to == at::kFloat) {
      decode_f8(src, n, dst.data_ptr<float>());
    } else if (to == at::kHalf) {
      decode_f8(src, n, dst.data_ptr<at::Half>());
    } else if (to == at::kBFloat16) {
      decode_f8(src, n, dst.data_ptr<at::BFloat16>());
    } else if (to == at::kDouble) {
      decode_f8(src, n, dst.data_ptr<double>());
    } else {
      at::Tensor tmp = at::empty({n}, at::kFloat);
      decode_f8(src, n, tmp.data_ptr<float>());
      dst.view({-1}).copy_(tmp);
    }
    return;
  }
  const at::ScalarType from = to_scalar_type(t.dtype);
  if (from == to) {
    std::memcpy(dst.data_ptr(), src, static_cast<size_t>(n * es));
    return;
  }
  if (convert_floats(src, n, from, to, dst.data_ptr())) return;
  at::Tensor s = at::from_blob(const_cast<uint8_t*>(src), {n}, at::TensorOptions().dtype(from));
  dst.view({-1}).copy_(s);
}

}  // namespace zoff
