// Observability end to end: Debian's Prometheus server scrapes a running
// coordinator and two workers on the real Kafka broker, and what it reports
// through its HTTP query API must be what the run implies: calls, tokens,
// cost, results, latency histograms, in-flight items and consumer-group lag.
#include <cmath>
#include <fstream>
#include <set>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "agentfleet/v1/work.pb.h"
#include "audit/replay.h"
#include "audit/task_records.h"
#include "cli/tasks_input.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "common/subprocess.h"
#include "fleet/run_summary.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "kafka/topics.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fake_llm.h"
#include "tests/integration/fleet_harness.h"

namespace agentfleet::testing {
namespace {

using Json = nlohmann::json;
using google::protobuf::util::TimeUtil;

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += absl::StrFormat("%%%02X", c);
    }
  }
  return out;
}

// A Prometheus server (Debian's package) scraping `targets` every second.
class Prometheus {
 public:
  Prometheus(Fleet& fleet, const std::vector<std::pair<std::string, int>>& targets) {
    port_ = FreePort();
    std::string yml = "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n";
    for (const auto& [job, port] : targets) {
      yml += absl::StrCat("  - job_name: ", job, "\n    static_configs: [{targets: ['127.0.0.1:", port, "']}]\n");
    }
    std::string config = fleet.dir() + "/prometheus.yml";
    std::ofstream(config) << yml;
    pid_ = fleet.StartProgram("prometheus",
                              {"--config.file=" + config, "--storage.tsdb.path=" + fleet.dir() + "/prometheus-data",
                               absl::StrCat("--web.listen-address=127.0.0.1:", port_)},
                              "prometheus");
  }
  pid_t pid() const { return pid_; }

  // The value of an instant query that returns one sample; NaN if none.
  double Query(const std::string& promql) const {
    auto [status, body] =
        HttpGet(absl::StrCat("http://127.0.0.1:", port_, "/api/v1/query?query=", UrlEncode(promql)));
    Json j = Json::parse(body, nullptr, false);
    if (status != 200 || !j.is_object() || j.value("status", "") != "success") return std::nan("");
    const Json& result = j["data"]["result"];
    if (!result.is_array() || result.size() != 1) return std::nan("");
    return std::stod(result[0]["value"][1].get<std::string>());
  }

  // Polls `promql` until it equals `expected` (scrapes land every second,
  // not at once), at most 30 s; returns the last value.
  double Await(const std::string& promql, double expected) const {
    return WaitFor(promql, [expected](double v) { return v == expected; }, absl::Seconds(30));
  }

  // Polls `promql` until `done(value)` or `timeout`; returns the last value.
  template <typename Pred>
  double WaitFor(const std::string& promql, Pred done, absl::Duration timeout = absl::Seconds(60)) const {
    double v = Query(promql);
    for (absl::Time until = absl::Now() + timeout; !done(v) && absl::Now() < until; v = Query(promql)) {
      absl::SleepFor(absl::Milliseconds(250));
    }
    return v;
  }

 private:
  int port_ = 0;
  pid_t pid_ = -1;
};

// `promtool check metrics` on an exposition: "" if it passes, else its complaints.
std::string PromtoolCheck(Fleet& fleet, const std::string& exposition, const std::string& name) {
  std::string file = fleet.dir() + "/" + name + ".prom";
  std::ofstream(file) << exposition;
  auto out = fleet.Run({"/bin/sh", "-c", "promtool check metrics < " + file + " 2>&1"}, absl::Seconds(30));
  if (!out.ok()) return std::string(out.status().message());
  return out->first == 0 ? "" : out->second;
}

class ObservabilityTest : public KafkaTest {};

