// Signals and cancellation (issue 18): a wait step takes the signal it waits
// for (or one that came before it started), times out into its on-timeout
// branch or fails the task, survives a restore on another replica; a
// cancellation ends the task CANCELLED with its best output so far and makes
// late results stale; duplicates, late signals and signals for unknown or
// finished tasks change nothing and say why.
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
  a: {provider: sim, models: {default: m}, max_tokens: 100}
workflows:
  w:
    steps:
      - {id: draft, agent: a, input: {q: $task.q}}
      - id: approval
        wait: {signal: approve, timeout: 30m}
        after: [draft]
      - id: send
        agent: a
        when: $steps.approval.payload.ok == true
        input: {draft: $steps.draft.text, by: $steps.approval.sender}
      - id: escalate
        agent: a
        when: $steps.approval.timed_out == true
        input: {draft: $steps.draft.text}
      - id: done
        agent: a
        input: {sent: $steps.send.id, escalated: $steps.escalate.id}
  strict:
    steps:
      - id: approval
        wait: {signal: approve, timeout: 10m, on_timeout: fail}
      - {id: act, agent: a, input: {by: $steps.approval.sender}}
)";

class SignalTest : public engine_test::EngineTest {
 protected:
  SignalTest() : EngineTest(kConfig) {}
  Outbox Submit(const std::string& workflow = "w", const std::string& id = "t1") {
    Outbox out;
    EXPECT_TRUE(engine_->Submit(engine_test::Submission(id, workflow, {{"q", "refund?"}}), "", 2, &out).ok());
    return out;
  }
  Outbox Answer(const v1::WorkItem& item, Json output, TaskEngine* engine = nullptr) {
    return engine_test::Answer(engine ? *engine : *engine_, config_, item, std::move(output));
  }
  static v1::TaskSignal Signal(const std::string& name, Json payload, const std::string& task = "t1") {
    v1::TaskSignal s;
    s.set_task_id(task);
    s.set_name(name);
    s.set_sender("alice");
    *s.mutable_payload() = ToValue(payload);
    return s;
  }
  static v1::TaskSignal Cancel(const std::string& task = "t1") {
    v1::TaskSignal s;
    s.set_task_id(task);
    s.set_cancel(true);
    s.set_reason("customer withdrew the ticket");
    return s;
  }
  SignalOutcome Send(const v1::TaskSignal& s, Outbox* out, TaskEngine* engine = nullptr) {
    return (engine ? engine : engine_.get())->OnSignal(s, 2, out);
  }
};

TEST_F(SignalTest, AWaitStepTakesItsSignalAndTheBranchItChoosesRuns) {
  Outbox waiting = Answer(ItemFor(Submit(), "draft"), {{"text", "we refund"}});
  EXPECT_TRUE(waiting.work.empty()) << "the approval step waits; nothing is dispatched";
  EXPECT_EQ(engine_->NextTimer(), clock_.Now() + absl::Minutes(30)) << "the wait's timeout is armed";
  clock_.Advance(absl::Minutes(5));
  Outbox out;
  EXPECT_EQ(Send(Signal("approve", {{"ok", true}}), &out), SignalOutcome::kDelivered);
  ASSERT_EQ(out.work.size(), 1u) << "send runs, escalate is skipped";
  EXPECT_EQ(out.work[0].item.step(), "send");
  EXPECT_EQ(FromStruct(out.work[0].item.input()), (Json{{"draft", "we refund"}, {"by", "alice"}}));
  Outbox done = Answer(ItemFor(Answer(out.work[0].item, {{"id", "mail-1"}}), "done"), {{"ok", 1}});
  ASSERT_EQ(done.results.size(), 1u);
  const v1::TaskResult& r = done.results[0].result;
  EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED);
  const v1::StepSummary* approval = StepOf(r, "approval");
  ASSERT_NE(approval, nullptr);
  EXPECT_EQ(approval->status(), v1::STEP_STATUS_SUCCEEDED);
  EXPECT_EQ(approval->latency_ms(), 5 * 60 * 1000) << "how long it waited";
  EXPECT_THAT(approval->explanation(), HasSubstr("signal from alice"));
  EXPECT_EQ(approval->attempts(), 0) << "a wait calls no model";
}

