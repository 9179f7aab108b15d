#include "coordinator/task_engine.h"

#include <set>

#include "codec/codec.h"
#include "codec/json_value.h"
#include "common/error_codes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine_test_util.h"
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
  b:
    provider: sim
    models: {default: m}
    max_attempts: 4
    timeout: 60s
    schedule_to_start_timeout: 20s
    heartbeat_timeout: 10s
    retry: {initial_backoff: 1s, max_backoff: 3s, multiplier: 2, jitter: 0.2}
coordinator: {finished_retention: 1h}
workflows:
  w:
    deadline: 5m
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
    engine_->OnEvent(MakeResult(config_, item, r, "w1", clock_.Now()), &out);
    return out;
  }

  Outbox Fail(const v1::WorkItem& item, bool retryable) {
    Outbox out;
    engine_->OnEvent(MakeFailure(item, "provider_unavailable", "boom", retryable, "w1", clock_.Now()), &out);
    return out;
  }

  // The work item `out` dispatched for `step` (the first, for a fan-out).
  static v1::WorkItem ItemFor(const Outbox& out, const std::string& step) { return engine_test::ItemFor(out, step); }

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
  ASSERT_TRUE(engine_->Submit(Task("t1"), "tp", 0, &out).ok());
  // classify and other have no dependency on each other: both start at once.
  EXPECT_THAT(Steps(out), UnorderedElementsAre("classify", "other"));
  const v1::WorkItem classify = ItemFor(out, "classify");
  const v1::WorkItem other = ItemFor(out, "other");
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
  ASSERT_TRUE(engine_->Submit(Task("t1"), "", 0, &out).ok());
  Outbox again;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "", 0, &again).ok());
  EXPECT_TRUE(again.empty());
  EXPECT_EQ(engine_->stats().duplicate_submissions, 1);
}

TEST_F(TaskEngineTest, UnknownWorkflowIsRejectedWithAReason) {
  v1::TaskSubmission s = Task("t1");
  s.set_workflow("nope");
  Outbox out;
  absl::Status st = engine_->Submit(s, "", 0, &out);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].result.status(), v1::TASK_STATUS_REJECTED);
  EXPECT_THAT(out.results[0].result.error().message(), HasSubstr("unknown workflow 'nope'"));
}

// Found by fuzz/coordinator_input_fuzzer: REJECTED was not remembered, so the
// same id resubmitted with a valid workflow ran and got a second result.
TEST_F(TaskEngineTest, ARejectedIdIsFinalAndItsResubmissionIsADuplicate) {
  v1::TaskSubmission s = Task("t1");
  s.set_workflow("nope");
  Outbox out;
  EXPECT_FALSE(engine_->Submit(s, "", 0, &out).ok());
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_TRUE(engine_->Knows("t1"));
  Outbox again;
  EXPECT_TRUE(engine_->Submit(Task("t1"), "", 0, &again).ok());
  EXPECT_TRUE(again.empty()) << "a rejected id must not run";
  EXPECT_EQ(engine_->stats().duplicate_submissions, 1);
  // And by key, for a submission the coordinator could not even read.
  EXPECT_FALSE(engine_->Knows("t2"));
  engine_->RememberRejected("t2", 0);
  Outbox third;
  EXPECT_TRUE(engine_->Submit(Task("t2"), "", 0, &third).ok());
  EXPECT_TRUE(third.empty());
}

