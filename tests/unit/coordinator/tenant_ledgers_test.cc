// Tenant budgets per period (coordinator/tenant_ledgers.h): each task
// partition holds an equal slice of a tenant's limit; when it is spent, the
// tenant's calls wait for the next period (hold) or its tasks are refused
// (reject); the ledger is durable. First the ledgers alone, then through the
// engine.
#include "coordinator/tenant_ledgers.h"

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

// Two partitions: each holds half of a tenant's limit.
constexpr char kConfig[] = R"(
kafka: {partitions: 2}
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1000, output_per_mtok: 1000}}   # $0.001 a token
agents:
  a: {provider: sim, models: {default: m}, max_tokens: 100}
workflows:
  w: {steps: [{id: s, agent: a, input: {q: $task.q}}]}
tenants:
  held: {period: hour, max_cost_usd: 1.0, on_exhausted: hold}
  refused: {period: day, max_cost_usd: 1.0, on_exhausted: reject}
)";

FleetConfig LedgerConfig() {
  auto c = LoadConfigString(kConfig, "tenants.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

absl::Time Utc(int y, int mo, int d, int h, int mi) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, 0), absl::UTCTimeZone());
}

TEST(TenantLedgersTest, PeriodsAreUtcHoursDaysAndMonths) {
  absl::Time t = Utc(2026, 11, 30, 17, 42);
  using P = TenantConfig::Period;
  EXPECT_EQ(TenantLedgers::PeriodStart(P::kHour, t), Utc(2026, 11, 30, 17, 0));
  EXPECT_EQ(TenantLedgers::PeriodEnd(P::kHour, t), Utc(2026, 11, 30, 18, 0));
  EXPECT_EQ(TenantLedgers::PeriodStart(P::kDay, t), Utc(2026, 11, 30, 0, 0));
  EXPECT_EQ(TenantLedgers::PeriodEnd(P::kDay, t), Utc(2026, 12, 1, 0, 0));
  EXPECT_EQ(TenantLedgers::PeriodStart(P::kMonth, t), Utc(2026, 11, 1, 0, 0));
  EXPECT_EQ(TenantLedgers::PeriodEnd(P::kMonth, t), Utc(2026, 12, 1, 0, 0));
}

TEST(TenantLedgersTest, ThePartitionsSliceIsSpentBySettledCostOnlyAndANewPeriodStartsItOver) {
  FleetConfig c = LedgerConfig();
  TenantLedgers ledgers(&c);
  const TenantConfig& held = c.tenants.at("held");  // $1 an hour, two partitions: $0.50 each
  absl::Time t = Utc(2026, 11, 30, 17, 10);
  EXPECT_EQ(ledgers.Slice(held).max_cost_usd, 0.5);
  ledgers.Reserve("held", 0, {1000, 5.0}, +1);
  EXPECT_FALSE(ledgers.Exhausted("held", 0, t)) << "a reservation may settle for less";
  ledgers.Settle("held", 0, held, {100, 0.5}, t);
  EXPECT_TRUE(ledgers.Exhausted("held", 0, t));
  EXPECT_FALSE(ledgers.Exhausted("held", 1, t)) << "the other partition's slice is untouched";
  std::vector<std::pair<int32_t, v1::TenantLedger>> changed = ledgers.TakeChanged();
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].first, 0);
  EXPECT_EQ(changed[0].second.cost_usd(), 0.5);
  EXPECT_TRUE(ledgers.TakeChanged().empty());
  absl::Time next_hour = t + absl::Hours(1);
  EXPECT_FALSE(ledgers.Exhausted("held", 0, next_hour));
  EXPECT_EQ(ledgers.Current("held", 0, held, next_hour).settled.cost_usd, 0);
  ASSERT_EQ(ledgers.TakeChanged().size(), 1u) << "the new period is written back";
}

