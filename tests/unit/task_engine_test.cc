#include "coordinator/task_engine.h"

#include <set>

#include "codec/json_value.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/execution.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr char kConfig[] = R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1000000, output_per_mtok: 2000000}}
agents:
  a: {provider: sim, models: {default: m}, max_attempts: 2}
  b: {provider: sim, models: {default: m}}
workflows:
  w:
    steps:
      - {id: classify, agent: a, input: {q: $task.q}}
      - {id: research, agent: b, for_each: $task.sources, input: {src: $item, cat: $steps.classify.cat}}
      - {id: other, agent: b, input: {q: $task.q}}
      - {id: respond, agent: a, input: {found: $steps.research, cat: $steps.classify.cat, o: $steps.other}}
)";

class TaskEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = LoadConfigString(kConfig, "engine.yaml");
    ASSERT_TRUE(c.ok()) << c.status();
    config_ = *c;
    engine_ = std::make_unique<TaskEngine>(&config_, &clock_);
  }

  v1::TaskSubmission Task(const std::string& id, Json sources = {"s1", "s2", "s3"}) {
    v1::TaskSubmission s;
    s.set_task_id(id);
    s.set_workflow("w");
    *s.mutable_input() = ToStruct(Json{{"q", "why"}, {"sources", sources}});
    return s;
  }

  // Answers `item` with `output` (OK) and returns what the engine emitted.
  Outbox Answer(const v1::WorkItem& item, Json output, int input_tokens = 10, int output_tokens = 5) {
    ModelResponse r;
    r.ok = true;
    r.output = std::move(output);
    r.model = "m";
    r.input_tokens = input_tokens;
    r.output_tokens = output_tokens;
    Outbox out;
    engine_->OnEvent(MakeResult(config_, item, r, "w1"), &out);
    return out;
  }

  Outbox Fail(const v1::WorkItem& item, bool retryable) {
    Outbox out;
    engine_->OnEvent(MakeFailure(item, "provider_unavailable", "boom", retryable, "w1"), &out);
    return out;
  }

  static std::vector<std::string> Steps(const Outbox& out) {
    std::vector<std::string> steps;
    for (const auto& w : out.work) steps.push_back(w.item.step() + (w.item.fan_index() >= 0 ? "[" + std::to_string(w.item.fan_index()) + "]" : ""));
    return steps;
  }

  FleetConfig config_;
  FakeClock clock_;
  std::unique_ptr<TaskEngine> engine_;
};

TEST_F(TaskEngineTest, RunsIndependentStepsInParallelAndFansOut) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "tp", &out).ok());
  // classify and other have no dependency on each other: both start at once.
  EXPECT_THAT(Steps(out), UnorderedElementsAre("classify", "other"));
  const v1::WorkItem classify = out.work[0].item.step() == "classify" ? out.work[0].item : out.work[1].item;
  const v1::WorkItem other = out.work[0].item.step() == "other" ? out.work[0].item : out.work[1].item;
  EXPECT_EQ(FromStruct(classify.input()), (Json{{"q", "why"}}));
  EXPECT_EQ(classify.idempotency_key(), "t1/classify/-1/1");
  EXPECT_EQ(out.work[0].traceparent, "tp");

  // classify done: research fans out over the three sources, each with its item.
  Outbox fan = Answer(classify, {{"cat", "billing"}});
  EXPECT_THAT(Steps(fan), ElementsAre("research[0]", "research[1]", "research[2]"));
  EXPECT_EQ(FromStruct(fan.work[1].item.input()), (Json{{"src", "s2"}, {"cat", "billing"}}));
  EXPECT_EQ(fan.work[1].topic_agent, "b");

  // respond waits for every research element and for other.
  EXPECT_TRUE(Answer(fan.work[2].item, {{"r", 2}}).empty());
  EXPECT_TRUE(Answer(fan.work[0].item, {{"r", 0}}).empty());
  EXPECT_TRUE(Answer(other, {{"o", 1}}).empty());
  Outbox respond = Answer(fan.work[1].item, {{"r", 1}});
  ASSERT_THAT(Steps(respond), ElementsAre("respond"));
  // research's outputs arrive as a list in fan-out order, whatever the completion order.
  EXPECT_EQ(FromStruct(respond.work[0].item.input()),
            (Json{{"found", {{{"r", 0}}, {{"r", 1}}, {{"r", 2}}}}, {"cat", "billing"}, {"o", {{"o", 1}}}}));

  Outbox done = Answer(respond.work[0].item, {{"reply", "ok"}});
  ASSERT_EQ(done.results.size(), 1u);
  const v1::TaskResult& r = done.results[0].result;
  EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(FromValue(r.output()), (Json{{"reply", "ok"}}));
  EXPECT_EQ(r.steps_size(), 6);  // classify, 3 x research, other, respond
  EXPECT_EQ(r.usage().calls(), 6);
  EXPECT_EQ(r.usage().input_tokens(), 60);
  EXPECT_EQ(r.usage().output_tokens(), 30);
  // 60 input tokens at $1/token + 30 output tokens at $2/token.
  EXPECT_DOUBLE_EQ(r.usage().cost_usd(), 120.0);
  EXPECT_EQ(engine_->active_tasks(), 0u);
}

