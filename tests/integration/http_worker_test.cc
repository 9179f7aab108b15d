// Workers calling a real HTTP model server (tests/fake_llm/fake_llm.py) on
// the real Kafka broker: thousands of calls in flight in one worker, and a
// SIGTERM under load that loses nothing.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cli/tasks_input.h"
#include "codec/json_value.h"
#include "fleet/run_summary.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kafka/kafka.h"
#include "kafka/topics.h"
#include "tests/integration/fake_llm.h"
#include "tests/integration/fleet_harness.h"

namespace agentfleet::testing {
namespace {

using Json = nlohmann::json;

// Writes examples/llm.yaml with both providers pointed at `fake`.
absl::StatusOr<FleetConfig> LlmFleetConfig(Fleet& fleet, const std::string& bootstrap, const FakeLlm& fake,
                                           const std::string& worker_yaml = "",
                                           std::vector<std::pair<std::string, std::string>> edits = {}) {
  setenv("LOCAL_LLM_API_KEY", "sk-local-test", 1);
  setenv("ANTHROPIC_API_KEY", "sk-ant-test", 1);
  fleet.set_example("examples/llm.yaml");
  edits.push_back({"http://127.0.0.1:8000/v1", fake.base_url() + "/v1"});
  edits.push_back({"https://api.anthropic.com", fake.base_url()});
  fleet.WriteConfig(bootstrap, edits, "", worker_yaml);
  if (absl::Status s = fleet.CreateTopics(); !s.ok()) return s;
  return fleet.LoadConfig();
}

// Resident-set high-water mark (KiB) and CPU seconds of a process, from /proc.
std::pair<int64_t, double> Usage(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  int64_t hwm_kib = 0;
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) hwm_kib = std::stoll(line.substr(6));
  }
  std::ifstream stat_file(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(stat_file)), {});
  std::vector<std::string> fields = absl::StrSplit(stat.substr(stat.rfind(')') + 2), ' ');
  double cpu_s = fields.size() > 12 ? (std::stod(fields[11]) + std::stod(fields[12])) / sysconf(_SC_CLK_TCK) : 0;
  return {hwm_kib, cpu_s};
}

void ExpectEveryTaskCompletedOnce(const RunOutcome& outcome, int count, const Fleet& fleet) {
  const RunSummary& s = outcome.summary;
  EXPECT_EQ(s.submitted, count);
  EXPECT_EQ(s.received, count) << fleet.LogTails();
  EXPECT_EQ(s.lost, 0);
  EXPECT_EQ(s.duplicates, 0);
  EXPECT_EQ(s.count(v1::TASK_STATUS_COMPLETED), count) << fleet.LogTails();
  for (const v1::TaskResult& r : outcome.results) {
    Json out = FromValue(r.output());
    ASSERT_TRUE(out.is_object() && out.contains("approved") && out.contains("reply")) << r.task_id() << out;
    EXPECT_GT(r.usage().input_tokens(), 0);
    EXPECT_GT(r.usage().cost_usd(), 0);
  }
}

class HttpWorkerTest : public KafkaTest {};

