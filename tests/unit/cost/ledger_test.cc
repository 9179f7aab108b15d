// The cost ledger's entry for a result: the task's own spend (not its
// children's), line by line per agent and model, what the cache saved, and
// what no step holds (attempts a re-plan abandoned) on a line of its own.
#include "cost/ledger.h"

#include "gtest/gtest.h"

namespace agentfleet {
namespace {

v1::Usage U(int64_t in, int64_t out, double usd, int64_t calls) {
  v1::Usage u;
  u.set_input_tokens(in);
  u.set_output_tokens(out);
  u.set_cost_usd(usd);
  u.set_calls(calls);
  return u;
}

v1::StepSummary* Step(v1::TaskResult* r, const std::string& agent, const std::string& model, v1::Usage u) {
  v1::StepSummary* s = r->add_steps();
  s->set_step(agent + "-step");
  s->set_agent(agent);
  s->set_model(model);
  *s->mutable_usage() = u;
  return s;
}

TEST(CostLedgerTest, AnEntryHasTheTasksOwnSpendByAgentAndModelAndWhatTheCacheSaved) {
  v1::TaskResult r;
  r.set_task_id("t1");
  r.set_tenant("acme");
  r.set_workflow("support");
  r.set_status(v1::TASK_STATUS_COMPLETED);
  r.mutable_finished_at()->set_seconds(1'800'000'000);
  Step(&r, "triager", "small", U(100, 10, 0.0001, 1));
  Step(&r, "researcher", "large", U(1000, 200, 0.006, 2));
  Step(&r, "researcher", "large", U(1000, 100, 0.004, 1));
  v1::StepSummary* cached = Step(&r, "researcher", "large", U(0, 0, 0, 0));
  cached->set_cached(true);
  cached->set_saved_cost_usd(0.005);
  // A child workflow's step: the child's spend, in the child's own entry.
  Step(&r, "", "", U(500, 50, 0.5, 3));
  *r.mutable_usage() = U(2600 + 70, 360 + 7, 0.0101 + 0.5 + 0.002, 4 + 3 + 1);

  v1::CostEntry e = CostEntryOf(r, U(500, 50, 0.5, 3));
  EXPECT_EQ(e.task_id(), "t1");
  EXPECT_EQ(e.tenant(), "acme");
  EXPECT_EQ(e.workflow(), "support");
  EXPECT_EQ(e.finished_at().seconds(), 1'800'000'000);
  EXPECT_NEAR(e.usage().cost_usd(), 0.0121, 1e-12) << "the child's $0.50 is not the parent's";
  EXPECT_EQ(e.usage().calls(), 5);
  ASSERT_EQ(e.lines_size(), 3);
  EXPECT_EQ(e.lines(0).agent(), "triager");
  EXPECT_EQ(e.lines(1).agent(), "researcher");
  EXPECT_EQ(e.lines(1).model(), "large");
  EXPECT_NEAR(e.lines(1).usage().cost_usd(), 0.01, 1e-12);
  EXPECT_EQ(e.lines(1).usage().calls(), 3);
  EXPECT_NEAR(e.lines(1).cache_saved_usd(), 0.005, 1e-12);
  EXPECT_EQ(e.lines(2).agent(), kUnattributedLine) << "spend no step holds";
  EXPECT_NEAR(e.lines(2).usage().cost_usd(), 0.002, 1e-12);
  EXPECT_EQ(e.lines(2).usage().input_tokens(), 70);
  EXPECT_NEAR(e.cache_saved_usd(), 0.005, 1e-12);
  double sum = 0;
  for (const auto& l : e.lines()) sum += l.usage().cost_usd();
  EXPECT_NEAR(sum, e.usage().cost_usd(), 1e-12) << "the lines add up to the entry";
}

TEST(CostLedgerTest, ATaskWhoseStepsHoldAllItsSpendHasNoAbandonedLine) {
  v1::TaskResult r;
  r.set_task_id("t2");
  Step(&r, "a", "m", U(10, 1, 0.1, 1));
  Step(&r, "a", "m", U(10, 1, 0.2, 1));
  *r.mutable_usage() = U(20, 2, 0.1 + 0.2, 2);
  v1::CostEntry e = CostEntryOf(r, v1::Usage());
  ASSERT_EQ(e.lines_size(), 1);
  EXPECT_EQ(e.lines(0).usage().calls(), 2);
  EXPECT_EQ(e.usage().cost_usd(), r.usage().cost_usd());
}

}  // namespace
}  // namespace agentfleet
