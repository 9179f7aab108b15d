// Chaos tests (CTest label `chaos`): processes really killed with SIGKILL or
// frozen with SIGSTOP while tasks run, on the real Kafka broker. Each ends
// with the audit a user would run: every task has exactly one result, and
// every output equals the reference run's.
#include <signal.h>

#include <functional>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/subprocess.h"
#include "cli/audit.h"
#include "cli/run_summary.h"
#include "cli/tasks_input.h"
#include "codec/codec.h"
#include "codec/trace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kafka/topics.h"
#include "tests/integration/fleet_harness.h"

namespace agentfleet::testing {
namespace {

// Fast group failover for the tests: a dead member's partitions move after 6 s.
const std::pair<std::string, std::string> kFastFailover = {
    "  properties:            # any librdkafka property, for every client",
    "  consumer: {session.timeout.ms: \"6000\", heartbeat.interval.ms: \"1000\"}\n"
    "  properties:"};

std::pair<std::string, std::string> Latency(const std::string& yaml) {
  return {"latency: {distribution: lognormal, p50_ms: 20, p99_ms: 80}", "latency: " + yaml};
}

// Agents: heartbeats must arrive every `timeout`; the worker beats every 1 s.
std::pair<std::string, std::string> HeartbeatTimeout(const std::string& timeout) {
  return {"    provider: sim\n", "    provider: sim\n    heartbeat_timeout: " + timeout + "\n"};
}

// Step instances that needed more than one attempt.
int RetriedSteps(const std::vector<v1::TaskResult>& results) {
  int retried = 0;
  for (const auto& r : results) {
    for (const auto& s : r.steps()) retried += s.attempts() > 1;
  }
  return retried;
}

class ChaosTest : public KafkaTest {
 protected:
  // Submits `count` tasks and polls for their results; `at_progress(received)`
  // runs after each poll (it injects the faults). Returns the results.
  std::vector<v1::TaskResult> RunWithFaults(Fleet& fleet, const FleetConfig& config, int count,
                                            const std::function<void(size_t)>& at_progress,
                                            const std::string& batch = "task",
                                            absl::Duration timeout = absl::Seconds(240)) {
    auto producer = NewProducer(ProducerProperties(config.kafka));
    EXPECT_TRUE(producer.ok());
    auto collector = ResultCollector::Start(config, nullptr);
    EXPECT_TRUE(collector.ok()) << collector.status();
    if (!producer.ok() || !collector.ok()) return {};
    Topics topics(config.kafka.topic_prefix);
    for (auto& t : SampleTasks(count, fleet.prefix() + batch, 99)) {
      (*collector)->Expect(t.task_id(), absl::Now());
      Encoded e = Encode(t, NewTraceparent());
      EXPECT_TRUE((*producer)->Produce({topics.tasks, t.task_id(), e.payload, e.headers}).ok());
    }
    EXPECT_TRUE((*producer)->Flush(absl::Seconds(30)).ok());
    absl::Time deadline = absl::Now() + timeout;
    while (!(*collector)->Done() && absl::Now() < deadline) {
      (*collector)->Poll(absl::Milliseconds(100));
      at_progress((*collector)->received());
    }
    (*collector)->Poll(absl::Seconds(2));  // a duplicate would arrive right behind
    RunSummary s = (*collector)->Summary();
    EXPECT_EQ(s.received, count) << fleet.LogTails();
    EXPECT_EQ(s.duplicates, 0);
    EXPECT_EQ(s.count(v1::TASK_STATUS_COMPLETED), count) << fleet.LogTails();
    return (*collector)->results();
  }

  // Writes the fleet's config (fast group failover, simulated `latency`, plus
  // `edits`), creates its topics and loads the config. Null on failure (the
  // test has already failed then).
  std::optional<FleetConfig> Prepare(Fleet& fleet, const std::string& latency,
                                     std::vector<std::pair<std::string, std::string>> edits = {},
                                     const std::string& worker_yaml = "") {
    edits.push_back(kFastFailover);
    edits.push_back(Latency(latency));
    fleet.WriteConfig(bootstrap_, edits, "", worker_yaml);
    absl::Status created = fleet.CreateTopics();
    EXPECT_TRUE(created.ok()) << created << fleet.LogTails();
    auto config = fleet.LoadConfig();
    EXPECT_TRUE(config.ok()) << config.status();
    if (!created.ok() || !config.ok()) return std::nullopt;
    return *config;
  }

