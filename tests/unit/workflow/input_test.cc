#include "workflow/input.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

TEST(InputTest, ResolvesTaskStepAndItemReferences) {
  Json task = {{"ticket", {{"subject", "hi"}, {"id", 7}}}};
  Json classify = {{"category", "billing"}};
  Json item = "forum";
  InputContext ctx;
  ctx.task_input = &task;
  ctx.step_output = [&](const std::string& s) -> const Json* { return s == "classify" ? &classify : nullptr; };
  ctx.item = &item;
  Json tmpl = {{"subject", "$task.ticket.subject"},
               {"whole", "$task.ticket"},
               {"cat", "$steps.classify.category"},
               {"source", "$item"},
               {"nested", {{"list", {"$item", "literal", "$$task"}}}},
               {"n", 3}};
  auto built = BuildInput(tmpl, ctx);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(*built, (Json{{"subject", "hi"},
                          {"whole", {{"subject", "hi"}, {"id", 7}}},
                          {"cat", "billing"},
                          {"source", "forum"},
                          {"nested", {{"list", {"forum", "literal", "$task"}}}},
                          {"n", 3}}));
}

TEST(InputTest, MissingFieldIsAnErrorNamingThePath) {
  Json task = {{"ticket", {{"subject", "hi"}}}};
  InputContext ctx;
  ctx.task_input = &task;
  auto built = BuildInput(Json{{"x", "$task.ticket.body"}}, ctx);
  ASSERT_FALSE(built.ok());
  EXPECT_THAT(built.status().message(), HasSubstr("$task.ticket: no field 'body'"));
  auto step = BuildInput(Json{{"x", "$steps.nope"}}, ctx);
  EXPECT_THAT(step.status().message(), HasSubstr("$steps.nope has no value here"));
}

}  // namespace
}  // namespace agentfleet
