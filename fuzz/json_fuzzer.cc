// JSON from outside (task inputs, agent outputs) through the conversions the
// fleet does: protobuf Struct and back, canonical form, the output schema
// validator; and text as prompt templates and step references.
#include <cstddef>
#include <cstdint>
#include <string>

#include "codec/json_value.h"
#include "config/expression.h"
#include "config/json_schema.h"
#include "config/prompt_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace agentfleet;
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)PromptTemplate::Parse(text);
  if (IsReference(text)) (void)ParseReference(text);
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  // A schema of the kind agents declare: an object with typed, bounded fields.
  static const JsonSchema* schema = [] {
    auto* s = new JsonSchema;
    s->type = JsonSchema::Type::kObject;
    JsonSchema label;
    label.type = JsonSchema::Type::kString;
    label.enum_values = {"billing", "bug", "other"};
    JsonSchema score;
    score.type = JsonSchema::Type::kNumber;
    score.minimum = 0;
    score.maximum = 1;
    JsonSchema tags;
    tags.type = JsonSchema::Type::kArray;
    tags.max_items = 5;
    tags.items = std::make_shared<JsonSchema>();
    tags.items->type = JsonSchema::Type::kString;
    tags.items->max_length = 20;
    s->properties = {{"label", label}, {"score", score}, {"tags", tags}};
    s->required = {"label"};
    s->additional_properties = false;
    return s;
  }();
  (void)ValidateJson(*schema, json);
  if (json.is_object()) {
    std::string canonical = CanonicalJson(json);
    // Through a protobuf Struct (how inputs and outputs travel) and back:
    // numbers become doubles, so compare the canonical forms of the round
    // trip with itself, not with the original.
    Json back = FromStruct(ToStruct(json));
    if (CanonicalJson(FromStruct(ToStruct(back))) != CanonicalJson(back)) __builtin_trap();
    (void)canonical;
  }
  return 0;
}