TEST_F(TaskEngineTest, ResubmittedTaskIdIsNotRunTwice) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "", &out).ok());
  Outbox again;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "", &again).ok());
  EXPECT_TRUE(again.empty());
  EXPECT_EQ(engine_->stats().duplicate_submissions, 1);
}

TEST_F(TaskEngineTest, UnknownWorkflowIsRejectedWithAReason) {
  v1::TaskSubmission s = Task("t1");
  s.set_workflow("nope");
  Outbox out;
  absl::Status st = engine_->Submit(s, "", &out);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].result.status(), v1::TASK_STATUS_REJECTED);
  EXPECT_THAT(out.results[0].result.error().message(), HasSubstr("unknown workflow 'nope'"));
}

TEST_F(TaskEngineTest, RetriesRetryableFailuresAndIgnoresStaleAttempts) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "", &out).ok());
  v1::WorkItem first = out.work[0].item.step() == "classify" ? out.work[0].item : out.work[1].item;
  Outbox retry = Fail(first, /*retryable=*/true);
  ASSERT_EQ(retry.work.size(), 1u);
  EXPECT_EQ(retry.work[0].item.attempt(), 2);
  EXPECT_EQ(retry.work[0].item.idempotency_key(), "t1/classify/-1/2");
  // A late answer for attempt 1 is stale: ignored, nothing dispatched.
  EXPECT_TRUE(Answer(first, {{"cat", "x"}}).empty());
  EXPECT_EQ(engine_->stats().stale_events, 1);
  // Attempt 2 counts.
  EXPECT_EQ(Answer(retry.work[0].item, {{"cat", "x"}}).work.size(), 3u);
}

TEST_F(TaskEngineTest, FailsTheTaskWhenAttemptsRunOutOrTheErrorIsFinal) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "", &out).ok());
  v1::WorkItem first = out.work[0].item.step() == "classify" ? out.work[0].item : out.work[1].item;
  Outbox retry = Fail(first, true);
  Outbox done = Fail(retry.work[0].item, true);  // max_attempts = 2 for agent a
  ASSERT_EQ(done.results.size(), 1u);
  EXPECT_EQ(done.results[0].result.status(), v1::TASK_STATUS_FAILED);
  EXPECT_THAT(done.results[0].result.error().message(), HasSubstr("step 'classify' failed after 2 attempt(s): boom"));

  Outbox out2;
  ASSERT_TRUE(engine_->Submit(Task("t2"), "", &out2).ok());
  v1::WorkItem other = out2.work[0].item.step() == "other" ? out2.work[0].item : out2.work[1].item;
  Outbox final_error = Fail(other, /*retryable=*/false);
  ASSERT_EQ(final_error.results.size(), 1u);
  EXPECT_EQ(final_error.results[0].result.status(), v1::TASK_STATUS_FAILED);
  // Events for the finished task are stale.
  Outbox late;
  EXPECT_TRUE(Answer(out2.work[0].item, {{"cat", "x"}}).empty());
}

TEST_F(TaskEngineTest, EmptyFanOutCompletesTheStepWithAnEmptyList) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1", Json::array()), "", &out).ok());
  v1::WorkItem classify = out.work[0].item.step() == "classify" ? out.work[0].item : out.work[1].item;
  v1::WorkItem other = out.work[0].item.step() == "other" ? out.work[0].item : out.work[1].item;
  EXPECT_TRUE(Answer(other, {{"o", 1}}).empty());
  Outbox next = Answer(classify, {{"cat", "c"}});
  ASSERT_THAT(Steps(next), ElementsAre("respond"));
  EXPECT_EQ(FromStruct(next.work[0].item.input())["found"], Json::array());
}

TEST_F(TaskEngineTest, MissingInputFieldFailsTheTaskWithTheReference) {
  v1::TaskSubmission s = Task("t1");
  *s.mutable_input() = ToStruct(Json{{"sources", Json::array()}});  // no "q"
  Outbox out;
  ASSERT_TRUE(engine_->Submit(s, "", &out).ok());
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].result.status(), v1::TASK_STATUS_FAILED);
  EXPECT_THAT(out.results[0].result.error().message(), HasSubstr("$task: no field 'q'"));
}

TEST_F(TaskEngineTest, ForEachOverANonListFails) {
  v1::TaskSubmission s = Task("t1");
  *s.mutable_input() = ToStruct(Json{{"q", "x"}, {"sources", "not a list"}});
  Outbox out;
  ASSERT_TRUE(engine_->Submit(s, "", &out).ok());
  v1::WorkItem classify = out.work[0].item.step() == "classify" ? out.work[0].item : out.work[1].item;
  Outbox next = Answer(classify, {{"cat", "c"}});
  ASSERT_EQ(next.results.size(), 1u);
  EXPECT_THAT(next.results[0].result.error().message(), HasSubstr("for_each is not a list"));
}

}  // namespace
}  // namespace agentfleet
