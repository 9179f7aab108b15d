// An agent's max_in_flight (issue 20, item 5: a busy worker pool): at most
// that many of its attempts are out at once; the rest wait in the
// coordinator's fair queue and go as attempts end — by a result, a failure,
// a timeout or a cancellation — and an attempt out on a replica that took
// its task over still counts there.
#include <string>
#include <vector>

#include "common/clock.h"
#include "coordinator/task_engine.h"
#include "gtest/gtest.h"
#include "tests/unit/engine_test_util.h"

namespace agentfleet {
namespace {

using engine_test::Answer;
using engine_test::Fail;
using engine_test::Submission;

constexpr char kConfig[] = R"(
providers:
  sim: {type: simulated}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  busy: {provider: sim, models: {default: m}, max_in_flight: 2, schedule_to_start_timeout: 10s, max_attempts: 3,
         retry: {initial_backoff: 1s, max_backoff: 1s, jitter: 0}}
  free: {provider: sim, models: {default: m}}
workflows:
  w: {steps: [{id: s, agent: busy, input: {q: $task.q}}]}
  two: {steps: [{id: a, agent: free, input: {q: $task.q}}, {id: b, agent: busy, after: [a], input: {q: $task.q}}]}
)";

class DispatchWindowTest : public engine_test::EngineTest {
 protected:
  DispatchWindowTest() : EngineTest(kConfig) {}
  Outbox Submit(const std::string& id, const std::string& workflow = "w") {
    Outbox out;
    EXPECT_TRUE(engine_->Submit(Submission(id, workflow, {{"q", id}}), "", 0, &out).ok());
    return out;
  }
  Outbox Tick() {
    Outbox out;
    engine_->Tick(&out);
    return out;
  }
  // Ticks when the engine asks to (a freed slot asks at once).
  Outbox TickIfDue() { return engine_->NextTimer() <= clock_.Now() ? Tick() : Outbox(); }
};

TEST_F(DispatchWindowTest, AttemptsPastMaxInFlightWaitAndGoAsOthersEnd) {
  v1::WorkItem t1 = Submit("t1").work.at(0).item;
  v1::WorkItem t2 = Submit("t2").work.at(0).item;
  EXPECT_TRUE(Submit("t3").work.empty()) << "two out: the third waits in the coordinator";
  EXPECT_TRUE(Submit("t4").work.empty());
  EXPECT_TRUE(Submit("t5").work.empty());
  EXPECT_EQ(engine_->window_in_use("busy"), 2);
  EXPECT_EQ(engine_->window_waiting("busy"), 3u);
  EXPECT_EQ(engine_->stats().window_waits, 3);
  EXPECT_TRUE(Tick().work.empty()) << "nothing ended: nothing more goes";

  // A result frees a slot: the next in line goes.
  ASSERT_EQ(Answer(*engine_, config_, t1, {{"a", 1}}).results.size(), 1u);
  Outbox next = TickIfDue();
  ASSERT_EQ(next.work.size(), 1u);
  EXPECT_EQ(next.work[0].item.task_id(), "t3");
  // A failed attempt frees its slot too; its retry queues behind t4.
  Fail(*engine_, t2, "provider_error", /*retryable=*/true);
  next = TickIfDue();
  ASSERT_EQ(next.work.size(), 1u);
  EXPECT_EQ(next.work[0].item.task_id(), "t4");
  v1::WorkItem t4 = next.work[0].item;
  // A cancelled task's attempt ends with it.
  v1::TaskSignal cancel;
  cancel.set_task_id("t4");
  cancel.set_cancel(true);
  Outbox cancelled;
  EXPECT_EQ(engine_->OnSignal(cancel, 0, &cancelled), SignalOutcome::kCancelled);
  next = TickIfDue();
  ASSERT_EQ(next.work.size(), 1u);
  EXPECT_EQ(next.work[0].item.task_id(), "t5");
  // Timed-out attempts (t3, t5: no worker took them within 10 s) end.
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(TickIfDue().work.empty()) << "t2's retry waits: t3 and t5 are out";
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(absl::Seconds(i == 0 ? 10 : 1));
    for (const auto& w : Tick().work) ids.push_back(w.item.task_id() + "#" + std::to_string(w.item.attempt()));
  }
  ASSERT_EQ(ids.size(), 2u) << "t3 and t5 timed out: two slots free";
  EXPECT_EQ(ids[0], "t2#2") << "the retry that waited longest goes first";
  EXPECT_EQ(engine_->window_in_use("busy"), 2);
  EXPECT_EQ(engine_->window_waiting("busy"), 1u) << "the other timed-out attempt's retry";
}

TEST_F(DispatchWindowTest, OtherAgentsAreNotHeldAndAWaitIsPartOfTheTasksState) {
  Submit("t1");
  Submit("t2");
  // The free agent's step goes at once, and the busy agent's step after it waits.
  Outbox first = Submit("x", "two");
  ASSERT_EQ(first.work.size(), 1u);
  EXPECT_EQ(first.work[0].item.agent(), "free");
  EXPECT_TRUE(Answer(*engine_, config_, first.work[0].item, {{"a", 1}}).work.empty());
  EXPECT_EQ(engine_->window_waiting("busy"), 1u);

  // Another replica takes every task over: t1's and t2's attempts are still
  // out, so x's step keeps waiting there until one of them ends.
  std::vector<StateChange> changes;
  engine_->TakeStateChanges(&changes);
  TaskEngine other(&config_, &clock_);
  for (const StateChange& c : changes) {
    if (c.state) other.Restore(c.task_id, engine_test::Decoded(c), c.partition);
  }
  EXPECT_EQ(other.window_in_use("busy"), 2);
  Outbox restored;
  other.Tick(&restored);
  EXPECT_TRUE(restored.work.empty()) << "the restored attempts fill the window";
  EXPECT_EQ(other.window_waiting("busy"), 1u);
  // t1's worker answers on the new replica: x's step goes.
  v1::WorkItem t1;
  t1.set_task_id("t1");
  t1.set_step("s");
  t1.set_fan_index(-1);
  t1.set_attempt(1);
  t1.set_agent("busy");
  ASSERT_EQ(Answer(other, config_, t1, {{"a", 1}}).results.size(), 1u);
  ASSERT_LE(other.NextTimer(), clock_.Now());
  Outbox next;
  other.Tick(&next);
  ASSERT_EQ(next.work.size(), 1u);
  EXPECT_EQ(next.work[0].item.task_id(), "x");
  EXPECT_EQ(next.work[0].item.step(), "b");
}

TEST(DispatchWindowConfigTest, MaxInFlightIsANonNegativeCount) {
  std::string yaml = kConfig;
  yaml.replace(yaml.find("max_in_flight: 2"), 16, "max_in_flight: -1");
  auto bad = LoadConfigString(yaml, "window.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("window.yaml:6:"), std::string::npos) << bad.status();
  EXPECT_NE(bad.status().message().find("agents.busy.max_in_flight"), std::string::npos) << bad.status();
}

}  // namespace
}  // namespace agentfleet
