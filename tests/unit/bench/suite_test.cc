// The fleet config the bench writes, and its check of the features part's
// model calls (a result cache that hit made cached4's per-call figures wrong
// until the check found it).
#include "bench/suite.h"

#include "config/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet {
namespace {

TEST(BenchSuiteTest, TheBenchConfigLoadsWithEveryFeatureWorkflowAndItsSignals) {
  auto config = LoadConfigString(BenchConfig("bench.test.", "at_least_once", ""), "bench.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  for (const FeatureWorkflow& w : kFeatureWorkflows) {
    EXPECT_NE(config->FindWorkflow(w.name), nullptr) << w.name;
  }
  const WorkflowConfig* asked = config->FindWorkflow("asked4");
  ASSERT_NE(asked, nullptr);
  ASSERT_EQ(asked->steps.size(), 4u);
  ASSERT_TRUE(asked->steps[1].signals.needs_info.has_value());
  EXPECT_EQ(asked->steps[1].signals.needs_info->agent, "echo");
  EXPECT_GT(config->providers.at(config->agents.at(asked->steps[1].agent).provider).needs_info_rate, 0);
  const WorkflowConfig* rescoped = config->FindWorkflow("rescoped4");
  ASSERT_NE(rescoped, nullptr);
  EXPECT_EQ(rescoped->steps[1].signals.rescope_planner, "s2");
  EXPECT_GT(config->providers.at(config->agents.at(rescoped->steps[1].agent).provider).rescope_rate, 0);
  const WorkflowConfig* acted = config->FindWorkflow("acted4");
  ASSERT_NE(acted, nullptr);
  ASSERT_EQ(acted->steps.size(), 5u);
  EXPECT_TRUE(acted->steps[2].action);
  EXPECT_EQ(acted->steps[2].agent, "effect");
}

TEST(BenchSuiteTest, Acted4sActionGoesWhereTheBenchsToolServerListens) {
  auto config = LoadConfigString(
      BenchConfig("bench.test.", "at_least_once", "", "", false, "http://127.0.0.1:43117/effect"), "bench.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->agents.count("effect"), 1u);
  ASSERT_NE(config->agents.at("effect").action, nullptr);
  EXPECT_EQ(config->agents.at("effect").action->url, "http://127.0.0.1:43117/effect");
}

const FeatureWorkflow& Feature(const std::string& name) {
  for (const FeatureWorkflow& w : kFeatureWorkflows) {
    if (name == w.name) return w;
  }
  ADD_FAILURE() << "no feature workflow " << name;
  return kFeatureWorkflows[0];
}

TEST(BenchSuiteTest, AFeatureRunWhoseResultsCountOtherCallsIsRefusedNamingIt) {
  // What the cached4 of 2026-12-02 counted: 1.5 of its 4 calls per task hit.
  absl::Status hit = CheckFeatureCalls(Feature("cached4"), 100, 250);
  EXPECT_FALSE(hit.ok());
  EXPECT_THAT(hit.message(), ::testing::HasSubstr("cached4: 250 model calls for 100 tasks, expected 4 each"));
  EXPECT_FALSE(CheckFeatureCalls(Feature("asked4"), 100, 400).ok()) << "the question was never asked";
  EXPECT_TRUE(CheckFeatureCalls(Feature("asked4"), 100, 600).ok());
  EXPECT_TRUE(CheckFeatureCalls(Feature("rescoped4"), 100, 500).ok());
  EXPECT_TRUE(CheckFeatureCalls(Feature("child4"), 100, 200).ok()) << "a child workflow's calls are in its own result";
}

TEST(BenchSuiteTest, AnActionRunThatLostOrDoubledAnEffectIsRefused) {
  EXPECT_TRUE(CheckFeatureEffects(Feature("acted4"), 100, 100).ok());
  absl::Status lost = CheckFeatureEffects(Feature("acted4"), 100, 99);
  EXPECT_FALSE(lost.ok());
  EXPECT_THAT(lost.message(), ::testing::HasSubstr("acted4: 99 side effects for 100 tasks, expected 1 each"));
  EXPECT_FALSE(CheckFeatureEffects(Feature("acted4"), 100, 101).ok()) << "one applied under two keys";
  EXPECT_TRUE(CheckFeatureEffects(Feature("chain4"), 100, 0).ok());
  EXPECT_FALSE(CheckFeatureEffects(Feature("chain4"), 100, 1).ok()) << "chain4 has no action";
}

}  // namespace
}  // namespace agentfleet
