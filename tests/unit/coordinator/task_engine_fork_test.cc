// Forks (TaskSubmission.fork, `agentfleet fork`): the step instances before
// the fork's step are served the original's outputs — no call, no cost,
// marked reused — and survive a takeover; the rest run for real, on the
// fork's models; a fork the config cannot honour is rejected.
#include "codec/json_value.h"
#include "coordinator/task_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine_test_util.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

constexpr char kConfig[] = R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}, better: {input_per_mtok: 2, output_per_mtok: 4}}
agents:
  reader: {provider: sim, models: {default: m}}
  writer: {provider: sim, models: {default: m}}
workflows:
  w:
    steps:
      - {id: read, agent: reader, for_each: $task.docs, input: {doc: $item}}
      - {id: draft, agent: writer, input: {notes: $steps.read}}
      - {id: polish, agent: writer, input: {draft: $steps.draft}}
)";

class ForkTest : public engine_test::EngineTest {
 protected:
  ForkTest() : EngineTest(kConfig) {}

  // A fork of "orig" from `from`, reusing read[0], read[1] (and draft, when
  // forking from polish).
  static v1::TaskSubmission Fork(const std::string& from, const std::vector<v1::ModelOverride>& models = {}) {
    v1::TaskSubmission s = engine_test::Submission("orig-fork-1", "w", {{"docs", {"a", "b"}}});
    v1::Fork& f = *s.mutable_fork();
    f.set_task_id("orig");
    f.set_from_step(from);
    auto reuse = [&](const std::string& step, int fan, const Json& output) {
      v1::ReusedOutput* r = f.add_reused();
      r->set_step(step);
      r->set_fan_index(fan);
      *r->mutable_output() = ToValue(output);
      r->set_model("m");
    };
    reuse("read", 0, {{"note", "a!"}});
    reuse("read", 1, {{"note", "b!"}});
    if (from == "polish") reuse("draft", -1, {{"text", "the draft"}});
    for (const v1::ModelOverride& m : models) *f.add_models() = m;
    (*s.mutable_labels())["forked_from"] = "orig";
    return s;
  }

  Outbox Submit(const v1::TaskSubmission& s, absl::Status* status = nullptr) {
    Outbox out;
    absl::Status st = engine_->Submit(s, "", 0, &out);
    if (status) *status = st;
    return out;
  }
};

TEST_F(ForkTest, StepsBeforeTheForkAreServedTheirRecordedOutputsAndTheRestRuns) {
  Outbox out = Submit(Fork("draft"));
  // No call for read[0] or read[1]: the first dispatch is draft, whose input
  // is built from the reused outputs.
  ASSERT_EQ(out.work.size(), 1u);
  const v1::WorkItem& draft = out.work[0].item;
  EXPECT_EQ(draft.step(), "draft");
  EXPECT_EQ(FromStruct(draft.input()), Json({{"notes", {{{"note", "a!"}}, {{"note", "b!"}}}}}));
  EXPECT_TRUE(draft.model().empty()) << "no override: the worker's config picks the model";
  Outbox next = engine_test::Answer(*engine_, config_, draft, {{"text", "new draft"}}, 10, 20);
  Outbox done = engine_test::Answer(*engine_, config_, engine_test::ItemFor(next, "polish"), {{"text", "final"}}, 5, 5);
  ASSERT_EQ(done.results.size(), 1u);
  const v1::TaskResult& r = done.results[0].result;
  EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(r.labels().at("forked_from"), "orig");
  int reused = 0;
  for (const v1::StepSummary& s : r.steps()) {
    if (s.step() == "read") {
      EXPECT_TRUE(s.reused());
      EXPECT_FALSE(s.cached());
      EXPECT_EQ(s.usage().calls(), 0);
      EXPECT_EQ(s.usage().cost_usd(), 0);
      ++reused;
    } else {
      EXPECT_FALSE(s.reused()) << s.step();
    }
  }
  EXPECT_EQ(reused, 2);
  // The fork paid for the two calls it made, and nothing else.
  EXPECT_EQ(r.usage().calls(), 2);
  EXPECT_EQ(r.usage().input_tokens(), 15);
}

TEST_F(ForkTest, AnOverriddenModelIsNamedInTheWorkItemAndItsPriceBudgeted) {
  v1::ModelOverride better;
  better.set_agent("writer");
  better.set_tier("default");
  better.set_model("better");
  v1::TaskSubmission s = Fork("polish", {better});
  s.mutable_budget()->set_max_cost_usd(0.001);
  Outbox out = Submit(s);
  ASSERT_EQ(out.work.size(), 1u);
  const v1::WorkItem& polish = out.work[0].item;
  EXPECT_EQ(polish.step(), "polish");
  EXPECT_EQ(polish.model(), "better");
  // The output cap is what the budget pays for at better's price
  // ($4/Mtok output), not m's ($1/Mtok): well under a quarter of m's cap.
  Outbox plain = Submit([] {
    v1::TaskSubmission p = Fork("polish");
    p.set_task_id("orig-fork-2");
    p.mutable_budget()->set_max_cost_usd(0.001);
    return p;
  }());
  ASSERT_EQ(plain.work.size(), 1u);
  EXPECT_LT(polish.max_tokens() * 3, plain.work[0].item.max_tokens());
}

TEST_F(ForkTest, ReusedOutputsSurviveATakeover) {
  Outbox out = Submit(Fork("draft"));
  ASSERT_EQ(out.work.size(), 1u);
  v1::TaskState state = engine_test::SnapshotOverTheWire(*engine_);
  TaskEngine other(&config_, &clock_);
  other.Restore("orig-fork-1", state, 0);
  Outbox next = engine_test::Answer(other, config_, out.work[0].item, {{"text", "d"}});
  Outbox done = engine_test::Answer(other, config_, engine_test::ItemFor(next, "polish"), {{"text", "f"}});
  ASSERT_EQ(done.results.size(), 1u);
  int reused = 0;
  for (const v1::StepSummary& s : done.results[0].result.steps()) reused += s.reused();
  EXPECT_EQ(reused, 2);
}

TEST_F(ForkTest, AForkTheConfigCannotHonourIsRejectedSayingWhy) {
  absl::Status status;
  Outbox out = Submit(Fork("publish"), &status);
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].result.status(), v1::TASK_STATUS_REJECTED);
  EXPECT_THAT(status.message(), HasSubstr("fork.from_step: workflow 'w' has no step 'publish'"));

  v1::ModelOverride unpriced;
  unpriced.set_agent("writer");
  unpriced.set_tier("default");
  unpriced.set_model("gpt-unknown");
  v1::TaskSubmission s = Fork("draft", {unpriced});
  s.set_task_id("orig-fork-3");
  out = Submit(s, &status);
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].result.status(), v1::TASK_STATUS_REJECTED);
  EXPECT_THAT(status.message(), HasSubstr("fork.models[0]: model 'gpt-unknown' has no price"));
  EXPECT_TRUE(out.work.empty());
}

}  // namespace
}  // namespace agentfleet