TEST_F(TaskEngineTest, RetriesAfterAnExponentialBackoffAndIgnoresTheReplacedAttempt) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "", 0, &out).ok());
  v1::WorkItem other = ItemFor(out, "other");
  // Agent b: backoff 1s x 2^(attempt-1), +/-20% jitter, at most 3s.
  EXPECT_TRUE(Fail(other, /*retryable=*/true).empty());
  clock_.Advance(absl::Milliseconds(790));
  Outbox early;
  engine_->Tick(&early);
  EXPECT_TRUE(early.empty());
  clock_.Advance(absl::Milliseconds(420));  // 1.21 s: past 1 s + 20%
  Outbox retry;
  engine_->Tick(&retry);
  ASSERT_EQ(retry.work.size(), 1u);
  EXPECT_EQ(retry.work[0].item.attempt(), 2);
  EXPECT_EQ(retry.work[0].item.idempotency_key(), "t1/other/-1/2");
  // The second backoff is about 2 s.
  EXPECT_TRUE(Fail(retry.work[0].item, true).empty());
  absl::Time failed_at = clock_.Now();
  EXPECT_GE(engine_->NextTimer() - failed_at, absl::Milliseconds(1600));
  EXPECT_LE(engine_->NextTimer() - failed_at, absl::Milliseconds(2400));
  clock_.Advance(absl::Seconds(3));
  Outbox third;
  engine_->Tick(&third);
  ASSERT_EQ(third.work.size(), 1u);
  // Once attempt 3 is out, answers for attempts 1 and 2 are stale.
  EXPECT_TRUE(Answer(other, {{"o", 1}}).empty());
  EXPECT_TRUE(Answer(retry.work[0].item, {{"o", 1}}).empty());
  EXPECT_EQ(engine_->stats().stale_events, 2);
  EXPECT_TRUE(Answer(third.work[0].item, {{"o", 1}}).empty());  // counts; task waits for classify
  EXPECT_EQ(engine_->stats().stale_events, 2);
}

TEST_F(TaskEngineTest, TheProvidersRetryAfterIsAFloorAndAWorkerShutdownRetriesAtOnce) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "", 0, &out).ok());
  v1::WorkItem other = ItemFor(out, "other");
  // A 429 asking for 7 s: longer than the 1 s backoff, so it decides.
  v1::WorkEvent limited = MakeFailure(other, kRateLimited, "HTTP 429", true, "w1", clock_.Now());
  limited.mutable_result()->mutable_error()->set_retry_after_ms(7000);
  Outbox none;
  engine_->OnEvent(limited, &none);
  EXPECT_EQ(engine_->NextTimer() - clock_.Now(), absl::Seconds(7));
  clock_.Advance(absl::Seconds(7));
  Outbox retry;
  engine_->Tick(&retry);
  ASSERT_EQ(retry.work.size(), 1u);
  // The worker running attempt 2 shut down before finishing it: no backoff.
  engine_->OnEvent(MakeFailure(retry.work[0].item, kWorkerShutdown, "drained", true, "w1", clock_.Now()), &none);
  Outbox again;
  engine_->Tick(&again);
  ASSERT_EQ(again.work.size(), 1u);
  EXPECT_EQ(again.work[0].item.attempt(), 3);
}

TEST_F(TaskEngineTest, ALateSuccessDuringBackoffIsStillAccepted) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "", 0, &out).ok());
  v1::WorkItem other = ItemFor(out, "other");
  clock_.Advance(absl::Seconds(21));  // schedule-to-start of agent b is 20 s
  Outbox timed_out;
  engine_->Tick(&timed_out);
  EXPECT_EQ(engine_->stats().timeouts, 1);
  EXPECT_TRUE(timed_out.work.empty());  // backing off
  Answer(other, {{"o", 1}});            // attempt 1 answers after all
  clock_.Advance(absl::Seconds(5));
  Outbox later;
  engine_->Tick(&later);
  EXPECT_TRUE(later.work.empty());  // no retry: the step succeeded
}

TEST_F(TaskEngineTest, HeartbeatTimeoutRetriesAnAttemptThatWentQuiet) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "", 0, &out).ok());
  v1::WorkItem other = ItemFor(out, "other");
  Outbox ignored;
  engine_->OnEvent(MakeReceipt(other, "w1", clock_.Now()), &ignored);
  clock_.Advance(absl::Seconds(8));
  v1::WorkEvent beat = MakeReceipt(other, "w1", clock_.Now());
  beat.mutable_heartbeat()->set_worker("w1");  // replaces the receipt in the oneof
  engine_->OnEvent(beat, &ignored);
  clock_.Advance(absl::Seconds(8));  // 16 s after the receipt, 8 s after the heartbeat
  engine_->Tick(&ignored);
  EXPECT_EQ(engine_->stats().timeouts, 0);
  clock_.Advance(absl::Seconds(3));  // 11 s without a heartbeat
  engine_->Tick(&ignored);
  EXPECT_EQ(engine_->stats().timeouts, 1);
  clock_.Advance(absl::Seconds(2));
  Outbox retry;
  engine_->Tick(&retry);
  ASSERT_EQ(retry.work.size(), 1u);
  EXPECT_EQ(retry.work[0].item.attempt(), 2);
}