  // The topics, audited from the beginning, agree.
  void ExpectCleanAudit(const FleetConfig& config, int count) {
    auto report = Audit(config, /*verify=*/true, absl::Seconds(120));
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_TRUE(report->clean()) << report->Text();
    EXPECT_EQ(report->submitted, count);
    EXPECT_EQ(report->results, count);
    EXPECT_EQ(report->verified, count);
  }
};

TEST_F(ChaosTest, CoordinatorKilledThreeTimesLosesAndDuplicatesNothing) {
  Fleet fleet("kill-coordinator");
  auto config = Prepare(fleet, "{distribution: lognormal, p50_ms: 100, p99_ms: 300}");
  ASSERT_TRUE(config.has_value());
  pid_t coordinator = fleet.StartCoordinator({"--instance", "c1"});
  fleet.StartWorker("worker-1", {"--max_in_flight", "100"});
  fleet.StartWorker("worker-2", {"--max_in_flight", "100"});
  const int kTasks = 2000;
  int kills = 0;
  absl::Time last_start = absl::InfinitePast();
  RunWithFaults(fleet, *config, kTasks, [&](size_t received) {
    // Kill once 200 results are in, then whenever the restarted coordinator
    // has run for 2 s, and restart at once under the same instance name.
    // Time, not result counts, spaces the kills: after a restart the
    // backlog's results become visible together, in one committed
    // transaction, so counts jump.
    if (kills < 3 && received >= 200 && absl::Now() - last_start >= absl::Seconds(2)) {
      fleet.Kill(coordinator);
      coordinator = fleet.StartCoordinator({"--instance", "c1"});
      last_start = absl::Now();
      ++kills;
    }
  });
  EXPECT_EQ(kills, 3);
  ExpectCleanAudit(*config, kTasks);
}

TEST_F(ChaosTest, TheSurvivingReplicaTakesOverAKilledReplicasTasks) {
  Fleet fleet("two-replicas");
  auto config = Prepare(fleet, "{distribution: lognormal, p50_ms: 100, p99_ms: 300}");
  ASSERT_TRUE(config.has_value());
  pid_t survivor = fleet.StartCoordinator({"--instance", "c1"});
  pid_t victim = fleet.StartCoordinator({"--instance", "c2"});
  fleet.StartWorker("worker-1", {"--max_in_flight", "100"});
  fleet.StartWorker("worker-2", {"--max_in_flight", "100"});
  const int kTasks = 1000;
  bool killed = false;
  RunWithFaults(fleet, *config, kTasks, [&](size_t received) {
    if (!killed && received >= kTasks * 3 / 10) {
      fleet.Kill(victim);
      killed = true;
    }
  });
  EXPECT_TRUE(killed);
  EXPECT_TRUE(fleet.IsAlive(survivor));
  ExpectCleanAudit(*config, kTasks);
}

TEST_F(ChaosTest, AZombieReplicaThatWakesUpAfterItsPartitionsMovedIsFenced) {
  Fleet fleet("zombie");
  auto config = Prepare(fleet, "{distribution: lognormal, p50_ms: 100, p99_ms: 300}");
  ASSERT_TRUE(config.has_value());
  fleet.StartCoordinator({"--instance", "c1"});
  pid_t zombie = fleet.StartCoordinator({"--instance", "c2"});
  fleet.StartWorker("worker-1", {"--max_in_flight", "100"});
  fleet.StartWorker("worker-2", {"--max_in_flight", "100"});
  const int kTasks = 1000;
  bool frozen = false;
  // Frozen mid-run (mid-transaction, most likely); the other replica takes
  // over its partitions after the 6 s session timeout and finishes every task.
  // 120 s: a healthy run takes about 20. (A stall here is the open problem in
  // docs/architecture.md; fail fast rather than wait.)
  RunWithFaults(fleet, *config, kTasks, [&](size_t received) {
    if (!frozen && received >= kTasks * 3 / 10) {
      fleet.Signal(zombie, SIGSTOP);
      frozen = true;
    }
  }, "task", absl::Seconds(120));
  ASSERT_TRUE(frozen);
  // Now it wakes up, believing it still owns its partitions, with its old
  // transaction and in-flight tasks. Anything it managed to commit now would
  // be a duplicate.
  fleet.Signal(zombie, SIGCONT);
  auto code = WaitExit(zombie, absl::Seconds(15));
  std::cerr << "zombie replica after waking: "
            << (code.ok() ? "exited with code " + std::to_string(*code) : "still running (rejoined the group)")
            << "\n" << fleet.LogTailOf(zombie, 4) << "\n";
  ExpectCleanAudit(*config, kTasks);
}

TEST_F(ChaosTest, AKilledWorkersItemsAreRetriedAndEveryTaskCompletes) {
  Fleet fleet("kill-worker");
  auto config = Prepare(fleet, "{distribution: lognormal, p50_ms: 300, p99_ms: 900}", {HeartbeatTimeout("3s")},
                        "heartbeat_interval: 1s");
  ASSERT_TRUE(config.has_value());
  fleet.StartCoordinator({"--instance", "c1"});
  pid_t victim = fleet.StartWorker("worker-1");
  fleet.StartWorker("worker-2");
  const int kTasks = 600;
  bool killed = false;
  auto results = RunWithFaults(fleet, *config, kTasks, [&](size_t received) {
    if (!killed && received >= kTasks * 3 / 10) {
      fleet.Kill(victim);
      killed = true;
    }
  });
  EXPECT_TRUE(killed);
  EXPECT_GT(RetriedSteps(results), 0) << "the killed worker's running attempts should have timed out and been retried";
  ExpectCleanAudit(*config, kTasks);
}

TEST_F(ChaosTest, HeartbeatsKeepLongCallsAliveAndTheirSilenceRetriesThem) {
  Fleet fleet("heartbeat");
  // Every call takes 2.5 s, longer than the 2 s heartbeat timeout: only
  // heartbeats (every 1 s) keep an attempt from timing out.
  auto config = Prepare(fleet, "{distribution: fixed, mean_ms: 2500}", {HeartbeatTimeout("2s")},
                        "heartbeat_interval: 1s");
  ASSERT_TRUE(config.has_value());
  fleet.StartCoordinator({"--instance", "c1"});
  pid_t frozen = fleet.StartWorker("worker-1");
  fleet.StartWorker("worker-2");

  // 1. A healthy run: no attempt times out.
  auto healthy = RunWithFaults(fleet, *config, 50, [](size_t) {});
  for (const auto& r : healthy) {
    for (const auto& s : r.steps()) EXPECT_EQ(s.attempts(), 1) << r.task_id() << " " << s.step();
  }

  // 2. A worker that took items (receipts sent) and then goes silent
  // (SIGSTOP, a frozen process): its attempts miss their heartbeats and are
  // retried on the other worker once the group moves its partitions. The
  // freeze follows the events topic: as soon as worker-1 has sent a receipt
  // for this batch, it is mid-call.
  Topics topics(config->kafka.topic_prefix);
  auto watcher = NewConsumer(ConsumerProperties(config->kafka, fleet.prefix() + "watcher"));
  ASSERT_TRUE(watcher.ok());
  auto marks = QueryWatermarks(ProducerProperties(config->kafka), topics.events, absl::Seconds(30));
  ASSERT_TRUE(marks.ok());
  std::vector<TopicPartition> from_end;
  for (size_t p = 0; p < marks->size(); ++p) from_end.push_back({topics.events, static_cast<int32_t>(p), (*marks)[p].high});
  ASSERT_TRUE((*watcher)->Assign(from_end).ok());
  bool stopped = false;
  auto results = RunWithFaults(fleet, *config, 50, [&](size_t) {
    if (stopped) return;
    for (const Message& m : (*watcher)->Poll(absl::ZeroDuration(), 1000)) {
      auto event = Decode<v1::WorkEvent>(m.payload, m.headers);
      if (event.ok() && event->has_receipt() && event->receipt().worker() == "worker-1" &&
          event->task_id().find("frozen") != std::string::npos) {
        fleet.Signal(frozen, SIGSTOP);
        stopped = true;
        break;
      }
    }
  }, "frozen");
  (*watcher)->Close();
  EXPECT_TRUE(stopped);
  EXPECT_GT(RetriedSteps(results), 0) << fleet.LogTails();
  ExpectCleanAudit(*config, 100);
  fleet.Signal(frozen, SIGCONT);
}

}  // namespace
}  // namespace agentfleet::testing
