// Agent signals (issue 18): an agent's needs_info question goes to the
// answering agent or waits for a person's answer (published, durable across a
// restore, with a timeout), and the asker runs again with the answers in its
// input; a rescope re-runs the planner with the reason and resets every step
// after it, abandoning attempts in flight (their late results stale, what
// they spent still counted), at most max_replans times; a signal the step does
// not allow is a retryable invalid_signal.
#include "codec/codec.h"
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
using engine_test::ItemFor;
using engine_test::StepOf;

constexpr char kConfig[] = R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  resolver: {provider: sim, models: {default: m}, max_tokens: 100, max_attempts: 2}
  clarifier: {provider: sim, models: {default: m}, max_tokens: 100}
  planner: {provider: sim, models: {default: m}, max_tokens: 100}
  doer: {provider: sim, models: {default: m}, max_tokens: 100}
workflows:
  asks_agent:
    steps:
      - id: resolve
        agent: resolver
        input: {ticket: $task.ticket}
        signals: {needs_info: {agent: clarifier, max_questions: 2}}
  asks_person:
    deadline: 2h
    steps:
      - id: resolve
        agent: resolver
        input: {ticket: $task.ticket}
        signals:
          needs_info: {wait: {signal: info, timeout: 1h}, emit: helpdesk.questions}
  asks_strictly:
    steps:
      - id: resolve
        agent: resolver
        input: {ticket: $task.ticket}
        signals: {needs_info: {wait: {signal: info, timeout: 10m, on_timeout: fail}}}
  plans:
    max_replans: 1
    steps:
      - {id: plan, agent: planner, input: {goal: $task.ticket}}
      - id: work
        agent: doer
        for_each: $steps.plan.items
        input: {item: $item}
        signals: {rescope: {planner: plan}}
      - {id: sum, agent: resolver, input: {done: $steps.work}}
  asks_per_item:
    deadline: 2h
    steps:
      - id: resolve
        agent: resolver
        for_each: $task.items
        input: {item: $item}
        signals: {needs_info: {wait: {signal: info, timeout: 1h}}}
  delegates:
    budget: {max_cost_usd: 1.0}
    steps:
      - {id: plan, agent: planner, input: {goal: $task.ticket}}
      - {id: sub, workflow: helper, input: {plan: $steps.plan}, budget: {max_cost_usd: 0.5}}
      - id: check
        agent: doer
        input: {plan: $steps.plan}
        signals: {rescope: {planner: plan}}
      - {id: done, agent: resolver, input: {sub: $steps.sub, check: $steps.check}}
  helper:
    steps:
      - {id: h, agent: doer, input: {plan: $task.plan}}
  orchestrates:
    steps:
      - id: lead
        agent: planner
        input: {goal: $task.ticket}
        spawn: {field: tasks, agents: [doer], max: 3}
        signals: {rescope: {planner: lead}}
)";

class AgentSignalTest : public engine_test::EngineTest {
 protected:
  AgentSignalTest() : EngineTest(kConfig) {}
  Outbox Submit(const std::string& workflow, const std::string& id = "t1") {
    Outbox out;
    EXPECT_TRUE(engine_->Submit(engine_test::Submission(id, workflow, {{"ticket", "refund?"}}), "", 2, &out).ok());
    return out;
  }
  Outbox Answer(const v1::WorkItem& item, Json output, TaskEngine* engine = nullptr) {
    return engine_test::Answer(engine ? *engine : *engine_, config_, item, std::move(output));
  }
  static Json Ask(const std::string& question) {
    return {{"_signal", {{"type", "needs_info"}, {"question", question}}}};
  }
  static Json Rescope(const std::string& reason) { return {{"_signal", {{"type", "rescope"}, {"reason", reason}}}}; }
  static v1::TaskSignal Signal(const std::string& name, Json payload) {
    v1::TaskSignal s;
    s.set_task_id("t1");
    s.set_name(name);
    s.set_sender("alice");
    *s.mutable_payload() = ToValue(payload);
    return s;
  }
};