TEST_F(ObservabilityTest, PrometheusSeesWhatTheRunDid) {
  Fleet fleet("prom");
  // at_least_once: no transactions, so no transaction markers in the work
  // topics, and a backlog of N items is a lag of exactly N (exactly_once
  // adds one marker per partition per transaction; docs/observability.md).
  fleet.WriteConfig(bootstrap_, {}, "lag_interval: 1s, processing: at_least_once");
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  pid_t coordinator = fleet.StartCoordinator();
  pid_t w1 = fleet.StartWorker("worker-1");
  pid_t w2 = fleet.StartWorker("worker-2");
  std::vector<std::pair<std::string, int>> targets = {
      {"coordinator", fleet.HttpPort(coordinator)}, {"worker1", fleet.HttpPort(w1)}, {"worker2", fleet.HttpPort(w2)}};
  for (const auto& [job, port] : targets) ASSERT_GT(port, 0) << job << fleet.LogTails();
  Prometheus prom(fleet, targets);
  // Both workers in the group before the run, so both get partitions.
  for (const auto& [job, port] : targets) {
    std::string readyz = absl::StrCat("http://127.0.0.1:", port, "/readyz");
    for (absl::Time until = absl::Now() + absl::Seconds(60); HttpGet(readyz).first != 200 && absl::Now() < until;) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_EQ(HttpGet(readyz).first, 200) << job << " never became ready: " << fleet.LogTails();
  }

  // Every process made its loop watch before it was ready.
  const double ready_at = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  constexpr int kTasks = 300;
  auto outcome = SubmitAndCollect(*config, SampleTasks(kTasks, fleet.prefix() + "task", 5), true, absl::Seconds(120));
  ASSERT_TRUE(outcome.ok()) << outcome.status() << fleet.LogTails();
  ASSERT_EQ(outcome->summary.received, kTasks) << fleet.LogTails();

  // What the results say happened.
  int64_t calls = 0, input_tokens = 0, output_tokens = 0;
  double cost = 0, latency_s = 0;
  std::map<std::string, int64_t> by_status;
  for (const v1::TaskResult& r : outcome->results) {
    calls += r.usage().calls();
    input_tokens += r.usage().input_tokens();
    output_tokens += r.usage().output_tokens();
    cost += r.usage().cost_usd();
    latency_s += TimeUtil::DurationToNanoseconds(r.finished_at() - r.submitted_at()) / 1e9;
    ++by_status[absl::AsciiStrToLower(v1::TaskStatus_Name(r.status()).substr(strlen("TASK_STATUS_")))];
  }
  ASSERT_GT(calls, kTasks);

  // Every exposition is valid by promtool's rules.
  for (const auto& [job, port] : targets) {
    auto [status, body] = HttpGet(absl::StrCat("http://127.0.0.1:", port, "/metrics"));
    ASSERT_EQ(status, 200) << job;
    EXPECT_EQ(PromtoolCheck(fleet, body, job), "") << job;
  }

  // Prometheus scraped all three, and its counters match the results.
  double results = prom.WaitFor("sum(agentfleet_task_results_total)", [&](double v) { return v == kTasks; });
  ASSERT_EQ(results, kTasks) << fleet.LogTails();
  EXPECT_EQ(prom.Await("count(up == 1)", 3), 3);
  for (const auto& [status, n] : by_status) {
    EXPECT_EQ(prom.Await("sum(agentfleet_task_results_total{status=\"" + status + "\"})", n), n) << status;
  }
  EXPECT_EQ(prom.Await("sum(agentfleet_tasks_accepted_total)", kTasks), kTasks);
  EXPECT_EQ(prom.Await("sum(agentfleet_agent_calls_total)", calls), calls);
  EXPECT_EQ(prom.Await("sum(agentfleet_agent_tokens_total{direction=\"input\"})", input_tokens), input_tokens);
  EXPECT_EQ(prom.Await("sum(agentfleet_agent_tokens_total{direction=\"output\"})", output_tokens), output_tokens);
  EXPECT_NEAR(prom.Query("sum(agentfleet_agent_cost_usd_total)"), cost, 1e-9 + cost * 1e-9);
  EXPECT_EQ(prom.Await("sum(agentfleet_agent_call_duration_seconds_count)", calls), calls);
  // The task latency histogram: one observation per result, the same total.
  EXPECT_EQ(prom.Await("sum(agentfleet_task_duration_seconds_count)", kTasks), kTasks);
  EXPECT_EQ(prom.Await("sum(agentfleet_task_duration_seconds_bucket{le=\"+Inf\"})", kTasks), kTasks);
  EXPECT_NEAR(prom.Query("sum(agentfleet_task_duration_seconds_sum)"), latency_s, 0.001 * kTasks);
  double p50 = prom.Query("histogram_quantile(0.5, sum by (le) (agentfleet_task_duration_seconds_bucket))");
  EXPECT_GT(p50, 0);
  EXPECT_LE(p50, outcome->summary.max_ms / 1000.0 * 2.5) << "p50 beyond the bucket of the slowest task";
  EXPECT_NEAR(prom.Query("sum(agentfleet_task_cost_usd_sum)"), cost, 1e-9 + cost * 1e-9);
  // The workers ran every call between them, both did some, and none is left.
  EXPECT_EQ(prom.Await("sum(agentfleet_worker_items_total)", calls), calls);
  EXPECT_EQ(prom.Await("count(sum by (job) (agentfleet_worker_items_total) > 0)", 2), 2);
  EXPECT_EQ(prom.WaitFor("sum(agentfleet_worker_items_in_flight)", [](double v) { return v == 0; }), 0);
  // Every process's main loop turned after the fleet was ready (a watch that
  // only counted its making would stay before it), and each passes its
  // liveness probe.
  EXPECT_EQ(prom.Await(absl::StrFormat("count(agentfleet_main_loop_last_turn_timestamp_seconds > %.3f)", ready_at), 3),
            3);
  for (const auto& [job, port] : targets) {
    EXPECT_EQ(HttpGet(absl::StrCat("http://127.0.0.1:", port, "/healthz")).first, 200) << job;
  }
  // Nothing was dead-lettered: the series does not exist at all.
  EXPECT_TRUE(std::isnan(prom.Query("sum(agentfleet_dlq_messages_total)")));
  // Nothing left to consume: the coordinator's lag is zero on both inputs.
  Topics topics(config->kafka.topic_prefix);
  for (const std::string& topic : {topics.tasks, topics.events}) {
    std::string q = absl::StrCat("agentfleet_consumer_group_lag{group=\"", config->coordinator.group_id,
                                 "\",topic=\"", topic, "\"}");
    EXPECT_EQ(prom.WaitFor(q, [](double v) { return v == 0; }), 0) << q;
  }

  Topics topics_for_lag(config->kafka.topic_prefix);
  std::string lag_q = absl::StrCat("agentfleet_consumer_group_lag{group=\"", WorkerGroup(*config, "default"),
                                   "\",topic=\"", topics_for_lag.Work("classifier"), "\"}");
  EXPECT_EQ(prom.WaitFor(lag_q, [](double v) { return v == 0; }), 0) << "the workers' commits";
  // A backlog: with the workers gone, the next tasks' first steps wait on the
  // classifier's work topic, and the pool's lag says exactly how many.
  EXPECT_EQ(fleet.StopProcess(w1), 0);
  EXPECT_EQ(fleet.StopProcess(w2), 0);
  constexpr int kBacklog = 40;
  auto more = SubmitAndCollect(*config, SampleTasks(kBacklog, fleet.prefix() + "late", 6), false, absl::Seconds(30));
  ASSERT_TRUE(more.ok()) << more.status();
  EXPECT_EQ(prom.WaitFor(lag_q, [&](double v) { return v == kBacklog; }), kBacklog) << fleet.LogTails();
  // The same figure straight from the broker.
  auto lag = GroupLag(ProducerProperties(config->kafka), WorkerGroup(*config, "default"), {topics.Work("classifier")},
                      absl::Seconds(10));
  ASSERT_TRUE(lag.ok()) << lag.status();
  EXPECT_EQ(lag->front().total(), kBacklog);
  EXPECT_EQ(prom.WaitFor("sum(agentfleet_tasks_active)", [&](double v) { return v == kBacklog; }), kBacklog);
  EXPECT_TRUE(fleet.IsAlive(prom.pid())) << fleet.LogTailOf(prom.pid());
}

}  // namespace
}  // namespace agentfleet::testing