TEST_F(SignalTest, ADuplicateOrLateSignalIsIgnoredAndSaysSo) {
  Outbox first = Answer(ItemFor(Submit(), "draft"), {{"text", "x"}});
  Outbox out;
  EXPECT_EQ(Send(Signal("approve", {{"ok", true}}), &out), SignalOutcome::kDelivered);
  Outbox again;
  EXPECT_EQ(Send(Signal("approve", {{"ok", false}}), &again), SignalOutcome::kDuplicate);
  EXPECT_TRUE(again.empty());
  EXPECT_EQ(Send(Signal("unheard_of", {}), &again), SignalOutcome::kUnwanted);
  EXPECT_EQ(engine_->stats().signals_ignored, 2);
}

TEST_F(SignalTest, ASignalThatArrivesBeforeItsStepWaitsIsKeptForItEvenAcrossARestore) {
  Outbox submitted = Submit();
  Outbox out;
  EXPECT_EQ(Send(Signal("approve", {{"ok", true}}), &out), SignalOutcome::kBuffered);
  EXPECT_EQ(Send(Signal("approve", {{"ok", false}}), &out), SignalOutcome::kDuplicate) << "one is kept per name";
  // Another replica takes the task over before the draft is answered.
  v1::TaskState state = engine_test::SnapshotOverTheWire(*engine_);
  ASSERT_EQ(state.pending_signals_size(), 1);
  TaskEngine other(&config_, &clock_);
  other.Restore("t1", state, 2);
  Outbox resumed = Answer(ItemFor(submitted, "draft"), {{"text", "x"}}, &other);
  ASSERT_EQ(resumed.work.size(), 1u) << "the kept approval is taken as soon as the wait starts";
  EXPECT_EQ(resumed.work[0].item.step(), "send");
}

TEST_F(SignalTest, AWaitThatTimesOutRunsTheTimeoutBranchOrFailsTheTask) {
  Answer(ItemFor(Submit(), "draft"), {{"text", "x"}});
  clock_.Advance(absl::Minutes(30));
  Outbox out;
  engine_->Tick(&out);
  ASSERT_EQ(out.work.size(), 1u);
  EXPECT_EQ(out.work[0].item.step(), "escalate");
  Outbox late;
  EXPECT_EQ(Send(Signal("approve", {{"ok", true}}), &late), SignalOutcome::kDuplicate) << "too late: ignored";
  EXPECT_TRUE(late.empty());

  Submit("strict", "t2");
  clock_.Advance(absl::Minutes(10));
  Outbox failed;
  engine_->Tick(&failed);
  ASSERT_EQ(failed.results.size(), 1u);
  EXPECT_EQ(failed.results[0].result.status(), v1::TASK_STATUS_FAILED);
  EXPECT_EQ(failed.results[0].result.error().code(), "wait_timeout");
}

TEST_F(SignalTest, AWaitingStepIsRestoredOnAnotherReplicaWithItsTimeout) {
  Answer(ItemFor(Submit(), "draft"), {{"text", "x"}});
  v1::TaskState state = engine_test::SnapshotOverTheWire(*engine_);
  TaskEngine other(&config_, &clock_);
  other.Restore("t1", state, 2);
  EXPECT_EQ(other.NextTimer(), clock_.Now() + absl::Minutes(30)) << "the timeout survives the takeover";
  Outbox out;
  EXPECT_EQ(Send(Signal("approve", {{"ok", false}}), &out, &other), SignalOutcome::kDelivered);
  // ok is false: neither send nor escalate; done runs with two nulls.
  ASSERT_EQ(out.work.size(), 1u);
  EXPECT_EQ(out.work[0].item.step(), "done");
  EXPECT_EQ(FromStruct(out.work[0].item.input()), (Json{{"sent", nullptr}, {"escalated", nullptr}}));
}

