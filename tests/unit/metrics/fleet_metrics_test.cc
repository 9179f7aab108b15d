// The metrics a user scrapes: what the coordinator counts as its engine runs
// a task through a retry and a fallback, the exposition Prometheus reads, and
// that every metric the alert rules and the dashboard query is one the
// processes export (a renamed metric would silently blank a panel).
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/error_codes.h"
#include "google/protobuf/util/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kafka/topics.h"
#include "metrics/fleet_metrics.h"
#include "metrics/lag_monitor.h"
#include "metrics/metrics.h"
#include "service/loop_watch.h"
#include "tests/unit/engine_test_util.h"

namespace agentfleet {
namespace {

using ::testing::HasSubstr;

// The value of the series `name`{labels} in `registry` (counter, gauge, or a
// histogram's count); -1 if there is none.
double Value(prometheus::Registry& registry, const std::string& name, const std::map<std::string, std::string>& labels) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      std::map<std::string, std::string> got;
      for (const auto& l : m.label) got[l.name] = l.value;
      if (got != labels) continue;
      switch (family.type) {
        case prometheus::MetricType::Counter: return m.counter.value;
        case prometheus::MetricType::Gauge: return m.gauge.value;
        case prometheus::MetricType::Histogram: return static_cast<double>(m.histogram.sample_count);
        default: return -1;
      }
    }
  }
  return -1;
}

constexpr char kConfig[] = R"(
providers: {sim: {type: simulated}}
pricing: {big: {input_per_mtok: 3, output_per_mtok: 15}, small: {input_per_mtok: 1, output_per_mtok: 2}}
agents:
  primary: {provider: sim, models: {default: big}, max_attempts: 2, fallback: {agent: backup},
            retry: {initial_backoff: 1s, jitter: 0}}
  backup: {provider: sim, models: {default: small}, max_attempts: 1}
workflows:
  w:
    budget: {max_tokens: 1000}
    steps:
      - {id: main, agent: primary, input: {q: $task.q}}
)";

class CoordinatorMetricsTest : public engine_test::EngineTest {
 protected:
  CoordinatorMetricsTest() : EngineTest(kConfig) {}
};

TEST_F(CoordinatorMetricsTest, CountsEveryCallRetryFallbackAndResult) {
  prometheus::Registry registry;
  CoordinatorMetrics metrics(registry);
  engine_->SetMetrics(&metrics);
  Outbox out;
  ASSERT_TRUE(engine_->Submit(engine_test::Submission("t1", "w", {{"q", "why"}}), "", 0, &out).ok());
  v1::WorkItem first = engine_test::ItemFor(out, "main");
  engine_test::Fail(*engine_, first, "rate_limited", true);
  clock_.Advance(absl::Seconds(2));
  out.clear();
  engine_->Tick(&out);
  v1::WorkItem second = engine_test::ItemFor(out, "main");
  ASSERT_EQ(second.attempt(), 2);
  out = engine_test::Fail(*engine_, second, "schema_violation", true);
  v1::WorkItem fallback = engine_test::ItemFor(out, "main");
  ASSERT_EQ(fallback.agent(), "backup");
  out = engine_test::Answer(*engine_, config_, fallback, {{"a", 1}}, /*input_tokens=*/100, /*output_tokens=*/50);
  ASSERT_EQ(out.results.size(), 1u);
  for (const auto& r : out.results) metrics.TaskFinished(r.result, r.budget_used);

  EXPECT_EQ(Value(registry, "agentfleet_agent_calls_total", {{"agent", "primary"}, {"model", ""}, {"outcome", "rate_limited"}}), 1);
  EXPECT_EQ(Value(registry, "agentfleet_agent_calls_total", {{"agent", "primary"}, {"model", ""}, {"outcome", "schema_violation"}}), 1);
  EXPECT_EQ(Value(registry, "agentfleet_agent_schema_violations_total", {{"agent", "primary"}, {"model", ""}}), 1);
  EXPECT_EQ(Value(registry, "agentfleet_agent_calls_total", {{"agent", "backup"}, {"model", "small"}, {"outcome", "ok"}}), 1);
  EXPECT_EQ(Value(registry, "agentfleet_agent_tokens_total", {{"agent", "backup"}, {"model", "small"}, {"direction", "input"}}), 100);
  EXPECT_EQ(Value(registry, "agentfleet_agent_tokens_total", {{"agent", "backup"}, {"model", "small"}, {"direction", "output"}}), 50);
  // 100 in at $1/Mtok + 50 out at $2/Mtok.
  EXPECT_DOUBLE_EQ(Value(registry, "agentfleet_agent_cost_usd_total", {{"agent", "backup"}, {"model", "small"}}), 200e-6);
  EXPECT_EQ(Value(registry, "agentfleet_agent_retries_total", {{"agent", "primary"}}), 1);
  EXPECT_EQ(Value(registry, "agentfleet_agent_fallbacks_total", {{"agent", "primary"}, {"to", "backup"}}), 1);
  EXPECT_EQ(Value(registry, "agentfleet_tasks_accepted_total", {{"workflow", "w"}}), 1);
  EXPECT_EQ(Value(registry, "agentfleet_task_results_total", {{"workflow", "w"}, {"status", "partial"}}), 1);
  EXPECT_EQ(Value(registry, "agentfleet_task_duration_seconds", {{"workflow", "w"}}), 1);
  // 150 of the workflow's 1000 tokens.
  EXPECT_EQ(Value(registry, "agentfleet_task_budget_used_ratio", {{"workflow", "w"}}), 1);
  for (const auto& family : registry.Collect()) {
    if (family.name != "agentfleet_task_budget_used_ratio") continue;
    EXPECT_DOUBLE_EQ(family.metric.at(0).histogram.sample_sum, 0.15);
  }
}

