#include "coordinator/task_engine.h"

#include <set>

#include "codec/codec.h"
#include "codec/json_value.h"
#include "common/error_codes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/coordinator/task_engine_fixture.h"
#include "tests/unit/engine_test_util.h"
#include "worker/execution.h"

namespace agentfleet {
namespace {

using engine_test::kTp;
using engine_test::TaskEngineTest;

using Json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;


TEST_F(TaskEngineTest, RunsIndependentStepsInParallelAndFansOut) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), kTp, 0, &out).ok());
  // classify and other have no dependency on each other: both start at once.
  EXPECT_THAT(Steps(out), UnorderedElementsAre("classify", "other"));
  const v1::WorkItem classify = ItemFor(out, "classify");
  const v1::WorkItem other = ItemFor(out, "other");
  EXPECT_EQ(FromStruct(classify.input()), (Json{{"q", "why"}}));
  EXPECT_EQ(classify.idempotency_key(), "t1/classify/-1/1");
  EXPECT_EQ(out.work[0].traceparent, kTp);

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