TEST_F(AgentSignalTest, AQuestionGoesToTheAnsweringAgentAndTheAskerRunsAgainWithTheAnswer) {
  v1::WorkItem first = ItemFor(Submit("asks_agent"), "resolve");
  Outbox asked = Answer(first, Ask("Which order?"));
  ASSERT_EQ(asked.work.size(), 1u);
  const v1::WorkItem& ask = asked.work[0].item;
  EXPECT_EQ(ask.agent(), "clarifier");
  EXPECT_EQ(ask.attempt(), 2);
  EXPECT_EQ(FromStruct(ask.input()),
            (Json{{"question", "Which order?"}, {"step", "resolve"}, {"input", {{"ticket", "refund?"}}}}));
  Outbox again = Answer(ask, {{"order", "A-17"}});
  ASSERT_EQ(again.work.size(), 1u);
  const v1::WorkItem& rerun = again.work[0].item;
  EXPECT_EQ(rerun.agent(), "resolver");
  EXPECT_EQ(rerun.attempt(), 3) << "attempt numbers only grow, so no old result passes for a new one";
  EXPECT_EQ(FromStruct(rerun.input()),
            (Json{{"ticket", "refund?"},
                  {"_info", {{{"question", "Which order?"}, {"answer", {{"order", "A-17"}}}, {"timed_out", false}}}}}));
  Outbox done = Answer(rerun, {{"reply", "refunded A-17"}});
  ASSERT_EQ(done.results.size(), 1u);
  const v1::TaskResult& r = done.results[0].result;
  EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(FromValue(r.output()), (Json{{"reply", "refunded A-17"}}));
  EXPECT_EQ(r.usage().calls(), 3) << "the question and its answer were calls too";
  const v1::StepSummary* resolve = StepOf(r, "resolve");
  ASSERT_NE(resolve, nullptr);
  ASSERT_EQ(resolve->questions_size(), 1);
  EXPECT_EQ(resolve->questions(0).answered_by(), "agent:clarifier");
  EXPECT_TRUE(resolve->questions(0).answered());
  EXPECT_EQ(engine_->stats().questions, 1);
}

TEST_F(AgentSignalTest, AnAgentThatKeepsAskingFailsItsStepAfterMaxQuestions) {
  v1::WorkItem item = ItemFor(Submit("asks_agent"), "resolve");
  for (int q = 0; q < 2; ++q) {
    Outbox asked = Answer(item, Ask("Again?"));
    ASSERT_EQ(asked.work.size(), 1u);
    Outbox answered = Answer(asked.work[0].item, {{"no", "idea"}});
    ASSERT_EQ(answered.work.size(), 1u);
    item = answered.work[0].item;
  }
  Outbox third = Answer(item, Ask("And again?"));
  ASSERT_EQ(third.results.size(), 1u);
  EXPECT_EQ(third.results[0].result.status(), v1::TASK_STATUS_FAILED);
  EXPECT_EQ(third.results[0].result.error().code(), kNeedsInfoExhausted);
  EXPECT_THAT(third.results[0].result.error().message(), HasSubstr("more than its 2 question(s)"));
}