namespace agentfleet::testing {
namespace {

TEST_F(ObservabilityTest, TraceShowsEveryAttemptOfARetriedTaskThatFellBack) {
  Fleet fleet("trace");
  // breakers.yaml: the primary agent always fails; here it gets two attempts
  // before its fallback (backup) serves the step.
  // Spans go to a local OTLP/HTTP endpoint (tests/fake_llm serves one).
  fleet.set_example("tests/integration/breakers.yaml");
  auto collector = FakeLlm::Start(fleet.dir());
  ASSERT_TRUE(collector.ok()) << collector.status();
  fleet.WriteConfig(bootstrap_, {{"max_attempts: 1", "max_attempts: 2\n    retry: {initial_backoff: 100ms}"},
                                 {"\nworkflows:", absl::StrCat("\ntracing: {otlp_endpoint: '", (*collector)->base_url(),
                                                               "/v1/traces', export_interval: 200ms}\nworkflows:")}});
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  fleet.StartCoordinator();
  fleet.StartWorker("worker-1");
  std::vector<v1::TaskSubmission> tasks = SampleTasks(1, fleet.prefix() + "traced", 3);
  std::string id = tasks[0].task_id();
  auto outcome = SubmitAndCollect(*config, tasks, true, absl::Seconds(90));
  ASSERT_TRUE(outcome.ok()) << outcome.status() << fleet.LogTails();
  ASSERT_EQ(outcome->results.size(), 1u) << fleet.LogTails();
  ASSERT_EQ(outcome->results[0].status(), v1::TASK_STATUS_PARTIAL);

  auto run = fleet.Run({"agentfleet", "trace", id, "--config", fleet.config_path(), "--json"}, absl::Seconds(60));
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->first, 0) << run->second;
  Json trace = Json::parse(run->second.substr(run->second.find('{')), nullptr, false);
  ASSERT_TRUE(trace.is_object()) << run->second;
  EXPECT_EQ(trace["status"], "PARTIAL");
  EXPECT_EQ(trace["workflow"], "support");
  std::string trace_id = trace["trace_id"];
  EXPECT_EQ(trace_id.size(), 32u);
  EXPECT_NE(trace_id, std::string(32, '0'));
  const Json& attempts = trace["attempts"];
  ASSERT_EQ(attempts.size(), 3u) << trace.dump(2);
  for (int i = 0; i < 2; ++i) {
    const Json& a = attempts[i];
    EXPECT_EQ(a["agent"], "primary") << a;
    EXPECT_EQ(a["attempt"], i + 1);
    EXPECT_EQ(a["outcome"], "provider_unavailable") << a;
    EXPECT_EQ(a["retryable"], true);
    EXPECT_EQ(a["worker"], "worker-1");
    EXPECT_GE(a["wait_ms"].get<double>(), 0) << trace.dump(2);
    EXPECT_LT(a["wait_ms"].get<double>(), 10000) << trace.dump(2);
  }
  const Json& served = attempts[2];
  EXPECT_EQ(served["agent"], "backup");
  EXPECT_EQ(served["fallback_for"], "primary");
  EXPECT_EQ(served["outcome"], "ok");
  EXPECT_EQ(served["model"], "m");
  EXPECT_EQ(served["worker"], "worker-1");
  EXPECT_GT(served["input_tokens"].get<int>(), 0);
  EXPECT_GT(served["cost_usd"].get<double>(), 0);
  // In attempt order, each after the one before it.
  EXPECT_LT(attempts[0]["dispatched"].get<std::string>(), attempts[1]["dispatched"].get<std::string>());
  EXPECT_LT(attempts[1]["dispatched"].get<std::string>(), attempts[2]["dispatched"].get<std::string>());
  // What the result says the task spent is what its attempts spent (a
  // failed call is billed its input tokens too).
  double spent = 0;
  int64_t input = 0;
  for (const Json& a : attempts) {
    spent += a["cost_usd"].get<double>();
    input += a["input_tokens"].get<int64_t>();
  }
  EXPECT_NEAR(trace["usage"]["cost_usd"].get<double>(), spent, 1e-12);
  EXPECT_EQ(trace["usage"]["input_tokens"], input);
  EXPECT_EQ(trace["usage"]["calls"], 3);

