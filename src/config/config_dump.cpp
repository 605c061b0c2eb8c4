// dump_resolved_config: the resolved RunConfig as self-contained TOML that loads back to itself.
#include <sstream>

#include <nlohmann/json.hpp>

#include "config_schema.h"
#include "config_toml.h"
#include "zoff/config.h"

namespace zoff {

namespace {

using config_detail::Field;
using config_detail::Kind;
using config_detail::Value;

// Byte sizes stay readable when they are whole GiB/MiB/KiB, else exact integers.
std::string bytes_literal(int64_t b) {
  static const struct { int64_t m; const char* u; } units[] = {
      {int64_t(1) << 40, "TiB"}, {int64_t(1) << 30, "GiB"}, {int64_t(1) << 20, "MiB"}, {int64_t(1) << 10, "KiB"}};
  for (auto& u : units)
    if (b > 0 && b % u.m == 0) return "\"" + std::to_string(b / u.m) + u.u + "\"";
  return std::to_string(b);
}

std::string literal(const Field& f, const Value& v) {
  if (f.kind == Kind::Bytes) return bytes_literal(std::get<int64_t>(v));
  if (auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&v)) return config_detail::toml_float(*d);
  return config_detail::toml_quote(std::get<std::string>(v));
}

}  // namespace

// Note [Resolved config dumps]
// The dump is what the run actually used: presets expanded (a preset edited later cannot change
// what a saved run meant), paths absolute (it loads from any folder), every key written. With a
// checkpoint the architecture is not repeated: it is the checkpoint's config.json. The preset the
// model came from is kept as a comment only, so a reload has an empty model.preset_file.
std::string dump_resolved_config(const RunConfig& c) {
  std::ostringstream os;
  os << "# zoff resolved config" << (c.source.empty() ? "" : " of " + c.source) << "\n"
     << "# Self-contained: presets expanded, paths absolute.\n";
  if (!c.model.preset_file.empty()) os << "# model preset: " << c.model.preset_file << "\n";
  for (auto& section : config_detail::section_names()) {
    os << "\n[" << section << "]\n";
    for (auto& f : config_detail::fields()) {
      if (f.section != section) continue;
      Value v = f.get(c);
      if (f.kind == Kind::Path && std::get<std::string>(v).empty()) continue;
      os << f.key << " = " << literal(f, v) << "\n";
    }
    if (section == "model" && c.model.checkpoint.empty()) {
      os << "\n[model.spec]\n";
      nlohmann::json j = model_spec_to_json(c.model.spec);
      for (auto& [k, v] : j.items())
        if (!v.is_null()) os << config_detail::toml_key(k) << " = " << config_detail::json_to_toml(v) << "\n";
    }
  }
  return os.str();
}

}  // namespace zoff
