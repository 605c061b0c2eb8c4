// Reading config files and --set overrides into a RunConfig: presets, type checks, unknown keys.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "config_loader.h"
#include "config_toml.h"
#include "zoff/error.h"

namespace fs = std::filesystem;

namespace zoff {
namespace config_detail {

// Note [Layers]
// A config is built in layers, each overriding what came before:
//   1. the `base` run file a run file names at top level (recursively), then
//   2. each `[model] preset` / `[policy] preset` the file names (recursively; a preset may name
//      a preset of its own), then
//   3. the file's own keys, then
//   4. each --set override, in order (`--set policy.preset=path` loads that preset as a layer).
// Every value remembers its Origin (file and line, or the override text, and its layer number),
// so an error names the file the bad value is in, not the run file that included it, and the
// checks in config_resolve.cpp know which of two conflicting keys was set last.
// Relative paths inside a file (presets, base, checkpoint, data paths) resolve against that
// file's folder, so a preset can be included from anywhere; --set paths resolve against the
// working directory. Cycles (a includes b includes a) are errors.

namespace {

constexpr size_t kMaxDepth = 16;

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// `value` as named inside `file`: relative paths are relative to the file's folder.
std::string relative_to(const std::string& file, const std::string& value) {
  fs::path p(value);
  if (p.is_absolute()) return p.lexically_normal().string();
  fs::path dir = fs::path(file).parent_path();
  std::string s = (dir / p).lexically_normal().string();
  return s.empty() ? "." : s;
}

std::string absolute_path(const std::string& p) { return fs::absolute(p).lexically_normal().string(); }

// " (did you mean 'opt-13b.toml'?)" when a .toml next to the missing file has a close name.
std::string sibling_hint(const fs::path& missing) {
  std::error_code ec;
  fs::path dir = missing.parent_path();
  if (!fs::is_directory(dir, ec)) return "";
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".toml") names.push_back(e.path().filename().string());
  return did_you_mean(missing.filename().string(), names);
}

const char* scope_name(Scope s) {
  switch (s) {
    case Scope::Run: return "run file";
    case Scope::ModelPreset: return "model preset";
    case Scope::PolicyFile: return "policy file";
  }
  return "?";
}

bool scope_allows(Scope s, const std::string& section) {
  return s == Scope::Run || (s == Scope::ModelPreset && section == "model") ||
         (s == Scope::PolicyFile && section == "policy");
}

// For a key in the wrong place ("lr" at top level or under [train]), the section it belongs to.
std::string home_of(const std::string& key, const std::string& not_in) {
  for (auto& f : fields())
    if (f.key == key && f.section != not_in) return f.path();
  return "";
}

int64_t line_of(const toml::node& n) { return int64_t(n.source().begin.line); }

}  // namespace

void Loader::fail(const Origin& o, const std::string& key, const std::string& msg) const {
  if (!o.override.empty()) ZOFF_INPUT_FAIL("--set ", o.override, ": ", key, ": ", msg);
  ZOFF_INPUT_FAIL(o.file, ": ", key, ": ", msg, o.line > 0 ? " (line " + std::to_string(o.line) + ")" : "");
}

Origin Loader::origin_of(const std::string& key) const {
  auto it = origin_.find(key);
  if (it != origin_.end()) return it->second;
  Origin o;
  o.file = top_;
  return o;
}

void Loader::load_file(const std::string& shown, Scope scope, const std::string& referrer) {
  std::string abs = absolute_path(shown);
  std::error_code ec;
  if (!fs::is_regular_file(abs, ec)) {
    std::string what = fs::exists(abs, ec) ? "is not a file" : "no such file";
    if (referrer.empty()) ZOFF_INPUT_FAIL(shown, ": ", what, " (tried ", abs, ")");
    ZOFF_INPUT_FAIL(referrer, ": ", what, " '", shown, "' (tried ", abs, ")", sibling_hint(abs));
  }
  if (std::find(stack_.begin(), stack_.end(), abs) != stack_.end() || stack_.size() >= kMaxDepth) {
    std::string chain;
    for (auto& s : stack_) chain += s + " -> ";
    ZOFF_INPUT_FAIL(referrer, ": preset cycle: ", chain, abs);
  }

  toml::table tbl;
  try {
    tbl = toml::parse_file(abs);
  } catch (const toml::parse_error& e) {
    ZOFF_INPUT_FAIL(shown, ":", e.source().begin.line, ":", e.source().begin.column,
                    ": TOML syntax error: ", e.description());
  }
  stack_.push_back(abs);

  // Top-level keys: sections this kind of file may hold (and `base` in a run file).
  std::vector<std::string> allowed = section_names();
  if (scope == Scope::Run) allowed.push_back("base");
  for (auto&& [k, v] : tbl) {
    std::string key(k.str());
    Origin o{shown, line_of(v), "", 0};
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string home = v.is_table() ? "" : home_of(key, "");
      fail(o, key, "unknown key" + (home.empty() ? did_you_mean(key, allowed) : " (did you mean '" + home + "'?)"));
    }
    if (key == "base") continue;
    if (!scope_allows(scope, key))
      fail(o, key, std::string("a ") + scope_name(scope) + " holds only [" +
                       (scope == Scope::ModelPreset ? "model" : "policy") + "]" +
                       (referrer.empty() ? "" : " (loaded by " + referrer + ")"));
    if (!v.is_table())
      fail(o, key, std::string("expected a table ([") + key + "]), got " + toml_type_name(v));
  }