  // The text timeline a person reads.
  auto text = fleet.Run({"agentfleet", "trace", id, "--config", fleet.config_path()}, absl::Seconds(60));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(text->second, ::testing::HasSubstr("trace " + trace_id));
  EXPECT_THAT(text->second, ::testing::HasSubstr("backup (for primary)"));
  EXPECT_THAT(text->second, ::testing::HasSubstr("provider_unavailable (retryable)"));
  EXPECT_THAT(text->second, ::testing::HasSubstr("PARTIAL"));

  // The exported spans: the task's span (a child of the submitter's) and one
  // span per model call, each a child of the task's, all in its trace.
  Json spans;
  for (absl::Time until = absl::Now() + absl::Seconds(30); absl::Now() < until; absl::SleepFor(absl::Milliseconds(200))) {
    spans = (*collector)->Spans();
    if (spans.is_array() && spans.size() >= 4) break;
  }
  ASSERT_TRUE(spans.is_array());
  ASSERT_EQ(spans.size(), 4u) << spans.dump(2);
  const Json* task_span = nullptr;
  std::vector<const Json*> calls;
  for (const Json& span : spans) {
    EXPECT_EQ(span["traceId"], trace_id) << span;
    EXPECT_EQ(span["spanId"].get<std::string>().size(), 16u);
    EXPECT_LE(std::stoll(span["startTimeUnixNano"].get<std::string>()), std::stoll(span["endTimeUnixNano"].get<std::string>()));
    if (span["service"] == "agentfleet-coordinator") {
      task_span = &span;
    } else {
      EXPECT_EQ(span["service"], "agentfleet-worker");
      calls.push_back(&span);
    }
  }
  ASSERT_NE(task_span, nullptr) << spans.dump(2);
  EXPECT_EQ((*task_span)["name"], "task support");
  EXPECT_EQ((*task_span)["parentSpanId"].get<std::string>().size(), 16u) << "the submitter's span is its parent";
  ASSERT_EQ(calls.size(), 3u);
  int failed = 0;
  for (const Json* call : calls) {
    EXPECT_EQ((*call)["parentSpanId"], (*task_span)["spanId"]) << *call;
    failed += (*call)["status"]["code"] == 2;
  }
  EXPECT_EQ(failed, 2) << "two attempts of primary failed";

