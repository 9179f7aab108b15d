// Planning a fork (`agentfleet fork`) of a recorded task: the golden retry
// log (classify, research[0], research[1], respond on the cheap tier).
#include "cli/fork.h"

#include "absl/strings/str_replace.h"
#include "codec/json_value.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/golden_records.h"

namespace agentfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using golden::kReplayDir;
using golden::ReadFile;

class ForkPlanTest : public ::testing::Test {
 protected:
  void SetUp() override { records_ = golden::Records("retry_timeout_fanout_routing"); }
  absl::StatusOr<ForkPlan> Plan(const std::string& from, const std::vector<std::string>& sets = {},
                                const std::string& yaml_edit_from = "", const std::string& yaml_edit_to = "") {
    std::string yaml = ReadFile(kReplayDir + "fleet.yaml");
    if (!yaml_edit_from.empty()) {
      EXPECT_THAT(yaml, HasSubstr(yaml_edit_from));
      yaml = absl::StrReplaceAll(yaml, {{yaml_edit_from, yaml_edit_to}});
    }
    auto config = LoadConfigString(yaml, "fleet.yaml");
    EXPECT_TRUE(config.ok()) << config.status();
    std::vector<v1::ModelOverride> overrides;
    for (const std::string& s : sets) {
      auto m = ParseModelOverride(s);
      EXPECT_TRUE(m.ok()) << m.status();
      overrides.push_back(*m);
    }
    return PlanFork(*config, "golden-retry", records_, from, overrides, "", "golden-retry-fork-1");
  }
  TaskRecords records_;
};

TEST_F(ForkPlanTest, ReusesEveryInstanceBeforeTheStepAndRunsTheRestOnTheNewModel) {
  auto plan = Plan("respond", {"agents.responder.models.cheap=big"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->reused, ElementsAre("classify", "research[0]", "research[1]"));
  EXPECT_THAT(plan->rerun, ElementsAre("respond"));
  const v1::TaskSubmission& s = plan->submission;
  EXPECT_EQ(s.task_id(), "golden-retry-fork-1");
  EXPECT_EQ(s.workflow(), "support");
  EXPECT_EQ(s.labels().at("forked_from"), "golden-retry");
  EXPECT_EQ(s.fork().task_id(), "golden-retry");
  EXPECT_EQ(s.fork().from_step(), "respond");
  ASSERT_EQ(s.fork().reused_size(), 3);
  EXPECT_EQ(FromValue(s.fork().reused(0).output()), nlohmann::json({{"topic", "billing"}, {"tier", "cheap"}}));
  EXPECT_EQ(s.fork().reused(0).model(), "small");
  EXPECT_EQ(FromValue(s.fork().reused(2).output()), nlohmann::json({{"found", "forum"}}));
  ASSERT_EQ(s.fork().models_size(), 1);
  EXPECT_EQ(s.fork().models(0).model(), "big");
}

TEST_F(ForkPlanTest, FromTheFirstStepNothingIsReused) {
  auto plan = Plan("classify");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->reused.empty());
  EXPECT_EQ(plan->rerun.size(), 4u);
}

TEST_F(ForkPlanTest, RefusedWhenAnEarlierStepWouldRunOnAnotherModel) {
  auto plan = Plan("respond", {"agents.researcher.models.default=big"});
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(plan.status().message(),
              HasSubstr("step research[0] ran on model 'small', which agent 'researcher' no longer runs"));
}

TEST_F(ForkPlanTest, RefusedWhenAnEarlierStepsInputWouldChange) {
  auto plan = Plan("respond", {}, "input: {source: $item, topic: $steps.classify.topic}",
                   "input: {source: $item, topic: $steps.classify.topic, strict: true}");
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.status().message(), HasSubstr("dispatch research[0] attempt 1 would change (input)"));
}

TEST_F(ForkPlanTest, AnUnknownStepOrABadSetIsABadRequest) {
  auto plan = Plan("publish");
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(plan.status().message(), HasSubstr("no step 'publish' (its steps: classify, research, respond)"));
  EXPECT_THAT(ParseModelOverride("agents.writer.default=big").status().message(),
              HasSubstr("expected agents.AGENT.models.TIER=MODEL"));
  auto config = LoadConfigString(ReadFile(kReplayDir + "fleet.yaml"), "fleet.yaml");
  ASSERT_TRUE(config.ok());
  EXPECT_THAT(WithOverrides(*config, {*ParseModelOverride("agents.writer.models.default=gpt-9")}).status().message(),
              HasSubstr("the model has no price"));
}

}  // namespace
}  // namespace agentfleet
