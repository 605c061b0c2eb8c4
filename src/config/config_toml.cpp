// TOML helpers for the config layer: type names, TOML <-> JSON, literals that round-trip.
#include "config_toml.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "zoff/error.h"

namespace zoff::config_detail {

const char* toml_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    default: return "nothing";
  }
}

nlohmann::json toml_to_json(const toml::node& n, const std::string& where) {
  switch (n.type()) {
    case toml::node_type::string: return n.as_string()->get();
    case toml::node_type::integer: return n.as_integer()->get();
    case toml::node_type::floating_point: return n.as_floating_point()->get();
    case toml::node_type::boolean: return n.as_boolean()->get();
    case toml::node_type::table: {
      nlohmann::json o = nlohmann::json::object();
      for (auto&& [k, v] : *n.as_table()) o[std::string(k.str())] = toml_to_json(v, where);
      return o;
    }
    case toml::node_type::array: {
      nlohmann::json a = nlohmann::json::array();
      for (auto& v : *n.as_array()) a.push_back(toml_to_json(v, where));
      return a;
    }
    default:
      ZOFF_INPUT_FAIL(where, ": expected a number, string, boolean, array or table, got ",
                      toml_type_name(n));
  }
}

nlohmann::json override_value_to_json(const std::string& text) {
  try {
    toml::table t = toml::parse("v = " + text);
    if (auto* v = t.get("v")) {
      if (v->is_date() || v->is_time() || v->is_date_time()) return text;
      return toml_to_json(*v, "");
    }
  } catch (const toml::parse_error&) {
    // not a TOML literal: a bare word such as llama
  }
  return text;
}

std::string toml_quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += char(c);
        }
    }
  }
  return out + "\"";
}

std::string toml_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  // TOML wants a digit after the point before an exponent: "1.e5" never arises from %g.
  return s;
}

std::string toml_key(const std::string& k) {
  bool bare = !k.empty();
  for (unsigned char c : k)
    if (!(std::isalnum(c) || c == '_' || c == '-')) bare = false;
  return bare ? k : toml_quote(k);
}

std::string json_to_toml(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::string: return toml_quote(j.get<std::string>());
    case nlohmann::json::value_t::boolean: return j.get<bool>() ? "true" : "false";
    case nlohmann::json::value_t::number_integer: return std::to_string(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: return std::to_string(j.get<uint64_t>());
    case nlohmann::json::value_t::number_float: return toml_float(j.get<double>());
    case nlohmann::json::value_t::array: {
      std::string s = "[";
      for (size_t i = 0; i < j.size(); ++i) s += (i ? ", " : "") + json_to_toml(j[i]);
      return s + "]";
    }
    case nlohmann::json::value_t::object: {
      std::string s = "{";
      bool first = true;
      for (auto& [k, v] : j.items()) {
        if (v.is_null()) continue;
        s += (first ? " " : ", ") + toml_key(k) + " = " + json_to_toml(v);
        first = false;
      }
      return s + (first ? "}" : " }");
    }
    default: ZOFF_FAIL("json_to_toml: TOML has no ", j.type_name(), " value");
  }
}

}  // namespace zoff::config_detail