  // A task nobody submitted: exit 1, and says so.
  auto none = fleet.Run({"agentfleet", "trace", "no-such-task", "--config", fleet.config_path()}, absl::Seconds(60));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->first, 1);
  EXPECT_THAT(none->second, ::testing::HasSubstr("nothing found"));

  // The same task replayed from the topics through the engine: the two
  // retries and the fallback are decided again, identically, and the
  // records saved on the way out replay the same offline.
  std::string saved = fleet.dir() + "/traced.jsonl";
  auto replay =
      fleet.Run({"agentfleet", "replay", id, "--config", fleet.config_path(), "--save", saved}, absl::Seconds(60));
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->first, 0) << replay->second;
  EXPECT_THAT(replay->second, ::testing::HasSubstr("identical: 4 of 4 decisions"));
  EXPECT_THAT(replay->second, ::testing::HasSubstr("same      dispatch answer attempt 3"));
  // Under a config that gives the primary agent one attempt, the replay
  // diverges at the recorded second attempt, and says so (exit 1).
  std::ifstream in(fleet.config_path());
  std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_THAT(yaml, ::testing::HasSubstr("max_attempts: 2"));
  std::string changed = fleet.dir() + "/one-attempt.yaml";
  std::ofstream(changed) << absl::StrReplaceAll(yaml, {{"max_attempts: 2", "max_attempts: 1"}});
  auto diverged = fleet.Run({"agentfleet", "replay", id, "--config", changed, "--records", saved}, absl::Seconds(60));
  ASSERT_TRUE(diverged.ok()) << diverged.status();
  EXPECT_EQ(diverged->first, 1) << diverged->second;
  EXPECT_THAT(diverged->second, ::testing::HasSubstr("diverged at decision 2 of"));
  EXPECT_THAT(diverged->second, ::testing::HasSubstr("dispatch answer attempt 2"));
}

}  // namespace
}  // namespace agentfleet::testing