TEST_F(TaskEngineTest, StartToCloseTimeoutEndsAnAttemptThatRunsTooLong) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "", 0, &out).ok());
  v1::WorkItem other = ItemFor(out, "other");
  Outbox ignored;
  engine_->OnEvent(MakeReceipt(other, "w1", clock_.Now()), &ignored);
  v1::WorkEvent beat = MakeReceipt(other, "w1", clock_.Now());
  beat.mutable_heartbeat()->set_worker("w1");
  for (int i = 0; i < 13; ++i) {  // heartbeats every 5 s keep it alive...
    clock_.Advance(absl::Seconds(5));
    engine_->OnEvent(beat, &ignored);
    engine_->Tick(&ignored);
  }
  // ...but 65 s after the receipt it is past timeout (60 s) + grace (5 s).
  clock_.Advance(absl::Seconds(1));
  engine_->Tick(&ignored);
  EXPECT_EQ(engine_->stats().timeouts, 1);
}

TEST_F(TaskEngineTest, TheTaskDeadlineFailsTheTask) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "", 0, &out).ok());
  clock_.Advance(absl::Minutes(5) + absl::Seconds(1));
  Outbox done;
  engine_->Tick(&done);
  ASSERT_EQ(done.results.size(), 1u);
  EXPECT_EQ(done.results[0].result.status(), v1::TASK_STATUS_FAILED);
  EXPECT_EQ(done.results[0].result.error().code(), "deadline_exceeded");
}

TEST_F(TaskEngineTest, AnotherEngineResumesATaskFromItsSnapshot) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "tp", 3, &out).ok());
  v1::WorkItem classify = ItemFor(out, "classify");
  v1::WorkItem other = ItemFor(out, "other");
  Outbox fan = Answer(classify, {{"cat", "billing"}});
  Outbox ignored;
  engine_->OnEvent(MakeReceipt(fan.work[0].item, "w1", clock_.Now()), &ignored);
  std::vector<StateChange> changes;
  engine_->TakeStateChanges(&changes);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].partition, 3);
  ASSERT_TRUE(changes[0].state.has_value());
  // The snapshot goes through the wire format, as it does through the state topic.
  v1::TaskState wire;
  ASSERT_TRUE(wire.ParseFromString(changes[0].state->SerializeAsString()));

  TaskEngine other_engine(&config_, &clock_);
  other_engine.Restore("t1", wire, 3);
  EXPECT_EQ(other_engine.active_tasks(), 1u);
  Outbox none;
  other_engine.OnEvent(MakeResult(config_, other, ModelResponse{true, {{"o", 1}}, {}, 1, 1, "m", {}}, "w1", clock_.Now()), &none);
  other_engine.OnEvent(MakeResult(config_, fan.work[1].item, ModelResponse{true, {{"r", 1}}, {}, 1, 1, "m", {}}, "w1", clock_.Now()), &none);
  other_engine.OnEvent(MakeResult(config_, fan.work[2].item, ModelResponse{true, {{"r", 2}}, {}, 1, 1, "m", {}}, "w1", clock_.Now()), &none);
  EXPECT_TRUE(none.empty());
  // research[0] had a receipt and then went quiet: its heartbeat timer survived the move.
  clock_.Advance(absl::Seconds(11));
  other_engine.Tick(&none);
  EXPECT_EQ(other_engine.stats().timeouts, 1);
  clock_.Advance(absl::Seconds(2));
  Outbox retry;
  other_engine.Tick(&retry);
  ASSERT_EQ(retry.work.size(), 1u);
  EXPECT_EQ(retry.work[0].item.step(), "research");
  EXPECT_EQ(retry.work[0].item.attempt(), 2);
  EXPECT_EQ(retry.work[0].traceparent, "tp");
  Outbox respond;
  other_engine.OnEvent(MakeResult(config_, retry.work[0].item, ModelResponse{true, {{"r", 0}}, {}, 1, 1, "m", {}}, "w2", clock_.Now()), &respond);
  ASSERT_EQ(respond.work.size(), 1u);
  EXPECT_EQ(FromStruct(respond.work[0].item.input())["found"], (Json{{{"r", 0}}, {{"r", 1}}, {{"r", 2}}}));
  EXPECT_EQ(FromStruct(respond.work[0].item.input())["cat"], "billing");
}

