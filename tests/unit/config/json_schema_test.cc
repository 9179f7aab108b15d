#include "config/json_schema.h"

#include "config/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

JsonSchema SchemaFromYaml(const std::string& schema_yaml) {
  std::string text = "providers: {p: {type: simulated}}\npricing: {m: {input_per_mtok: 0, output_per_mtok: 0}}\n"
                     "agents:\n  a:\n    provider: p\n    models: {default: m}\n    output_schema: " +
                     schema_yaml + "\nworkflows: {w: {steps: [{id: s, agent: a}]}}\n";
  auto config = LoadConfigString(text, "t.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  return *config->agents.at("a").output_schema;
}

TEST(JsonSchemaTest, AcceptsConformingObject) {
  JsonSchema s = SchemaFromYaml(
      "{type: object, required: [label, score], properties: {label: {type: string, enum: [a, b]}, "
      "score: {type: number, minimum: 0, maximum: 1}, tags: {type: array, items: {type: string}, maxItems: 2}}}");
  EXPECT_TRUE(ValidateJson(s, Json{{"label", "a"}, {"score", 0.5}, {"tags", {"x"}}}).ok());
}

TEST(JsonSchemaTest, ReportsPathOfFirstViolation) {
  JsonSchema s = SchemaFromYaml(
      "{type: object, required: [label], properties: {label: {type: string, enum: [a, b]}, "
      "items: {type: array, items: {type: object, properties: {n: {type: integer}}}}}}");
  EXPECT_THAT(ValidateJson(s, Json{{"items", Json::array()}}).message(), HasSubstr("$: missing required property 'label'"));
  EXPECT_THAT(ValidateJson(s, Json{{"label", "c"}}).message(), HasSubstr("$.label: expected one of [\"a\", \"b\"]"));
  EXPECT_THAT(ValidateJson(s, Json{{"label", "a"}, {"items", {{{"n", 1}}, {{"n", "two"}}}}}).message(),
              HasSubstr("$.items[1].n: expected integer, got string"));
  EXPECT_THAT(ValidateJson(s, Json::array()).message(), HasSubstr("$: expected object, got array"));
}

TEST(JsonSchemaTest, AdditionalPropertiesAndBounds) {
  JsonSchema s = SchemaFromYaml(
      "{type: object, additionalProperties: false, properties: {n: {type: integer, minimum: 1}, "
      "s: {type: string, maxLength: 3}, l: {type: array, minItems: 1}}}");
  EXPECT_THAT(ValidateJson(s, Json{{"x", 1}}).message(), HasSubstr("unexpected property 'x'"));
  EXPECT_THAT(ValidateJson(s, Json{{"n", 0}}).message(), HasSubstr("$.n: below the minimum 1"));
  EXPECT_THAT(ValidateJson(s, Json{{"s", "long"}}).message(), HasSubstr("$.s: longer than 3"));
  EXPECT_THAT(ValidateJson(s, Json{{"l", Json::array()}}).message(), HasSubstr("$.l: fewer than 1 items"));
  EXPECT_TRUE(ValidateJson(s, Json{{"n", 2.0}}).ok());  // a whole number is an integer
}

}  // namespace
}  // namespace agentfleet