TEST(TenantLedgersTest, ReleasingAReservationWakesOnlyThatLedgersHeldCallsOnce) {
  FleetConfig c = LedgerConfig();
  TenantLedgers ledgers(&c);
  ledgers.Hold("held", 0, {"t1", 0, -1});
  ledgers.Hold("held", 1, {"t2", 0, -1});
  ledgers.Reserve("held", 0, {10, 0.01}, +1);
  EXPECT_FALSE(ledgers.has_woken()) << "adding a reservation frees nothing";
  ledgers.Reserve("held", 0, {10, 0.01}, -1);
  ledgers.Reserve("held", 0, {10, 0.01}, -1);  // released twice: no drift below zero
  ASSERT_TRUE(ledgers.has_woken());
  EXPECT_EQ(ledgers.TakeWoken(), (std::vector<TenantLedgers::Waiter>{{"t1", 0, -1}}));
  EXPECT_TRUE(ledgers.TakeWoken().empty());
  EXPECT_EQ(ledgers.Current("held", 0, c.tenants.at("held"), Utc(2026, 11, 30, 17, 0)).reserved.tokens, 0);
  ledgers.Reserve("nobody", 0, {10, 0.01}, -1);  // a tenant without a budget has no ledger
  EXPECT_FALSE(ledgers.has_woken());
}

TEST(TenantLedgersTest, AnUnreadableLedgerCountsAsSpentAndDroppedPartitionsAreForgotten) {
  FleetConfig c = LedgerConfig();
  TenantLedgers ledgers(&c);
  absl::Time t = Utc(2026, 11, 30, 17, 10);
  ledgers.RestoreUnreadable("refused", 1, t);
  EXPECT_TRUE(ledgers.Exhausted("refused", 1, t)) << "what was spent is unknown: the slice counts as spent";
  ledgers.Hold("refused", 1, {"t9", 0, -1});
  ledgers.Wake("refused", 1);
  ledgers.DropPartitions({1});
  EXPECT_FALSE(ledgers.Exhausted("refused", 1, t));
  EXPECT_TRUE(ledgers.TakeWoken().empty()) << "held calls of a dropped partition are its next owner's";
  EXPECT_TRUE(ledgers.TakeChanged().empty());
}

class TenantBudgetTest : public engine_test::EngineTest {
 protected:
  TenantBudgetTest()
      : EngineTest(kConfig, absl::FromCivil(absl::CivilSecond(2026, 11, 21, 10, 30, 0), absl::UTCTimeZone())) {}
  Outbox Submit(const std::string& id, const std::string& tenant, absl::Status* status = nullptr) {
    v1::TaskSubmission s = engine_test::Submission(id, "w", {{"q", id}});
    s.set_tenant(tenant);
    Outbox out;
    absl::Status st = engine_->Submit(s, "", 0, &out);
    if (status) *status = st;
    return out;
  }
  // Runs one task to its end, its call spending `input` + 100 tokens ($0.001 each).
  void Spend(const std::string& id, const std::string& tenant, int64_t input) {
    Outbox out = Submit(id, tenant);
    ASSERT_EQ(out.work.size(), 1u) << id;
    Outbox end = engine_test::Answer(*engine_, config_, out.work[0].item, {{"x", 1}}, input, 100);
    ASSERT_EQ(end.results.size(), 1u);
  }
};

TEST_F(TenantBudgetTest, AHeldTenantWaitsForTheNextPeriod) {
  // Partition 0's slice is $0.50: after $0.45 the next call cannot reserve
  // even its input ($0.07) and 16 output tokens.
  Spend("t1", "held", 350);
  Outbox held = Submit("t2", "held");
  EXPECT_TRUE(held.work.empty()) << "the call waits";
  EXPECT_TRUE(held.results.empty()) << "the task is not refused";
  EXPECT_EQ(engine_->stats().tenant_held, 1);
  // Other tenants are not affected.
  EXPECT_EQ(Submit("t3", "someone-else").work.size(), 1u);
  // At the top of the hour the slice is whole again and the call goes.
  EXPECT_EQ(engine_->NextTimer(), absl::FromCivil(absl::CivilSecond(2026, 11, 21, 11, 0, 0), absl::UTCTimeZone()));
  clock_.Advance(absl::Minutes(30));
  Outbox later;
  engine_->Tick(&later);
  ASSERT_EQ(later.work.size(), 1u);
  EXPECT_EQ(later.work[0].item.task_id(), "t2");
}

TEST_F(TenantBudgetTest, ARejectingTenantsTasksAreRefusedOnceItsSliceIsSpent) {
  Spend("t1", "refused", 350);  // $0.45 of $0.50
  // The next task starts but its call cannot be paid: it ends BUDGET_EXHAUSTED.
  Outbox stopped = Submit("t2", "refused");
  ASSERT_EQ(stopped.results.size(), 1u);
  EXPECT_EQ(stopped.results[0].result.status(), v1::TASK_STATUS_BUDGET_EXHAUSTED);
  EXPECT_THAT(stopped.results[0].result.error().message(), HasSubstr("tenant 'refused' has spent its budget for this day"));
  EXPECT_TRUE(stopped.work.empty());
}