TEST_F(TaskEngineTest, FinishedIdsAreKeptForTheRetentionThenTombstoned) {
  Outbox out;
  v1::TaskSubmission s = Task("t1");
  *s.mutable_input() = ToStruct(Json{{"sources", Json::array()}});  // fails at once: no "q"
  ASSERT_TRUE(engine_->Submit(s, "", 2, &out).ok());
  ASSERT_EQ(out.results.size(), 1u);
  std::vector<StateChange> changes;
  engine_->TakeStateChanges(&changes);
  ASSERT_EQ(changes.size(), 1u);
  ASSERT_TRUE(changes[0].state && changes[0].state->finished());
  EXPECT_FALSE(changes[0].state->submission().has_input());  // compact
  // The compact snapshot passes the codec, as the restoring replica reads it.
  Encoded wire = Encode(*changes[0].state, "");
  ASSERT_TRUE(Decode<v1::TaskState>(wire.payload, wire.headers).ok());
  // A new replica that restores the compact snapshot still refuses the id.
  TaskEngine replica(&config_, &clock_);
  replica.Restore("t1", changes[0].state, 2);
  Outbox dup;
  ASSERT_TRUE(replica.Submit(Task("t1"), "", 2, &dup).ok());
  EXPECT_TRUE(dup.empty());
  // After the retention the id is tombstoned and may be used again.
  clock_.Advance(absl::Hours(1) + absl::Seconds(1));
  replica.Tick(&dup);
  changes.clear();
  replica.TakeStateChanges(&changes);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_FALSE(changes[0].state.has_value());
  ASSERT_TRUE(replica.Submit(Task("t1"), "", 2, &dup).ok());
  EXPECT_EQ(replica.active_tasks(), 1u);
}

TEST_F(TaskEngineTest, ARestoredTaskWhoseWorkflowWasRemovedFailsWithTheReason) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "tp", 5, &out).ok());
  std::vector<StateChange> changes;
  engine_->TakeStateChanges(&changes);
  ASSERT_EQ(changes.size(), 1u);
  // A new config without workflow "w" (a rolling update that dropped it).
  auto smaller = LoadConfigString(R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents: {a: {provider: sim, models: {default: m}}}
workflows: {other: {steps: [{id: s, agent: a}]}}
)", "new.yaml");
  ASSERT_TRUE(smaller.ok()) << smaller.status();
  TaskEngine replica(&*smaller, &clock_);
  replica.Restore("t1", changes[0].state, 5);
  EXPECT_EQ(replica.active_tasks(), 0u);
  EXPECT_LE(replica.NextTimer(), clock_.Now());
  Outbox failed;
  replica.Tick(&failed);
  ASSERT_EQ(failed.results.size(), 1u);
  EXPECT_EQ(failed.results[0].result.status(), v1::TASK_STATUS_FAILED);
  EXPECT_EQ(failed.results[0].result.error().code(), "workflow_removed");
  EXPECT_EQ(failed.results[0].traceparent, "tp");
  // It is now a finished id: a resubmission is not run, and the snapshot says so.
  changes.clear();
  replica.TakeStateChanges(&changes);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_TRUE(changes[0].state->finished());
  EXPECT_EQ(changes[0].partition, 5);
}

TEST_F(TaskEngineTest, AnUnreadableSnapshotFailsTheTaskInsteadOfRunningAnOlderOne) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "", 2, &out).ok());
  ASSERT_TRUE(engine_->Submit(Task("t2"), "", 2, &out).ok());
  std::vector<StateChange> older;
  engine_->TakeStateChanges(&older);
  ASSERT_EQ(older.size(), 2u);
  TaskEngine replica(&config_, &clock_);
  // The state partition holds an older readable snapshot of each task, then
  // t1's latest record is garbage, while t2 gets a readable newer one after an unreadable one.
  for (const auto& c : older) replica.Restore(c.task_id, c.state, 2);
  replica.RestoreUnreadable("t1", "payload is not a valid agentfleet.v1.TaskState", 2);
  replica.RestoreUnreadable("t2", "truncated", 2);
  replica.Restore("t2", older[0].task_id == "t2" ? older[0].state : older[1].state, 2);
  EXPECT_EQ(replica.active_tasks(), 1u);  // t2 only: t1 is not run from its stale snapshot
  Outbox failed;
  replica.Tick(&failed);
  ASSERT_EQ(failed.results.size(), 1u);
  EXPECT_EQ(failed.results[0].result.task_id(), "t1");
  EXPECT_EQ(failed.results[0].result.status(), v1::TASK_STATUS_FAILED);
  EXPECT_EQ(failed.results[0].result.error().code(), "state_unreadable");
  EXPECT_THAT(failed.results[0].result.error().message(), HasSubstr("not a valid agentfleet.v1.TaskState"));
  EXPECT_TRUE(failed.work.empty());
}