TEST_F(AgentSignalTest, AQuestionForAPersonIsPublishedSurvivesARestoreAndItsAnswerResumesTheAsker) {
  Outbox asked = Answer(ItemFor(Submit("asks_person"), "resolve"), Ask("Approve a refund over $500?"));
  EXPECT_TRUE(asked.work.empty()) << "the instance waits for the answer signal";
  ASSERT_EQ(asked.records.size(), 1u);
  EXPECT_EQ(asked.records[0].topic, "helpdesk.questions");
  Json published = Json::parse(asked.records[0].payload);
  EXPECT_EQ(published["question"], "Approve a refund over $500?");
  EXPECT_EQ(published["signal"], "info") << "how to answer it";
  EXPECT_EQ(engine_->NextTimer(), clock_.Now() + absl::Hours(1)) << "the answer's timeout is armed";

  v1::TaskState state = engine_test::SnapshotOverTheWire(*engine_);
  TaskEngine other(&config_, &clock_);
  other.Restore("t1", state, 2);
  EXPECT_EQ(other.NextTimer(), clock_.Now() + absl::Hours(1));
  clock_.Advance(absl::Minutes(20));
  Outbox out;
  EXPECT_EQ(other.OnSignal(Signal("info", {{"approved", true}}), 2, &out), SignalOutcome::kDelivered);
  ASSERT_EQ(out.work.size(), 1u);
  Json input = FromStruct(out.work[0].item.input());
  EXPECT_EQ(input["_info"][0]["answer"], (Json{{"approved", true}}));
  Outbox dup;
  EXPECT_EQ(other.OnSignal(Signal("info", {{"approved", false}}), 2, &dup), SignalOutcome::kDuplicate)
      << "the question is answered: a second answer changes nothing";
  EXPECT_TRUE(dup.empty());
  Outbox done = Answer(out.work[0].item, {{"reply", "refunded"}}, &other);
  ASSERT_EQ(done.results.size(), 1u);
  EXPECT_EQ(done.results[0].result.status(), v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(StepOf(done.results[0].result, "resolve")->questions(0).answered_by(), "alice");
}

// A worker consumes at least once: the asking attempt's result can come
// twice. The second is a redelivery, not a second question.
TEST_F(AgentSignalTest, ARedeliveredQuestionIsAskedOnce) {
  v1::WorkItem item = ItemFor(Submit("asks_person"), "resolve");
  Outbox asked = Answer(item, Ask("Approve a refund over $500?"));
  ASSERT_EQ(asked.records.size(), 1u);
  Outbox again = Answer(item, Ask("Approve a refund over $500?"));
  EXPECT_TRUE(again.empty()) << "the question was published again";
  Outbox out;
  EXPECT_EQ(engine_->OnSignal(Signal("info", {{"approved", true}}), 2, &out), SignalOutcome::kDelivered);
  ASSERT_EQ(out.work.size(), 1u);
  Outbox done = Answer(out.work[0].item, {{"reply", "refunded"}});
  ASSERT_EQ(done.results.size(), 1u);
  EXPECT_EQ(done.results[0].result.status(), v1::TASK_STATUS_COMPLETED);
  const v1::StepSummary* step = StepOf(done.results[0].result, "resolve");
  ASSERT_EQ(step->questions_size(), 1) << "one question, answered once";
  EXPECT_TRUE(step->questions(0).answered());
}

TEST_F(AgentSignalTest, AnUnansweredQuestionTimesOutIntoARunWithoutTheAnswerOrFailsTheStep) {
  Outbox asked = Answer(ItemFor(Submit("asks_person"), "resolve"), Ask("Which order?"));
  clock_.Advance(absl::Hours(1));
  Outbox out;
  engine_->Tick(&out);
  ASSERT_EQ(out.work.size(), 1u) << "on_timeout: continue runs the asker again";
  Json info = FromStruct(out.work[0].item.input())["_info"][0];
  EXPECT_EQ(info["timed_out"], true);
  EXPECT_TRUE(info["answer"].is_null());

  Outbox strict = Answer(ItemFor(Submit("asks_strictly", "t2"), "resolve"), Ask("Which order?"));
  clock_.Advance(absl::Minutes(10));
  Outbox failed;
  engine_->Tick(&failed);
  ASSERT_EQ(failed.results.size(), 1u);
  EXPECT_EQ(failed.results[0].result.task_id(), "t2");
  EXPECT_EQ(failed.results[0].result.error().code(), kWaitTimeout);
}

TEST_F(AgentSignalTest, ASignalTheStepDoesNotAllowIsARetryableInvalidSignal) {
  v1::WorkItem item = ItemFor(Submit("asks_agent"), "resolve");
  Outbox out = Answer(item, Rescope("wrong plan"));
  EXPECT_TRUE(out.work.empty()) << "retried after a backoff";
  clock_.Advance(absl::Minutes(1));
  Outbox retry;
  engine_->Tick(&retry);
  ASSERT_EQ(retry.work.size(), 1u);
  EXPECT_EQ(retry.work[0].item.attempt(), 2);
  Outbox failed = Answer(retry.work[0].item, {{"_signal", {{"type", "delegate"}}}});
  ASSERT_EQ(failed.results.size(), 1u) << "max_attempts 2";
  EXPECT_EQ(failed.results[0].result.error().code(), kInvalidSignal);
  EXPECT_THAT(failed.results[0].result.error().message(), HasSubstr("spawn"));
  EXPECT_EQ(engine_->stats().invalid_signals, 2);
}

TEST_F(AgentSignalTest, ARescopeReRunsThePlannerWithTheReasonAndAbandonsTheAttemptsAfterIt) {
  Outbox planned = Answer(ItemFor(Submit("plans"), "plan"), {{"items", {1, 2}}}, nullptr);
  ASSERT_EQ(planned.work.size(), 2u);
  v1::WorkItem work0 = planned.work[0].item, work1 = planned.work[1].item;
  Outbox replanned = Answer(work0, Rescope("item 1 is not ours"));
  ASSERT_EQ(replanned.work.size(), 1u);
  const v1::WorkItem& plan2 = replanned.work[0].item;
  EXPECT_EQ(plan2.step(), "plan");
  EXPECT_EQ(plan2.attempt(), 2);
  EXPECT_EQ(FromStruct(plan2.input())["_rescope"],
            (Json{{{"step", "work"}, {"reason", "item 1 is not ours"}}}));

  // Across a restore: the abandoned attempt's late result is stale there
  // too, and what it spent still counts.
  v1::TaskState state = engine_test::SnapshotOverTheWire(*engine_);
  TaskEngine other(&config_, &clock_);
  other.Restore("t1", state, 2);
  Outbox late = Answer(work1, {{"done", 2}}, &other);
  EXPECT_TRUE(late.empty());
  EXPECT_EQ(other.stats().stale_events, 1);

  Outbox work = Answer(plan2, {{"items", {3}}}, &other);
  ASSERT_EQ(work.work.size(), 1u);
  EXPECT_EQ(work.work[0].item.fan_index(), 0);
  EXPECT_GT(work.work[0].item.attempt(), work0.attempt()) << "no result of the old fan 0 can pass for the new";
  Outbox old = Answer(work0, {{"done", 1}}, &other);
  EXPECT_TRUE(old.empty()) << "the attempt that asked was settled already: stale";
  Outbox sum = Answer(work.work[0].item, {{"done", 3}}, &other);
  Outbox done = Answer(ItemFor(sum, "sum"), {{"total", 3}}, &other);
  ASSERT_EQ(done.results.size(), 1u);
  const v1::TaskResult& r = done.results[0].result;
  EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED);
  ASSERT_EQ(r.rescopes_size(), 1);
  EXPECT_EQ(r.rescopes(0).planner(), "plan");
  EXPECT_EQ(r.rescopes(0).reason(), "item 1 is not ours");
  EXPECT_EQ(r.usage().calls(), 6) << "plan, work x2, plan, work, sum: the abandoned one's spend is counted";
  EXPECT_EQ(r.steps_size(), 3) << "the reset fan-out has one instance now";
}

