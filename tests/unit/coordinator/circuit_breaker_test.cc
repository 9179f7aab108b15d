// Circuit breakers: resilience4j's state machine on a fake clock, the set of
// breakers shared between replicas through their transitions, and what the
// TaskEngine does when one is open (fallback, or fail fast).
#include "coordinator/circuit_breaker.h"

#include "codec/json_value.h"
#include "common/clock.h"
#include "common/error_codes.h"
#include "coordinator/task_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine_test_util.h"
#include "worker/execution.h"

namespace agentfleet {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

BreakerConfig Small() {
  BreakerConfig c;
  c.window_calls = 4;
  c.minimum_calls = 4;
  c.failure_rate = 0.5;
  c.slow_call_rate = 0.75;
  c.slow_call_duration = absl::Seconds(10);
  c.wait_in_open = absl::Seconds(30);
  c.half_open_calls = 2;
  return c;
}

constexpr absl::Duration kFast = absl::Milliseconds(100);

TEST(CircuitBreakerTest, OpensOnTheFailureRateProbesInHalfOpenAndCloses) {
  absl::Time t = absl::FromUnixSeconds(1000);
  CircuitBreaker b("agent:a", Small());
  b.Record(t, false, kFast);
  b.Record(t, true, kFast);
  b.Record(t, false, kFast);
  EXPECT_EQ(b.Status(t), v1::BREAKER_STATUS_CLOSED) << "fewer than minimum_calls: no decision";
  b.Record(t, true, kFast);  // 2 of 4 failed
  EXPECT_EQ(b.Status(t), v1::BREAKER_STATUS_OPEN);
  v1::BreakerState published;
  ASSERT_TRUE(b.TakeTransition(&published));
  EXPECT_EQ(published.status(), v1::BREAKER_STATUS_OPEN);
  EXPECT_EQ(published.reason(), "2 of 4 calls failed (threshold 50%)");
  EXPECT_FALSE(b.TryAcquire(t + absl::Seconds(29)));
  // After wait_in_open: two probes go through, a third waits.
  EXPECT_TRUE(b.TryAcquire(t + absl::Seconds(30)));
  EXPECT_EQ(b.Status(t + absl::Seconds(30)), v1::BREAKER_STATUS_HALF_OPEN);
  EXPECT_TRUE(b.TryAcquire(t + absl::Seconds(30)));
  EXPECT_FALSE(b.TryAcquire(t + absl::Seconds(30)));
  b.Record(t + absl::Seconds(31), false, kFast);
  b.Record(t + absl::Seconds(31), false, kFast);
  EXPECT_EQ(b.Status(t + absl::Seconds(31)), v1::BREAKER_STATUS_CLOSED);
  EXPECT_TRUE(b.TryAcquire(t + absl::Seconds(31)));
}

TEST(CircuitBreakerTest, AFailedProbeOpensItAgain) {
  absl::Time t = absl::FromUnixSeconds(1000);
  CircuitBreaker b("agent:a", Small());
  for (int i = 0; i < 4; ++i) b.Record(t, true, kFast);
  absl::Time later = t + absl::Seconds(30);
  ASSERT_TRUE(b.TryAcquire(later));
  ASSERT_TRUE(b.TryAcquire(later));
  b.Record(later, true, kFast);
  b.Record(later, false, kFast);
  EXPECT_EQ(b.Status(later), v1::BREAKER_STATUS_OPEN);
  EXPECT_FALSE(b.TryAcquire(later + absl::Seconds(29)));
}

TEST(CircuitBreakerTest, SlowCallsOpenItToo) {
  absl::Time t = absl::FromUnixSeconds(1000);
  CircuitBreaker b("model:p/m", Small());
  for (int i = 0; i < 3; ++i) b.Record(t, false, absl::Seconds(12));
  b.Record(t, false, kFast);  // 3 of 4 slow: 75%
  EXPECT_EQ(b.Status(t), v1::BREAKER_STATUS_OPEN);
  v1::BreakerState published;
  ASSERT_TRUE(b.TakeTransition(&published));
  EXPECT_THAT(published.reason(), HasSubstr("3 of 4 calls took 10s or longer"));
}

TEST(CircuitBreakerTest, ATimeWindowForgetsOldCalls) {
  BreakerConfig c = Small();
  c.window = BreakerConfig::Window::kTime;
  c.window_time = absl::Seconds(60);
  absl::Time t = absl::FromUnixSeconds(1000);
  CircuitBreaker b("agent:a", c);
  b.Record(t, true, kFast);
  b.Record(t, true, kFast);
  b.Record(t + absl::Seconds(61), false, kFast);
  b.Record(t + absl::Seconds(61), false, kFast);
  b.Record(t + absl::Seconds(62), false, kFast);
  EXPECT_EQ(b.Status(t + absl::Seconds(62)), v1::BREAKER_STATUS_CLOSED) << "the two failures left the window";
  b.Record(t + absl::Seconds(63), true, kFast);  // 1 of 4 in the window
  EXPECT_EQ(b.Status(t + absl::Seconds(63)), v1::BREAKER_STATUS_CLOSED);
}

TEST(CircuitBreakerTest, ProbesThatNeverAnswerCannotPinItHalfOpen) {
  BreakerConfig c = Small();
  c.max_half_open_wait = absl::Seconds(20);
  absl::Time t = absl::FromUnixSeconds(1000);
  CircuitBreaker b("agent:a", c);
  for (int i = 0; i < 4; ++i) b.Record(t, true, kFast);
  absl::Time half = t + absl::Seconds(30);
  ASSERT_TRUE(b.TryAcquire(half));
  ASSERT_TRUE(b.TryAcquire(half));
  EXPECT_FALSE(b.TryAcquire(half + absl::Seconds(10)));  // probes out, no answer yet
  EXPECT_EQ(b.Status(half + absl::Seconds(20)), v1::BREAKER_STATUS_OPEN);
  // Open again for wait_in_open, then fresh probes.
  EXPECT_TRUE(b.TryAcquire(half + absl::Seconds(50)));
}

constexpr char kConfig[] = R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  primary:
    provider: sim
    models: {default: m}
    max_attempts: 1
    fallback: {agent: backup}
    breaker: {window_calls: 2, minimum_calls: 2, failure_rate: 0.5, wait_in_open: 30s, half_open_calls: 1}
  backup: {provider: sim, models: {default: m}}
  lonely:
    provider: sim
    models: {default: m}
    max_attempts: 1
    breaker: {window_calls: 1, minimum_calls: 1, wait_in_open: 30s}
workflows:
  w: {steps: [{id: s, agent: primary, input: {q: $task.q}}]}
  l: {steps: [{id: s, agent: lonely, input: {q: $task.q}}]}
)";