TEST_F(TaskEngineTest, DroppingAPartitionForgetsItsTasks) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "", 1, &out).ok());
  ASSERT_TRUE(engine_->Submit(Task("t2"), "", 2, &out).ok());
  engine_->DropPartitions({1});
  EXPECT_EQ(engine_->active_tasks(), 1u);
  std::vector<StateChange> changes;
  engine_->TakeStateChanges(&changes);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].task_id, "t2");
}

TEST_F(TaskEngineTest, FailsTheTaskWhenAttemptsRunOutOrTheErrorIsFinal) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "", 0, &out).ok());
  v1::WorkItem first = ItemFor(out, "classify");
  EXPECT_TRUE(Fail(first, true).empty());
  clock_.Advance(absl::Seconds(1));
  Outbox retry;
  engine_->Tick(&retry);
  ASSERT_EQ(retry.work.size(), 1u);
  Outbox done = Fail(retry.work[0].item, true);  // max_attempts = 2 for agent a
  ASSERT_EQ(done.results.size(), 1u);
  EXPECT_EQ(done.results[0].result.status(), v1::TASK_STATUS_FAILED);
  EXPECT_THAT(done.results[0].result.error().message(), HasSubstr("step 'classify' failed after 2 attempt(s): boom"));

  Outbox out2;
  ASSERT_TRUE(engine_->Submit(Task("t2"), "", 0, &out2).ok());
  v1::WorkItem other = ItemFor(out2, "other");
  Outbox final_error = Fail(other, /*retryable=*/false);
  ASSERT_EQ(final_error.results.size(), 1u);
  EXPECT_EQ(final_error.results[0].result.status(), v1::TASK_STATUS_FAILED);
  // Events for the finished task are stale.
  Outbox late;
  EXPECT_TRUE(Answer(out2.work[0].item, {{"cat", "x"}}).empty());
}

TEST_F(TaskEngineTest, EmptyFanOutCompletesTheStepWithAnEmptyList) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1", Json::array()), "", 0, &out).ok());
  v1::WorkItem classify = ItemFor(out, "classify");
  v1::WorkItem other = ItemFor(out, "other");
  EXPECT_TRUE(Answer(other, {{"o", 1}}).empty());
  Outbox next = Answer(classify, {{"cat", "c"}});
  ASSERT_THAT(Steps(next), ElementsAre("respond"));
  EXPECT_EQ(FromStruct(next.work[0].item.input())["found"], Json::array());
}

TEST_F(TaskEngineTest, MissingInputFieldFailsTheTaskWithTheReference) {
  v1::TaskSubmission s = Task("t1");
  *s.mutable_input() = ToStruct(Json{{"sources", Json::array()}});  // no "q"
  Outbox out;
  ASSERT_TRUE(engine_->Submit(s, "", 0, &out).ok());
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].result.status(), v1::TASK_STATUS_FAILED);
  EXPECT_THAT(out.results[0].result.error().message(), HasSubstr("$task: no field 'q'"));
}

TEST_F(TaskEngineTest, ForEachOverANonListFails) {
  v1::TaskSubmission s = Task("t1");
  *s.mutable_input() = ToStruct(Json{{"q", "x"}, {"sources", "not a list"}});
  Outbox out;
  ASSERT_TRUE(engine_->Submit(s, "", 0, &out).ok());
  v1::WorkItem classify = ItemFor(out, "classify");
  Outbox next = Answer(classify, {{"cat", "c"}});
  ASSERT_EQ(next.results.size(), 1u);
  EXPECT_THAT(next.results[0].result.error().message(), HasSubstr("for_each is not a list"));
}

}  // namespace
}  // namespace agentfleet
