// Steps with a when: condition (issue 18): a step whose condition does not
// hold is skipped — neither failed nor partial, its output null — and a step
// waiting on it runs with that null; a condition on a value that is not true
// or false fails the task with invalid_condition; a skipped step survives a
// snapshot and restore on another replica.
#include "absl/strings/str_cat.h"
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
using engine_test::ItemFor;
using engine_test::StepOf;

constexpr char kConfig[] = R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a: {provider: sim, models: {default: m}}
workflows:
  w:
    steps:
      - {id: classify, agent: a, input: {q: $task.q}}
      - id: billing
        agent: a
        when: $steps.classify.intent == 'billing'
        input: {q: $task.q}
      - id: tech
        agent: a
        when: $steps.classify.intent in ['bug', 'outage'] and $steps.classify.confidence >= 0.5
        input: {q: $task.q}
      - id: respond
        agent: a
        input: {billing: $steps.billing.answer, tech: $steps.tech.answer}
)";

class WhenTest : public engine_test::EngineTest {
 protected:
  WhenTest() : EngineTest(kConfig) {}
  Outbox Submit() {
    Outbox out;
    EXPECT_TRUE(engine_->Submit(engine_test::Submission("t1", "w", {{"q", "help"}}), "", 3, &out).ok());
    return out;
  }
  Outbox Answer(const v1::WorkItem& item, Json output, TaskEngine* engine = nullptr) {
    return engine_test::Answer(engine ? *engine : *engine_, config_, item, std::move(output));
  }
};

TEST_F(WhenTest, OnlyTheBranchWhoseConditionHoldsRunsAndTheTaskCompletes) {
  Outbox routed = Answer(ItemFor(Submit(), "classify"), {{"intent", "billing"}, {"confidence", 0.9}});
  ASSERT_EQ(routed.work.size(), 1u) << "billing runs, tech is skipped";
  EXPECT_EQ(routed.work[0].item.step(), "billing");
  Outbox respond = Answer(routed.work[0].item, {{"answer", "refunded"}});
  ASSERT_EQ(respond.work.size(), 1u);
  // The skipped step reads as null in the input of the step after it.
  EXPECT_EQ(FromStruct(respond.work[0].item.input()), (Json{{"billing", "refunded"}, {"tech", nullptr}}));
  Outbox end = Answer(respond.work[0].item, {{"reply", "done"}});
  ASSERT_EQ(end.results.size(), 1u);
  const v1::TaskResult& r = end.results[0].result;
  EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED) << "a skipped step is neither failed nor partial";
  const v1::StepSummary* tech = StepOf(r, "tech");
  ASSERT_NE(tech, nullptr);
  EXPECT_EQ(tech->status(), v1::STEP_STATUS_SKIPPED);
  EXPECT_THAT(tech->explanation(), HasSubstr("skipped: when $steps.classify.intent in ['bug', 'outage']"));
  EXPECT_EQ(tech->usage().calls(), 0);
}

TEST_F(WhenTest, WhenNoBranchAppliesBothAreSkippedAndTheTaskStillCompletes) {
  Outbox routed = Answer(ItemFor(Submit(), "classify"), {{"intent", "bug"}, {"confidence", 0.2}});
  ASSERT_EQ(routed.work.size(), 1u);
  EXPECT_EQ(routed.work[0].item.step(), "respond");
  EXPECT_EQ(FromStruct(routed.work[0].item.input()), (Json{{"billing", nullptr}, {"tech", nullptr}}));
  Outbox end = Answer(routed.work[0].item, {{"reply", "escalated"}});
  ASSERT_EQ(end.results.size(), 1u);
  EXPECT_EQ(end.results[0].result.status(), v1::TASK_STATUS_COMPLETED);
}

TEST_F(WhenTest, AConditionOnAValueThatIsNotTrueOrFalseFailsTheTaskSayingWhy) {
  constexpr char kBad[] = R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a: {provider: sim, models: {default: m}}
workflows:
  w:
    steps:
      - {id: classify, agent: a}
      - {id: maybe, agent: a, when: $steps.classify.intent}
      - {id: last, agent: a, after: [maybe]}
)";
  auto c = LoadConfigString(kBad, "bad.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  FakeClock clock(absl::FromUnixSeconds(1'800'000'000));
  TaskEngine engine(&*c, &clock);
  Outbox out;
  ASSERT_TRUE(engine.Submit(engine_test::Submission("t1", "w", {}), "", 0, &out).ok());
  Outbox end = engine_test::Answer(engine, *c, ItemFor(out, "classify"), {{"intent", "billing"}});
  ASSERT_EQ(end.results.size(), 1u);
  EXPECT_EQ(end.results[0].result.status(), v1::TASK_STATUS_FAILED);
  EXPECT_EQ(end.results[0].result.error().code(), "invalid_condition");
  EXPECT_THAT(end.results[0].result.error().message(),
              HasSubstr("step 'maybe': when: $steps.classify.intent is string, not true or false"));
}

