// The layered config loader: files, presets and --set overrides applied in order onto one
// RunConfig, each value remembering where it came from (for errors and cross-field checks).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "config_schema.h"
#include "zoff/config.h"

namespace zoff::config_detail {

// Where a value was set: a config file (and line) or a --set override.
struct Origin {
  std::string file;      // the file as shown to the user; empty for an override
  int64_t line = 0;
  std::string override;  // the override text "optimizer.lr=1e-5"
  int layer = 0;         // later layers override earlier ones
};

// What a file may hold: a run file holds every section, a preset only its own.
enum class Scope { Run, ModelPreset, PolicyFile };

class Loader {
 public:
  explicit Loader(std::string top) : top_(std::move(top)) {}

  // Loads `shown` (a path as the user sees it, relative to the working directory or absolute).
  // `referrer` names what asked for it ("configs/runs/x.toml: model.preset"), empty for the top.
  void load_file(const std::string& shown, Scope scope, const std::string& referrer);
  // Applies one "key=value" override as a new layer.
  void apply_override(const std::string& text);
  // Resolves the model spec and runs the cross-field checks (config_resolve.cpp).
  RunConfig finish();
  // Cross-field checks of the policy alone (load_policy_file).
  OffloadPolicy finish_policy();

  // "file: key: msg (line N)" or "--set text: key: msg", thrown as InputError.
  [[noreturn]] void fail(const Origin& o, const std::string& key, const std::string& msg) const;
  // The origin of a key, or the top file when the default was never overridden.
  Origin origin_of(const std::string& key) const;

 private:
  void apply_section(const std::string& section, const toml::table& t, const std::string& shown,
                     int layer);
  void apply_spec(const toml::node& n, const std::string& shown, int layer);
  Value value_from_node(const Field& f, const toml::node& n, const Origin& o) const;
  Value value_from_text(const Field& f, const std::string& text, const Origin& o) const;
  // Normalises (choices, paths against base_dir), range-checks and stores the value.
  void assign(const Field& f, Value v, const Origin& o, const std::string& base_dir);
  void check_policy();
  void resolve_model();
  void check_cross_fields();

  std::string top_;
  RunConfig cfg_;
  std::map<std::string, Origin> origin_;  // "optimizer.lr" -> where it was last set
  nlohmann::json spec_ = nlohmann::json::object();
  std::map<std::string, Origin> spec_origin_;
  int layer_ = 0;
  std::vector<std::string> stack_;  // absolute paths of the files being loaded (cycles)
};

}  // namespace zoff::config_detail