TEST_F(SignalTest, CancellingEndsTheTaskWithItsBestOutputAndLateResultsAreStale) {
  Outbox submitted = Submit();
  Outbox waiting = Answer(ItemFor(submitted, "draft"), {{"text", "we refund"}});
  Outbox out;
  EXPECT_EQ(Send(Cancel(), &out), SignalOutcome::kCancelled);
  ASSERT_EQ(out.results.size(), 1u);
  const v1::TaskResult& r = out.results[0].result;
  EXPECT_EQ(r.status(), v1::TASK_STATUS_CANCELLED);
  EXPECT_EQ(r.error().code(), "cancelled");
  EXPECT_EQ(r.error().message(), "customer withdrew the ticket");
  EXPECT_EQ(FromValue(r.output()), (Json{{"text", "we refund"}})) << "the best output so far";
  EXPECT_EQ(StepOf(r, "approval")->status(), v1::STEP_STATUS_RUNNING) << "it was still waiting";
  EXPECT_EQ(engine_->active_tasks(), 0u);
  Outbox again;
  EXPECT_EQ(Send(Cancel(), &again), SignalOutcome::kFinishedTask);
  EXPECT_TRUE(again.empty()) << "one result per task";
}

TEST_F(SignalTest, CancellingAbandonsAnAttemptInFlight) {
  Outbox submitted = Submit();
  v1::WorkItem draft = ItemFor(submitted, "draft");
  Outbox out;
  EXPECT_EQ(Send(Cancel(), &out), SignalOutcome::kCancelled);
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_FALSE(out.results[0].result.has_output()) << "nothing finished";
  EXPECT_EQ(StepOf(out.results[0].result, "draft")->status(), v1::STEP_STATUS_PENDING) << "sent, no receipt yet";
  EXPECT_EQ(StepOf(out.results[0].result, "draft")->attempts(), 1);
  int64_t stale = engine_->stats().stale_events;
  Outbox late = Answer(draft, {{"text", "too late"}});
  EXPECT_TRUE(late.empty()) << "the abandoned attempt's result changes nothing";
  EXPECT_EQ(engine_->stats().stale_events, stale + 1);
}

TEST_F(SignalTest, ACancellationThatOvertakesItsSubmissionCancelsItWhenItComesEvenOnAnotherReplica) {
  Outbox out;
  EXPECT_EQ(Send(Cancel(), &out), SignalOutcome::kCancelAhead);
  EXPECT_TRUE(out.empty());
  // The coordinator that read it stops; the one that takes the partition
  // restores the cancellation from the state topic.
  v1::TaskState kept = engine_test::SnapshotOverTheWire(*engine_);
  EXPECT_TRUE(kept.cancel_requested());
  TaskEngine other(&config_, &clock_);
  other.Restore("t1", kept, 2);
  Outbox submitted;
  ASSERT_TRUE(other.Submit(engine_test::Submission("t1", "w", {{"q", "x"}}), "", 2, &submitted).ok());
  EXPECT_TRUE(submitted.work.empty()) << "no step runs";
  ASSERT_EQ(submitted.results.size(), 1u);
  EXPECT_EQ(submitted.results[0].result.status(), v1::TASK_STATUS_CANCELLED);
  EXPECT_EQ(submitted.results[0].result.error().message(), "customer withdrew the ticket");
  Outbox again;
  ASSERT_TRUE(other.Submit(engine_test::Submission("t1", "w", {{"q", "x"}}), "", 2, &again).ok());
  EXPECT_TRUE(again.empty()) << "one result per task";
}