TEST_F(WhenTest, ASkippedStepStaysSkippedOnTheReplicaThatRestoresTheTask) {
  Outbox routed = Answer(ItemFor(Submit(), "classify"), {{"intent", "outage"}, {"confidence", 0.9}});
  ASSERT_EQ(routed.work.size(), 1u);
  EXPECT_EQ(routed.work[0].item.step(), "tech");
  v1::TaskState wire = engine_test::SnapshotOverTheWire(*engine_);
  TaskEngine other(&config_, &clock_);
  other.Restore("t1", wire, 3);
  Outbox respond = Answer(routed.work[0].item, {{"answer", "restarted"}}, &other);
  ASSERT_EQ(respond.work.size(), 1u) << "billing must not run on the new replica";
  EXPECT_EQ(respond.work[0].item.step(), "respond");
  EXPECT_EQ(FromStruct(respond.work[0].item.input()), (Json{{"billing", nullptr}, {"tech", "restarted"}}));
  Outbox end = Answer(respond.work[0].item, {{"reply", "ok"}}, &other);
  ASSERT_EQ(end.results.size(), 1u);
  EXPECT_EQ(end.results[0].result.status(), v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(StepOf(end.results[0].result, "billing")->status(), v1::STEP_STATUS_SKIPPED);
}

}  // namespace
}  // namespace agentfleet

namespace agentfleet {
namespace {

using Json = nlohmann::json;
using engine_test::ItemFor;

constexpr char kRouted[] = R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a: {provider: sim, models: {default: m}}
workflows:
  w:
    steps:
      - {id: classify, agent: a}
      - {id: billing, agent: a}
      - {id: tech, agent: a}
      - {id: general, agent: a}
      - {id: respond, agent: a, input: {b: $steps.billing.r, t: $steps.tech.r, g: $steps.general.r}}
    routes:
      - on: $steps.classify.intent
        cases: {billing: billing, bug: tech, outage: tech}
        default: general
)";

class RouteTest : public engine_test::EngineTest {
 protected:
  RouteTest() : EngineTest(kRouted) {}
};

// Every intent runs exactly one branch: its case's, or the default's.
TEST_F(RouteTest, EachValueRunsExactlyOneBranch) {
  const std::vector<std::pair<Json, std::string>> cases = {
      {"billing", "billing"}, {"bug", "tech"}, {"outage", "tech"}, {"other", "general"}, {nullptr, "general"}, {7, "general"}};
  int n = 0;
  for (const auto& [intent, branch] : cases) {
    std::string id = absl::StrCat("t", n++);
    Outbox out;
    ASSERT_TRUE(engine_->Submit(engine_test::Submission(id, "w", {}), "", 0, &out).ok());
    Json classified = Json::object();
    if (!intent.is_null()) classified["intent"] = intent;
    Outbox routed = engine_test::Answer(*engine_, config_, ItemFor(out, "classify"), classified);
    ASSERT_EQ(routed.work.size(), 1u) << intent;
    EXPECT_EQ(routed.work[0].item.step(), branch) << intent;
    Outbox respond = engine_test::Answer(*engine_, config_, routed.work[0].item, {{"r", branch}});
    ASSERT_EQ(respond.work.size(), 1u);
    Json input = FromStruct(respond.work[0].item.input());
    int ran = 0;
    for (const char* k : {"b", "t", "g"}) ran += !input[k].is_null();
    EXPECT_EQ(ran, 1) << input.dump();
    Outbox end = engine_test::Answer(*engine_, config_, respond.work[0].item, {{"reply", "ok"}});
    ASSERT_EQ(end.results.size(), 1u);
    EXPECT_EQ(end.results[0].result.status(), v1::TASK_STATUS_COMPLETED);
  }
}

}  // namespace
}  // namespace agentfleet
