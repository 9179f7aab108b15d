// Graceful degradation in the TaskEngine: an agent's fallback (another agent
// or another model tier) takes over when the agent cannot serve an item, an
// optional step may fail, and such a task ends PARTIAL, explaining each
// degraded step — never with fabricated output.
#include "codec/json_value.h"
#include "common/clock.h"
#include "common/error_codes.h"
#include "coordinator/task_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine_test_util.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

constexpr char kConfig[] = R"(
providers: {sim: {type: simulated}}
pricing: {big: {input_per_mtok: 3, output_per_mtok: 15}, small: {input_per_mtok: 1, output_per_mtok: 2}}
agents:
  primary: {provider: sim, models: {default: big}, max_attempts: 2, fallback: {agent: backup},
            retry: {initial_backoff: 1s}}
  backup: {provider: sim, models: {default: small}, max_attempts: 1}
  tiered: {provider: sim, models: {default: big, cheap: small}, max_attempts: 1, fallback: {model_tier: cheap}}
workflows:
  w:
    steps:
      - {id: main, agent: primary, input: {q: $task.q}}
      - {id: extra, agent: backup, optional: true, input: {q: $task.q}}
      - {id: final, agent: tiered, input: {m: $steps.main, e: $steps.extra.detail}}
)";

class DegradationTest : public engine_test::EngineTest {
 protected:
  DegradationTest() : EngineTest(kConfig) {}

  Outbox Submit() {
    Outbox out;
    EXPECT_TRUE(engine_->Submit(engine_test::Submission("t1", "w", {{"q", "why"}}), "", 0, &out).ok());
    return out;
  }
  Outbox Answer(const v1::WorkItem& item, Json output, TaskEngine* engine = nullptr) {
    return engine_test::Answer(engine ? *engine : *engine_, config_, item, std::move(output));
  }
  Outbox Fail(const v1::WorkItem& item, const char* code, bool retryable) {
    return engine_test::Fail(*engine_, item, code, retryable);
  }
  static v1::WorkItem ItemFor(const Outbox& out, const std::string& step) { return engine_test::ItemFor(out, step); }

  static const v1::StepSummary& Summary(const v1::TaskResult& r, const std::string& step) {
    for (const auto& s : r.steps()) {
      if (s.step() == step) return s;
    }
    static v1::StepSummary none;
    ADD_FAILURE() << "no summary for " << step;
    return none;
  }

};

TEST_F(DegradationTest, AFallbackAndAFailedOptionalStepEndPartialWithExplanations) {
  Outbox out = Submit();
  v1::WorkItem main = ItemFor(out, "main");
  v1::WorkItem extra = ItemFor(out, "extra");
  // primary fails both its attempts: its fallback agent takes the item at once.
  Fail(main, kProviderUnavailable, true);
  clock_.Advance(absl::Seconds(2));
  Outbox retry;
  engine_->Tick(&retry);
  ASSERT_EQ(retry.work.size(), 1u);
  Outbox fallback = Fail(retry.work[0].item, kProviderUnavailable, true);
  ASSERT_EQ(fallback.work.size(), 1u);
  const v1::WorkItem& backup = fallback.work[0].item;
  EXPECT_EQ(backup.agent(), "backup");
  EXPECT_EQ(fallback.work[0].topic_agent, "backup");
  EXPECT_EQ(backup.attempt(), 3);
  EXPECT_EQ(FromStruct(backup.input()), (Json{{"q", "why"}}));
  EXPECT_EQ(engine_->stats().fallbacks, 1);
  Answer(backup, {{"answer", 42}});
  // The optional step fails for good: the task goes on without it.
  Outbox final_step = Fail(extra, kProviderRejected, false);
  v1::WorkItem final_item = ItemFor(final_step, "final");
  EXPECT_EQ(FromStruct(final_item.input()), (Json{{"m", {{"answer", 42}}}, {"e", nullptr}}));
  Outbox end = Answer(final_item, {{"reply", "ok"}});
  ASSERT_EQ(end.results.size(), 1u);
  const v1::TaskResult& r = end.results[0].result;
  EXPECT_EQ(r.status(), v1::TASK_STATUS_PARTIAL);
  EXPECT_EQ(FromValue(r.output()), (Json{{"reply", "ok"}}));
  EXPECT_EQ(Summary(r, "main").agent(), "backup");
  EXPECT_THAT(Summary(r, "main").explanation(), HasSubstr("served by the fallback agent 'backup'"));
  EXPECT_THAT(Summary(r, "main").explanation(), HasSubstr("agent 'primary' failed (provider_unavailable"));
  EXPECT_EQ(Summary(r, "extra").status(), v1::STEP_STATUS_FAILED);
  EXPECT_THAT(Summary(r, "extra").explanation(), HasSubstr("optional step 'extra' failed"));
  EXPECT_TRUE(Summary(r, "final").explanation().empty());
}

TEST_F(DegradationTest, AFallbackTierServesTheSameAgentOnAnotherModel) {
  Outbox out = Submit();
  Answer(ItemFor(out, "main"), {{"a", 1}});
  Outbox final_step = Answer(ItemFor(out, "extra"), {{"detail", "d"}});
  Outbox fallback = Fail(ItemFor(final_step, "final"), kTimeout, true);
  ASSERT_EQ(fallback.work.size(), 1u);
  EXPECT_EQ(fallback.work[0].item.agent(), "tiered");
  EXPECT_EQ(fallback.work[0].item.model_tier(), "cheap");
  // The fallback moves with the task to another replica.
  v1::TaskState wire = engine_test::SnapshotOverTheWire(*engine_);
  TaskEngine other(&config_, &clock_);
  other.Restore("t1", wire, 0);
  Outbox end = Answer(fallback.work[0].item, {{"reply", "cheap"}}, &other);
  ASSERT_EQ(end.results.size(), 1u);
  EXPECT_EQ(end.results[0].result.status(), v1::TASK_STATUS_PARTIAL);
  EXPECT_THAT(Summary(end.results[0].result, "final").explanation(), HasSubstr("fallback model tier 'cheap'"));
}

TEST_F(DegradationTest, WhenTheFallbackFailsTooARequiredStepFailsTheTask) {
  Outbox out = Submit();
  Outbox fallback = Fail(ItemFor(out, "main"), kProviderRejected, false);  // not retryable: fallback at once
  ASSERT_EQ(fallback.work.size(), 1u);
  Outbox end = Fail(fallback.work[0].item, kProviderUnavailable, true);  // backup has one attempt
  ASSERT_EQ(end.results.size(), 1u);
  EXPECT_EQ(end.results[0].result.status(), v1::TASK_STATUS_FAILED);
  EXPECT_FALSE(end.results[0].result.has_output()) << "no fabricated output";
  EXPECT_THAT(end.results[0].result.error().message(), HasSubstr("step 'main' failed after 2 attempt(s)"));
}

TEST(DegradationConfigTest, FallbacksAreChecked) {
  std::string text = kConfig;
  text.replace(text.find("fallback: {agent: backup}"), 25, "fallback: {agent: nobody}");
  auto c = LoadConfigString(text, "degrade.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("agents.primary.fallback.agent: unknown agent 'nobody'"));
  text = kConfig;
  text.replace(text.find("fallback: {model_tier: cheap}"), 29, "fallback: {model_tier: gold}");
  c = LoadConfigString(text, "degrade.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("agents.tiered.fallback.model_tier: agent 'tiered' has no model tier 'gold'"));
}

}  // namespace
}  // namespace agentfleet
