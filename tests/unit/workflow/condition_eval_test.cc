// Evaluating `when:` conditions (workflow/condition_eval.h) on task data.
#include "workflow/condition_eval.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;

class ConditionEvalTest : public ::testing::Test {
 protected:
  absl::StatusOr<bool> Eval(absl::string_view text) {
    auto c = ParseCondition(text);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return c.status();
    InputContext ctx;
    ctx.task_input = &task_;
    ctx.step_output = [this](const std::string& step) -> const Json* {
      auto it = steps_.find(step);
      return it == steps_.end() ? nullptr : &it->second;
    };
    ctx.step_failed = [](const std::string&) { return false; };
    return EvaluateCondition(**c, ctx);
  }
  bool True(absl::string_view text) {
    auto v = Eval(text);
    EXPECT_TRUE(v.ok()) << text << ": " << v.status();
    return v.ok() && *v;
  }

  Json task_ = Json::parse(R"({"region": "eu", "n": 3, "vip": true, "tags": ["a", "b"], "none": null})");
  std::map<std::string, Json> steps_ = {
      {"classify", Json::parse(R"({"intent": "billing", "confidence": 0.92, "complexity": "high"})")}};
};

TEST_F(ConditionEvalTest, ComparisonsOnTaskAndStepData) {
  EXPECT_TRUE(True("$steps.classify.intent == 'billing'"));
  EXPECT_FALSE(True("$steps.classify.intent != 'billing'"));
  EXPECT_TRUE(True("$steps.classify.confidence >= 0.9 and $task.n < 4"));
  EXPECT_TRUE(True("$task.n == 3.0"));  // numbers compare as numbers
  EXPECT_TRUE(True("$task.region in ['eu', 'uk']"));
  EXPECT_TRUE(True("'b' in $task.tags"));
  EXPECT_TRUE(True("'c' not in $task.tags"));
  EXPECT_TRUE(True("$task.vip"));
  EXPECT_TRUE(True("not $task.vip or $task.region > 'a'"));
}

TEST_F(ConditionEvalTest, MissingFieldsAndNullsReadAsNull) {
  EXPECT_FALSE(True("exists($task.customer.email)"));
  EXPECT_FALSE(True("exists($task.none)"));
  EXPECT_TRUE(True("exists($steps.classify.intent)"));
  EXPECT_FALSE(True("exists($steps.not_run_yet.x)"));
  EXPECT_TRUE(True("$task.customer.email == null"));
  EXPECT_FALSE(True("$task.missing"));  // null as a condition is false
}

TEST_F(ConditionEvalTest, DifferentTypesAreNeitherEqualNorOrdered) {
  EXPECT_FALSE(True("$task.n == '3'"));
  EXPECT_TRUE(True("$task.n != '3'"));
  EXPECT_FALSE(True("$task.region < 5"));
  EXPECT_FALSE(True("$task.region >= 5"));
  EXPECT_FALSE(True("'a' in $task.region"));  // not a list
}

TEST_F(ConditionEvalTest, AValueThatIsNotTrueOrFalseIsAnErrorNamingIt) {
  auto v = Eval("$steps.classify.intent and $task.vip");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), "$steps.classify.intent is string, not true or false");
}

}  // namespace
}  // namespace agentfleet