namespace agentfleet::testing {
namespace {

// `agentfleet lag --json` with these extra flags: the row of `group` on `topic`.
Json LagRow(Fleet& fleet, const std::string& group, const std::string& topic, std::vector<std::string> flags) {
  std::vector<std::string> argv = {"agentfleet", "lag", "--config", fleet.config_path(), "--json"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  auto run = fleet.Run(argv, absl::Seconds(60));
  if (!run.ok() || run->first != 0) {
    ADD_FAILURE() << (run.ok() ? run->second : std::string(run.status().message()));
    return Json();
  }
  Json j = Json::parse(run->second.substr(run->second.find('{')), nullptr, false);
  for (const Json& row : j["lag"]) {
    if (row["group"] == group && row["topic"] == topic) return row;
  }
  ADD_FAILURE() << "no row for " << group << " on " << topic << ": " << run->second;
  return Json();
}

TEST_F(ObservabilityTest, LagCommandGivesKedasReplicasForABacklog) {
  Fleet fleet("lag");
  fleet.WriteConfig(bootstrap_);
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  Topics topics(config->kafka.topic_prefix);
  const std::string topic = topics.Work("classifier");
  const std::string group = WorkerGroup(*config, "default");
  ASSERT_EQ(config->kafka.work_partitions, 8);
  // A backlog: 23 items on partition 0, 12 on partition 1, none on the other 6;
  // the pool has consumed (committed) the first 3 of partition 0 only.
  auto producer = NewProducer(ProducerProperties(config->kafka));
  ASSERT_TRUE(producer.ok()) << producer.status();
  for (int i = 0; i < 35; ++i) {
    ASSERT_TRUE((*producer)->Produce({topic, absl::StrCat("t", i), "item", {}, i < 23 ? 0 : 1}).ok());
  }
  ASSERT_TRUE((*producer)->Flush(absl::Seconds(30)).ok());
  Properties consumer_props = ConsumerProperties(config->kafka, group);
  consumer_props["enable.auto.offset.store"] = "false";
  auto consumer = NewConsumer(consumer_props);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  ASSERT_TRUE((*consumer)->Assign({{topic, 0, 0}}).ok());
  ASSERT_TRUE((*consumer)->StoreOffset(topic, 0, 3).ok());
  ASSERT_TRUE((*consumer)->CommitStored().ok());
  (*consumer)->Close();

  // offsetResetPolicy latest (KEDA's default): partition 0 is 20 behind and
  // each of the 7 partitions without a committed offset counts 1: 27. With
  // lagThreshold 5, 27 / 5 = 5 (whole thresholds) is under the cap of 8
  // partitions, so the HPA asks for ceil(27 / 5) = 6 replicas.
  Json row = LagRow(fleet, group, topic, {"--lag_threshold", "5", "--offset_reset_policy", "latest"});
  EXPECT_EQ(row["partitions"], 8);
  EXPECT_EQ(row["lag"], 27);
  EXPECT_EQ(row["partitions_with_lag"], 8);
  EXPECT_EQ(row["replicas"], 6);
  // earliest (the chart's, and this command's default): 20 + 12 = 32 on 2
  // partitions: ceil(32 / 5) = 7 replicas.
  row = LagRow(fleet, group, topic, {"--lag_threshold", "5"});
  EXPECT_EQ(row["lag"], 32);
  EXPECT_EQ(row["partitions_with_lag"], 2);
  EXPECT_EQ(row["replicas"], 7);
  // ... capped at the 2 partitions that have lag: 2 replicas.
  row = LagRow(fleet, group, topic,
               {"--lag_threshold", "5", "--offset_reset_policy", "earliest", "--limit_to_partitions_with_lag"});
  EXPECT_EQ(row["keda_metric"], 10);
  EXPECT_EQ(row["replicas"], 2);
  // lagThreshold 3: 32 / 3 = 10 whole thresholds > 8 partitions: capped at 8 replicas ...
  row = LagRow(fleet, group, topic, {"--lag_threshold", "3", "--offset_reset_policy", "earliest"});
  EXPECT_EQ(row["keda_metric"], 24);
  EXPECT_EQ(row["replicas"], 8);
  // ... unless idle consumers are allowed: ceil(32 / 3) = 11.
  row = LagRow(fleet, group, topic,
               {"--lag_threshold", "3", "--offset_reset_policy", "earliest", "--allow_idle_consumers"});
  EXPECT_EQ(row["replicas"], 11);
  // Under the activation threshold: scaled to minReplicaCount.
  row = LagRow(fleet, group, topic,
               {"--lag_threshold", "5", "--offset_reset_policy", "earliest", "--activation_lag_threshold", "40"});
  EXPECT_EQ(row["active"], false);
  EXPECT_EQ(row["replicas"], 0);
  // The per-partition figures behind it.
  EXPECT_EQ(row["by_partition"][0]["committed"], 3);
  EXPECT_EQ(row["by_partition"][0]["high"], 23);
  EXPECT_EQ(row["by_partition"][1]["committed"], -1);
  EXPECT_EQ(row["by_partition"][1]["high"], 12);
  // The text form names the trigger and the group.
  auto text = fleet.Run({"agentfleet", "lag", "--config", fleet.config_path(), "--lag_threshold", "5"}, absl::Seconds(60));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(text->second, ::testing::HasSubstr("lagThreshold 5"));
  EXPECT_THAT(text->second, ::testing::HasSubstr(group));
}

// A task that failed at its last step because its model tier named a model
// the provider does not serve, forked from that step with the tier on a
// model it does: the fork reuses the first two steps' outputs (no calls),
// completes, costs only the step it ran, and `diff` shows that step alone
// changed. A fork that would change an earlier step's model is refused.
TEST_F(ObservabilityTest, AForkRerunsOnlyTheFailedStepOnAFixedModel) {
  Fleet fleet("fork");
  auto fake = FakeLlm::Start(fleet.dir());
  ASSERT_TRUE(fake.ok()) << fake.status();
  fleet.set_example("tests/integration/fork.yaml");
  fleet.WriteConfig(bootstrap_, {{"http://127.0.0.1:8000", (*fake)->base_url()}});
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  fleet.StartCoordinator();
  fleet.StartWorker("worker-1");

  v1::TaskSubmission task;
  task.set_task_id(fleet.prefix() + "brief-1");
  task.set_workflow("brief");
  *task.mutable_input() = ToStruct(Json{{"q", "quarterly numbers"}});
  auto original = SubmitAndCollect(*config, {task}, true, absl::Seconds(90));
  ASSERT_TRUE(original.ok()) << original.status();
  ASSERT_EQ(original->results.size(), 1u) << fleet.LogTails();
  const v1::TaskResult& failed = original->results[0];
  ASSERT_EQ(failed.status(), v1::TASK_STATUS_FAILED) << failed.DebugString();
  EXPECT_THAT(failed.error().message(), ::testing::HasSubstr("missing-large"));
  double earlier_cost = 0;
  for (const v1::StepSummary& s : failed.steps()) {
    if (s.step() != "write") earlier_cost += s.usage().cost_usd();
  }
  ASSERT_GT(earlier_cost, 0);

  // Refused: the researcher's model would change under the fork's --set, so
  // the outputs of gather and outline would no longer apply.
  auto refused = fleet.Run({"agentfleet", "fork", task.task_id(), "--from", "write", "--set",
                            "agents.researcher.models.default=large-model", "--config", fleet.config_path(), "--wait"},
                           absl::Seconds(60));
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->first, 1) << refused->second;
  EXPECT_THAT(refused->second, ::testing::HasSubstr("step gather ran on model 'small-model', which agent 'researcher' no "
                                         "longer runs"));

  auto forked = fleet.Run({"agentfleet", "fork", task.task_id(), "--from", "write", "--set",
                           "agents.writer.models.premium=large-model", "--config", fleet.config_path(), "--wait",
                           "--timeout", "90s"},
                          absl::Seconds(120));
  ASSERT_TRUE(forked.ok()) << forked.status();
  ASSERT_EQ(forked->first, 0) << forked->second << fleet.LogTails();
  EXPECT_THAT(forked->second, ::testing::HasSubstr("reuses (no call, no cost): gather, outline"));
  EXPECT_THAT(forked->second, ::testing::HasSubstr("runs again: write"));
  std::string marker = "compare with: agentfleet diff " + task.task_id() + " ";
  size_t at = forked->second.rfind(marker);
  ASSERT_NE(at, std::string::npos) << forked->second;
  std::string fork_id = forked->second.substr(at + marker.size());
  fork_id = fork_id.substr(0, fork_id.find('\n'));

  // The fork's result, from the results topic: completed, linked to the
  // original, its first two steps reused at no cost, and what it paid is
  // the write step's call alone.
  auto records = ReadTaskRecords(*config, fork_id, absl::Seconds(60));
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->results.size(), 1u);
  auto result = Decode<v1::TaskResult>(records->results[0].payload, records->results[0].headers);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status(), v1::TASK_STATUS_COMPLETED) << result->DebugString();
  EXPECT_EQ(result->labels().at("forked_from"), task.task_id());
  double write_cost = 0;
  for (const v1::StepSummary& s : result->steps()) {
    if (s.step() == "write") {
      EXPECT_FALSE(s.reused());
      EXPECT_EQ(s.model(), "large-model");
      write_cost = s.usage().cost_usd();
    } else {
      EXPECT_TRUE(s.reused()) << s.step();
      EXPECT_EQ(s.usage().cost_usd(), 0) << s.step();
    }
  }
  EXPECT_GT(write_cost, 0);
  EXPECT_DOUBLE_EQ(result->usage().cost_usd(), write_cost);
  EXPECT_EQ(result->usage().calls(), 1);