TEST_F(TenantBudgetTest, ACallWaitsForTheTenantsCallsInFlightRatherThanGivingUp) {
  // Four tasks at once: their worst cases fill partition 0's $0.50 slice, so
  // the fourth waits instead of ending BUDGET_EXHAUSTED...
  std::vector<v1::WorkItem> items;
  for (const char* id : {"t1", "t2", "t3"}) {
    Outbox out = Submit(id, "refused");
    ASSERT_EQ(out.work.size(), 1u) << id;
    items.push_back(out.work[0].item);
  }
  Outbox waiting = Submit("t4", "refused");
  EXPECT_TRUE(waiting.work.empty());
  EXPECT_TRUE(waiting.results.empty());
  // ... and goes once the first call settles for far less than its worst case.
  engine_test::Answer(*engine_, config_, items[0], {{"x", 1}}, 10, 10);
  EXPECT_EQ(engine_->NextTimer(), absl::InfinitePast()) << "a wake-up is due";
  Outbox woken;
  engine_->Tick(&woken);
  ASSERT_EQ(woken.work.size(), 1u);
  EXPECT_EQ(woken.work[0].item.task_id(), "t4");
}

TEST_F(TenantBudgetTest, ASpentSliceRefusesNewTasksAtTheDoor) {
  Spend("t1", "refused", 400);  // $0.50: the whole slice
  absl::Status status;
  Outbox refused = Submit("t2", "refused", &status);
  EXPECT_TRUE(absl::IsResourceExhausted(status)) << status;
  ASSERT_EQ(refused.results.size(), 1u);
  EXPECT_EQ(refused.results[0].result.status(), v1::TASK_STATUS_REJECTED);
  EXPECT_EQ(refused.results[0].result.error().code(), "tenant_budget_exhausted");
  EXPECT_EQ(engine_->stats().tenant_rejected, 1);
}

TEST_F(TenantBudgetTest, TheLedgerIsDurableAndPerPartition) {
  Spend("t1", "refused", 350);
  std::vector<StateChange> changes;
  engine_->TakeStateChanges(&changes);
  const StateChange* ledger = nullptr;
  for (const auto& c : changes) {
    if (c.ledger) ledger = &c;
  }
  ASSERT_NE(ledger, nullptr);
  EXPECT_EQ(ledger->task_id, TenantLedgers::LedgerKey("refused"));
  EXPECT_EQ(ledger->partition, 0);
  EXPECT_NEAR(ledger->ledger->cost_usd(), 0.45, 1e-9);
  // A replica that restores partition 0 knows what was spent there.
  TaskEngine other(&config_, &clock_);
  other.RestoreLedger(*ledger->ledger, 0);
  v1::TaskSubmission s = engine_test::Submission("t9", "w", {{"q", "x"}});
  s.set_tenant("refused");
  Outbox out;
  ASSERT_TRUE(other.Submit(s, "", 0, &out).ok());
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].result.status(), v1::TASK_STATUS_BUDGET_EXHAUSTED);
  // Partition 1 has its own, untouched slice.
  s.set_task_id("t10");
  Outbox other_partition;
  ASSERT_TRUE(other.Submit(s, "", 1, &other_partition).ok());
  EXPECT_EQ(other_partition.work.size(), 1u);
}

TEST_F(TenantBudgetTest, AnUnreadableLedgerCountsItsSliceAsSpent) {
  // Restored from a record that could not be decoded: nothing is known of
  // what was spent, so the slice is taken as spent, never as untouched.
  engine_->RestoreUnreadableLedger("refused", 0);
  absl::Status status;
  Outbox out = Submit("t1", "refused", &status);
  EXPECT_TRUE(absl::IsResourceExhausted(status)) << status;
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].result.error().code(), "tenant_budget_exhausted");
}

TEST(TenantConfigTest, TenantsAreChecked) {
  std::string text = kConfig;
  text.replace(text.find("period: hour"), 12, "period: week");
  auto c = LoadConfigString(text, "tenants.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("tenants.held.period: expected hour, day or month, got 'week'"));
}

}  // namespace
}  // namespace agentfleet