  // Layers below this file first (Note [Layers]).
  if (auto* base = tbl.get("base")) {
    Origin o{shown, line_of(*base), "", 0};
    if (!base->is_string()) fail(o, "base", std::string("expected a path string, got ") + toml_type_name(*base));
    load_file(relative_to(shown, base->as_string()->get()), Scope::Run, shown + ": base");
  }
  for (auto& section : section_names()) {
    auto* t = tbl.get_as<toml::table>(section);
    if (!t || !section_has_preset(section)) continue;
    if (auto* p = t->get("preset")) {
      Origin o{shown, line_of(*p), "", 0};
      if (!p->is_string()) fail(o, section + ".preset", std::string("expected a path string, got ") + toml_type_name(*p));
      load_file(relative_to(shown, p->as_string()->get()),
                section == "model" ? Scope::ModelPreset : Scope::PolicyFile,
                shown + ": " + section + ".preset");
    }
  }

  int layer = ++layer_;
  for (auto& section : section_names())
    if (auto* t = tbl.get_as<toml::table>(section)) apply_section(section, *t, shown, layer);

  if (scope == Scope::ModelPreset) cfg_.model.preset_file = abs;
  // Note [Policy names]: a policy file is named after itself unless it says otherwise; an
  // inline [policy] table in a run file that neither names nor inherits a name is "custom".
  if (auto* t = tbl.get_as<toml::table>("policy"); t && !t->contains("name")) {
    if (scope == Scope::PolicyFile) {
      cfg_.policy.name = fs::path(abs).stem().string();
      origin_["policy.name"] = Origin{shown, 0, "", layer};
    } else if (!origin_.count("policy.name") && !t->empty()) {
      cfg_.policy.name = "custom";
    }
  }
  stack_.pop_back();
}

void Loader::apply_section(const std::string& section, const toml::table& t, const std::string& shown,
                           int layer) {
  for (auto&& [k, v] : t) {
    std::string key(k.str());
    Origin o{shown, line_of(v), "", layer};
    if (key == "preset" && section_has_preset(section)) continue;  // loaded as its own layer
    if (section == "model" && key == "spec") {
      apply_spec(v, shown, layer);
      continue;
    }
    const Field* f = find_field(section, key);
    if (!f) {
      std::string home = home_of(key, section);
      fail(o, section + "." + key,
           "unknown key" + (home.empty() ? did_you_mean(key, section_keys(section))
                                         : " (did you mean '" + home + "'?)"));
    }
    assign(*f, value_from_node(*f, v, o), o, fs::path(shown).parent_path().string());
  }
}

void Loader::apply_spec(const toml::node& n, const std::string& shown, int layer) {
  Origin o{shown, line_of(n), "", layer};
  if (!n.is_table()) fail(o, "model.spec", std::string("expected a table ([model.spec]), got ") + toml_type_name(n));
  for (auto&& [k, v] : *n.as_table()) {
    std::string key(k.str());
    Origin ko{shown, line_of(v), "", layer};
    std::string path = "model.spec." + key;
    if (std::find(spec_keys().begin(), spec_keys().end(), key) == spec_keys().end())
      fail(ko, path, "unknown key" + did_you_mean(key, spec_keys()));
    std::string where = shown + ": " + path;
    spec_[key] = toml_to_json(v, where);
    spec_origin_[key] = ko;
  }
}

Value Loader::value_from_node(const Field& f, const toml::node& n, const Origin& o) const {
  switch (f.kind) {
    case Kind::Bool:
      if (n.is_boolean()) return n.as_boolean()->get();
      break;
    case Kind::Int:
      if (n.is_integer()) return n.as_integer()->get();
      break;
    case Kind::Float:
      if (n.is_floating_point()) return n.as_floating_point()->get();
      if (n.is_integer()) return double(n.as_integer()->get());
      break;
    case Kind::String:
    case Kind::Path:
    case Kind::Choice:
      if (n.is_string()) return n.as_string()->get();
      break;
    case Kind::Bytes:
      if (n.is_integer()) return n.as_integer()->get();
      if (n.is_string()) {
        try {
          return parse_byte_size(n.as_string()->get(), f.path());
        } catch (const InputError& e) {
          fail(o, f.path(), std::string(e.what()).substr(f.path().size() + 2));
        }
      }
      break;
  }
  fail(o, f.path(), "expected " + kind_expectation(f) + ", got " + toml_type_name(n));
}