  // diff: exactly the write step changed.
  auto diff = fleet.Run({"agentfleet", "diff", task.task_id(), fork_id, "--config", fleet.config_path(), "--json"},
                        absl::Seconds(60));
  ASSERT_TRUE(diff.ok()) << diff.status();
  ASSERT_EQ(diff->first, 0) << diff->second;
  Json d = Json::parse(diff->second.substr(diff->second.find('{')), nullptr, false);
  ASSERT_TRUE(d.is_object()) << diff->second;
  EXPECT_EQ(d["changed_steps"], 1) << d.dump(2);
  for (const Json& s : d["steps"]) {
    if (s["step"] == "write") {
      EXPECT_THAT(s["changed"].dump(), ::testing::HasSubstr("status")) << s;
      EXPECT_THAT(s["changed"].dump(), ::testing::HasSubstr("output")) << s;
    } else {
      EXPECT_TRUE(s["changed"].empty()) << s;
    }
  }
  // The fork replays identically too.
  auto replay = fleet.Run({"agentfleet", "replay", fork_id, "--config", fleet.config_path()}, absl::Seconds(60));
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->first, 0) << replay->second;
}

// Where each record of `records` is.
std::set<std::tuple<std::string, int32_t, int64_t>> Places(const TaskRecords& records) {
  std::set<std::tuple<std::string, int32_t, int64_t>> out;
  for (const auto* list : {&records.tasks, &records.work, &records.events, &records.signals, &records.state,
                           &records.results}) {
    for (const Message& m : *list) out.insert({m.topic, m.partition, m.offset});
  }
  return out;
}

