// `agentfleet diff`: two runs of a workflow, step by step, from their
// records (here the golden retry log, and a copy whose last step answered
// differently on another model).
#include "cli/diff.h"

#include "codec/codec.h"
#include "codec/json_value.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/golden_records.h"

namespace agentfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TaskRecords Golden() { return golden::Records("retry_timeout_fanout_routing"); }

// `records` with step `step`'s answer and summary replaced.
TaskRecords Rewritten(TaskRecords records, const std::string& step, const nlohmann::json& output) {
  for (Message& m : records.events) {
    auto e = Decode<v1::WorkEvent>(m.payload, m.headers, SIZE_MAX);
    if (!e.ok() || e->step() != step || !e->has_result()) continue;
    *e->mutable_result()->mutable_output() = ToStruct(output);
    m.payload = Encode(*e, "").payload;
  }
  for (Message& m : records.results) {
    auto r = Decode<v1::TaskResult>(m.payload, m.headers, SIZE_MAX);
    if (!r.ok()) continue;
    for (v1::StepSummary& s : *r->mutable_steps()) {
      if (s.step() != step) continue;
      s.set_model("big");
      s.mutable_usage()->set_output_tokens(s.usage().output_tokens() + 10);
      s.mutable_usage()->set_cost_usd(s.usage().cost_usd() + 0.01);
    }
    r->mutable_usage()->set_cost_usd(r->usage().cost_usd() + 0.01);
    *r->mutable_output() = ToValue(output);
    m.payload = Encode(*r, "").payload;
  }
  return records;
}

TEST(RunDiffTest, ShowsExactlyTheStepThatChangedAndHowItsOutputDid) {
  FleetConfig config;
  TaskRecords a = Golden();
  TaskRecords b = Rewritten(a, "respond", {{"reply", "refund on its way"}});
  auto diff = DiffRuns(config, "golden-retry", a, "golden-retry", b);
  ASSERT_TRUE(diff.ok()) << diff.status();
  ASSERT_EQ(diff->steps.size(), 4u);  // classify, research[0], research[1], respond
  EXPECT_EQ(diff->changed_steps(), 1);
  const StepDiff& respond = diff->steps.back();
  EXPECT_EQ(respond.step, "respond");
  EXPECT_THAT(respond.changed, ElementsAre("model", "output", "tokens", "cost"));
  EXPECT_EQ(respond.output_a, nlohmann::json({{"reply", "refunded"}}));
  EXPECT_EQ(respond.patch, nlohmann::json::parse(R"([{"op":"replace","path":"/reply","value":"refund on its way"}])"));
  // The fanned-out step's outputs are each instance's own.
  EXPECT_EQ(diff->steps[2].step, "research");
  EXPECT_EQ(diff->steps[2].fan_index, 1);
  EXPECT_EQ(diff->steps[2].output_a, nlohmann::json({{"found", "forum"}}));
  EXPECT_TRUE(diff->steps[2].changed.empty());
  std::string text = RunDiffText(*diff);
  EXPECT_THAT(text, HasSubstr("small → big"));
  EXPECT_THAT(text, HasSubstr("1 of 4 steps changed"));
  EXPECT_THAT(text, HasSubstr(R"("path":"/reply")"));
  EXPECT_EQ(nlohmann::json::parse(RunDiffJson(*diff))["changed_steps"], 1);
}

TEST(RunDiffTest, ARunWithoutAResultIsRefused) {
  TaskRecords a = Golden();
  TaskRecords b = a;
  b.results.clear();
  auto diff = DiffRuns(FleetConfig(), "golden-retry", a, "other", b);
  ASSERT_FALSE(diff.ok());
  EXPECT_THAT(diff.status().message(), HasSubstr("task 'other' has no result"));
}

}  // namespace
}  // namespace agentfleet