// The planner's step had ended (its snapshot part written once and kept);
// a re-plan resets it (new instances) and dispatches it again: the next
// snapshot says so, not the old end, and then carries its new end.
TEST_F(AgentSignalTest, AfterARescopeTheSnapshotShowsThePlannerDispatchedAgain) {
  Outbox planned = Answer(ItemFor(Submit("plans"), "plan"), {{"items", {1, 2}}}, nullptr);
  ASSERT_EQ(planned.work.size(), 2u);
  auto plan = [](const v1::TaskState& st) { return engine_test::StepStateOf(st, "plan"); };
  v1::StepState ended = plan(engine_test::SnapshotOverTheWire(*engine_));
  ASSERT_EQ(ended.status(), v1::STEP_STATUS_SUCCEEDED);
  ASSERT_TRUE(ended.has_output());
  Outbox replanned = Answer(planned.work[0].item, Rescope("item 1 is not ours"));
  ASSERT_EQ(replanned.work.size(), 1u);
  v1::TaskState state = engine_test::SnapshotOverTheWire(*engine_);
  v1::StepState again = plan(state);
  EXPECT_EQ(again.status(), v1::STEP_STATUS_PENDING) << "dispatched again, no receipt yet";
  EXPECT_EQ(again.attempt() + state.attempt_offset().at("plan"), replanned.work[0].item.attempt());
  EXPECT_FALSE(again.has_output());
  // And once it ends again, its new output.
  Answer(replanned.work[0].item, {{"items", {3}}});
  v1::StepState ended_again = plan(engine_test::SnapshotOverTheWire(*engine_));
  EXPECT_EQ(ended_again.status(), v1::STEP_STATUS_SUCCEEDED);
  EXPECT_EQ(ended_again.output().fields().at("items").list_value().values_size(), 1);
}

