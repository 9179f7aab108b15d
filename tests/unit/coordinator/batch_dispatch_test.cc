// Provider batches in the engine: the first attempt of PRIORITY_BATCH work
// for an agent with `batch` is sent to be batched when the task's deadline
// leaves room for the batch (max_wait, the provider's window, a poll and an
// online call); it may take that long, survives a takeover as such, is
// priced at the batch discount with the saving in the result; a retry, a
// tight deadline or interactive work is online.
#include "codec/json_value.h"
#include "common/clock.h"
#include "coordinator/task_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine_test_util.h"
#include "worker/execution.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;

constexpr char kConfig[] = R"(
providers: {openai: {type: openai, base_url: "http://127.0.0.1:9/v1"}}
pricing: {m: {input_per_mtok: 1000000, output_per_mtok: 1000000, batch_discount: 0.5}}
agents:
  bulk:
    provider: openai
    models: {default: m}
    timeout: 60s
    batch: {max_items: 100, max_wait: 10m, poll_interval: 1m}
    breaker: {window_calls: 2, minimum_calls: 1, slow_call_rate: 0.5, slow_call_duration: 30s}
workflows:
  w:
    deadline: 48h
    steps: [{id: s, agent: bulk, input: {q: $task.q}}]
  short:
    deadline: 2h
    steps: [{id: s, agent: bulk, input: {q: $task.q}}]
)";

class BatchDispatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = LoadConfigString(kConfig, "batch.yaml");
    ASSERT_TRUE(c.ok()) << c.status();
    config_ = *c;
    engine_ = std::make_unique<TaskEngine>(&config_, &clock_);
  }
  v1::WorkItem Submit(const std::string& id, const std::string& workflow, v1::Priority priority) {
    v1::TaskSubmission s = engine_test::Submission(id, workflow, {{"q", id}});
    s.set_priority(priority);
    Outbox out;
    EXPECT_TRUE(engine_->Submit(s, "", 0, &out).ok());
    EXPECT_EQ(out.work.size(), 1u);
    return out.work.empty() ? v1::WorkItem() : out.work[0].item;
  }
  Outbox Answer(TaskEngine& engine, const v1::WorkItem& item, bool batch) {
    // A batch's answer comes hours after its call.
    ModelResponse r = ModelResponse::Ok({{"a", 1}}, 100, 100, "m", batch ? absl::Hours(3) : absl::Seconds(1));
    r.batch = batch;
    Outbox out;
    engine.OnEvent(MakeResult(config_, item, r, "w1", clock_.Now()), &out);
    return out;
  }
  FleetConfig config_;
  FakeClock clock_;
  std::unique_ptr<TaskEngine> engine_;
};

TEST_F(BatchDispatchTest, BatchWorkGoesToABatchAtTheBatchPriceAndInteractiveWorkDoesNot) {
  v1::WorkItem batched = Submit("t1", "w", v1::PRIORITY_BATCH);
  EXPECT_TRUE(batched.batch());
  EXPECT_FALSE(Submit("t2", "w", v1::PRIORITY_INTERACTIVE).batch()) << "interactive work is online";
  EXPECT_FALSE(Submit("t3", "short", v1::PRIORITY_BATCH).batch()) << "a 2h deadline leaves no room for a 24h window";
  EXPECT_EQ(engine_->stats().batched, 1);
  Outbox done = Answer(*engine_, batched, /*batch=*/true);
  ASSERT_EQ(done.results.size(), 1u);
  const v1::TaskResult& r = done.results[0].result;
  EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED);
  // 200 tokens at $1 a token online; half in a batch.
  EXPECT_DOUBLE_EQ(r.usage().cost_usd(), 100.0);
  EXPECT_DOUBLE_EQ(r.steps(0).batch_saved_usd(), 100.0);
  // Its three hours are no slow call: the agent's breaker stays closed.
  EXPECT_EQ(engine_->BreakerStatus("agent:bulk"), v1::BREAKER_STATUS_CLOSED);
}

