// TaskEngine's durable state (coordinator/task_engine_state.cc): snapshots a
// replica that takes over resumes from, finished ids kept for the retention
// then tombstoned, restored tasks that cannot run failed with a reason, and
// partitions dropped.
#include "coordinator/task_engine.h"

#include "codec/codec.h"
#include "google/protobuf/util/message_differencer.h"
#include "common/error_codes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/coordinator/task_engine_fixture.h"

namespace agentfleet {
namespace {

using engine_test::Decoded;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

class TaskEngineStateTest : public engine_test::TaskEngineTest {};

TEST_F(TaskEngineStateTest, AnotherEngineResumesATaskFromItsSnapshot) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), engine_test::kTp, 3, &out).ok());
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
  ASSERT_TRUE(wire.ParseFromString(*changes[0].state));

  TaskEngine other_engine(&config_, &clock_);
  other_engine.Restore("t1", wire, 3);
  EXPECT_EQ(other_engine.active_tasks(), 1u);
  Outbox none;
  other_engine.OnEvent(MakeResult(config_, other, ModelResponse::Ok({{"o", 1}}, 1, 1, "m"), "w1", clock_.Now()), &none);
  other_engine.OnEvent(MakeResult(config_, fan.work[1].item, ModelResponse::Ok({{"r", 1}}, 1, 1, "m"), "w1", clock_.Now()), &none);
  other_engine.OnEvent(MakeResult(config_, fan.work[2].item, ModelResponse::Ok({{"r", 2}}, 1, 1, "m"), "w1", clock_.Now()), &none);
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
  EXPECT_EQ(retry.work[0].traceparent, engine_test::kTp);
  Outbox respond;
  other_engine.OnEvent(MakeResult(config_, retry.work[0].item, ModelResponse::Ok({{"r", 0}}, 1, 1, "m"), "w2", clock_.Now()), &respond);
  ASSERT_EQ(respond.work.size(), 1u);
  EXPECT_EQ(FromStruct(respond.work[0].item.input())["found"], (Json{{{"r", 0}}, {{"r", 1}}, {{"r", 2}}}));
  EXPECT_EQ(FromStruct(respond.work[0].item.input())["cat"], "billing");
}

TEST_F(TaskEngineStateTest, FinishedIdsAreKeptForTheRetentionThenTombstoned) {
  Outbox out;
  v1::TaskSubmission s = Task("t1");
  *s.mutable_input() = ToStruct(Json{{"sources", Json::array()}});  // fails at once: no "q"
  ASSERT_TRUE(engine_->Submit(s, "", 2, &out).ok());
  ASSERT_EQ(out.results.size(), 1u);
  std::vector<StateChange> changes;
  engine_->TakeStateChanges(&changes);
  ASSERT_EQ(changes.size(), 1u);
  std::optional<v1::TaskState> compact = Decoded(changes[0]);
  ASSERT_TRUE(compact && compact->finished());
  EXPECT_FALSE(compact->submission().has_input());  // compact
  // The compact snapshot passes the codec, as the restoring replica reads it.
  Encoded wire = EncodeSerialized(*changes[0].state, *v1::TaskState::descriptor(), "");
  ASSERT_TRUE(Decode<v1::TaskState>(wire.payload, wire.headers).ok());
  // A new replica that restores the compact snapshot still refuses the id.
  TaskEngine replica(&config_, &clock_);
  replica.Restore("t1", compact, 2);
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

TEST_F(TaskEngineStateTest, ARestoredTaskWhoseWorkflowWasRemovedFailsWithTheReason) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), engine_test::kTp, 5, &out).ok());
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
  replica.Restore("t1", Decoded(changes[0]), 5);
  EXPECT_EQ(replica.active_tasks(), 0u);
  EXPECT_LE(replica.NextTimer(), clock_.Now());
  Outbox failed;
  replica.Tick(&failed);
  ASSERT_EQ(failed.results.size(), 1u);
  EXPECT_EQ(failed.results[0].result.status(), v1::TASK_STATUS_FAILED);
  EXPECT_EQ(failed.results[0].result.error().code(), "workflow_removed");
  EXPECT_EQ(failed.results[0].traceparent, engine_test::kTp);
  // It is now a finished id: a resubmission is not run, and the snapshot says so.
  changes.clear();
  replica.TakeStateChanges(&changes);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_TRUE(Decoded(changes[0])->finished());
  EXPECT_EQ(changes[0].partition, 5);
}

TEST_F(TaskEngineStateTest, AnUnreadableSnapshotFailsTheTaskInsteadOfRunningAnOlderOne) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), "", 2, &out).ok());
  ASSERT_TRUE(engine_->Submit(Task("t2"), "", 2, &out).ok());
  std::vector<StateChange> older;
  engine_->TakeStateChanges(&older);
  ASSERT_EQ(older.size(), 2u);
  TaskEngine replica(&config_, &clock_);
  // The state partition holds an older readable snapshot of each task, then
  // t1's latest record is garbage, while t2 gets a readable newer one after an unreadable one.
  for (const auto& c : older) replica.Restore(c.task_id, Decoded(c), 2);
  replica.RestoreUnreadable("t1", "payload is not a valid agentfleet.v1.TaskState", 2);
  replica.RestoreUnreadable("t2", "truncated", 2);
  replica.Restore("t2", Decoded(older[0].task_id == "t2" ? older[0] : older[1]), 2);
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

