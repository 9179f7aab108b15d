// Per-task budgets: the pure planning (coordinator/budget.h) and what the
// TaskEngine does with it — caps, downgrades, waiting for reservations to
// settle, BUDGET_EXHAUSTED with the best result so far, never past a limit.
#include "coordinator/budget.h"

#include "codec/json_value.h"
#include "common/clock.h"
#include "coordinator/task_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine_test_util.h"
#include "worker/execution.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

constexpr char kConfig[] = R"(
providers: {sim: {type: simulated}}
pricing:                                   # USD per million tokens
  big: {input_per_mtok: 10, output_per_mtok: 30}
  small: {input_per_mtok: 1, output_per_mtok: 2}
agents:
  a: {provider: sim, models: {default: big, cheap: small}, max_tokens: 1000, timeout: 10s,
      schedule_to_start_timeout: 5s}
workflows:
  chain:
    steps:
      - {id: s1, agent: a, input: {q: $task.q}}
      - {id: s2, agent: a, input: {p: $steps.s1.x}}
      - {id: s3, agent: a, input: {p: $steps.s2.x}}
  fan:
    steps:
      - {id: f, agent: a, for_each: $task.items, input: {i: $item}}
)";

FleetConfig Config() {
  auto c = LoadConfigString(kConfig, "budget.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

TEST(BudgetTest, TheSubmissionTightensTheWorkflowsLimits) {
  BudgetConfig workflow{1000, 0.5, 0, 0.8};
  v1::Budget submission;
  submission.set_max_tokens(5000);
  submission.set_max_cost_usd(0.1);
  submission.set_max_steps(4);
  Limits l = Limits::For(workflow, submission);
  EXPECT_EQ(l.max_tokens, 1000);
  EXPECT_DOUBLE_EQ(l.max_cost_usd, 0.1);
  EXPECT_EQ(l.max_steps, 4);
}

TEST(BudgetTest, AnAttemptIsCappedToWhatTheBudgetCanPayAndReservesItsWorstCase) {
  FleetConfig c = Config();
  const AgentConfig& a = c.agents.at("a");
  Limits limits;
  limits.max_cost_usd = 0.01;
  AttemptPlan p = PlanAttempt(c, a, "default", 20, limits, {}, {});
  ASSERT_TRUE(p.affordable) << p.why_not;
  EXPECT_EQ(p.model, "big");
  EXPECT_LT(p.max_tokens, 1000);
  int64_t input = InputTokenBound(a, 20);
  EXPECT_GE(input, 20) << "a byte-level tokenizer makes at most one token per byte";
  EXPECT_EQ(p.reserve.tokens, input + p.max_tokens);
  EXPECT_LE(p.reserve.cost_usd, 0.01);
  EXPECT_GT(p.reserve.cost_usd + 30e-6, 0.01) << "one more output token would not fit";
  // Unlimited: the agent's own cap.
  EXPECT_EQ(PlanAttempt(c, a, "default", 20, Limits(), {}, {}).max_tokens, 1000);
}

TEST(BudgetTest, AToolLoopReservesItsWholeTokensOrWhatTheBudgetHasLeft) {
  FleetConfig c = Config();
  AgentConfig a = c.agents.at("a");
  ToolConfig t;
  t.name = "lookup";
  a.tools = {t};
  a.tool_max_tokens = 20000;
  AttemptPlan open = PlanAttempt(c, a, "default", 20, Limits(), {}, {});
  ASSERT_TRUE(open.affordable);
  EXPECT_EQ(open.max_total_tokens, 20000);
  EXPECT_EQ(open.reserve.tokens, 20000);
  EXPECT_DOUBLE_EQ(open.reserve.cost_usd, 20000 * 30 / 1e6) << "priced at the dearer rate";
  Limits tokens;
  tokens.max_tokens = 9000;
  AttemptPlan capped = PlanAttempt(c, a, "default", 20, tokens, {}, {1000, 0});
  EXPECT_EQ(capped.max_total_tokens, 8000) << "what the task has left";
  Limits cost;
  cost.max_cost_usd = 0.15;
  AttemptPlan priced = PlanAttempt(c, a, "default", 20, cost, {}, {});
  EXPECT_EQ(priced.max_total_tokens, 5000);
  EXPECT_LE(priced.reserve.cost_usd, 0.15);
}

TEST(BudgetTest, PastTheDowngradeShareStepsRunOnTheCheapestTierAndThenStop) {
  FleetConfig c = Config();
  const AgentConfig& a = c.agents.at("a");
  Limits limits;
  limits.max_cost_usd = 0.1;
  EXPECT_EQ(CheapestTier(c, a), "cheap");
  EXPECT_EQ(PlanAttempt(c, a, "default", 20, limits, {0, 0.079}, {0, 0.079}).tier, "default");
  AttemptPlan cheap = PlanAttempt(c, a, "default", 20, limits, {0, 0.08}, {0, 0.08});
  EXPECT_EQ(cheap.tier, "cheap");
  EXPECT_EQ(cheap.model, "small");
  AttemptPlan none = PlanAttempt(c, a, "default", 20, limits, {0, 0.09999}, {0, 0.09999});
  EXPECT_FALSE(none.affordable);
  EXPECT_THAT(none.why_not, HasSubstr("max_cost_usd 0.1"));
}

class BudgetEngineTest : public engine_test::EngineTest {
 public:
  BudgetEngineTest() : EngineTest(kConfig) {}

  Outbox Submit(const std::string& workflow, Json input, const v1::Budget& budget) {
    v1::TaskSubmission s = engine_test::Submission("t1", workflow, input);
    *s.mutable_budget() = budget;
    Outbox out;
    EXPECT_TRUE(engine_->Submit(s, "", 0, &out).ok());
    return out;
  }

  // Answers `item` as the worker would: the model of the item's tier, these tokens.
  Outbox Answer(const v1::WorkItem& item, Json output, int64_t in, int64_t out_tokens, TaskEngine* engine = nullptr) {
    ModelResponse r;
    r.ok = true;
    r.output = std::move(output);
    r.model = config_.agents.at("a").models.at(item.model_tier());
    r.input_tokens = in;
    r.output_tokens = out_tokens;
    Outbox out;
    (engine ? engine : engine_.get())->OnEvent(MakeResult(config_, item, r, "w1", clock_.Now()), &out);
    return out;
  }

};

// Runs the chain answering every call with `share` of its max_tokens; returns the result.
v1::TaskResult RunChain(BudgetEngineTest* t, const v1::Budget& budget, double share) {
  Outbox out = t->Submit("chain", {{"q", "why"}}, budget);
  std::vector<v1::WorkItem> pending;
  for (auto& w : out.work) pending.push_back(w.item);
  v1::TaskResult result;
  while (!pending.empty()) {
    v1::WorkItem item = pending.back();
    pending.pop_back();
    Outbox next = t->Answer(item, {{"x", item.step()}}, 70, static_cast<int64_t>(item.max_tokens() * share));
    for (auto& w : next.work) pending.push_back(w.item);
    if (!next.results.empty()) result = next.results[0].result;
  }
  return result;
}

TEST_F(BudgetEngineTest, ATokenLimitCapsDowngradesAndStopsWithTheBestResultSoFar) {
  v1::Budget budget;
  budget.set_max_tokens(1200);
  Outbox out = Submit("chain", {{"q", "why"}}, budget);
  ASSERT_EQ(out.work.size(), 1u);
  EXPECT_EQ(out.work[0].item.max_tokens(), 1000);
  EXPECT_EQ(out.work[0].item.model_tier(), "default");
  // s1 spends 1,010 tokens: past 80% of 1,200, so s2 runs on the cheap tier,
  // capped to what is left after its input bound.
  Outbox s2 = Answer(out.work[0].item, {{"x", "a"}}, 10, 1000);
  ASSERT_EQ(s2.work.size(), 1u);
  EXPECT_EQ(s2.work[0].item.model_tier(), "cheap");
  int64_t bound = InputTokenBound(config_.agents.at("a"), Json{{"p", "a"}}.dump().size());
  EXPECT_EQ(s2.work[0].item.max_tokens(), 1200 - 1010 - bound);
  // s2 spends its cap: s3 cannot be paid, and nothing else is outstanding.
  Outbox end = Answer(s2.work[0].item, {{"x", "b"}}, 10, s2.work[0].item.max_tokens());
  ASSERT_EQ(end.results.size(), 1u);
  const v1::TaskResult& r = end.results[0].result;
  EXPECT_EQ(r.status(), v1::TASK_STATUS_BUDGET_EXHAUSTED);
  EXPECT_EQ(r.error().code(), "budget_exhausted");
  EXPECT_THAT(r.error().message(), HasSubstr("max_tokens 1200"));
  EXPECT_EQ(FromValue(r.output()), (Json{{"x", "b"}})) << "the best result so far: s2's";
  EXPECT_LE(r.usage().input_tokens() + r.usage().output_tokens(), 1200);
  EXPECT_EQ(engine_->stats().budget_exhausted, 1);
}

TEST_F(BudgetEngineTest, ACostLimitIsNeverPassed) {
  v1::Budget budget;
  budget.set_max_cost_usd(0.05);
  // Calls that use three quarters of their cap: s3 runs on the cheap tier and the task completes.
  v1::TaskResult r = RunChain(this, budget, 0.75);
  EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED) << r.error().message();
  EXPECT_LE(r.usage().cost_usd(), 0.05);
  EXPECT_EQ(engine_->stats().downgrades, 1);
  // Calls that spend all they may: the budget stops the task, still within the limit.
  engine_ = std::make_unique<TaskEngine>(&config_, &clock_);
  r = RunChain(this, budget, 1.0);
  EXPECT_EQ(r.status(), v1::TASK_STATUS_BUDGET_EXHAUSTED);
  EXPECT_LE(r.usage().cost_usd(), 0.05);
  EXPECT_GT(r.usage().cost_usd(), 0.049);
}

TEST_F(BudgetEngineTest, AnAnswerLongerThanTheCapTheBudgetSetExhaustsTheBudget) {
  v1::Budget budget;
  budget.set_max_tokens(700);
  Outbox out = Submit("chain", {{"q", "why"}}, budget);
  const v1::WorkItem& item = out.work[0].item;
  ASSERT_LT(item.max_tokens(), 1000);
  ModelResponse cut;
  cut.model = "big";
  cut.input_tokens = 10;
  cut.output_tokens = item.max_tokens();
  cut.error = {"max_tokens_exceeded", "cut", false};
  Outbox end;
  engine_->OnEvent(MakeResult(config_, item, cut, "w1", clock_.Now()), &end);
  ASSERT_EQ(end.results.size(), 1u);
  EXPECT_EQ(end.results[0].result.status(), v1::TASK_STATUS_BUDGET_EXHAUSTED);
  EXPECT_THAT(end.results[0].result.error().message(), HasSubstr("needed more than the"));
  EXPECT_FALSE(end.results[0].result.has_output()) << "no step completed: there is no result so far";
  EXPECT_LE(end.results[0].result.usage().input_tokens() + end.results[0].result.usage().output_tokens(), 700);
}

TEST_F(BudgetEngineTest, MaxStepsStopsBeforeTheStepTooMany) {
  v1::Budget budget;
  budget.set_max_steps(2);
  Outbox out = Submit("chain", {{"q", "why"}}, budget);
  Outbox s2 = Answer(out.work[0].item, {{"x", "a"}}, 1, 1);
  ASSERT_EQ(s2.work.size(), 1u);
  Outbox end = Answer(s2.work[0].item, {{"x", "b"}}, 1, 1);
  ASSERT_EQ(end.results.size(), 1u);
  EXPECT_EQ(end.results[0].result.status(), v1::TASK_STATUS_BUDGET_EXHAUSTED);
  EXPECT_THAT(end.results[0].result.error().message(), HasSubstr("max_steps 2: step 's3' would be one more"));
}

TEST_F(BudgetEngineTest, AnInstanceWaitsForOutstandingReservationsAndSurvivesARestore) {
  int64_t bound = InputTokenBound(config_.agents.at("a"), Json{{"i", "x"}}.dump().size());
  v1::Budget budget;
  budget.set_max_tokens(2 * (bound + 1000) + bound + 10);  // room for two worst cases, not three
  Outbox out = Submit("fan", {{"items", {"x", "y", "z"}}}, budget);
  ASSERT_EQ(out.work.size(), 2u) << "the third element waits for budget";
  // The waiting instance moves with the task to another replica.
  v1::TaskState wire = engine_test::SnapshotOverTheWire(*engine_);
  TaskEngine other(&config_, &clock_);
  other.Restore("t1", wire, 0);
  Outbox kicked;
  other.Tick(&kicked);
  EXPECT_TRUE(kicked.work.empty()) << "still no room";
  // The first element settles for 30 tokens: its reservation frees room.
  Outbox third = Answer(out.work[0].item, {{"x", 0}}, 10, 20, &other);
  ASSERT_EQ(third.work.size(), 1u);
  EXPECT_EQ(third.work[0].item.fan_index(), 2);
  EXPECT_EQ(third.work[0].item.max_tokens(), 1000);
  Answer(out.work[1].item, {{"x", 1}}, 10, 20, &other);
  Outbox end = Answer(third.work[0].item, {{"x", 2}}, 10, 20, &other);
  ASSERT_EQ(end.results.size(), 1u);
  EXPECT_EQ(end.results[0].result.status(), v1::TASK_STATUS_COMPLETED);
}

TEST_F(BudgetEngineTest, ATimedOutAttemptsLateAnswerIsStillPaidFor) {
  v1::Budget budget;
  budget.set_max_tokens(100000);
  Outbox out = Submit("chain", {{"q", "why"}}, budget);
  v1::WorkItem first = out.work[0].item;
  clock_.Advance(absl::Seconds(6));  // schedule-to-start of 5 s: attempt 1 times out
  Outbox retry;
  engine_->Tick(&retry);
  clock_.Advance(absl::Seconds(1));
  engine_->Tick(&retry);
  ASSERT_EQ(retry.work.size(), 1u);
  EXPECT_EQ(retry.work[0].item.attempt(), 2);
  // Attempt 1 answers after all: stale, but its tokens were spent.
  Answer(first, {{"x", "late"}}, 10, 500);
  Outbox s2 = Answer(retry.work[0].item, {{"x", "a"}}, 10, 100);
  ASSERT_EQ(s2.work.size(), 1u);
  Outbox s3 = Answer(s2.work[0].item, {{"x", "b"}}, 10, 100);
  Outbox end = Answer(s3.work[0].item, {{"x", "c"}}, 10, 100);
  ASSERT_EQ(end.results.size(), 1u);
  EXPECT_EQ(end.results[0].result.usage().output_tokens(), 800);
  EXPECT_EQ(end.results[0].result.usage().calls(), 4);
}

}  // namespace
}  // namespace agentfleet