Value Loader::value_from_text(const Field& f, const std::string& text, const Origin& o) const {
  const std::string bad = "expected " + kind_expectation(f) + ", got '" + text + "'";
  switch (f.kind) {
    case Kind::Bool:
      if (text == "true" || text == "1") return true;
      if (text == "false" || text == "0") return false;
      fail(o, f.path(), bad);
    case Kind::Int: {
      char* end = nullptr;
      errno = 0;
      long long v = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || errno == ERANGE) fail(o, f.path(), bad);
      return int64_t(v);
    }
    case Kind::Float: {
      char* end = nullptr;
      double v = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0') fail(o, f.path(), bad);
      return v;
    }
    case Kind::Bytes:
      try {
        return parse_byte_size(text, f.path());
      } catch (const InputError& e) {
        fail(o, f.path(), std::string(e.what()).substr(f.path().size() + 2));
      }
    case Kind::String:
    case Kind::Path:
    case Kind::Choice:
      if (text.size() >= 2 && (text.front() == '"' || text.front() == '\'') && text.back() == text.front())
        return text.substr(1, text.size() - 2);
      return text;
  }
  fail(o, f.path(), bad);
}

void Loader::assign(const Field& f, Value v, const Origin& o, const std::string& base_dir) {
  if (f.kind == Kind::Choice) {
    std::string canon;
    const std::string& s = std::get<std::string>(v);
    if (!normalize_choice(f, s, &canon)) fail(o, f.path(), bad_choice_message(f, s));
    v = canon;
  }
  if (f.kind == Kind::Path && !std::get<std::string>(v).empty()) {
    fs::path p(std::get<std::string>(v));
    v = absolute_path((p.is_absolute() ? p : fs::path(base_dir) / p).string());
  }
  std::string why = f.check(v);
  if (!why.empty()) fail(o, f.path(), why);
  f.set(cfg_, v);
  origin_[f.path()] = o;
}

void Loader::apply_override(const std::string& text) {
  Origin o;
  o.override = text;
  o.layer = ++layer_;
  size_t eq = text.find('=');
  if (eq == std::string::npos)
    ZOFF_INPUT_FAIL("--set ", text, ": expected key=value (e.g. optimizer.lr=1e-5)");
  std::string key = trim(text.substr(0, eq)), value = trim(text.substr(eq + 1));
  std::vector<std::string> parts;
  for (size_t b = 0;;) {
    size_t d = key.find('.', b);
    parts.push_back(key.substr(b, d - b));
    if (d == std::string::npos) break;
    b = d + 1;
  }
  const auto& sections = section_names();
  if (std::find(sections.begin(), sections.end(), parts[0]) == sections.end()) {
    std::string home = parts.size() == 1 ? home_of(parts[0], "") : "";
    fail(o, key, "unknown key" + (home.empty() ? did_you_mean(parts[0], sections) : " (did you mean '" + home + "'?)"));
  }
  const std::string& section = parts[0];
  if (parts.size() == 1) fail(o, key, "name a key inside [" + section + "], e.g. " + section_keys(section)[0]);
  if (section == "model" && parts[1] == "spec") {
    if (parts.size() != 3) fail(o, key, "expected model.spec.<key> (e.g. model.spec.num_hidden_layers=2)");
    if (std::find(spec_keys().begin(), spec_keys().end(), parts[2]) == spec_keys().end())
      fail(o, key, "unknown key" + did_you_mean(parts[2], spec_keys()));
    spec_[parts[2]] = override_value_to_json(value);
    spec_origin_[parts[2]] = o;
    return;
  }
  std::string leaf = key.substr(section.size() + 1);
  if (leaf == "preset" && section_has_preset(section)) {
    load_file(value, section == "model" ? Scope::ModelPreset : Scope::PolicyFile, "--set " + text);
    return;
  }
  const Field* f = parts.size() == 2 ? find_field(section, leaf) : nullptr;
  if (!f) fail(o, key, "unknown key" + did_you_mean(leaf, section_keys(section)));
  assign(*f, value_from_text(*f, value, o), o, fs::current_path().string());
}

}  // namespace config_detail

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  config_detail::Loader loader(path);
  loader.load_file(path, config_detail::Scope::Run, "");
  for (auto& o : overrides) loader.apply_override(o);
  RunConfig cfg = loader.finish();
  cfg.source = path;
  return cfg;
}

OffloadPolicy load_policy_file(const std::string& path) {
  config_detail::Loader loader(path);
  loader.load_file(path, config_detail::Scope::PolicyFile, "");
  return loader.finish_policy();
}

}  // namespace zoff
