// Dynamic fan-out: an agent's output asks for sub-steps, the coordinator runs
// them within the step's limits, and a later step receives all their outputs.
#include "codec/json_value.h"
#include "common/clock.h"
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
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  planner: {provider: sim, models: {default: m}, max_attempts: 2, retry: {initial_backoff: 1s, jitter: 0}}
  researcher: {provider: sim, models: {default: m}}
  writer: {provider: sim, models: {default: m}}
workflows:
  w:
    steps:
      - id: plan
        agent: planner
        input: {q: $task.q}
        spawn: {field: queries, agents: [researcher], max: 3}
      - id: reduce
        agent: writer
        input: {plan: $steps.plan.summary, found: $steps.plan.results}
)";

class SpawnTest : public engine_test::EngineTest {
 protected:
  SpawnTest() : EngineTest(kConfig) {}
  Outbox Submit(const v1::Budget& budget = {}) {
    v1::TaskSubmission s = engine_test::Submission("t1", "w", {{"q", "compare plans"}});
    *s.mutable_budget() = budget;
    Outbox out;
    EXPECT_TRUE(engine_->Submit(s, "", 0, &out).ok());
    return out;
  }
  Outbox Answer(const v1::WorkItem& item, Json output, TaskEngine* engine = nullptr) {
    return engine_test::Answer(engine ? *engine : *engine_, config_, item, std::move(output));
  }
  static Json Plan(int n, const std::string& agent = "researcher") {
    Json queries = Json::array();
    for (int i = 0; i < n; ++i) queries.push_back({{"agent", agent}, {"input", {{"query", i}}}});
    return {{"summary", "two angles"}, {"queries", queries}};
  }
};

TEST_F(SpawnTest, TheSubStepsRunInParallelAndTheReducerGetsAllTheirOutputs) {
  Outbox out = Submit();
  ASSERT_EQ(out.work.size(), 1u);
  Outbox subs = Answer(out.work[0].item, Plan(2));
  ASSERT_EQ(subs.work.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(subs.work[i].topic_agent, "researcher");
    EXPECT_EQ(subs.work[i].item.step(), "plan");
    EXPECT_EQ(subs.work[i].item.fan_index(), i);
    EXPECT_EQ(FromStruct(subs.work[i].item.input()), (Json{{"query", i}}));
  }
  EXPECT_TRUE(Answer(subs.work[1].item, {{"found", "b"}}).empty());
  Outbox reduce = Answer(subs.work[0].item, {{"found", "a"}});
  ASSERT_EQ(reduce.work.size(), 1u);
  EXPECT_EQ(FromStruct(reduce.work[0].item.input()),
            (Json{{"plan", "two angles"}, {"found", {{{"found", "a"}}, {{"found", "b"}}}}}));
  Outbox end = Answer(reduce.work[0].item, {{"report", "done"}});
  ASSERT_EQ(end.results.size(), 1u);
  const v1::TaskResult& r = end.results[0].result;
  EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED);
  ASSERT_EQ(r.steps_size(), 4);  // plan, its two sub-steps, reduce
  EXPECT_EQ(r.steps(1).agent(), "researcher");
  EXPECT_EQ(r.steps(1).fan_index(), 0);
  EXPECT_EQ(r.usage().calls(), 4);
  EXPECT_EQ(engine_->stats().spawned, 1);
}

TEST_F(SpawnTest, APlanOutsideTheLimitsIsRetriedThenFailsTheTask) {
  Outbox out = Submit();
  Outbox first = Answer(out.work[0].item, Plan(4));  // at most 3
  EXPECT_TRUE(first.work.empty());
  clock_.Advance(absl::Seconds(1));
  Outbox retry;
  engine_->Tick(&retry);
  ASSERT_EQ(retry.work.size(), 1u);
  EXPECT_EQ(retry.work[0].item.attempt(), 2);
  Outbox end = Answer(retry.work[0].item, Plan(1, "writer"));  // not an allowed agent
  ASSERT_EQ(end.results.size(), 1u);
  EXPECT_EQ(end.results[0].result.status(), v1::TASK_STATUS_FAILED);
  EXPECT_EQ(end.results[0].result.error().code(), "invalid_spawn");
  EXPECT_THAT(end.results[0].result.error().message(), HasSubstr("agent 'writer' is not allowed here"));
}

TEST_F(SpawnTest, SubStepsMoveWithTheTaskToAnotherReplica) {
  Outbox out = Submit();
  Outbox subs = Answer(out.work[0].item, Plan(2));
  v1::TaskState wire = engine_test::SnapshotOverTheWire(*engine_);
  TaskEngine other(&config_, &clock_);
  other.Restore("t1", wire, 0);
  Answer(subs.work[0].item, {{"found", "a"}}, &other);
  Outbox reduce = Answer(subs.work[1].item, {{"found", "b"}}, &other);
  ASSERT_EQ(reduce.work.size(), 1u);
  EXPECT_EQ(FromStruct(reduce.work[0].item.input())["found"].size(), 2u);
}

TEST_F(SpawnTest, SubStepsCountAgainstTheStepBudget) {
  v1::Budget budget;
  budget.set_max_steps(2);
  Outbox out = Submit(budget);
  Outbox subs = Answer(out.work[0].item, Plan(2));
  ASSERT_EQ(subs.results.size(), 1u);
  EXPECT_EQ(subs.results[0].result.status(), v1::TASK_STATUS_BUDGET_EXHAUSTED);
  EXPECT_THAT(subs.results[0].result.error().message(), HasSubstr("max_steps 2: step 'plan'[1]"));
}

TEST(SpawnConfigTest, SpawnLimitsAreChecked) {
  std::string text = kConfig;
  text.replace(text.find("agents: [researcher]"), 20, "agents: [ghost]");
  auto c = LoadConfigString(text, "spawn.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("workflows.w.steps[0].spawn.agents: unknown agent 'ghost'"));
}

}  // namespace
}  // namespace agentfleet
