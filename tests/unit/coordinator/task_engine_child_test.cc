// Child workflows (issue 18, item 4): a step that runs another workflow as a
// child task — a deterministic id, the parent's tenant, priority, deadline
// and trace, a budget carved out of what the parent has left — and waits for
// its result (on the signals topic); a failed child fails the parent, a
// cancelled or failed parent cancels its running children, depth is
// bounded, and the wait survives a restore on another replica.
#include "codec/codec.h"
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

constexpr char kConfig[] = R"(
kafka: {topic_prefix: af.}
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1000, output_per_mtok: 1000}}
agents:
  a: {provider: sim, models: {default: m}, max_tokens: 100}
coordinator: {max_child_depth: 2}
workflows:
  parent:
    budget: {max_cost_usd: 1.0}
    steps:
      - {id: plan, agent: a, input: {q: $task.q}}
      - id: research
        workflow: child
        input: {topic: $steps.plan.topic}
        budget: {max_cost_usd: 0.5}
      - {id: write, agent: a, input: {r: $steps.research.summary}}
  child:
    steps:
      - {id: look, agent: a, input: {t: $task.topic}}
  recursive:
    steps:
      - {id: again, workflow: recursive, input: {}}
)";

class ChildTest : public engine_test::EngineTest {
 protected:
  ChildTest() : EngineTest(kConfig) {}
  Outbox Answer(const v1::WorkItem& item, Json output, TaskEngine* engine = nullptr, int64_t tokens = 100) {
    return engine_test::Answer(engine ? *engine : *engine_, config_, item, std::move(output), tokens, tokens);
  }
  // The child submission the outbox sends to the tasks topic.
  static v1::TaskSubmission ChildOf(const Outbox& out) {
    for (const auto& r : out.records) {
      if (r.topic != "af.tasks") continue;
      auto s = Decode<v1::TaskSubmission>(r.payload, r.headers);
      EXPECT_TRUE(s.ok()) << s.status();
      return s.ok() ? *s : v1::TaskSubmission();
    }
    ADD_FAILURE() << "no child submission";
    return {};
  }
  // The signals the outbox sends (child results, cancellations), by task.
  static std::vector<v1::TaskSignal> Signals(const Outbox& out) {
    std::vector<v1::TaskSignal> signals;
    for (const auto& r : out.records) {
      if (r.topic != "af.signals") continue;
      auto s = Decode<v1::TaskSignal>(r.payload, r.headers);
      EXPECT_TRUE(s.ok()) << s.status();
      if (s.ok()) signals.push_back(*s);
    }
    return signals;
  }
  Outbox StartParent(const std::string& id = "p1") {
    Outbox out;
    v1::TaskSubmission s = engine_test::Submission(id, "parent", {{"q", "why"}});
    s.set_tenant("acme");
    s.set_priority(v1::PRIORITY_INTERACTIVE);
    EXPECT_TRUE(engine_->Submit(s, "", 1, &out).ok());
    return Answer(ItemFor(out, "plan"), {{"topic", "tides"}});
  }
};

TEST_F(ChildTest, TheChildRunsAsItsOwnTaskAndItsResultIsTheStepsOutput) {
  Outbox started = StartParent();
  v1::TaskSubmission child = ChildOf(started);
  EXPECT_EQ(child.task_id(), "p1/research");
  EXPECT_EQ(child.workflow(), "child");
  EXPECT_EQ(child.tenant(), "acme");
  EXPECT_EQ(child.priority(), v1::PRIORITY_INTERACTIVE);
  EXPECT_EQ(child.parent_task_id(), "p1");
  EXPECT_EQ(child.depth(), 1);
  EXPECT_EQ(child.labels().at("parent_task_id"), "p1");
  EXPECT_EQ(FromStruct(child.input()), (Json{{"topic", "tides"}}));
  // Its own cap (0.5), less than the 1.0 - 0.2 the parent has left.
  EXPECT_DOUBLE_EQ(child.budget().max_cost_usd(), 0.5);
  EXPECT_TRUE(started.work.empty()) << "the parent waits";

  // The child runs (here on the same replica) and its result goes to the parent.
  Outbox child_run;
  ASSERT_TRUE(engine_->Submit(child, "", 1, &child_run).ok());
  Outbox child_done = Answer(ItemFor(child_run, "look"), {{"summary", "moon"}});
  ASSERT_EQ(child_done.results.size(), 1u);
  EXPECT_EQ(child_done.results[0].result.parent_task_id(), "p1");
  std::vector<v1::TaskSignal> to_parent = Signals(child_done);
  ASSERT_EQ(to_parent.size(), 1u);
  EXPECT_EQ(to_parent[0].task_id(), "p1");
  Outbox resumed;
  EXPECT_EQ(engine_->OnSignal(to_parent[0], 1, &resumed), SignalOutcome::kDelivered);
  ASSERT_EQ(resumed.work.size(), 1u);
  EXPECT_EQ(FromStruct(resumed.work[0].item.input()), (Json{{"r", "moon"}}));
  Outbox again;
  EXPECT_EQ(engine_->OnSignal(to_parent[0], 1, &again), SignalOutcome::kDuplicate);
  Outbox done = Answer(resumed.work[0].item, {{"text", "done"}});
  ASSERT_EQ(done.results.size(), 1u);
  const v1::TaskResult& r = done.results[0].result;
  EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED);
  // The parent's usage includes the child's: three calls of 200 tokens.
  EXPECT_EQ(r.usage().input_tokens() + r.usage().output_tokens(), 600);
  EXPECT_NEAR(r.usage().cost_usd(), 0.6, 1e-9);
}