TEST(MetricsTest, BreakerStateIsOneSeriesPerStateWithTheCurrentOneAtOne) {
  prometheus::Registry registry;
  CoordinatorMetrics metrics(registry);
  metrics.Breaker("agent:a", v1::BREAKER_STATUS_OPEN);
  EXPECT_EQ(Value(registry, "agentfleet_breaker_state", {{"breaker", "agent:a"}, {"state", "open"}}), 1);
  EXPECT_EQ(Value(registry, "agentfleet_breaker_state", {{"breaker", "agent:a"}, {"state", "closed"}}), 0);
  metrics.Breaker("agent:a", v1::BREAKER_STATUS_HALF_OPEN);
  EXPECT_EQ(Value(registry, "agentfleet_breaker_state", {{"breaker", "agent:a"}, {"state", "open"}}), 0);
  EXPECT_EQ(Value(registry, "agentfleet_breaker_state", {{"breaker", "agent:a"}, {"state", "half_open"}}), 1);
}

TEST(MetricsTest, ActionsScreensAndToolCallsAreCounted) {
  prometheus::Registry registry;
  CoordinatorMetrics coordinator(registry);
  coordinator.Action("refund", "unknown", "stopped");
  coordinator.Action("refund", "", "retry");
  coordinator.Screen("guarded", true);
  EXPECT_EQ(Value(registry, "agentfleet_actions_total", {{"action", "refund"}, {"outcome", "unknown"}, {"decision", "stopped"}}), 1);
  EXPECT_EQ(Value(registry, "agentfleet_actions_total", {{"action", "refund"}, {"outcome", "none"}, {"decision", "retry"}}), 1);
  EXPECT_EQ(Value(registry, "agentfleet_screens_total", {{"workflow", "guarded"}, {"flagged", "true"}}), 1);
  prometheus::Registry worker_registry;
  WorkerMetrics worker(worker_registry);
  worker.ToolCall("triage", "lookup_order", "withheld");
  EXPECT_EQ(Value(worker_registry, "agentfleet_tool_calls_total",
                  {{"agent", "triage"}, {"tool", "lookup_order"}, {"status", "withheld"}}),
            1);
}

TEST(MetricsTest, UnknownErrorCodesShareOneOutcomeLabel) {
  v1::WorkResult r;
  r.set_status(v1::RESULT_STATUS_ERROR);
  r.mutable_error()->set_code("something a worker of another version made up");
  EXPECT_EQ(CallOutcome(r), "other");
  r.mutable_error()->set_code("rate_limited");
  EXPECT_EQ(CallOutcome(r), "rate_limited");
  for (const char* code : {"prompt_injection", "outcome_unknown", "action_policy_violation", "tool_budget_exceeded"}) {
    r.mutable_error()->set_code(code);
    EXPECT_EQ(CallOutcome(r), code) << "issue 19's codes are labels of their own";
  }
  r.set_status(v1::RESULT_STATUS_OK);
  EXPECT_EQ(CallOutcome(r), "ok");
}

