// The config schema: one table of fields (section, key, type, range, accessor) that loading, --set
// overrides, validation and dumping all read, so they cannot drift apart.
#pragma once

#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "zoff/config.h"

namespace zoff::config_detail {

// Note [One schema table]
// Each key a user may write is one Field below. Loading a TOML file, parsing a --set override and
// dumping the resolved config all go through the same Field: its kind decides how a TOML node or
// an override string becomes a Value, its check decides the range, its set/get move the Value in
// and out of RunConfig. Adding a key is one entry in config_schema.cpp plus a line in
// docs/config.md. Two tables are handled outside the schema: `<section>.preset` (composition, see
// Note [Layers] in config_load.cpp) and `model.spec` (HF-style keys, see kSpecKeys).

using Value = std::variant<bool, int64_t, double, std::string>;

enum class Kind {
  Bool,
  Int,     // TOML integer
  Float,   // TOML float or integer
  String,  // free text
  Path,    // string, resolved against the folder of the file that names it
  Bytes,   // "12GiB" or an integer number of bytes
  Choice,  // one of `choices` (case-insensitive; `aliases` map other spellings to a choice)
};

struct Field {
  std::string section;
  std::string key;
  Kind kind = Kind::String;
  std::vector<std::string> choices;
  std::vector<std::pair<std::string, std::string>> aliases;  // (alias, canonical choice)
  std::function<std::string(const Value&)> check;            // "" when fine, else the reason
  std::function<void(RunConfig&, const Value&)> set;
  std::function<Value(const RunConfig&)> get;

  std::string path() const { return section + "." + key; }
};

// Every field, sections in the order model, policy, optimizer, data, train.
const std::vector<Field>& fields();
const Field* find_field(const std::string& section, const std::string& key);
const std::vector<std::string>& section_names();
bool section_has_preset(const std::string& section);  // model, policy
// Keys accepted in [model.spec] (HF config.json spellings).
const std::vector<std::string>& spec_keys();
// The keys of a section a user may write: its fields plus preset (and spec for model).
std::vector<std::string> section_keys(const std::string& section);

// What a kind expects, for "expected X, got Y" messages: "an integer", "a number", ...
std::string kind_expectation(const Field& f);
// Maps a Choice spelling to its canonical choice; returns false when it matches none.
bool normalize_choice(const Field& f, const std::string& in, std::string* out);
// "unknown value 'x' (expected one of: a, b, c; did you mean 'b'?)"
std::string bad_choice_message(const Field& f, const std::string& in);

// The closest candidate within edit distance 2 (case-insensitive), or "" when none is that close.
std::string closest(const std::string& word, const std::vector<std::string>& candidates);
// " (did you mean 'x'?)" or "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace zoff::config_detail