TEST_F(AgentSignalTest, RescopesBeyondMaxReplansFailTheStep) {
  Outbox planned = Answer(ItemFor(Submit("plans"), "plan"), {{"items", {1}}});
  Outbox replanned = Answer(ItemFor(planned, "work"), Rescope("wrong"));
  Outbox again = Answer(ItemFor(replanned, "plan"), {{"items", {2}}});
  Outbox failed = Answer(ItemFor(again, "work"), Rescope("still wrong"));
  ASSERT_EQ(failed.results.size(), 1u);
  EXPECT_EQ(failed.results[0].result.status(), v1::TASK_STATUS_FAILED);
  EXPECT_EQ(failed.results[0].result.error().code(), kReplansExhausted);
  EXPECT_THAT(failed.results[0].result.error().message(), HasSubstr("max_replans 1"));
  EXPECT_EQ(engine_->stats().replans, 1);
}

TEST_F(AgentSignalTest, AQuestionWithItsAnsweringAgentIsRestoredOnAnotherReplica) {
  Outbox asked = Answer(ItemFor(Submit("asks_agent"), "resolve"), Ask("Which order?"));
  ASSERT_EQ(asked.work.size(), 1u);
  v1::TaskState state = engine_test::SnapshotOverTheWire(*engine_);
  TaskEngine other(&config_, &clock_);
  other.Restore("t1", state, 2);
  Outbox again = Answer(asked.work[0].item, {{"order", "A-17"}}, &other);
  ASSERT_EQ(again.work.size(), 1u) << "the restored replica knows whose answer it is";
  EXPECT_EQ(again.work[0].item.agent(), "resolver");
  EXPECT_EQ(FromStruct(again.work[0].item.input())["_info"][0]["answer"], (Json{{"order", "A-17"}}));
}

TEST_F(AgentSignalTest, ASpawnedSubStepSendsTheOrchestratorsPlanBack) {
  Outbox planned = Answer(ItemFor(Submit("orchestrates"), "lead"),
                          {{"tasks", {{{"agent", "doer"}, {"input", {{"n", 1}}}}, {{"agent", "doer"}, {"input", {{"n", 2}}}}}}});
  ASSERT_EQ(planned.work.size(), 2u);
  Outbox replanned = Answer(planned.work[1].item, Rescope("n=2 is out of scope"));
  ASSERT_EQ(replanned.work.size(), 1u) << "the orchestrator's own call runs again";
  EXPECT_EQ(replanned.work[0].item.fan_index(), -1);
  EXPECT_EQ(replanned.work[0].item.agent(), "planner");
  EXPECT_EQ(FromStruct(replanned.work[0].item.input())["_rescope"][0]["reason"], "n=2 is out of scope");
  Outbox stale = Answer(planned.work[0].item, {{"n", 1}});
  EXPECT_TRUE(stale.empty()) << "the old plan's sub-step was abandoned";
  Outbox sub = Answer(replanned.work[0].item, {{"tasks", {{{"agent", "doer"}, {"input", {{"n", 1}}}}}}});
  ASSERT_EQ(sub.work.size(), 1u);
  EXPECT_GT(sub.work[0].item.attempt(), planned.work[0].item.attempt());
  Outbox done = Answer(sub.work[0].item, {{"n", 1}});
  ASSERT_EQ(done.results.size(), 1u);
  EXPECT_EQ(done.results[0].result.status(), v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(FromValue(done.results[0].result.output())["results"], (Json{{{"n", 1}}}));
}

TEST_F(AgentSignalTest, EachFannedOutInstanceIsAnsweredByItsOwnSignal) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(engine_test::Submission("t1", "asks_per_item", {{"items", {"a", "b"}}}), "", 2, &out).ok());
  ASSERT_EQ(out.work.size(), 2u);
  v1::WorkItem first = out.work[0].item, second = out.work[1].item;
  EXPECT_TRUE(Answer(second, Ask("b?")).work.empty());
  EXPECT_TRUE(Answer(first, Ask("a?")).work.empty());
  Outbox none;
  EXPECT_EQ(engine_->OnSignal(Signal("info", {{"answer", "?"}}), 2, &none), SignalOutcome::kDuplicate)
      << "a fanned-out instance's question is answered as info.<fan index>";
  Outbox resumed;
  EXPECT_EQ(engine_->OnSignal(Signal("info.1", {{"answer", "B"}}), 2, &resumed), SignalOutcome::kDelivered);
  ASSERT_EQ(resumed.work.size(), 1u);
  EXPECT_EQ(resumed.work[0].item.fan_index(), 1);
  EXPECT_EQ(FromStruct(resumed.work[0].item.input())["_info"][0]["answer"], (Json{{"answer", "B"}}));
}

