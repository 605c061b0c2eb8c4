// SafetensorsFile: mmap a .safetensors file and validate its header completely on open.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <torch/version.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "zoff/error.h"
#include "zoff/safetensors.h"

namespace zoff {

using nlohmann::json;

// The Rust reference implementation refuses headers above 100 MB; so do we, before parsing.
static constexpr int64_t kMaxHeaderBytes = 100'000'000;

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::~SafetensorsFile() {
  if (base_ != nullptr) munmap(const_cast<uint8_t*>(base_), static_cast<size_t>(size_));
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const void* SafetensorsFile::data(const TensorInfo& t) const {
  return base_ + data_start_ + t.offset;
}

namespace {

// Reads a non-negative JSON integer; fails with a message naming the file, tensor and field.
int64_t header_uint(const json& v, const std::string& path, const std::string& tensor,
                    const char* field) {
  ZOFF_INPUT_CHECK(v.is_number_integer() && (v.is_number_unsigned() || v.get<int64_t>() >= 0),
                   path, ": tensor '", tensor, "': field '", field,
                   "' must hold non-negative integers, got ", v.dump());
  ZOFF_INPUT_CHECK(!v.is_number_unsigned() || v.get<uint64_t>() <= uint64_t(INT64_MAX), path,
                   ": tensor '", tensor, "': field '", field, "' value ", v.dump(), " is too large");
  return v.get<int64_t>();
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

TensorInfo parse_entry(const std::string& name, const json& e, const std::string& path) {
  ZOFF_INPUT_CHECK(!name.empty(), path, ": header has a tensor with an empty name");
  ZOFF_INPUT_CHECK(e.is_object(), path, ": tensor '", name, "': entry must be a JSON object, got ",
                   e.type_name());
  TensorInfo t;
  t.name = name;

  auto dt = e.find("dtype");
  ZOFF_INPUT_CHECK(dt != e.end(), path, ": tensor '", name, "': field 'dtype' is missing");
  ZOFF_INPUT_CHECK(dt->is_string(), path, ": tensor '", name, "': field 'dtype' must be a string");
  ZOFF_INPUT_CHECK(parse_dtype(dt->get<std::string>(), &t.dtype), path, ": tensor '", name,
                   "': field 'dtype' is '", dt->get<std::string>(),
                   "', which zoff does not support (supported: F32, F16, BF16, F8_E4M3, I64, I32, "
                   "U8, BOOL)");

  auto sh = e.find("shape");
  ZOFF_INPUT_CHECK(sh != e.end(), path, ": tensor '", name, "': field 'shape' is missing");
  ZOFF_INPUT_CHECK(sh->is_array(), path, ": tensor '", name, "': field 'shape' must be an array");
  int64_t numel = 1;
  bool overflow = false;
  for (const json& d : *sh) {
    int64_t v = header_uint(d, path, name, "shape");
    t.shape.push_back(v);
    overflow |= __builtin_mul_overflow(numel, v, &numel);
  }

  auto off = e.find("data_offsets");
  ZOFF_INPUT_CHECK(off != e.end(), path, ": tensor '", name, "': field 'data_offsets' is missing");
  ZOFF_INPUT_CHECK(off->is_array() && off->size() == 2, path, ": tensor '", name,
                   "': field 'data_offsets' must be an array [begin, end], got ", off->dump());
  int64_t begin = header_uint((*off)[0], path, name, "data_offsets");
  int64_t end = header_uint((*off)[1], path, name, "data_offsets");
  ZOFF_INPUT_CHECK(begin <= end, path, ": tensor '", name, "': field 'data_offsets' [", begin, ", ",
                   end, "] has begin > end");
  t.offset = begin;
  t.nbytes = end - begin;

  int64_t expect = 0;
  overflow |= __builtin_mul_overflow(numel, dtype_size(t.dtype), &expect);
  ZOFF_INPUT_CHECK(!overflow && expect == t.nbytes, path, ": tensor '", name, "': 'shape' ",
                   shape_str(t.shape), " of ", dtype_name(t.dtype), " needs ",
                   overflow ? std::string("more than 2^63") : std::to_string(expect),
                   " bytes but 'data_offsets' [", begin, ", ", end, "] span ", t.nbytes);
  return t;
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ZOFF_INPUT_CHECK(fd >= 0, "cannot open safetensors file ", path, ": ", std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    ZOFF_INPUT_FAIL(path, ": not a regular file");
  }
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->size_ = st.st_size;
  if (f->size_ < 8) {
    ::close(fd);
    ZOFF_INPUT_FAIL(path, ": file is ", f->size_,
                    " bytes, shorter than the 8-byte safetensors header length");
  }
  void* p = mmap(nullptr, static_cast<size_t>(f->size_), PROT_READ, MAP_SHARED, fd, 0);
  int mmap_errno = errno;
  ::close(fd);
  ZOFF_INPUT_CHECK(p != MAP_FAILED, "cannot mmap ", path, ": ", std::strerror(mmap_errno));
  f->base_ = static_cast<const uint8_t*>(p);

  // The header length is a little-endian u64 (every machine zoff runs on is little-endian).
  uint64_t n = 0;
  std::memcpy(&n, f->base_, 8);
  ZOFF_INPUT_CHECK(n <= uint64_t(f->size_ - 8), path, ": header length ", n,
                   " runs past the end of the file (", f->size_, " bytes)");
  ZOFF_INPUT_CHECK(int64_t(n) <= kMaxHeaderBytes, path, ": header length ", n,
                   " exceeds the 100 MB limit");
  f->data_start_ = 8 + int64_t(n);

  json h;
  try {
    const char* b = reinterpret_cast<const char*>(f->base_ + 8);
    h = json::parse(b, b + n);
  } catch (const json::parse_error& e) {
    ZOFF_INPUT_FAIL(path, ": header is not valid JSON: ", e.what());
  }
  ZOFF_INPUT_CHECK(h.is_object(), path, ": header must be a JSON object, got ", h.type_name());

  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") {
      ZOFF_INPUT_CHECK(it->is_object(), path, ": field '__metadata__' must be an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        ZOFF_INPUT_CHECK(m->is_string(), path, ": field '__metadata__.", m.key(),
                         "' must be a string, got ", m->type_name());
        f->metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    f->tensors_.push_back(parse_entry(it.key(), *it, path));
  }

  std::sort(f->tensors_.begin(), f->tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.offset != b.offset ? a.offset < b.offset : a.nbytes < b.nbytes;
  });
  const int64_t data_bytes = f->size_ - f->data_start_;
  const TensorInfo* last = nullptr;  // the non-empty tensor reaching furthest so far
  for (size_t i = 0; i < f->tensors_.size(); ++i) {
    const TensorInfo& t = f->tensors_[i];
    ZOFF_INPUT_CHECK(t.offset + t.nbytes <= data_bytes, path, ": tensor '", t.name,
                     "': 'data_offsets' [", t.offset, ", ", t.offset + t.nbytes,
                     "] run past the end of the data section (", data_bytes, " bytes)");
    if (t.nbytes > 0) {
      ZOFF_INPUT_CHECK(last == nullptr || t.offset >= last->offset + last->nbytes, path,
                       ": tensors '", last ? last->name : "", "' and '", t.name,
                       "' overlap: 'data_offsets' [", last ? last->offset : 0, ", ",
                       last ? last->offset + last->nbytes : 0, "] and [", t.offset, ", ",
                       t.offset + t.nbytes, "]");
      last = &t;
    }
    f->index_[t.name] = i;
  }
  return f;
}

// Note [F8_E4M3 as bytes]
// F8_E4M3 maps to kByte on every LibTorch, also on 2.x where at::kFloat8_e4m3fn exists: views and
// loads then behave the same on the 1.13 dev machine and the 2.11 GPU machine, and our fp8
// kernels take raw e4m3fn bytes anyway. from_scalar_type accepts kFloat8_e4m3fn on 2.x so such
// tensors can still be written. A kByte tensor is written as U8; to store raw e4m3 bytes as
// F8_E4M3 use write_safetensors_raw.
at::ScalarType to_scalar_type(DType t) {
  switch (t) {
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    case DType::F8_E4M3: return at::kByte;
    case DType::I64: return at::kLong;
    case DType::I32: return at::kInt;
    case DType::U8: return at::kByte;
    case DType::BOOL: return at::kBool;
  }
  ZOFF_FAIL("bad DType ", int(t));
}

DType from_scalar_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return DType::F32;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    case at::kLong: return DType::I64;
    case at::kInt: return DType::I32;
    case at::kByte: return DType::U8;
    case at::kBool: return DType::BOOL;
#if TORCH_VERSION_MAJOR >= 2
    case at::kFloat8_e4m3fn: return DType::F8_E4M3;
#endif
    default: break;
  }
  ZOFF_FAIL("tensors of dtype ", c10::toString(t), " cannot be stored in safetensors by zoff");
}

}  // namespace zoff