TEST_F(HttpWorkerTest, OneWorkerHoldsTwoThousandCallsAndLosesNone) {
  Fleet fleet("http2k");
  auto fake = FakeLlm::Start(fleet.dir(), /*delay_s=*/1.0);
  ASSERT_TRUE(fake.ok()) << fake.status();
  auto config = LlmFleetConfig(fleet, bootstrap_, **fake);
  ASSERT_TRUE(config.ok()) << config.status();
  fleet.StartCoordinator();
  pid_t worker = fleet.StartWorker("worker-1", {"--max_in_flight", "2000"});
  int port = fleet.HttpPort(worker);
  ASSERT_GT(port, 0) << fleet.LogTails();
  constexpr int kTasks = 2000;
  auto outcome = SubmitAndCollect(*config, SampleTasks(kTasks, fleet.prefix() + "task", 77), true, absl::Seconds(240));
  ASSERT_TRUE(outcome.ok()) << outcome.status() << fleet.LogTails();
  ExpectEveryTaskCompletedOnce(*outcome, kTasks, fleet);
  Json stats = (*fake)->Stats();
  EXPECT_GE(stats["max_in_flight"].get<int>(), 1000) << "calls were not held concurrently: " << stats.dump();
  auto [hwm_kib, cpu_s] = Usage(worker);
  std::cout << "worker: " << stats["requests"] << " calls, at most " << stats["max_in_flight"]
            << " in flight; peak RSS " << hwm_kib / 1024 << " MiB; CPU " << cpu_s << " s over "
            << outcome->summary.elapsed_s << " s\n";
  EXPECT_EQ(HttpGet(absl::StrCat("http://127.0.0.1:", port, "/healthz")).first, 200);
  EXPECT_EQ(HttpGet(absl::StrCat("http://127.0.0.1:", port, "/readyz")).first, 200);
  EXPECT_TRUE(fleet.AllRunning()) << fleet.LogTails();
  // The keys reached the server (it checks nothing, but records the headers) ...
  Json seen = (*fake)->Requests();
  ASSERT_FALSE(seen.empty());
  // ... and appear in no process's log.
  for (const auto& entry : std::filesystem::directory_iterator(fleet.dir())) {
    std::ifstream in(entry.path());
    std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(text.find("sk-ant-test"), std::string::npos) << entry.path();
    EXPECT_EQ(text.find("sk-local-test"), std::string::npos) << entry.path();
  }
}