// The signals topic is not the tasks topic: a client that signals right
// after submitting can be read first (found by the bench's waited4, which
// did: the signal was dropped as unknown_task and the task waited out its
// wait's timeout). It is kept, durably, and the step takes it.
TEST_F(SignalTest, ASignalThatOvertakesItsSubmissionIsKeptForItsWaitStepEvenOnAnotherReplica) {
  Outbox out;
  EXPECT_EQ(Send(Signal("approve", {{"ok", true}}), &out), SignalOutcome::kBuffered);
  EXPECT_EQ(Send(Signal("approve", {{"ok", false}}), &out), SignalOutcome::kDuplicate) << "one is kept per name";
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(engine_->stats().signals_ignored, 1);
  // The coordinator that read it stops; the one that takes the partition
  // restores it from the state topic.
  v1::TaskState kept = engine_test::SnapshotOverTheWire(*engine_);
  EXPECT_FALSE(kept.cancel_requested());
  ASSERT_EQ(kept.pending_signals_size(), 1);
  TaskEngine other(&config_, &clock_);
  other.Restore("t1", kept, 2);
  Outbox submitted;
  ASSERT_TRUE(other.Submit(engine_test::Submission("t1", "w", {{"q", "x"}}), "", 2, &submitted).ok());
  ASSERT_EQ(submitted.work.size(), 1u);
  Outbox resumed = Answer(ItemFor(submitted, "draft"), {{"text", "x"}}, &other);
  ASSERT_EQ(resumed.work.size(), 1u) << "the approval that came first is taken as soon as the wait starts";
  EXPECT_EQ(resumed.work[0].item.step(), "send");
}

TEST_F(SignalTest, ASignalForATaskThatNeverComesIsForgottenAfterTheRetention) {
  Outbox out;
  EXPECT_EQ(Send(Signal("approve", {{"ok", true}}, "never-submitted"), &out), SignalOutcome::kBuffered);
  clock_.Advance(config_.coordinator.finished_retention);
  engine_->Tick(&out);
  std::vector<StateChange> changes;
  engine_->TakeStateChanges(&changes);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_FALSE(changes[0].state.has_value()) << "a tombstone";
  Outbox submitted = Answer(ItemFor(Submit("w", "never-submitted"), "draft"), {{"text", "x"}});
  EXPECT_TRUE(submitted.work.empty()) << "the forgotten approval is not taken: the step waits";
}

// A hostile sender's signals for tasks that never come hold a bounded amount
// of memory (64 MiB of kept signals); past it they are ignored, counted as
// for an unknown task, and a kept one taken by its submission makes room.
TEST_F(SignalTest, SignalsKeptForTasksNotSeenYetAreBoundedInBytes) {
  const std::string mib(1 << 20, 'x');
  Outbox out;
  int kept = 0, ignored = 0;
  for (int i = 0; i < 80; ++i) {
    SignalOutcome o = Send(Signal("approve", {{"blob", mib}}, absl::StrCat("flood-", i)), &out);
    (o == SignalOutcome::kBuffered ? kept : ignored) += 1;
    EXPECT_TRUE(o == SignalOutcome::kBuffered || o == SignalOutcome::kUnknownTask) << i;
  }
  EXPECT_EQ(kept, 63);
  EXPECT_EQ(ignored, 17);
  EXPECT_EQ(engine_->stats().signals_ignored, 17);
  Submit("w", "flood-0");  // takes its signal: room for one more
  EXPECT_EQ(Send(Signal("approve", {{"blob", mib}}, "flood-80"), &out), SignalOutcome::kBuffered);
  EXPECT_EQ(Send(Signal("approve", {{"blob", mib}}, "flood-81"), &out), SignalOutcome::kUnknownTask);
}

TEST_F(SignalTest, ACancellationForATaskThatNeverComesIsForgottenAfterTheRetention) {
  Outbox out;
  EXPECT_EQ(Send(Cancel("never-submitted"), &out), SignalOutcome::kCancelAhead);
  std::vector<StateChange> changes;
  engine_->TakeStateChanges(&changes);
  ASSERT_EQ(changes.size(), 1u);
  clock_.Advance(config_.coordinator.finished_retention);
  engine_->Tick(&out);
  changes.clear();
  engine_->TakeStateChanges(&changes);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_FALSE(changes[0].state.has_value()) << "a tombstone";
  Outbox submitted = Submit("w", "never-submitted");
  EXPECT_EQ(submitted.work.size(), 1u) << "a submission after the retention runs";
}

}  // namespace
}  // namespace agentfleet