TEST_F(ObservabilityTest, ATasksRecordsAreReadFromItsPartitionAndTimeWindowOnly) {
  Fleet fleet("lookup");
  fleet.WriteConfig(bootstrap_, {});
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  fleet.StartCoordinator();
  fleet.StartWorker("worker-1");
  auto old_run = SubmitAndCollect(*config, SampleTasks(1, fleet.prefix() + "old", 3), true, absl::Seconds(90));
  ASSERT_TRUE(old_run.ok()) << old_run.status();
  ASSERT_EQ(old_run->results.size(), 1u) << fleet.LogTails();
  const v1::TaskResult old_result = old_run->results[0];

  // Other tasks' records after it, outside its window: 40,000 results and
  // 40,000 events (the coordinator counts the events as stale).
  absl::Time old_end = FromTimestamp(old_result.finished_at());
  while (absl::Now() < old_end + absl::Seconds(2)) absl::SleepFor(absl::Milliseconds(50));
  Topics topics(config->kafka.topic_prefix);
  auto producer = NewProducer(ProducerProperties(config->kafka));
  ASSERT_TRUE(producer.ok()) << producer.status();
  constexpr int kFillers = 40000;
  for (int i = 0; i < kFillers; ++i) {
    std::string id = absl::StrCat("filler-", i);
    v1::TaskResult r;
    r.set_task_id(id);
    r.set_status(v1::TASK_STATUS_COMPLETED);
    v1::WorkEvent e;
    e.set_task_id(id);
    e.set_step("classify");
    e.set_attempt(1);
    e.mutable_receipt()->set_worker("worker-1");
    Encoded er = Encode(r, "");
    Encoded ee = Encode(e, "");
    ASSERT_TRUE((*producer)->Produce({topics.results, id, std::move(er.payload), std::move(er.headers)}).ok());
    ASSERT_TRUE((*producer)->Produce({topics.events, id, std::move(ee.payload), std::move(ee.headers)}).ok());
  }
  ASSERT_TRUE((*producer)->Flush(absl::Seconds(60)).ok());
  absl::Time flooded = absl::Now();
  while (absl::Now() < flooded + absl::Seconds(2)) absl::SleepFor(absl::Milliseconds(50));
  auto new_run = SubmitAndCollect(*config, SampleTasks(1, fleet.prefix() + "new", 3), true, absl::Seconds(90));
  ASSERT_TRUE(new_run.ok()) << new_run.status();
  ASSERT_EQ(new_run->results.size(), 1u) << fleet.LogTails();

  RecordsLookup tight;  // the window as wide as this machine's one clock needs
  tight.margin = absl::Seconds(1);
  RecordsLookup all;
  all.scan_all = true;
  LookupStats old_stats, new_stats;
  for (auto [id, stats] : {std::pair{old_result.task_id(), &old_stats},
                           std::pair{new_run->results[0].task_id(), &new_stats}}) {
    auto found = ReadTaskRecords(*config, id, absl::Seconds(60), tight, stats);
    ASSERT_TRUE(found.ok()) << found.status();
    LookupStats all_stats;
    auto scanned = ReadTaskRecords(*config, id, absl::Seconds(60), all, &all_stats);
    ASSERT_TRUE(scanned.ok()) << scanned.status();
    EXPECT_GE(all_stats.scanned, 2 * kFillers) << "a whole-topic read reads every record";
    // Every record a scan of every topic finds, and no other.
    EXPECT_FALSE(found->tasks.empty()) << id;
    EXPECT_FALSE(found->work.empty()) << id;
    EXPECT_EQ(found->results.size(), 1u) << id;
    EXPECT_EQ(Places(*found), Places(*scanned)) << id;
    // Read: one partition of eight, and of the 80,000 other records only
    // the results between its own and the end of its results partition.
    EXPECT_LT(stats->scanned, kFillers / 4) << id;
    EXPECT_FALSE(stats->whole_partitions) << "Kafka's time index is used";
    auto report = Replay(*config, id, *found);
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_TRUE(report->identical()) << id << "\n" << ReplayText(*report);
  }
  // The newest task's result is in the last 1,000 offsets of its partition;
  // the older one's, under 5,000 fillers, takes more chunks.
  EXPECT_EQ(new_stats.result_rounds, 1);
  EXPECT_GT(old_stats.result_rounds, 1);
  EXPECT_LT(new_stats.scanned, old_stats.scanned);

  // Through the CLI, with the default margin; a negative one is refused.
  auto trace = fleet.Run({"agentfleet", "trace", old_result.task_id(), "--config", fleet.config_path()},
                         absl::Seconds(60));
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->first, 0) << trace->second;
  EXPECT_THAT(trace->second, ::testing::HasSubstr(v1::TaskStatus_Name(old_result.status()).substr(12)));
  EXPECT_THAT(trace->second, ::testing::HasSubstr("classify"));
  auto refused = fleet.Run({"agentfleet", "trace", old_result.task_id(), "--config", fleet.config_path(),
                            "--lookup_margin=-1s"},
                           absl::Seconds(60));
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->first, 2) << refused->second;
  EXPECT_THAT(refused->second, ::testing::HasSubstr("--lookup_margin must not be negative"));
}

}  // namespace
}  // namespace agentfleet::testing