class BreakerEngineTest : public engine_test::EngineTest {
 protected:
  BreakerEngineTest() : EngineTest(kConfig) {}
  void SetUp() override {
    EngineTest::SetUp();
    engine_->SetReplicaName("c1");
  }
  Outbox Submit(TaskEngine& engine, const std::string& id, const std::string& workflow = "w") {
    Outbox out;
    EXPECT_TRUE(engine.Submit(engine_test::Submission(id, workflow, {{"q", id}}), "", 0, &out).ok());
    return out;
  }
};

TEST_F(BreakerEngineTest, AnOpenBreakerSendsWorkToTheFallbackAndTheOtherReplicasFollow) {
  // Two tasks fail on primary (each then served by backup): the breaker opens.
  for (const char* id : {"t1", "t2"}) {
    Outbox out = Submit(*engine_, id);
    ASSERT_EQ(out.work.size(), 1u);
    ASSERT_EQ(out.work[0].item.agent(), "primary");
    Outbox fallback;
    engine_->OnEvent(MakeFailure(out.work[0].item, kProviderUnavailable, "down", true, "w1", clock_.Now()), &fallback);
    ASSERT_EQ(fallback.work.size(), 1u);
    EXPECT_EQ(fallback.work[0].item.agent(), "backup");
  }
  EXPECT_EQ(engine_->BreakerStatus("agent:primary"), v1::BREAKER_STATUS_OPEN);
  // The third task goes straight to backup, without a call to primary.
  Outbox third = Submit(*engine_, "t3");
  ASSERT_EQ(third.work.size(), 1u);
  EXPECT_EQ(third.work[0].item.agent(), "backup");
  EXPECT_EQ(third.work[0].item.attempt(), 1);
  EXPECT_EQ(engine_->stats().breaker_rejections, 1);
  Outbox done;
  ModelResponse ok = ModelResponse::Ok({{"a", 1}}, 1, 1, "m");
  engine_->OnEvent(MakeResult(config_, third.work[0].item, ok, "w1", clock_.Now()), &done);
  ASSERT_EQ(done.results.size(), 1u);
  EXPECT_EQ(done.results[0].result.status(), v1::TASK_STATUS_PARTIAL);
  EXPECT_THAT(done.results[0].result.steps(0).explanation(), HasSubstr("circuit breaker 'agent:primary' is open"));

  // Another replica applies the published transition: it starts with the fleet's view.
  std::vector<v1::BreakerState> transitions = engine_->TakeBreakerTransitions();
  ASSERT_EQ(transitions.size(), 1u);
  EXPECT_EQ(transitions[0].replica(), "c1");
  TaskEngine other(&config_, &clock_);
  other.SetReplicaName("c2");
  for (const auto& t : transitions) other.ApplyBreaker(t);
  EXPECT_EQ(other.BreakerStatus("agent:primary"), v1::BREAKER_STATUS_OPEN);
  EXPECT_EQ(Submit(other, "t4").work[0].item.agent(), "backup");
  // After wait_in_open one probe goes to primary again.
  clock_.Advance(absl::Seconds(30));
  EXPECT_EQ(Submit(other, "t5").work[0].item.agent(), "primary");
  EXPECT_EQ(Submit(other, "t6").work[0].item.agent(), "backup") << "one probe at a time";
}

TEST_F(BreakerEngineTest, WithoutAFallbackAnOpenBreakerFailsTheStepFast) {
  Outbox first = Submit(*engine_, "t1", "l");
  Outbox failed;
  engine_->OnEvent(MakeFailure(first.work[0].item, kTimeout, "slow", true, "w1", clock_.Now()), &failed);
  ASSERT_EQ(failed.results.size(), 1u);
  Outbox second = Submit(*engine_, "t2", "l");
  EXPECT_TRUE(second.work.empty()) << "no call to an agent whose breaker is open";
  ASSERT_EQ(second.results.size(), 1u);
  EXPECT_EQ(second.results[0].result.status(), v1::TASK_STATUS_FAILED);
  EXPECT_EQ(second.results[0].result.error().code(), "circuit_open");
}

}  // namespace
}  // namespace agentfleet
