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
    if (c.state) other.Restore(c.task_id, engine_test::Decoded(c), c.partition);
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

TEST_F(SpendLimitTest, ARaisedLimitReleasesTheHeldCallsAtOnceOnAReload) {
  Outbox first = Submit(*engine_, "t1", "nice_to_have");
  ASSERT_EQ(Spend3(*engine_, first.work.at(0).item).results.size(), 1u);
  Outbox second = Submit(*engine_, "t2", "nice_to_have");
  ASSERT_EQ(Spend3(*engine_, second.work.at(0).item).results.size(), 1u);
  EXPECT_TRUE(Submit(*engine_, "t3", "nice_to_have").work.empty()) << "$6 of $5: held";
  EXPECT_TRUE(Submit(*engine_, "t4", "nice_to_have", v1::PRIORITY_BATCH).work.empty());
  Outbox idle;
  engine_->Tick(&idle);
  EXPECT_TRUE(idle.work.empty()) << "held until the next period";

  // The operator raises the limit and reloads (SIGHUP): the same day, both go.
  auto raised = LoadConfigString(std::string(kConfig).replace(std::string(kConfig).find("max_cost_usd: 5"), 15,
                                                              "max_cost_usd: 50"),
                                 "raised.yaml");
  ASSERT_TRUE(raised.ok()) << raised.status();
  EXPECT_TRUE(ApplyLiveSections(*raised, &config_).empty()) << "only spend_limit changed";
  EXPECT_EQ(config_.spend_limit->max_cost_usd, 50);
  engine_->LimitsChanged();
  ASSERT_LE(engine_->NextTimer(), clock_.Now()) << "the released calls are due now";
  Outbox released;
  engine_->Tick(&released);
  ASSERT_EQ(released.work.size(), 2u);
  for (const auto& w : released.work) ASSERT_EQ(Spend3(*engine_, w.item).results.size(), 1u);
  EXPECT_EQ(engine_->active_tasks(), 0u);

  // Lowered again below what was spent ($12): new non-critical work waits.
  auto lowered = LoadConfigString(std::string(kConfig).replace(std::string(kConfig).find("max_cost_usd: 5"), 15,
                                                               "max_cost_usd: 10"),
                                  "lowered.yaml");
  ASSERT_TRUE(lowered.ok());
  ApplyLiveSections(*lowered, &config_);
  engine_->LimitsChanged();
  EXPECT_TRUE(Submit(*engine_, "t5", "nice_to_have").work.empty());
  EXPECT_EQ(Submit(*engine_, "t6", "must_have").work.size(), 1u) << "critical work goes on";
}

TEST(ConfigReloadTest, OnlyTenantsAndTheSpendLimitAreTakenAndTheOtherChangesAreNamed) {
  auto before = LoadConfigString(kConfig, "fleet.yaml");
  ASSERT_TRUE(before.ok());
  FleetConfig live = *before;
  std::string text = kConfig;
  text.replace(text.find("max_tokens: 100, critical"), 14, "max_tokens: 200");
  text.replace(text.find("spend_limit: {period: day, max_cost_usd: 5}"), 43,
               "spend_limit: {period: day, max_cost_usd: 7}\ntenants: {acme: {weight: 4}}");
  auto after = LoadConfigString(text, "fleet.yaml");
  ASSERT_TRUE(after.ok()) << after.status();
  std::vector<std::string> later = ApplyLiveSections(*after, &live);
  EXPECT_EQ(later, std::vector<std::string>{"agents"}) << "an agent's change waits for a restart";
  EXPECT_EQ(live.agents.at("extra").max_tokens, 100);
  EXPECT_EQ(live.spend_limit->max_cost_usd, 7);
  EXPECT_EQ(live.TenantWeight("acme"), 4);
  // Applied again: nothing else changed since.
  EXPECT_EQ(ApplyLiveSections(*after, &live), std::vector<std::string>{"agents"})
      << "the running agents are still the old ones";
}

}  // namespace
}  // namespace agentfleet