TEST_F(BatchDispatchTest, ABatchedAttemptMayTakeItsBatchsTimeAndARetryIsOnline) {
  v1::WorkItem batched = Submit("t1", "w", v1::PRIORITY_BATCH);
  // The worker took it: an online call would time out after 60s + grace;
  // a batched one may take max_wait + 24h + a poll + an online call.
  Outbox ignored;
  engine_->OnEvent(MakeReceipt(batched, "w1", clock_.Now()), &ignored);
  for (int hour = 0; hour < 24; ++hour) {
    clock_.Advance(absl::Hours(1));
    Outbox beats;
    engine_->OnEvent(MakeHeartbeat(batched, "w1", clock_.Now()), &beats);
    engine_->Tick(&beats);
    EXPECT_TRUE(beats.work.empty()) << "hour " << hour;
  }
  // A takeover keeps it a batched attempt.
  v1::TaskState state = engine_test::SnapshotOverTheWire(*engine_);
  EXPECT_EQ(state.steps(0).batch_attempt(), 1);
  TaskEngine next(&config_, &clock_);
  next.Restore("t1", state, 0);
  Outbox restored;
  next.Tick(&restored);
  EXPECT_TRUE(restored.work.empty());
  // Past max_wait + 24h + poll + timeout + grace without a result: timed
  // out, and the retry is online.
  Outbox retry;
  for (int minute = 0; minute < 20 && retry.work.empty(); ++minute) {
    clock_.Advance(absl::Minutes(1));
    next.OnEvent(MakeHeartbeat(batched, "w1", clock_.Now()), &retry);
    next.Tick(&retry);
  }
  ASSERT_EQ(retry.work.size(), 1u);
  EXPECT_EQ(retry.work[0].item.attempt(), 2);
  EXPECT_FALSE(retry.work[0].item.batch());
  Outbox done = Answer(next, retry.work[0].item, /*batch=*/false);
  ASSERT_EQ(done.results.size(), 1u);
  EXPECT_DOUBLE_EQ(done.results[0].result.usage().cost_usd(), 200.0) << "online price";
  EXPECT_DOUBLE_EQ(done.results[0].result.steps(0).batch_saved_usd(), 0);
}

TEST(BatchConfigTest, MistakesNameTheirField) {
  auto error = [](const std::string& agent) {
    auto c = LoadConfigString(absl::StrCat(R"(
providers: {sim: {type: simulated}, openai: {type: openai, base_url: "http://x/v1"}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1, batch_discount: 1.5}}
agents:
  a: )", agent, R"(
workflows: {w: {steps: [{id: s, agent: a, input: {q: $task.q}}]}}
)"),
                              "bad.yaml");
    return c.ok() ? std::string("loaded") : std::string(c.status().message());
  };
  EXPECT_THAT(error("{provider: openai, models: {default: m}}"),
              ::testing::HasSubstr("pricing.m.batch_discount: must be >= 0 and <= 1"));
  EXPECT_THAT(error("{provider: sim, models: {default: m}, batch: {}}"),
              ::testing::HasSubstr("agents.a.batch: provider 'sim' has no batch API"));
  EXPECT_THAT(error("{provider: openai, models: {default: m}, batch: {max_wait: 25h}}"),
              ::testing::HasSubstr("agents.a.batch.max_wait: must be more than 0 and at most 24h"));
  EXPECT_THAT(error("{provider: openai, models: {default: m}, batch: {max_items: 0}}"),
              ::testing::HasSubstr("agents.a.batch.max_items: must be >= 1 and <= 50000"));
  EXPECT_THAT(error("{provider: openai, models: {default: m}, batch: {poll_interval: 1ms}}"),
              ::testing::HasSubstr("agents.a.batch.poll_interval: must be between 100ms and 1h"));
}

}  // namespace
}  // namespace agentfleet