TEST_F(HttpWorkerTest, SigtermUnderLoadFinishesOrHandsBackEveryItem) {
  Fleet fleet("httpterm");
  // Calls take 3 s; the worker may drain for 1 s: some finish, the rest are
  // handed back as retryable and the other worker runs them.
  auto fake = FakeLlm::Start(fleet.dir(), /*delay_s=*/3.0);
  ASSERT_TRUE(fake.ok()) << fake.status();
  auto config = LlmFleetConfig(fleet, bootstrap_, **fake, "shutdown_grace: 1s");
  ASSERT_TRUE(config.ok()) << config.status();
  fleet.StartCoordinator();
  pid_t leaving = fleet.StartWorker("worker-1", {"--max_in_flight", "500"});
  fleet.StartWorker("worker-2", {"--max_in_flight", "500"});
  int port = fleet.HttpPort(leaving);
  ASSERT_GT(port, 0) << fleet.LogTails();
  std::string readyz = absl::StrCat("http://127.0.0.1:", port, "/readyz");
  for (absl::Time until = absl::Now() + absl::Seconds(60); HttpGet(readyz).first != 200 && absl::Now() < until;) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(HttpGet(readyz).first, 200) << "worker-1 never became ready: " << fleet.LogTailOf(leaving);

  constexpr int kTasks = 400;
  std::optional<absl::StatusOr<RunOutcome>> outcome;
  std::thread submitter([&] {
    outcome = SubmitAndCollect(*config, SampleTasks(kTasks, fleet.prefix() + "task", 78), true, absl::Seconds(240));
  });
  // Once calls are in flight, stop worker-1 the way Kubernetes does.
  for (absl::Time until = absl::Now() + absl::Seconds(60); absl::Now() < until; absl::SleepFor(absl::Milliseconds(50))) {
    if ((*fake)->Stats().value("in_flight", 0) >= 200) break;
  }
  absl::Time sent = absl::Now();
  fleet.Signal(leaving, SIGTERM);
  // Not ready from the signal on, for as long as the drain lasts (the grace
  // period: 1 s); polled, since the signal is handled asynchronously.
  long draining = 200;
  for (absl::Time until = sent + absl::Seconds(1); draining == 200 && absl::Now() < until;) {
    draining = HttpGet(readyz).first;
    if (draining == 200) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_NE(draining, 200) << "a draining worker must not report ready";
  int code = fleet.StopProcess(leaving, absl::Seconds(60));
  absl::Duration took = absl::Now() - sent;
  EXPECT_EQ(code, 0) << fleet.LogTailOf(leaving, 20);
  EXPECT_LT(took, absl::Seconds(20)) << "the drain waits for the grace period, not for call timeouts";
  submitter.join();
  ASSERT_TRUE(outcome->ok()) << outcome->status() << fleet.LogTails();
  ExpectEveryTaskCompletedOnce(**outcome, kTasks, fleet);

  std::ifstream log(fleet.dir() + "/worker-1.log");
  int handed_back = -1;
  for (std::string line; std::getline(log, line);) {
    Json j = Json::parse(line, nullptr, false);
    if (j.is_object() && j.value("msg", "") == "grace period over; reporting unfinished items as retryable") {
      handed_back = std::stoi(j.value("count", "0"));
    }
  }
  EXPECT_GT(handed_back, 0) << "with 3 s calls and a 1 s grace, some items must be handed back";
  std::cout << "worker-1 drained in " << absl::FormatDuration(took) << ", handing back " << handed_back
            << " unfinished items; all " << kTasks << " tasks completed\n";
}

// Secrets planted where a user keeps them (the model API keys in the
// environment, a SASL password through kafka.properties_env) must never leave
// in anything the fleet writes: not in a process log, a metrics exposition, a
// span, or any message on any of the fleet's topics (results and DLQ
// included), even when the provider quotes the key back in its error.
TEST_F(HttpWorkerTest, PlantedSecretsAppearInNoLogMetricSpanOrMessage) {
  Fleet fleet("secrets");
  auto fake = FakeLlm::Start(fleet.dir(), 0.01);
  ASSERT_TRUE(fake.ok()) << fake.status();
  const std::string kKey = "sk-planted-7c1e4b0d9a2f";
  const std::string kAnthropicKey = "sk-ant-planted-51d0e6a3";
  const std::string kSasl = "sasl-planted-94b2f7";
  setenv("AGENTFLEET_TEST_SASL_PASSWORD", kSasl.c_str(), 1);
  auto config = LlmFleetConfig(
      fleet, bootstrap_, **fake, "",
      {{"\nworkflows:", absl::StrCat("\ntracing: {otlp_endpoint: '", (*fake)->base_url(),
                                      "/v1/traces', export_interval: 200ms}\nworkflows:")},
       {"  replication_factor: 1\n", "  replication_factor: 1\n  properties_env: {sasl.password: AGENTFLEET_TEST_SASL_PASSWORD}\n"}});
  ASSERT_TRUE(config.ok()) << config.status();
  setenv("LOCAL_LLM_API_KEY", kKey.c_str(), 1);
  setenv("ANTHROPIC_API_KEY", kAnthropicKey.c_str(), 1);
  pid_t coordinator = fleet.StartCoordinator();
  pid_t worker = fleet.StartWorker("worker-1");
  // A third of the tasks make the provider answer 401 quoting the key.
  std::vector<v1::TaskSubmission> tasks = SampleTasks(30, fleet.prefix() + "task", 5);
  for (size_t i = 0; i < tasks.size(); i += 3) {
    auto& ticket = *(*tasks[i].mutable_input()->mutable_fields())["ticket"].mutable_struct_value()->mutable_fields();
    ticket["subject"].set_string_value("fake:echo_key");
  }
  auto outcome = SubmitAndCollect(*config, tasks, true, absl::Seconds(120));
  ASSERT_TRUE(outcome.ok()) << outcome.status() << fleet.LogTails();
  EXPECT_EQ(outcome->summary.received, 30) << fleet.LogTails();
  EXPECT_GE(outcome->summary.count(v1::TASK_STATUS_FAILED) + outcome->summary.count(v1::TASK_STATUS_PARTIAL), 10);
  // A dead letter, so the DLQ has something to check.
  auto producer = NewProducer(ProducerProperties(config->kafka));
  ASSERT_TRUE(producer.ok());
  Topics topics(config->kafka.topic_prefix);
  ASSERT_TRUE((*producer)->Produce({topics.tasks, "garbage", "\xff not a task", {}}).ok());
  ASSERT_TRUE((*producer)->Flush(absl::Seconds(10)).ok());
  std::vector<int32_t> dlq_partitions;
  for (int32_t p = 0; p < config->kafka.partitions; ++p) dlq_partitions.push_back(p);
  bool dead_lettered = false;
  for (absl::Time until = absl::Now() + absl::Seconds(30); !dead_lettered && absl::Now() < until;) {
    auto dlq = ReadPartitionsToEnd(ConsumerProperties(config->kafka, fleet.prefix() + "dlq"), topics.dlq,
                                   dlq_partitions, absl::Seconds(30));
    ASSERT_TRUE(dlq.ok()) << dlq.status();
    for (const Message& m : *dlq) dead_lettered |= m.key == "garbage";
    if (!dead_lettered) absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_TRUE(dead_lettered) << "the garbage submission never reached the dead-letter queue\n" << fleet.LogTails();

  // The plant is real: the provider received the keys.
  std::string sent = (*fake)->Requests().dump();
  ASSERT_THAT(sent, ::testing::HasSubstr(kKey));

  std::vector<std::pair<std::string, std::string>> outputs;  // where, what
  for (pid_t pid : {coordinator, worker}) {
    auto [status, body] = HttpGet(absl::StrCat("http://127.0.0.1:", fleet.HttpPort(pid), "/metrics"));
    EXPECT_EQ(status, 200);
    outputs.push_back({absl::StrCat("metrics of pid ", pid), body});
  }
  for (absl::Time until = absl::Now() + absl::Seconds(10); (*fake)->Spans().empty() && absl::Now() < until;) {
    absl::SleepFor(absl::Milliseconds(200));
  }
  std::string spans = (*fake)->Spans().dump();
  EXPECT_GT(spans.size(), 100u);
  outputs.push_back({"spans", spans});
  size_t messages = 0;
  for (const TopicSpec& t : FleetTopics(*config)) {
    std::vector<int32_t> partitions;
    for (int32_t p = 0; p < t.partitions; ++p) partitions.push_back(p);
    auto read = ReadPartitionsToEnd(ConsumerProperties(config->kafka, fleet.prefix() + "grep"), t.name, partitions,
                                    absl::Seconds(60));
    ASSERT_TRUE(read.ok()) << t.name << ": " << read.status();
    for (const Message& m : *read) {
      std::string all = m.key + m.payload;
      for (const auto& [k, v] : m.headers) all += k + v;
      outputs.push_back({t.name, all});
      ++messages;
    }
  }
  EXPECT_GT(messages, 100u);
  fleet.StopProcess(worker);
  fleet.StopProcess(coordinator);
  for (const auto& entry : std::filesystem::directory_iterator(fleet.dir())) {
    if (entry.path().extension() != ".log" || entry.path().filename().string().rfind("fake", 0) == 0) continue;
    std::ifstream in(entry.path());
    outputs.push_back({entry.path().filename().string(), std::string(std::istreambuf_iterator<char>(in), {})});
  }
  bool redaction_seen = false;
  for (const auto& [where, text] : outputs) {
    for (const std::string& secret : {kKey, kAnthropicKey, kSasl}) {
      EXPECT_EQ(text.find(secret), std::string::npos) << secret << " leaked into " << where;
    }
    // The provider's quote of the key reaches the task's result, redacted.
    redaction_seen = redaction_seen || (where == topics.results &&
                                        text.find("Incorrect API key provided: [redacted]") != std::string::npos);
  }
  EXPECT_TRUE(redaction_seen) << "the 401's message should reach the results with the key redacted";
}

}  // namespace
}  // namespace agentfleet::testing
