// TOML helpers for the config layer: node type names, TOML <-> JSON for [model.spec], and writing
// TOML literals that read back to the same value.
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

namespace zoff::config_detail {

// "string", "integer", "float", "boolean", "table", "array", "date", ...
const char* toml_type_name(const toml::node& n);
// A TOML value as JSON (tables -> objects, arrays -> arrays). Dates and times throw InputError
// with `where` in the message.
nlohmann::json toml_to_json(const toml::node& n, const std::string& where);
// A --set value for a free-form key (model.spec.*): read as a TOML value when it is one
// (1e6 -> float, true -> boolean, [1, 2] -> array, "x" -> string), otherwise as a bare string.
nlohmann::json override_value_to_json(const std::string& text);
// TOML literal text for a JSON value: scalars, arrays, inline tables. Nulls must be filtered out
// by the caller (TOML has none); throws Error on one.
std::string json_to_toml(const nlohmann::json& j);
// A basic TOML string with escapes: "a\"b".
std::string toml_quote(const std::string& s);
// The shortest decimal that reads back to exactly `v`, always with a '.' or exponent ("1.0").
std::string toml_float(double v);
// A key as written in TOML: bare when it only holds A-Za-z0-9_-, else quoted.
std::string toml_key(const std::string& k);

}  // namespace zoff::config_detail
