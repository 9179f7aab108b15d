#include "config/json_schema.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;

const char* JsonTypeName(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "integer";
    case Json::value_t::number_float: return "number";
    case Json::value_t::string: return "string";
    case Json::value_t::array: return "array";
    case Json::value_t::object: return "object";
    default: return "unknown";
  }
}

bool IsWhole(const Json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return true;
  if (!v.is_number_float()) return false;
  double d = v.get<double>();
  return std::isfinite(d) && std::floor(d) == d;
}

bool TypeMatches(JsonSchema::Type t, const Json& v) {
  switch (t) {
    case JsonSchema::Type::kAny: return true;
    case JsonSchema::Type::kObject: return v.is_object();
    case JsonSchema::Type::kArray: return v.is_array();
    case JsonSchema::Type::kString: return v.is_string();
    case JsonSchema::Type::kNumber: return v.is_number();
    case JsonSchema::Type::kInteger: return IsWhole(v);
    case JsonSchema::Type::kBoolean: return v.is_boolean();
    case JsonSchema::Type::kNull: return v.is_null();
  }
  return false;
}

absl::Status Fail(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

absl::Status Check(const JsonSchema& s, const Json& v, const std::string& path) {
  if (!TypeMatches(s.type, v)) {
    return Fail(path, absl::StrCat("expected ", TypeName(s.type), ", got ", JsonTypeName(v)));
  }
  if (!s.enum_values.empty()) {
    bool found = false;
    for (const auto& e : s.enum_values) found = found || e == v;
    if (!found) {
      std::vector<std::string> names;
      for (const auto& e : s.enum_values) names.push_back(e.dump());
      return Fail(path, absl::StrCat("expected one of [", absl::StrJoin(names, ", "), "], got ", v.dump()));
    }
  }
  if (v.is_string()) {
    size_t n = v.get_ref<const std::string&>().size();
    if (s.min_length && n < *s.min_length) return Fail(path, absl::StrCat("shorter than ", *s.min_length));
    if (s.max_length && n > *s.max_length) return Fail(path, absl::StrCat("longer than ", *s.max_length));
  }
  if (v.is_number()) {
    double d = v.get<double>();
    if (s.minimum && d < *s.minimum) return Fail(path, absl::StrCat("below the minimum ", *s.minimum));
    if (s.maximum && d > *s.maximum) return Fail(path, absl::StrCat("above the maximum ", *s.maximum));
  }
  if (v.is_array()) {
    if (s.min_items && v.size() < *s.min_items) return Fail(path, absl::StrCat("fewer than ", *s.min_items, " items"));
    if (s.max_items && v.size() > *s.max_items) return Fail(path, absl::StrCat("more than ", *s.max_items, " items"));
    if (s.items) {
      for (size_t i = 0; i < v.size(); ++i) {
        auto st = Check(*s.items, v[i], absl::StrCat(path, "[", i, "]"));
        if (!st.ok()) return st;
      }
    }
  }
  if (v.is_object()) {
    for (const auto& r : s.required) {
      if (!v.contains(r)) return Fail(path, absl::StrCat("missing required property '", r, "'"));
    }
    for (const auto& [k, e] : v.items()) {
      auto it = s.properties.find(k);
      if (it == s.properties.end()) {
        if (!s.additional_properties) return Fail(path, absl::StrCat("unexpected property '", k, "'"));
        continue;
      }
      auto st = Check(it->second, e, absl::StrCat(path, ".", k));
      if (!st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

}  // namespace

const char* TypeName(JsonSchema::Type type) {
  switch (type) {
    case JsonSchema::Type::kAny: return "any";
    case JsonSchema::Type::kObject: return "object";
    case JsonSchema::Type::kArray: return "array";
    case JsonSchema::Type::kString: return "string";
    case JsonSchema::Type::kNumber: return "number";
    case JsonSchema::Type::kInteger: return "integer";
    case JsonSchema::Type::kBoolean: return "boolean";
    case JsonSchema::Type::kNull: return "null";
  }
  return "any";
}

absl::Status ValidateJson(const JsonSchema& schema, const nlohmann::json& value) {
  return Check(schema, value, "$");
}

}  // namespace agentfleet
