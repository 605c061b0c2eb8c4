// OffloadPolicy helpers: names and byte-size parsing.
#include "zoff/policy.h"

#include <cctype>
#include <cmath>
#include <cstdio>

#include "zoff/error.h"

namespace zoff {

const char* write_back_name(WriteBack w) {
  switch (w) {
    case WriteBack::Auto: return "auto";
    case WriteBack::Dense: return "dense";
    case WriteBack::Delta: return "delta";
  }
  return "?";
}

bool uses_delta_write_back(const OffloadPolicy& p) {
  return p.offload && p.update_site == UpdateSite::Gpu && p.write_back != WriteBack::Dense &&
         p.storage_dtype != DType::F32 &&
         (p.transfer == TransferFormat::Same || (p.transfer == TransferFormat::BF16 && p.storage_dtype == DType::BF16) ||
          (p.transfer == TransferFormat::F16 && p.storage_dtype == DType::F16) || fp8_gpu_site(p) || split_gpu_site(p));
}

bool fp8_gpu_site(const OffloadPolicy& p) {
  return p.offload && p.update_site == UpdateSite::Gpu && p.transfer == TransferFormat::FP8 &&
         p.storage_dtype == DType::BF16;
}

bool split_gpu_site(const OffloadPolicy& p) {
  return p.offload && p.update_site == UpdateSite::Gpu && p.transfer == TransferFormat::BF16Split &&
         p.storage_dtype == DType::BF16;
}

const char* update_site_name(UpdateSite s) {
  switch (s) {
    case UpdateSite::Gpu: return "gpu";
    case UpdateSite::Cpu: return "cpu";
    case UpdateSite::Deferred: return "deferred";
  }
  return "?";
}

const char* transfer_format_name(TransferFormat f) {
  switch (f) {
    case TransferFormat::Same: return "same";
    case TransferFormat::BF16: return "bf16";
    case TransferFormat::F16: return "fp16";
    case TransferFormat::FP8: return "fp8";
    case TransferFormat::BF16Split: return "bf16-split";
    case TransferFormat::Auto: return "auto";
  }
  return "?";
}

int64_t parse_byte_size(const std::string& s, const std::string& what) {
  size_t i = 0;
  while (i < s.size() && (std::isdigit(uint8_t(s[i])) || s[i] == '.')) ++i;
  ZOFF_INPUT_CHECK(i > 0, what, ": '", s, "' is not a byte size (expected e.g. 12GiB, 500MiB, 1.5GB)");
  double v = 0;
  try {
    v = std::stod(s.substr(0, i));
  } catch (...) {
    ZOFF_INPUT_FAIL(what, ": '", s, "' is not a byte size (expected e.g. 12GiB, 500MiB, 1.5GB)");
  }
  std::string unit = s.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  double mult = 0;
  static const struct { const char* u; double m; } units[] = {
      {"", 1},          {"B", 1},          {"KiB", 1024.0},    {"MiB", 1048576.0},
      {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}, {"KB", 1e3}, {"MB", 1e6},
      {"GB", 1e9},      {"TB", 1e12},      {"K", 1024.0},      {"M", 1048576.0},
      {"G", 1073741824.0}};
  for (auto& u : units)
    if (unit == u.u) mult = u.m;
  ZOFF_INPUT_CHECK(mult > 0, what, ": unknown unit '", unit, "' in '", s,
                   "' (expected B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)");
  return int64_t(std::llround(v * mult));
}

std::string format_bytes(int64_t b) {
  char buf[64];
  double v = double(b);
  if (std::fabs(v) >= 1073741824.0)
    std::snprintf(buf, sizeof buf, "%.2f GiB", v / 1073741824.0);
  else if (std::fabs(v) >= 1048576.0)
    std::snprintf(buf, sizeof buf, "%.2f MiB", v / 1048576.0);
  else if (std::fabs(v) >= 1024.0)
    std::snprintf(buf, sizeof buf, "%.2f KiB", v / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%lld B", (long long)b);
  return buf;
}

}  // namespace zoff
