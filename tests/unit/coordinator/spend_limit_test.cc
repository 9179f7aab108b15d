// The fleet's hard spending limit (issue 20, item 4): every call counts
// against spend_limit; once this period's is spent, the calls of agents
// marked critical: false and of PRIORITY_BATCH tasks are held (not failed)
// until the next period, across a takeover, while critical work goes on.
#include "codec/json_value.h"
#include "common/clock.h"
#include "coordinator/task_engine.h"
#include "gtest/gtest.h"
#include "tests/unit/engine_test_util.h"

namespace agentfleet {
namespace {

constexpr char kConfig[] = R"(
kafka: {partitions: 1}
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1000, output_per_mtok: 1000}}
spend_limit: {period: day, max_cost_usd: 5}
agents:
  essential: {provider: sim, models: {default: m}, max_tokens: 100}
  extra: {provider: sim, models: {default: m}, max_tokens: 100, critical: false}
workflows:
  # Held work waits within its task's deadline: these cover a day.
  nice_to_have: {deadline: 48h, steps: [{id: s, agent: extra, input: {q: $task.q}}]}
  must_have: {deadline: 48h, steps: [{id: s, agent: essential, input: {q: $task.q}}]}
)";

class SpendLimitTest : public engine_test::EngineTest {
 protected:
  // 2026-12-01 12:00 UTC.
  SpendLimitTest() : EngineTest(kConfig, absl::FromUnixSeconds(1796126400)) {}
  Outbox Submit(TaskEngine& engine, const std::string& id, const std::string& workflow,
                v1::Priority priority = v1::PRIORITY_INTERACTIVE) {
    v1::TaskSubmission s = engine_test::Submission(id, workflow, {{"q", "x"}});
    s.set_priority(priority);
    Outbox out;
    EXPECT_TRUE(engine.Submit(s, "", 0, &out).ok());
    return out;
  }
  // A call that cost $3 (1,500 tokens in and out at $1,000 per million).
  Outbox Spend3(TaskEngine& engine, const v1::WorkItem& item) {
    return engine_test::Answer(engine, config_, item, {{"a", 1}}, 1500, 1500);
  }
};

TEST_F(SpendLimitTest, NonCriticalAndBatchWorkWaitsForTheNextPeriodOnceTheLimitIsSpent) {
  ASSERT_TRUE(config_.spend_limit.has_value());
  Outbox first = Submit(*engine_, "t1", "nice_to_have");
  ASSERT_EQ(first.work.size(), 1u);
  ASSERT_EQ(Spend3(*engine_, first.work[0].item).results.size(), 1u);
  Outbox second = Submit(*engine_, "t2", "nice_to_have");
  ASSERT_EQ(second.work.size(), 1u) << "$3 of $5 spent: a call's worst case still fits";
  ASSERT_EQ(Spend3(*engine_, second.work[0].item).results.size(), 1u);
  // $6 of $5: the limit is spent.
  EXPECT_TRUE(Submit(*engine_, "t3", "nice_to_have").work.empty()) << "a non-critical agent waits";
  EXPECT_TRUE(Submit(*engine_, "t4", "must_have", v1::PRIORITY_BATCH).work.empty()) << "batch work waits";
  Outbox critical = Submit(*engine_, "t5", "must_have");
  ASSERT_EQ(critical.work.size(), 1u) << "a critical agent's interactive work goes on";
  ASSERT_EQ(Spend3(*engine_, critical.work[0].item).results.size(), 1u);
  EXPECT_EQ(engine_->stats().spend_limit_held, 2);
  EXPECT_EQ(engine_->active_tasks(), 2u) << "held, not failed";

  // Another replica takes the partition over: the ledger and the waits move with it.
  std::vector<StateChange> changes;
  engine_->TakeStateChanges(&changes);

  TaskEngine other(&config_, &clock_);
  for (const StateChange& c : changes) {
    if (c.ledger) other.RestoreLedger(*c.ledger, c.partition);
  }
  for (const StateChange& c : changes) {
    if (c.state) other.Restore(c.task_id, v1::TaskState(*c.state), c.partition);
  }
  Outbox restored;
  other.Tick(&restored);
  EXPECT_TRUE(restored.work.empty()) << "still spent on the replica that took over";
  EXPECT_EQ(other.active_tasks(), 2u);
  // The next day (UTC) the limit starts over.
  clock_.Advance(absl::Hours(12));
  Outbox next_day;
  other.Tick(&next_day);
  ASSERT_EQ(next_day.work.size(), 2u) << "both held calls run in the next period";
  for (const auto& w : next_day.work) ASSERT_EQ(Spend3(other, w.item).results.size(), 1u);
  EXPECT_EQ(other.active_tasks(), 0u);
}

}  // namespace
}  // namespace agentfleet
