// Provider batches end to end on real Kafka (examples/batch.yaml against the
// local server's OpenAI batch API): BATCH-priority tasks are answered by
// batches at the batch price, a request a batch fails and work that cannot
// wait are answered online, every task ends exactly once; a worker SIGKILLed
// while it holds calls for a batch loses none (they are redelivered to the
// next worker, which batches them).
#include <filesystem>
#include <optional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "codec/json_value.h"
#include "fleet/run_summary.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/fake_llm.h"
#include "tests/integration/fleet_harness.h"

namespace agentfleet::testing {
namespace {

using Json = nlohmann::json;

// A worker's agentfleet_worker_items_in_flight, or -1.
int InFlight(Fleet& fleet, pid_t worker) {
  int port = fleet.HttpPort(worker);
  if (port == 0) return -1;
  auto [status, body] = HttpGet(absl::StrCat("http://127.0.0.1:", port, "/metrics"));
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (!absl::StartsWith(line, "agentfleet_worker_items_in_flight")) continue;
    double v = -1;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) return static_cast<int>(v);
  }
  return -1;
}

class BatchFleetTest : public KafkaTest {};

TEST_F(BatchFleetTest, BatchWorkIsAnsweredByBatchesAtHalfPriceAndNothingIsLostOrDoubled) {
  Fleet fleet("batch");
  auto fake = FakeLlm::Start(fleet.dir());
  ASSERT_TRUE(fake.ok()) << fake.status();
  fleet.set_example("examples/batch.yaml");
  fleet.WriteConfig(bootstrap_, {{"http://127.0.0.1:8000", (*fake)->base_url()},
                                 {"max_items: 1000", "max_items: 20"},
                                 {"max_wait: 10m", "max_wait: 1s"},
                                 {"poll_interval: 60s", "poll_interval: 200ms"}},
                    "", "heartbeat_interval: 1s");
  ASSERT_TRUE(fleet.CreateTopics().ok());
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  fleet.StartCoordinator({"--instance", "c1"});
  pid_t worker = fleet.StartWorker("worker-1");

  int seq = 0;
  auto task = [&](const std::string& workflow, v1::Priority priority, const std::string& ticket) {
    v1::TaskSubmission t;
    t.set_task_id(absl::StrCat(fleet.prefix(), "t-", seq++));
    t.set_workflow(workflow);
    t.set_priority(priority);
    *t.mutable_input() = ToStruct(Json{{"ticket", ticket}});
    return t;
  };
  std::vector<v1::TaskSubmission> tasks;
  for (int i = 0; i < 45; ++i) tasks.push_back(task("digest", v1::PRIORITY_BATCH, absl::StrCat("ticket ", i)));
  tasks.push_back(task("digest", v1::PRIORITY_BATCH, "ticket fake:batch_error"));  // fails in its batch
  for (int i = 0; i < 5; ++i) tasks.push_back(task("digest", v1::PRIORITY_INTERACTIVE, "urgent"));
  for (int i = 0; i < 5; ++i) tasks.push_back(task("digest_today", v1::PRIORITY_BATCH, "today"));
  auto outcome = SubmitAndCollect(*config, tasks, true, absl::Seconds(120));
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  ASSERT_EQ(outcome->results.size(), tasks.size()) << fleet.LogTails();
  int batched = 0, online = 0;
  for (const v1::TaskResult& r : outcome->results) {
    ASSERT_EQ(r.status(), v1::TASK_STATUS_COMPLETED) << r.ShortDebugString();
    const v1::StepSummary& s = r.steps(0);
    double online_price = config->Cost(s.model(), s.usage().input_tokens(), s.usage().output_tokens());
    if (s.batch_saved_usd() > 0) {
      ++batched;
      EXPECT_NEAR(s.usage().cost_usd(), online_price / 2, 1e-12) << "half price";
      EXPECT_NEAR(s.batch_saved_usd(), online_price / 2, 1e-12);
    } else {
      ++online;
      EXPECT_NEAR(s.usage().cost_usd(), online_price, 1e-12);
    }
    EXPECT_EQ(s.attempts(), 1);
  }
  EXPECT_EQ(batched, 45);
  EXPECT_EQ(online, 11) << "the failed one, 5 interactive, 5 that could not wait";
  Json stats = Json::parse(HttpGet((*fake)->base_url() + "/_batches").second);
  EXPECT_EQ(stats["items"], 46);
  EXPECT_EQ(stats["errored"], 1);
  EXPECT_GE(stats["batches"].get<int>(), 3) << "at most 20 a batch";
  EXPECT_EQ((*fake)->Stats()["requests"], 11) << "online calls";

  // A worker holding calls for a batch is SIGKILLed before it sends them:
  // the calls are redelivered (their offsets were never committed) to the
  // next worker, which batches them. Nothing lost, nothing doubled. (The
  // agent's heartbeat_timeout, 30s, outlasts the group's rebalance, so the
  // coordinator waits for the redelivered attempts rather than retrying.)
  fleet.StopProcess(worker);
  auto rewrite = [&](const std::string& max_wait) {
    fleet.WriteConfig(bootstrap_, {{"http://127.0.0.1:8000", (*fake)->base_url()},
                                   {"max_items: 1000", "max_items: 20"},
                                   {"max_wait: 10m", "max_wait: " + max_wait},
                                   {"poll_interval: 60s", "poll_interval: 200ms"}},
                      "", "heartbeat_interval: 1s");
  };
  rewrite("1h");  // this worker would hold them for an hour
  pid_t holding = fleet.StartWorker("worker-2");
  std::vector<v1::TaskSubmission> held;
  for (int i = 0; i < 8; ++i) held.push_back(task("digest", v1::PRIORITY_BATCH, absl::StrCat("held ", i)));
  std::optional<absl::StatusOr<RunOutcome>> second;
  std::thread submitter([&] { second = SubmitAndCollect(*config, held, true, absl::Seconds(120)); });
  absl::Time until = absl::Now() + absl::Seconds(60);
  while (InFlight(fleet, holding) < 8 && absl::Now() < until) absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(InFlight(fleet, holding), 8) << "the worker holds every call for its batch";
  fleet.Kill(holding);
  rewrite("1s");
  fleet.StartWorker("worker-3");
  submitter.join();
  ASSERT_TRUE(second.has_value() && second->ok());
  ASSERT_EQ((*second)->results.size(), held.size()) << fleet.LogTails();
  for (const v1::TaskResult& r : (*second)->results) {
    EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED);
    EXPECT_EQ(r.steps(0).attempts(), 1) << "the same attempt, redelivered";
    EXPECT_GT(r.steps(0).batch_saved_usd(), 0) << "answered by the next worker's batch";
  }
  EXPECT_EQ(Json::parse(HttpGet((*fake)->base_url() + "/_batches").second)["items"], 46 + 8);
  EXPECT_EQ((*fake)->Stats()["requests"], 11) << "no more online calls";
  // The audit a user would run: nothing lost, duplicated or over budget.
  ExpectCleanAudit(fleet);
}

}  // namespace
}  // namespace agentfleet::testing
