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
#include "cli/run_summary.h"
#include "cli/tasks_input.h"
#include "codec/json_value.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/fake_llm.h"
#include "tests/integration/fleet_harness.h"

namespace agentfleet::testing {
namespace {

using Json = nlohmann::json;

// Writes examples/llm.yaml with both providers pointed at `fake`.
absl::StatusOr<FleetConfig> LlmFleetConfig(Fleet& fleet, const std::string& bootstrap, const FakeLlm& fake,
                                           const std::string& worker_yaml = "") {
  setenv("LOCAL_LLM_API_KEY", "sk-local-test", 1);
  setenv("ANTHROPIC_API_KEY", "sk-ant-test", 1);
  fleet.set_example("examples/llm.yaml");
  fleet.WriteConfig(bootstrap,
                    {{"http://127.0.0.1:8000/v1", fake.base_url() + "/v1"},
                     {"https://api.anthropic.com", fake.base_url()}},
                    "", worker_yaml);
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
  absl::SleepFor(absl::Milliseconds(300));
  long draining = HttpGet(readyz).first;
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

}  // namespace
}  // namespace agentfleet::testing