TEST(MetricsTest, ExpositionIsTheTextFormatWithBuildInfo) {
  auto registry = NewRegistry("worker");
  WorkerMetrics metrics(*registry);
  metrics.Finished("triage", "m", "ok", absl::Milliseconds(300));
  metrics.SetInFlight(3);
  std::string text = Exposition(*registry);
  EXPECT_THAT(text, HasSubstr("# TYPE agentfleet_worker_items_total counter"));
  EXPECT_THAT(text, HasSubstr("agentfleet_worker_items_total{agent=\"triage\",model=\"m\",outcome=\"ok\"} 1"));
  EXPECT_THAT(text, HasSubstr("agentfleet_worker_call_duration_seconds_bucket{agent=\"triage\",le=\"0.5\"} 1"));
  EXPECT_THAT(text, HasSubstr("agentfleet_worker_call_duration_seconds_bucket{agent=\"triage\",le=\"0.25\"} 0"));
  EXPECT_THAT(text, HasSubstr("agentfleet_worker_items_in_flight 3"));
  EXPECT_THAT(text, HasSubstr("agentfleet_build_info{component=\"worker\",version=\""));
}

std::string ReadSource(const std::string& path) {
  std::ifstream in(std::string(AGENTFLEET_SOURCE_DIR) + "/" + path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Every agentfleet_* metric name in `text` (not the inside of a recording
// rule's name such as agent:agentfleet_x:rate5m).
std::set<std::string> MetricNames(const std::string& text) {
  std::set<std::string> names;
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':'; };
  for (size_t at = text.find("agentfleet_"); at != std::string::npos; at = text.find("agentfleet_", at + 1)) {
    if (at > 0 && word(text[at - 1])) continue;
    size_t end = at;
    while (end < text.size() && word(text[end])) ++end;
    std::string name = text.substr(at, end - at);
    if (name.find(':') == std::string::npos) names.insert(name);
  }
  return names;
}

TEST(MetricsTest, EveryMetricTheAlertsAndDashboardQueryIsExported) {
  auto registry = NewRegistry("coordinator");
  CoordinatorMetrics coordinator(*registry);
  WorkerMetrics worker(*registry);
  LagMonitor lag(*registry, {}, {});
  LoopWatch loop(*registry, "coordinator", absl::Minutes(10));  // service/, one per process
  // A family shows once it has a series: make one of each.
  v1::WorkResult ok;
  ok.set_status(v1::RESULT_STATUS_OK);
  coordinator.Call("a", ok, 0.1);
  v1::WorkResult bad;
  bad.set_status(v1::RESULT_STATUS_ERROR);
  bad.mutable_error()->set_code(kSchemaViolation);
  coordinator.Call("a", bad, 0);
  coordinator.Timeout("a", "heartbeat");
  coordinator.Retry("a");
  coordinator.Fallback("a", "b");
  coordinator.CacheHit("a");
  coordinator.BreakerRejection("a");
  coordinator.RateWait("p/m");
  coordinator.TaskAccepted("w");
  v1::TaskResult result;
  result.set_workflow("w");
  result.set_status(v1::TASK_STATUS_COMPLETED);
  *result.mutable_accepted_at() = google::protobuf::util::TimeUtil::SecondsToTimestamp(1);
  *result.mutable_finished_at() = google::protobuf::util::TimeUtil::SecondsToTimestamp(2);
  coordinator.TaskFinished(result, 0.5);
  coordinator.Breaker("agent:a", v1::BREAKER_STATUS_OPEN);
  v1::CostEntry cost;
  cost.set_tenant("acme");
  coordinator.TaskCost(cost);
  coordinator.Capacity("default", CapacityEstimate());
  coordinator.SetActive(1, 1);
  coordinator.DeadLetter("coordinator", "t");
  worker.Started("a");
  worker.Finished("a", "m", "ok", absl::Seconds(1));
  worker.SetInFlight(1);
  worker.DeadLetter("t");
  worker.Liveness(kLivenessPartitionRestarted);
  coordinator.Liveness(kLivenessOversizedOutput);
  lag.Record("g", "t", 1, 0);
  std::set<std::string> exported;
  for (const auto& family : registry->Collect()) {
    exported.insert(family.name);
    if (family.type == prometheus::MetricType::Histogram) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) exported.insert(family.name + suffix);
    }
  }
  for (const char* file : {"monitoring/alerts.yml", "monitoring/alerts_test.yml", "monitoring/dashboard.json"}) {
    std::string text = ReadSource(file);
    ASSERT_FALSE(text.empty()) << file;
    std::set<std::string> used = MetricNames(text);
    EXPECT_GE(used.size(), 5u) << file;
    for (const std::string& name : used) EXPECT_TRUE(exported.count(name)) << file << " uses " << name << ", which nothing exports";
  }
}