TEST_F(ChildTest, AChildNeverGetsMoreThanTheParentHasLeft) {
  Outbox out;
  v1::TaskSubmission s = engine_test::Submission("p1", "parent", {{"q", "why"}});
  s.mutable_budget()->set_max_cost_usd(0.5);  // tighter than the workflow's
  ASSERT_TRUE(engine_->Submit(s, "", 1, &out).ok());
  Outbox started = Answer(ItemFor(out, "plan"), {{"topic", "tides"}});
  // 0.5 - 0.2 spent on plan: 0.3 left, below the step's cap of 0.5.
  EXPECT_NEAR(ChildOf(started).budget().max_cost_usd(), 0.3, 1e-9);
}

TEST_F(ChildTest, AFailedChildFailsTheParentAndAnEndedParentCancelsItsChild) {
  Outbox started = StartParent();
  v1::TaskSignal to_parent;
  to_parent.set_task_id("p1");
  to_parent.set_name("child");
  v1::TaskResult* child = to_parent.mutable_child_result();
  child->set_task_id("p1/research");
  child->set_status(v1::TASK_STATUS_BUDGET_EXHAUSTED);
  child->mutable_error()->set_message("out of money");
  Outbox failed;
  EXPECT_EQ(engine_->OnSignal(to_parent, 1, &failed), SignalOutcome::kDelivered);
  ASSERT_EQ(failed.results.size(), 1u);
  EXPECT_EQ(failed.results[0].result.status(), v1::TASK_STATUS_FAILED);
  EXPECT_EQ(failed.results[0].result.error().code(), "child_failed");
  EXPECT_THAT(failed.results[0].result.error().message(), HasSubstr("ended BUDGET_EXHAUSTED: out of money"));

  StartParent("p2");
  v1::TaskSignal cancel;
  cancel.set_task_id("p2");
  cancel.set_cancel(true);
  Outbox cancelled;
  EXPECT_EQ(engine_->OnSignal(cancel, 1, &cancelled), SignalOutcome::kCancelled);
  std::vector<v1::TaskSignal> sent = Signals(cancelled);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].task_id(), "p2/research");
  EXPECT_TRUE(sent[0].cancel());
  EXPECT_THAT(sent[0].reason(), HasSubstr("its parent task p2 ended CANCELLED"));
}

TEST_F(ChildTest, DepthIsBounded) {
  v1::TaskSubmission deep = engine_test::Submission("r", "recursive", {});
  deep.set_depth(2);  // max_child_depth: 2
  Outbox out;
  ASSERT_TRUE(engine_->Submit(deep, "", 1, &out).ok());
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].result.error().code(), "child_depth_exceeded");
  v1::TaskSubmission shallow = engine_test::Submission("r2", "recursive", {});
  shallow.set_depth(1);
  Outbox ok;
  ASSERT_TRUE(engine_->Submit(shallow, "", 1, &ok).ok());
  EXPECT_EQ(ChildOf(ok).depth(), 2);
}

TEST_F(ChildTest, AParentWaitingForItsChildIsRestoredOnAnotherReplica) {
  StartParent();
  std::vector<StateChange> changes;
  engine_->TakeStateChanges(&changes);
  std::optional<v1::TaskState> state;
  for (auto& c : changes) {
    if (c.task_id == "p1") state = engine_test::Decoded(c);
  }
  ASSERT_TRUE(state.has_value());
  TaskEngine other(&config_, &clock_);
  other.Restore("p1", *state, 1);
  v1::TaskSignal to_parent;
  to_parent.set_task_id("p1");
  v1::TaskResult* child = to_parent.mutable_child_result();
  child->set_task_id("p1/research");
  child->set_status(v1::TASK_STATUS_COMPLETED);
  *child->mutable_output() = ToValue(Json{{"summary", "moon"}});
  Outbox resumed;
  EXPECT_EQ(other.OnSignal(to_parent, 1, &resumed), SignalOutcome::kDelivered);
  ASSERT_EQ(resumed.work.size(), 1u);
  EXPECT_EQ(resumed.work[0].item.step(), "write");
}

}  // namespace
}  // namespace agentfleet