TEST_F(AgentSignalTest, AReplanCancelsARunningChildCountsWhatItSpentAndStartsANewOne) {
  Outbox planned = Answer(ItemFor(Submit("delegates"), "plan"), {{"steps", 1}});
  ASSERT_EQ(planned.records.size(), 1u);
  EXPECT_EQ(planned.records[0].key, "t1/sub") << "the child's submission";
  // check sends the plan back while the child runs: the child is cancelled.
  Outbox replanned = Answer(ItemFor(planned, "check"), Rescope("wrong goal"));
  ASSERT_EQ(replanned.records.size(), 1u);
  auto cancel = Decode<v1::TaskSignal>(replanned.records[0].payload, replanned.records[0].headers);
  ASSERT_TRUE(cancel.ok()) << cancel.status();
  EXPECT_EQ(cancel->task_id(), "t1/sub");
  EXPECT_TRUE(cancel->cancel());
  auto child_result = [](const std::string& id, v1::TaskStatus status, double cost) {
    v1::TaskSignal s;
    s.set_task_id("t1");
    v1::TaskResult* r = s.mutable_child_result();
    r->set_task_id(id);
    r->set_parent_task_id("t1");
    r->set_status(status);
    *r->mutable_output() = ToValue(Json{{"found", id}});
    r->mutable_usage()->set_cost_usd(cost);
    r->mutable_usage()->set_calls(1);
    return s;
  };
  // On another replica: the cancelled child's result still settles what it spent.
  v1::TaskState state = engine_test::SnapshotOverTheWire(*engine_);
  TaskEngine other(&config_, &clock_);
  other.Restore("t1", state, 2);
  Outbox settled;
  EXPECT_EQ(other.OnSignal(child_result("t1/sub", v1::TASK_STATUS_CANCELLED, 0.25), 2, &settled),
            SignalOutcome::kDelivered);
  EXPECT_TRUE(settled.empty());
  Outbox again = Answer(ItemFor(replanned, "plan"), {{"steps", 2}}, &other);
  ASSERT_EQ(again.records.size(), 1u);
  EXPECT_EQ(again.records[0].key, "t1/sub~1") << "a new child task, not the cancelled one's id";
  Outbox checked = Answer(ItemFor(again, "check"), {{"ok", true}}, &other);
  Outbox child_done;
  EXPECT_EQ(other.OnSignal(child_result("t1/sub~1", v1::TASK_STATUS_COMPLETED, 0.1), 2, &child_done),
            SignalOutcome::kDelivered);
  Outbox done = Answer(ItemFor(child_done, "done"), {{"reply", "ok"}}, &other);
  ASSERT_EQ(done.results.size(), 1u);
  const v1::TaskResult& r = done.results[0].result;
  EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED);
  EXPECT_GE(r.usage().cost_usd(), 0.35) << "both children's spend is the parent's";
  EXPECT_EQ(r.usage().calls(), 7) << "plan, check, plan, check, done, and the two children's calls";
}

}  // namespace
}  // namespace agentfleet