// A partition with lag whose committed offset does not move for the window
// is stalled; one that moves, or has no lag, is not.
TEST(ProgressWatchTest, APartitionWithLagWhoseCommitDoesNotMoveIsStalled) {
  ProgressWatch watch(absl::Minutes(5));
  absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  auto at = [&](int64_t committed, int64_t lag) { return PartitionLag{0, committed, 0, committed + lag, lag}; };
  EXPECT_FALSE(watch.Observe("g", "t", at(10, 5), t0));
  EXPECT_FALSE(watch.Observe("g", "t", at(10, 5), t0 + absl::Minutes(4)));
  EXPECT_TRUE(watch.Observe("g", "t", at(10, 7), t0 + absl::Minutes(5)));
  // It moves: no longer stalled, and the window starts again.
  EXPECT_FALSE(watch.Observe("g", "t", at(11, 7), t0 + absl::Minutes(6)));
  EXPECT_FALSE(watch.Observe("g", "t", at(11, 7), t0 + absl::Minutes(10)));
  // Caught up and quiet: a still commit with no lag is no stall.
  EXPECT_FALSE(watch.Observe("g", "t", at(11, 0), t0 + absl::Minutes(20)));
  EXPECT_FALSE(watch.Observe("g", "t", at(11, 0), t0 + absl::Minutes(30)));
  // Another group's partition of the same number is watched apart.
  EXPECT_FALSE(watch.Observe("h", "t", at(3, 1), t0 + absl::Minutes(30)));
}

}  // namespace
}  // namespace agentfleet

namespace agentfleet {
namespace {

TEST(MetricsTest, TheCapacitySignalReadsAgentsMeanCallTimesAndOpenBreakers) {
  auto registry = NewRegistry("coordinator");
  CoordinatorMetrics m(*registry);
  double s = 0;
  EXPECT_FALSE(m.MeanCallSeconds("a", &s)) << "no call seen yet";
  v1::WorkResult r;
  r.set_status(v1::RESULT_STATUS_OK);
  r.set_latency_ms(2000);
  m.Call("a", r, 0);
  ASSERT_TRUE(m.MeanCallSeconds("a", &s));
  EXPECT_DOUBLE_EQ(s, 2.0);
  r.set_latency_ms(4000);
  for (int i = 0; i < 200; ++i) m.Call("a", r, 0);
  ASSERT_TRUE(m.MeanCallSeconds("a", &s));
  EXPECT_NEAR(s, 4.0, 0.01) << "a moving average follows the calls";
  // A provider batch's answer (hours after its call) is no call time.
  r.set_batch(true);
  r.set_latency_ms(3'600'000);
  m.Call("a", r, 0);
  ASSERT_TRUE(m.MeanCallSeconds("a", &s));
  EXPECT_NEAR(s, 4.0, 0.01);
  EXPECT_FALSE(m.BreakerOpen("agent:a"));
  m.Breaker("agent:a", v1::BREAKER_STATUS_OPEN);
  EXPECT_TRUE(m.BreakerOpen("agent:a"));
  m.Breaker("agent:a", v1::BREAKER_STATUS_HALF_OPEN);
  EXPECT_FALSE(m.BreakerOpen("agent:a"));
}

}  // namespace
}  // namespace agentfleet
