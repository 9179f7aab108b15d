// The JSON Schema subset agents declare for their output: type, properties,
// required, additionalProperties, enum, items, minItems/maxItems,
// minLength/maxLength, minimum/maximum. Workers validate every output with it
// before the output leaves the worker; the simulated provider generates
// outputs that satisfy it.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

struct JsonSchema {
  enum class Type { kAny, kObject, kArray, kString, kNumber, kInteger, kBoolean, kNull };
  Type type = Type::kAny;
  std::map<std::string, JsonSchema> properties;
  std::vector<std::string> required;
  bool additional_properties = true;
  std::vector<nlohmann::json> enum_values;
  std::shared_ptr<JsonSchema> items;
  std::optional<size_t> min_items, max_items, min_length, max_length;
  std::optional<double> minimum, maximum;
};

const char* TypeName(JsonSchema::Type type);

// OK if `value` satisfies `schema`; otherwise InvalidArgument naming the first
// offending place as a path, e.g. "$.findings[2].score: expected number, got string".
[[nodiscard]] absl::Status ValidateJson(const JsonSchema& schema, const nlohmann::json& value);

}  // namespace agentfleet