// A step that ended is written once and its bytes reused (the snapshot is
// put together from parts): every later snapshot still carries it whole,
// with the submission, its input and the task's trace context.
TEST_F(TaskEngineStateTest, EverySnapshotCarriesTheStepsThatEndedAndTheSubmission) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), engine_test::kTp, 3, &out).ok());
  v1::WorkItem other = ItemFor(out, "other");
  Outbox fan = Answer(ItemFor(out, "classify"), {{"cat", "billing"}});
  std::vector<StateChange> first;
  engine_->TakeStateChanges(&first);
  Outbox ignored;
  engine_->OnEvent(MakeResult(config_, other, ModelResponse::Ok({{"o", 1}}, 1, 1, "m"), "w1", clock_.Now()), &ignored);
  std::vector<StateChange> second;
  engine_->TakeStateChanges(&second);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].traceparent, engine_test::kTp);
  std::optional<v1::TaskState> before = Decoded(first[0]);
  std::optional<v1::TaskState> after = Decoded(second[0]);
  ASSERT_TRUE(before && after);
  auto step = [](const v1::TaskState& st, const std::string& id) { return engine_test::StepStateOf(st, id); };
  EXPECT_EQ(step(*before, "classify").status(), v1::STEP_STATUS_SUCCEEDED);
  EXPECT_EQ(step(*before, "classify").output().fields().at("cat").string_value(), "billing");
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(step(*before, "classify"), step(*after, "classify")));
  EXPECT_EQ(step(*after, "other").status(), v1::STEP_STATUS_SUCCEEDED);
  EXPECT_EQ(step(*after, "other").output().fields().at("o").number_value(), 1);
  EXPECT_EQ(after->steps_size(), before->steps_size());  // each instance once
  EXPECT_EQ(after->submission().task_id(), "t1");
  EXPECT_EQ(after->submission().input().fields().at("sources").list_value().values_size(), 3);
  EXPECT_EQ(after->traceparent(), engine_test::kTp);
  EXPECT_EQ(after->usage().calls(), 2);
}

// A step that succeeded while an earlier, timed-out attempt of it may still
// spend is not final yet: that attempt's late result adds its usage, and the
// next snapshot carries it (the step's written part is not reused stale).
TEST_F(TaskEngineStateTest, ALateResultAfterTheStepSucceededIsInTheNextSnapshot) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(Task("t1"), engine_test::kTp, 3, &out).ok());
  Outbox fan = Answer(ItemFor(out, "classify"), {{"cat", "billing"}});
  const v1::WorkItem first = fan.work[0].item;  // research[0], attempt 1
  Outbox ignored;
  engine_->OnEvent(MakeReceipt(first, "w1", clock_.Now()), &ignored);
  clock_.Advance(absl::Seconds(11));  // its heartbeat times out
  engine_->Tick(&ignored);
  clock_.Advance(absl::Seconds(2));
  Outbox retry;
  engine_->Tick(&retry);
  ASSERT_EQ(retry.work.size(), 1u);
  ASSERT_EQ(retry.work[0].item.attempt(), 2);
  engine_->OnEvent(MakeResult(config_, retry.work[0].item, ModelResponse::Ok({{"r", 2}}, 1, 1, "m"), "w2", clock_.Now()),
                   &ignored);
  auto research = [](const std::vector<StateChange>& changes) {
    EXPECT_EQ(changes.size(), 1u);
    if (changes.empty()) return v1::StepState();
    return engine_test::StepStateOf(*Decoded(changes[0]), "research", 0);
  };
  std::vector<StateChange> before;
  engine_->TakeStateChanges(&before);
  v1::StepState succeeded = research(before);
  ASSERT_EQ(succeeded.status(), v1::STEP_STATUS_SUCCEEDED);
  // Attempt 1 answers late: stale for the step, but what it spent counts.
  engine_->OnEvent(MakeResult(config_, first, ModelResponse::Ok({{"r", 1}}, 7, 3, "m"), "w1", clock_.Now()), &ignored);
  std::vector<StateChange> after;
  engine_->TakeStateChanges(&after);
  v1::StepState now = research(after);
  EXPECT_EQ(now.status(), v1::STEP_STATUS_SUCCEEDED);
  EXPECT_EQ(now.usage().input_tokens(), succeeded.usage().input_tokens() + 7);
  EXPECT_EQ(now.usage().output_tokens(), succeeded.usage().output_tokens() + 3);
  EXPECT_EQ(now.output().fields().at("r").number_value(), 2);  // the result that counted
}

TEST_F(TaskEngineStateTest, DroppingAPartitionForgetsItsTasks) {
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

}  // namespace
}  // namespace agentfleet
