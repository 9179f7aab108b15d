// End-to-end tests: a coordinator and workers as real processes, on the real
// Kafka broker (tests/kafka/kafka.sh) and on the development broker.
#include <atomic>
#include <csignal>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "audit/reference_run.h"
#include "audit/replay.h"
#include "audit/task_records.h"
#include "cli/tasks_input.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "codec/trace.h"
#include "fleet/run_summary.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kafka/dead_letter.h"
#include "kafka/kafka.h"
#include "kafka/topics.h"
#include "tests/integration/fake_llm.h"
#include "tests/integration/fleet_harness.h"

namespace agentfleet::testing {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

// Submits `count` sample tasks, waits for their results, and checks what a
// user would: one result per task, all COMPLETED, each output exactly what
// the workflow computes for that task's input.
void RunAndVerify(Fleet& fleet, const FleetConfig& config, int count) {
  std::vector<v1::TaskSubmission> tasks = SampleTasks(count, fleet.prefix() + "task", 1234);
  std::map<std::string, v1::TaskSubmission> by_id;
  for (const auto& t : tasks) by_id[t.task_id()] = t;
  auto outcome = SubmitAndCollect(config, tasks, /*wait=*/true, absl::Seconds(180));
  ASSERT_TRUE(outcome.ok()) << outcome.status() << fleet.LogTails();
  const RunSummary& s = outcome->summary;
  EXPECT_EQ(s.submitted, count);
  EXPECT_EQ(s.received, count) << fleet.LogTails();
  EXPECT_EQ(s.lost, 0);
  EXPECT_EQ(s.duplicates, 0);
  EXPECT_EQ(s.count(v1::TASK_STATUS_COMPLETED), count) << fleet.LogTails();
  std::set<std::string> seen;
  int checked = 0;
  for (const v1::TaskResult& r : outcome->results) {
    ASSERT_TRUE(seen.insert(r.task_id()).second) << "two results for " << r.task_id();
    ASSERT_TRUE(by_id.count(r.task_id())) << r.task_id();
    std::optional<v1::TaskResult> reference = RunLocally(config, by_id[r.task_id()]);
    ASSERT_TRUE(reference.has_value());
    const v1::TaskResult& expected = *reference;
    ASSERT_EQ(expected.status(), v1::TASK_STATUS_COMPLETED);
    EXPECT_EQ(FromValue(r.output()), FromValue(expected.output())) << r.task_id();
    EXPECT_EQ(r.steps_size(), expected.steps_size()) << r.task_id();
    EXPECT_EQ(r.usage().input_tokens(), expected.usage().input_tokens()) << r.task_id();
    EXPECT_NEAR(r.usage().cost_usd(), expected.usage().cost_usd(), 1e-9) << r.task_id();
    ++checked;
  }
  EXPECT_EQ(checked, count);
  EXPECT_TRUE(fleet.AllRunning()) << fleet.LogTails();
}

class RealKafkaTest : public KafkaTest {};

TEST_F(RealKafkaTest, FiveHundredTasksThroughOneCoordinatorAndTwoWorkers) {
  Fleet fleet("e2e");
  fleet.WriteConfig(bootstrap_);
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  pid_t coordinator = fleet.StartCoordinator();
  pid_t worker1 = fleet.StartWorker("worker-1");
  pid_t worker2 = fleet.StartWorker("worker-2");
  RunAndVerify(fleet, *config, 500);
  // The audit a user would run agrees: nothing lost or duplicated, every output verified.
  auto audit = fleet.Run({"agentfleet", "audit", "--verify", "--json", "--config", fleet.config_path()},
                         absl::Seconds(120));
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_EQ(audit->first, 0) << audit->second;
  EXPECT_THAT(audit->second, HasSubstr(R"("clean":true)"));
  EXPECT_THAT(audit->second, HasSubstr(R"("verified":500)"));
  EXPECT_THAT(audit->second, HasSubstr(R"("submitted":500)"));
  // Exactly-once writes leave a transaction marker after the work items of
  // each partition; idle workers commit past them, so the pool shows no lag
  // (else KEDA would never scale it to zero).
  Topics topics(config->kafka.topic_prefix);
  for (const auto& [agent, unused] : config->agents) {
    int64_t lag = -1;
    for (absl::Time until = absl::Now() + absl::Seconds(20); absl::Now() < until; absl::SleepFor(absl::Milliseconds(500))) {
      auto read = GroupLag(ProducerProperties(config->kafka), WorkerGroup(*config, "default"), {topics.Work(agent)},
                           absl::Seconds(10));
      ASSERT_TRUE(read.ok()) << read.status();
      lag = read->front().total();
      if (lag == 0) break;
    }
    EXPECT_EQ(lag, 0) << "the workers' committed offsets stop short of " << topics.Work(agent);
  }
  // SIGTERM is a clean stop for every process.
  EXPECT_EQ(fleet.StopProcess(worker1), 0) << fleet.LogTails();
  EXPECT_EQ(fleet.StopProcess(worker2), 0) << fleet.LogTails();
  EXPECT_EQ(fleet.StopProcess(coordinator), 0) << fleet.LogTails();
}

// Issue 23: exactly_once commits a transaction as soon as the coordinator has
// drained its input (commit_policy: adaptive, the default), not when an
// interval is up. With a 10-minute commit_interval, tasks that pass through
// the coordinator several times each finish at once only if no hop waits for
// it; the replica's metrics say every commit was triggered by a drained input.
TEST_F(RealKafkaTest, ExactlyOnceCommitsWhenTheInputIsDrainedWithoutWaitingForTheInterval) {
  Fleet fleet("adaptive");
  fleet.WriteConfig(bootstrap_, {}, "processing: exactly_once, commit_interval: 10m");
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->coordinator.commit_policy, CoordinatorConfig::CommitPolicy::kAdaptive) << "the default";
  pid_t coordinator = fleet.StartCoordinator();
  fleet.StartWorker("worker-1");
  RunAndVerify(fleet, *config, 50);  // within 180 s: no hop waited 10 minutes
  auto [status, body] = HttpGet(absl::StrCat("http://127.0.0.1:", fleet.HttpPort(coordinator), "/metrics"));
  ASSERT_EQ(status, 200);
  auto count = [&body = body](const std::string& series) {
    for (absl::string_view line : absl::StrSplit(body, '\n')) {
      if (absl::StartsWith(line, series + " ")) return std::stod(std::string(line.substr(series.size() + 1)));
    }
    return 0.0;
  };
  EXPECT_GT(count(R"(agentfleet_coordinator_commit_seconds_count{trigger="drained"})"), 0) << body;
  EXPECT_EQ(count(R"(agentfleet_coordinator_commit_seconds_count{trigger="interval"})"), 0);
  EXPECT_EQ(count("agentfleet_coordinator_commit_failures_total"), 0);
  auto audit = fleet.Run({"agentfleet", "audit", "--verify", "--json", "--config", fleet.config_path()},
                         absl::Seconds(120));
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_THAT(audit->second, HasSubstr(R"("clean":true)"));
}

// What a worker's log says of its partitions: for each revocation, how many
// it owned just before and how many it gave up.
struct Revocation {
  int owned = 0, revoked = 0;
};
std::vector<Revocation> RevocationsIn(const std::string& log) {
  std::vector<Revocation> out;
  int owned = 0;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    Json j = Json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("count")) continue;
    int count = std::stoi(j.value("count", "0"));
    if (j.value("msg", "") == "partitions assigned") owned += count;
    if (j.value("msg", "") == "partitions revoked") {
      out.push_back({owned, count});
      owned -= count;
    }
  }
  return out;
}

// Issue 17, item 3: a worker joining a one-agent pool (a KEDA scale-up)
// takes its share of the partitions; the workers already there give up only
// that share and keep consuming the rest (cooperative rebalancing) instead
// of all of them stopping while the group rebalances. The grown pool, with
// a second pool for the other agents, then runs tasks.
TEST_F(RealKafkaTest, AWorkerJoiningAPoolMovesOnlyThePartitionsItTakes) {
  Fleet fleet("scale-up");
  fleet.WriteConfig(bootstrap_);
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  fleet.StartCoordinator();
  const std::vector<std::string> pool = {"--pool", "classify", "--agents", "classifier"};
  fleet.StartWorker("worker-rest", {"--pool", "rest", "--agents", "researcher,responder,reviewer"});
  pid_t w1 = fleet.StartWorker("worker-1", pool);
  pid_t w2 = fleet.StartWorker("worker-2", pool);
  auto owns_some = [&](pid_t w) {
    for (absl::Time until = absl::Now() + absl::Seconds(60); absl::Now() < until; absl::SleepFor(absl::Milliseconds(100))) {
      for (absl::string_view line : absl::StrSplit(fleet.LogOf(w), '\n')) {
        Json j = Json::parse(line, nullptr, false);
        if (j.is_object() && j.value("msg", "") == "partitions assigned" && j.value("count", "0") != "0") return true;
      }
    }
    return false;
  };
  ASSERT_TRUE(owns_some(w1) && owns_some(w2)) << fleet.LogTails();
  pid_t w3 = fleet.StartWorker("worker-3", pool);
  ASSERT_TRUE(owns_some(w3)) << "the new worker was never given partitions\n" << fleet.LogTails();
  int revocations = 0;
  for (pid_t w : {w1, w2}) {
    for (const Revocation& r : RevocationsIn(fleet.LogOf(w))) {
      ++revocations;
      EXPECT_LT(r.revoked, r.owned) << "a worker gave up all " << r.owned
                                    << " of its partitions when one joined: the rebalance stopped it\n"
                                    << fleet.LogOf(w);
    }
  }
  EXPECT_GT(revocations, 0) << "the new worker's partitions came from nowhere";
  RunAndVerify(fleet, *config, 300);
}

// worker.receipt_delay: an attempt sends a receipt only if its call is still
// running after the delay; a faster one sends just its result.
TEST_F(RealKafkaTest, OnlyCallsLongerThanTheReceiptDelaySendAReceipt) {
  Fleet fleet("receipts");
  fleet.WriteConfig(bootstrap_,
                    {{"latency: {distribution: lognormal, p50_ms: 20, p99_ms: 80}",
                      "latency: {distribution: uniform, min_ms: 0, max_ms: 300}"}},
                    "processing: at_least_once", "receipt_delay: 100ms");
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->worker.receipt_delay, absl::Milliseconds(100));
  fleet.StartCoordinator();
  fleet.StartWorker("worker-1");
  RunAndVerify(fleet, *config, 60);

  // Every event of the run, by attempt.
  Topics topics(config->kafka.topic_prefix);
  auto events = NewConsumer(ConsumerProperties(config->kafka, fleet.prefix() + "events-reader"));
  ASSERT_TRUE(events.ok());
  ASSERT_TRUE((*events)->Subscribe({topics.events}).ok());
  std::map<std::string, int64_t> latency_of;  // attempts with a result
  std::map<std::string, absl::Time> finished_at;  // when the worker sent the result
  std::set<std::string> receipted;
  // Read until 3 s pass without a new event (the run is over), at most 60 s.
  absl::Time deadline = absl::Now() + absl::Seconds(60), last_event = absl::Now();
  while (absl::Now() < deadline && (latency_of.empty() || absl::Now() - last_event < absl::Seconds(3))) {
    for (const Message& m : (*events)->Poll(absl::Milliseconds(200), 1000)) {
      auto e = Decode<v1::WorkEvent>(m.payload, m.headers);
      ASSERT_TRUE(e.ok()) << e.status();
      if (e->has_receipt()) receipted.insert(e->idempotency_key());
      if (e->has_result()) {
        latency_of[e->idempotency_key()] = e->result().latency_ms();
        finished_at[e->idempotency_key()] = FromTimestamp(e->at());
      }
      last_event = absl::Now();
    }
  }
  (*events)->Close();
  // When each attempt was dispatched (its work item), to tell the attempts
  // that were over before the delay from those a loaded machine kept
  // waiting in the worker though their call was short.
  std::vector<std::string> work_topics;
  for (const auto& [agent, unused] : config->agents) work_topics.push_back(topics.Work(agent));
  auto items = NewConsumer(ConsumerProperties(config->kafka, fleet.prefix() + "work-reader"));
  ASSERT_TRUE(items.ok());
  ASSERT_TRUE((*items)->Subscribe(work_topics).ok());
  std::map<std::string, absl::Time> dispatched_at;
  for (absl::Time until = absl::Now() + absl::Seconds(60);
       dispatched_at.size() < latency_of.size() && absl::Now() < until;) {
    for (const Message& m : (*items)->Poll(absl::Milliseconds(200), 1000)) {
      auto item = Decode<v1::WorkItem>(m.payload, m.headers);
      ASSERT_TRUE(item.ok()) << item.status();
      dispatched_at[item->idempotency_key()] = FromTimestamp(item->dispatched_at());
    }
  }
  (*items)->Close();
  ASSERT_GE(latency_of.size(), 60u * 5) << "5 to 7 calls per task";
  int fast = 0, slow = 0;
  for (const auto& [attempt, ms] : latency_of) {
    // Over within 80 ms of its dispatch, so within 80 ms of the worker
    // taking it (a little slack below 100 ms: the worker's loop sends due
    // receipts every ~20 ms): no receipt. Judged by the dispatch, not by
    // the call's own latency: on a loaded machine a 70 ms call once spent
    // over 100 ms in the worker, and rightly sent a receipt.
    auto dispatched = dispatched_at.find(attempt);
    ASSERT_NE(dispatched, dispatched_at.end()) << attempt << " has no work item";
    if (finished_at[attempt] - dispatched->second < absl::Milliseconds(80)) {
      ++fast;
      EXPECT_EQ(receipted.count(attempt), 0u)
          << attempt << " ended " << absl::FormatDuration(finished_at[attempt] - dispatched->second)
          << " after its dispatch and still sent a receipt";
    } else if (ms >= 200) {
      ++slow;
      EXPECT_EQ(receipted.count(attempt), 1u) << attempt << " took " << ms << " ms and sent no receipt";
    }
  }
  for (const std::string& attempt : receipted) EXPECT_EQ(latency_of.count(attempt), 1u) << attempt << " has no result";
  EXPECT_GT(fast, 0);
  EXPECT_GT(slow, 0);
}

// The fleet's dead letters, by "source topic|key", once `count` have arrived (or 60 s).
std::map<std::string, Message> ReadDeadLetters(const FleetConfig& config, const std::string& prefix, size_t count) {
  auto dlq = NewConsumer(ConsumerProperties(config.kafka, prefix + "dlq-reader"));
  EXPECT_TRUE(dlq.ok());
  if (!dlq.ok()) return {};
  EXPECT_TRUE((*dlq)->Subscribe({Topics(config.kafka.topic_prefix).dlq}).ok());
  std::map<std::string, Message> by_source;
  for (absl::Time until = absl::Now() + absl::Seconds(60); by_source.size() < count && absl::Now() < until;) {
    for (Message& m : (*dlq)->Poll(absl::Milliseconds(200), 100)) {
      by_source[*FindHeader(m.headers, kDlqTopicHeader) + "|" + m.key] = std::move(m);
    }
  }
  (*dlq)->Close();
  return by_source;
}

nlohmann::json Nested(int levels) {
  nlohmann::json j = "leaf";
  for (int i = 0; i < levels; ++i) j = (i % 2) ? nlohmann::json{{"k", j}} : nlohmann::json::array({j});
  return nlohmann::json{{"deep", j}};
}

// Every kind of bad submission a producer can send: each gets a REJECTED
// result saying precisely why and a DLQ copy with the same reason; a work item
// for an agent nobody runs is dead-lettered by the worker; nothing crashes or
// stalls, and good tasks sent after them all complete.
TEST_F(RealKafkaTest, EveryKindOfBadSubmissionIsRejectedWithAPreciseReason) {
  Fleet fleet("bad-input");
  fleet.WriteConfig(bootstrap_, {}, "max_payload_bytes: 65536", "max_payload_bytes: 65536");
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  Topics topics(config->kafka.topic_prefix);
  fleet.StartCoordinator();
  fleet.StartWorker("worker-1");
  auto producer = NewProducer(ProducerProperties(config->kafka));
  ASSERT_TRUE(producer.ok());
  auto collector = ResultCollector::Start(*config, producer->get());
  ASSERT_TRUE(collector.ok()) << collector.status();

  auto task = [&](const std::string& id, const std::function<void(v1::TaskSubmission*)>& edit) {
    v1::TaskSubmission t = SampleTasks(1, id, 7)[0];
    t.set_task_id(id);
    edit(&t);
    return Encode(t, "");
  };
  Encoded good = task("bad-truncated", [](v1::TaskSubmission*) {});
  Headers v7 = {{kSchemaHeader, "agentfleet.v1.TaskSubmission"}, {kSchemaVersionHeader, "7"}};
  struct Case {
    std::string key;
    std::string payload;
    Headers headers;
    std::string reason;
  };
  std::vector<Case> cases = {
      {"bad-truncated", good.payload.substr(0, good.payload.size() / 2), {}, "not a valid agentfleet.v1.TaskSubmission"},
      {"bad-version", task("bad-version", [](v1::TaskSubmission*) {}).payload, v7,
       "unsupported schema version 7 of agentfleet.v1.TaskSubmission"},
      {"bad-oversized",
       task("bad-oversized", [](v1::TaskSubmission* t) {
         (*t->mutable_input()->mutable_fields())["blob"].set_string_value(std::string(100000, 'x'));
       }).payload, {}, "exceeds the limit of 65536 bytes"},
      // Field 1 (task_id) holds bytes that are not UTF-8; field 3 names the workflow.
      {"bad-utf8", std::string("\x0a\x02\xc3\x28\x1a\x07support", 13), {},
       "agentfleet.v1.TaskSubmission.task_id"},
      {"bad-nested", task("bad-nested", [](v1::TaskSubmission* t) { *t->mutable_input() = ToStruct(Nested(30)); }).payload,
       {}, "input nests more than 24 levels deep"},
      {"bad-negative-budget", task("bad-negative-budget", [](v1::TaskSubmission* t) {
         t->mutable_budget()->set_max_tokens(-5);
       }).payload, {}, "budget.max_tokens is negative"},
      {"bad-absurd-budget", task("bad-absurd-budget", [](v1::TaskSubmission* t) {
         t->mutable_budget()->set_max_cost_usd(std::numeric_limits<double>::infinity());
       }).payload, {}, "budget.max_cost_usd is negative or not finite"},
      {"bad-workflow", task("bad-workflow", [](v1::TaskSubmission* t) { t->set_workflow("no-such-workflow"); }).payload,
       {}, "unknown workflow 'no-such-workflow'"},
  };
  for (const Case& c : cases) {
    ASSERT_TRUE((*producer)->Produce({topics.tasks, c.key, c.payload, c.headers}).ok());
    collector->get()->Expect(c.key, absl::Now());
  }
  // A sound work item for an agent no worker runs, on another agent's topic.
  v1::WorkItem item;
  item.set_task_id("bad-agent");
  item.set_step("s");
  item.set_agent("no-such-agent");
  item.set_attempt(1);
  Encoded e = Encode(item, "");
  ASSERT_TRUE((*producer)->Produce({topics.Work("classifier"), "bad-agent", e.payload, e.headers}).ok());
  ASSERT_TRUE((*producer)->Flush(absl::Seconds(10)).ok());
  for (absl::Time until = absl::Now() + absl::Seconds(60); !collector->get()->Done() && absl::Now() < until;) {
    collector->get()->Poll(absl::Milliseconds(200));
  }
  std::map<std::string, v1::TaskResult> results;
  for (const auto& r : collector->get()->results()) results[r.task_id()] = r;
  std::map<std::string, Message> dead = ReadDeadLetters(*config, fleet.prefix(), cases.size() + 1);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.key);
    ASSERT_TRUE(results.count(c.key)) << fleet.LogTails();
    EXPECT_EQ(results[c.key].status(), v1::TASK_STATUS_REJECTED);
    EXPECT_THAT(results[c.key].error().message(), HasSubstr(c.reason));
    ASSERT_TRUE(dead.count(topics.tasks + "|" + c.key)) << fleet.LogTails();
    const Message& m = dead[topics.tasks + "|" + c.key];
    EXPECT_THAT(*FindHeader(m.headers, kDlqReasonHeader), HasSubstr(c.reason));
    EXPECT_EQ(m.payload, c.payload);
  }
  ASSERT_TRUE(dead.count(topics.Work("classifier") + "|bad-agent")) << fleet.LogTails();
  EXPECT_THAT(*FindHeader(dead[topics.Work("classifier") + "|bad-agent"].headers, kDlqReasonHeader),
              HasSubstr("unknown agent 'no-such-agent'"));
  EXPECT_TRUE(fleet.AllRunning()) << fleet.LogTails();
  RunAndVerify(fleet, *config, 20);
}

// Issue 15, item 6: one size limit end to end (kafka.max_message_bytes,
// 1,000,000 by default). A submission over it is REJECTED at the door and
// its dead letter truncated (size and SHA-256 kept); a valid submission just
// under it, whose state and work items cannot be that small, fails with
// message_too_large. Before, either made the coordinator fail to produce,
// restart in-process, re-read the same message and fail again, forever.
TEST_F(RealKafkaTest, MessagesTooLargeToPublishFailTheirTaskAndNothingLoops) {
  Fleet fleet("oversized");
  fleet.WriteConfig(bootstrap_);
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->kafka.max_message_bytes, 1000000u);
  Topics topics(config->kafka.topic_prefix);
  fleet.StartCoordinator();
  fleet.StartWorker("worker-1");
  // A client whose own limit is higher than the fleet's (the topics take up to 1,065,536 bytes).
  Properties props = ProducerProperties(config->kafka);
  props["message.max.bytes"] = "2000000";
  auto producer = NewProducer(props);
  ASSERT_TRUE(producer.ok());
  auto collector = ResultCollector::Start(*config, producer->get());
  ASSERT_TRUE(collector.ok()) << collector.status();
  auto big = [&](const std::string& id, size_t blob) {
    v1::TaskSubmission t = SampleTasks(1, id, 7)[0];
    t.set_task_id(id);
    (*t.mutable_input()->mutable_fields())["blob"].set_string_value(std::string(blob, 'x'));
    return Encode(t, "");
  };
  Encoded over = big("too-big-at-the-door", 1020000);
  // Just under the door's limit: the task's state (its submission plus
  // what its steps add) cannot fit in a message.
  Encoded under = big("too-big-to-run", 999700 - big("too-big-to-run", 0).payload.size());
  ASSERT_GT(over.payload.size(), 1000000u);
  ASSERT_LT(under.payload.size(), 1000000u);
  for (const auto& [id, e] : {std::pair<std::string, Encoded*>{"too-big-at-the-door", &over}, {"too-big-to-run", &under}}) {
    ASSERT_TRUE((*producer)->Produce({topics.tasks, id, e->payload, e->headers}).ok());
    collector->get()->Expect(id, absl::Now());
  }
  ASSERT_TRUE((*producer)->Flush(absl::Seconds(10)).ok());
  for (absl::Time until = absl::Now() + absl::Seconds(60); !collector->get()->Done() && absl::Now() < until;) {
    collector->get()->Poll(absl::Milliseconds(200));
  }
  std::map<std::string, v1::TaskResult> results;
  for (const auto& r : collector->get()->results()) results[r.task_id()] = r;
  ASSERT_TRUE(results.count("too-big-at-the-door")) << fleet.LogTails();
  EXPECT_EQ(results["too-big-at-the-door"].status(), v1::TASK_STATUS_REJECTED);
  EXPECT_THAT(results["too-big-at-the-door"].error().message(), HasSubstr("exceeds the limit of 1000000 bytes"));
  ASSERT_TRUE(results.count("too-big-to-run")) << fleet.LogTails();
  EXPECT_EQ(results["too-big-to-run"].status(), v1::TASK_STATUS_FAILED);
  EXPECT_EQ(results["too-big-to-run"].error().code(), "message_too_large");
  std::map<std::string, Message> dead = ReadDeadLetters(*config, fleet.prefix(), 1);
  ASSERT_TRUE(dead.count(topics.tasks + "|too-big-at-the-door")) << fleet.LogTails();
  const Message& copy = dead[topics.tasks + "|too-big-at-the-door"];
  EXPECT_LT(copy.payload.size(), over.payload.size());
  EXPECT_EQ(copy.payload, over.payload.substr(0, copy.payload.size()));
  EXPECT_EQ(*FindHeader(copy.headers, kDlqOriginalBytesHeader), absl::StrCat(over.payload.size()));
  EXPECT_EQ(FindHeader(copy.headers, kDlqOriginalSha256Header)->size(), 64u);
  // Nothing restarted or looped: later tasks complete at once.
  EXPECT_TRUE(fleet.AllRunning()) << fleet.LogTails();
  RunAndVerify(fleet, *config, 20);
  EXPECT_EQ(fleet.CountInLogs("restarting in-process"), 0) << fleet.LogTails();
}

// Issue 15, H2: a restore reads the state partitions to their high
// watermark, not to the last stable offset. Right after a transaction
// commits, the broker may not have written its markers yet, so the last
// stable offset can precede the replica's own committed state; a restore
// that stopped there reverted tasks to older states and stalled them. Made
// deterministic with a transaction held open: the read must wait for it to
// end and return what it wrote.
TEST_F(RealKafkaTest, AStateReadWaitsForOpenTransactionsAndReturnsWhatTheyCommit) {
  Fleet fleet("restore-hw");
  fleet.WriteConfig(bootstrap_);
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  Topics topics(config->kafka.topic_prefix);
  Properties props = ProducerProperties(config->kafka);
  props["transactional.id"] = fleet.prefix() + "writer";
  auto writer = NewProducer(props);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->InitTransactions(absl::Seconds(30)).ok());
  ASSERT_TRUE((*writer)->BeginTransaction().ok());
  ASSERT_TRUE((*writer)->Produce({topics.state, "committed-before", "v1", {}, 0}).ok());
  ASSERT_TRUE((*writer)->CommitTransaction(absl::Seconds(30)).ok());
  ASSERT_TRUE((*writer)->BeginTransaction().ok());
  ASSERT_TRUE((*writer)->Produce({topics.state, "in-the-transaction", "v2", {}, 0}).ok());
  ASSERT_TRUE((*writer)->Flush(absl::Seconds(10)).ok());  // written to the log, not yet committed
  absl::Notification done;
  absl::StatusOr<std::vector<Message>> read;
  std::thread reader([&] {
    read = ReadPartitionsToEnd(ConsumerProperties(config->kafka, fleet.prefix() + "restore"), topics.state, {0},
                               absl::Seconds(60));
    done.Notify();
  });
  // While the transaction is open, the read cannot have reached the end.
  EXPECT_FALSE(done.WaitForNotificationWithTimeout(absl::Seconds(3)))
      << "the read stopped at the last stable offset, before an open transaction's records";
  ASSERT_TRUE((*writer)->CommitTransaction(absl::Seconds(30)).ok());
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  reader.join();
  ASSERT_TRUE(read.ok()) << read.status();
  std::vector<std::string> keys;
  for (const Message& m : *read) keys.push_back(m.key);
  EXPECT_THAT(keys, ::testing::ElementsAre("committed-before", "in-the-transaction"));
}

TEST_F(RealKafkaTest, GarbageOnEveryTopicGoesToTheDlqWithAReasonAndNothingCrashes) {
  Fleet fleet("garbage");
  fleet.WriteConfig(bootstrap_);
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok());
  Topics topics(config->kafka.topic_prefix);
  fleet.StartCoordinator();
  fleet.StartWorker("worker-1");
  auto producer = NewProducer(ProducerProperties(config->kafka));
  ASSERT_TRUE(producer.ok());
  auto collector = ResultCollector::Start(*config, producer->get());
  ASSERT_TRUE(collector.ok()) << collector.status();

  const std::string garbage = "\xde\xad\xbe\xef not protobuf";
  // tasks: unreadable bytes under a usable key, and a valid message naming no known workflow.
  ASSERT_TRUE((*producer)->Produce({topics.tasks, "bad-task-1", garbage, {}}).ok());
  v1::TaskSubmission unknown = SampleTasks(1, "unknown-workflow", 1)[0];
  unknown.set_workflow("no-such-workflow");
  Encoded e = Encode(unknown, "");
  ASSERT_TRUE((*producer)->Produce({topics.tasks, unknown.task_id(), e.payload, e.headers}).ok());
  // A valid message of the wrong type on the events topic, garbage on a work topic and on results.
  Encoded wrong_type = Encode(unknown, "");
  ASSERT_TRUE((*producer)->Produce({topics.events, "x", wrong_type.payload, wrong_type.headers}).ok());
  ASSERT_TRUE((*producer)->Produce({topics.Work("classifier"), "y", garbage, {}}).ok());
  ASSERT_TRUE((*producer)->Produce({topics.results, "z", garbage, {}}).ok());
  ASSERT_TRUE((*producer)->Flush(absl::Seconds(10)).ok());
  collector->get()->Expect("bad-task-1", absl::Now());
  collector->get()->Expect(unknown.task_id(), absl::Now());
  for (absl::Time until = absl::Now() + absl::Seconds(60); !collector->get()->Done() && absl::Now() < until;) {
    collector->get()->Poll(absl::Milliseconds(200));
  }
  // Both bad submissions got a REJECTED result saying why.
  std::map<std::string, v1::TaskResult> results;
  for (const auto& r : collector->get()->results()) results[r.task_id()] = r;
  ASSERT_EQ(results.size(), 2u) << fleet.LogTails();
  EXPECT_EQ(results["bad-task-1"].status(), v1::TASK_STATUS_REJECTED);
  EXPECT_THAT(results["bad-task-1"].error().message(), HasSubstr("not a valid agentfleet.v1.TaskSubmission"));
  EXPECT_EQ(results[unknown.task_id()].status(), v1::TASK_STATUS_REJECTED);
  EXPECT_THAT(results[unknown.task_id()].error().message(), HasSubstr("unknown workflow 'no-such-workflow'"));

  // Every bad message is in the DLQ, byte for byte, with its reason and origin.
  std::map<std::string, Message> by_source = ReadDeadLetters(*config, fleet.prefix(), 5);
  ASSERT_EQ(by_source.size(), 5u) << fleet.LogTails();
  auto reason = [&](const std::string& key) { return *FindHeader(by_source[key].headers, kDlqReasonHeader); };
  EXPECT_THAT(reason(topics.tasks + "|bad-task-1"), HasSubstr("not a valid agentfleet.v1.TaskSubmission"));
  EXPECT_EQ(by_source[topics.tasks + "|bad-task-1"].payload, garbage);
  EXPECT_THAT(reason(topics.tasks + "|" + unknown.task_id()), HasSubstr("unknown workflow"));
  EXPECT_THAT(reason(topics.events + "|x"),
              HasSubstr("schema header says agentfleet.v1.TaskSubmission but this topic carries agentfleet.v1.WorkEvent"));
  EXPECT_THAT(reason(topics.Work("classifier") + "|y"), HasSubstr("not a valid agentfleet.v1.WorkItem"));
  EXPECT_EQ(*FindHeader(by_source[topics.Work("classifier") + "|y"].headers, kDlqComponentHeader), "worker");
  EXPECT_THAT(reason(topics.results + "|z"), HasSubstr("not a valid agentfleet.v1.TaskResult"));

  // Nothing crashed, and the fleet still works.
  EXPECT_TRUE(fleet.AllRunning()) << fleet.LogTails();
  RunAndVerify(fleet, *config, 20);
}

TEST_F(RealKafkaTest, BudgetsAreNeverPassedEndToEnd) {
  Fleet fleet("budget");
  fleet.WriteConfig(bootstrap_);
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  fleet.StartCoordinator();
  fleet.StartWorker("worker-1");
  fleet.StartWorker("worker-2");
  // A task of the example costs about $0.001 unbudgeted; the responder's
  // worst case alone is $0.0154. Tight limits stop tasks or cap their calls.
  const double kLimits[] = {0.0003, 0.0008, 0.002, 0.05};
  constexpr int kTasks = 400;
  std::vector<v1::TaskSubmission> tasks = SampleTasks(kTasks, fleet.prefix() + "task", 555);
  std::map<std::string, double> limit_of;
  for (int i = 0; i < kTasks; ++i) {
    tasks[i].mutable_budget()->set_max_cost_usd(kLimits[i % 4]);
    limit_of[tasks[i].task_id()] = kLimits[i % 4];
  }
  auto outcome = SubmitAndCollect(*config, tasks, /*wait=*/true, absl::Seconds(180));
  ASSERT_TRUE(outcome.ok()) << outcome.status() << fleet.LogTails();
  EXPECT_EQ(outcome->summary.received, kTasks);
  EXPECT_EQ(outcome->summary.lost, 0);
  EXPECT_EQ(outcome->summary.duplicates, 0);
  std::map<v1::TaskStatus, int> by_status;
  for (const v1::TaskResult& r : outcome->results) {
    ++by_status[r.status()];
    EXPECT_LE(r.usage().cost_usd(), limit_of[r.task_id()] * (1 + 1e-9)) << r.task_id();
    ASSERT_TRUE(r.status() == v1::TASK_STATUS_COMPLETED || r.status() == v1::TASK_STATUS_BUDGET_EXHAUSTED)
        << r.task_id() << ": " << r.error().message();
    if (r.status() == v1::TASK_STATUS_BUDGET_EXHAUSTED) {
      EXPECT_EQ(r.error().code(), "budget_exhausted");
    }
  }
  EXPECT_GT(by_status[v1::TASK_STATUS_COMPLETED], 0);
  EXPECT_GT(by_status[v1::TASK_STATUS_BUDGET_EXHAUSTED], 0);
  // The audit a user runs checks the same.
  auto audit = fleet.Run({"agentfleet", "audit", "--json", "--config", fleet.config_path()}, absl::Seconds(120));
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_THAT(audit->second, HasSubstr("\"overspent\":0"));
  EXPECT_EQ(audit->first, 0) << audit->second;
  std::cout << "budgets: " << by_status[v1::TASK_STATUS_COMPLETED] << " completed, "
            << by_status[v1::TASK_STATUS_BUDGET_EXHAUSTED] << " budget_exhausted of " << kTasks << "\n";
}

TEST_F(RealKafkaTest, AnOpenBreakerIsSharedWithAReplicaThatStartsLater) {
  Fleet fleet("breaker");
  fleet.set_example("tests/integration/breakers.yaml");
  fleet.WriteConfig(bootstrap_);
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  pid_t first = fleet.StartCoordinator({"--instance", "a"});
  fleet.StartWorker("worker-1");
  auto explained = [](const v1::TaskResult& r) { return r.steps_size() ? r.steps(0).explanation() : ""; };
  // Every call to primary fails: the first tasks fall back after a failed
  // call each, and those five-plus failures open the breaker; later tasks go
  // to the fallback without a call to primary.
  for (const char* batch : {"a", "b"}) {
    auto run = SubmitAndCollect(*config, SampleTasks(10, fleet.prefix() + batch, 1), true, absl::Seconds(120));
    ASSERT_TRUE(run.ok()) << run.status() << fleet.LogTails();
    ASSERT_EQ(run->summary.count(v1::TASK_STATUS_PARTIAL), 10) << fleet.LogTails();
    int opened = 0;
    for (const auto& r : run->results) {
      opened += explained(r).find("circuit breaker 'agent:primary' is open") != std::string::npos;
    }
    EXPECT_EQ(opened, std::string(batch) == "a" ? 0 : 10) << "batch " << batch;
  }
  // A new replica replaces the first one: it reads the breakers topic and
  // sends nothing to primary.
  EXPECT_EQ(fleet.StopProcess(first), 0);
  fleet.StartCoordinator({"--instance", "b"});
  auto after = SubmitAndCollect(*config, SampleTasks(10, fleet.prefix() + "c", 2), true, absl::Seconds(120));
  ASSERT_TRUE(after.ok()) << after.status() << fleet.LogTails();
  ASSERT_EQ(after->summary.count(v1::TASK_STATUS_PARTIAL), 10) << fleet.LogTails();
  for (const auto& r : after->results) {
    EXPECT_THAT(explained(r), HasSubstr("circuit breaker 'agent:primary' is open")) << r.task_id();
    EXPECT_EQ(r.steps(0).agent(), "backup");
    EXPECT_EQ(r.steps(0).attempts(), 1) << "no call was made to primary";
  }
}

TEST_F(RealKafkaTest, TwoReplicasShareOneProviderQuota) {
  Fleet fleet("ratelimit");
  fleet.set_example("tests/integration/ratelimit.yaml");
  fleet.WriteConfig(bootstrap_);
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  // From here the replicas' buckets can fill, at 10 calls a second for the
  // fleet if the quota is shared, 20 if each replica took it whole.
  absl::Time started = absl::Now();
  fleet.StartCoordinator({"--instance", "a"});
  fleet.StartCoordinator({"--instance", "b"});
  fleet.StartWorker("worker-1");
  constexpr int kTasks = 120;  // one call each
  absl::Time submitted = absl::Now();
  auto run = SubmitAndCollect(*config, SampleTasks(kTasks, fleet.prefix() + "task", 2), true, absl::Seconds(120));
  ASSERT_TRUE(run.ok()) << run.status() << fleet.LogTails();
  absl::Time done = absl::Now();
  EXPECT_EQ(run->summary.count(v1::TASK_STATUS_COMPLETED), kTasks) << fleet.LogTails();
  EXPECT_EQ(run->summary.duplicates, 0);
  // A shared quota lets at most 10 calls a second through, counting what
  // the buckets gathered since the replicas started: 120 calls cannot be
  // done before (120 - 10 * seconds since start) / 10 more seconds have
  // passed. A slower machine only makes the run longer.
  double ready = 10 * absl::ToDoubleSeconds(submitted - started);
  absl::Duration least = absl::Seconds(std::max(0.0, (kTasks - ready) / 10));
  EXPECT_GE(done - submitted, least * 0.9) << "more than the fleet's quota went through";
  std::cout << kTasks << " calls at a fleet quota of 10/s took " << absl::FormatDuration(done - submitted)
            << " (a shared quota needs at least " << absl::FormatDuration(least) << ")\n";
}

// Issue 20, item 5: a tenant with 300 tasks queued ahead of five tenants
// with 10 each, under a quota of 50 calls a second. The tasks are on the
// topic before the coordinator starts, so its (empty) bucket queues them
// all at once: served first come first served, the small tenants' tasks
// would come after most of the heavy tenant's (they are behind them on
// every partition); served fairly by tokens they come first, interleaved
// with a sixth of the heavy tenant's.
//
// The same with no quota but a busy worker pool: one worker running 5
// calls of 50 ms at once, and the agent's max_in_flight of 5 keeps the rest
// in the coordinator's fair queue instead of on the work topic.
class FairDispatchTest : public RealKafkaTest, public ::testing::WithParamInterface<bool> {};

INSTANTIATE_TEST_SUITE_P(QuotaAndPool, FairDispatchTest, ::testing::Bool(),
                         [](const auto& info) { return std::string(info.param ? "BusyPool" : "Quota"); });

TEST_P(FairDispatchTest, SmallTenantsAreNotQueuedBehindAHeavyOne) {
  const bool pool = GetParam();
  Fleet fleet(pool ? "fairpool" : "fair");
  fleet.set_example("tests/integration/ratelimit.yaml");
  if (pool) {
    fleet.WriteConfig(bootstrap_, {{"requests_per_minute: 600", "requests_per_minute: 6000000"},
                                   {"mean_ms: 1}", "mean_ms: 50}"},
                                   {"    models: {default: m}\n", "    models: {default: m}\n    max_in_flight: 5\n"},
                                   {"\nworkflows:", "\nworker: {max_in_flight: 5}\nworkflows:"}});
  } else {
    fleet.WriteConfig(bootstrap_, {{"requests_per_minute: 600", "requests_per_minute: 3000"}});
  }
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  auto collector = ResultCollector::Start(*config, nullptr);
  ASSERT_TRUE(collector.ok()) << collector.status();
  std::vector<v1::TaskSubmission> tasks = SampleTasks(300, fleet.prefix() + "heavy", 5);
  for (auto& t : tasks) t.set_tenant("heavy");
  for (int k = 0; k < 5; ++k) {
    for (v1::TaskSubmission t : SampleTasks(10, fleet.prefix() + "small" + std::to_string(k), 6 + k)) {
      t.set_tenant("small-" + std::to_string(k));
      tasks.push_back(std::move(t));
    }
  }
  auto producer = NewProducer(ProducerProperties(config->kafka));
  ASSERT_TRUE(producer.ok());
  Topics topics(config->kafka.topic_prefix);
  for (auto& t : tasks) {
    t.set_workflow("support");
    (*collector)->Expect(t.task_id(), absl::Now());
    Encoded e = Encode(t, NewTraceparent());
    ASSERT_TRUE((*producer)->Produce({topics.tasks, t.task_id(), e.payload, e.headers}).ok());
  }
  ASSERT_TRUE((*producer)->Flush(absl::Seconds(30)).ok());
  fleet.StartCoordinator();
  fleet.StartWorker("worker-1");
  for (absl::Time until = absl::Now() + absl::Seconds(120); !(*collector)->Done() && absl::Now() < until;) {
    (*collector)->Poll(absl::Milliseconds(200));
  }
  const std::vector<v1::TaskResult>& results = (*collector)->results();
  ASSERT_EQ(results.size(), tasks.size()) << fleet.LogTails();
  // Where, in the order results arrived, each tenant's last one is.
  std::map<std::string, size_t> last, seen;
  size_t heavy_before_small_done = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    last[results[i].tenant()] = i;
    ++seen[results[i].tenant()];
    bool small_left = false;
    for (int k = 0; k < 5; ++k) small_left = small_left || seen["small-" + std::to_string(k)] < 10;
    if (!small_left && heavy_before_small_done == 0) heavy_before_small_done = seen["heavy"];
  }
  std::cout << (pool ? "busy pool" : "quota") << ": every small tenant done after " << heavy_before_small_done
            << " of the heavy tenant's 300 results (first come first served: after all 300)\n";
  EXPECT_LT(heavy_before_small_done, 100u) << "the small tenants waited behind the heavy one";
  for (int k = 0; k < 5; ++k) EXPECT_LT(last["small-" + std::to_string(k)], 150u) << k;
}

// Issue 20, item 6: a provider quota (30 calls a second, 2 s calls) is the
// bottleneck of one worker (25 calls at once: 12.5 a second), so work piles
// up on the work topic. KEDA's lag trigger asks for every partition's
// replica; the capacity signal asks for what the quota can use: 30/s × 2 s =
// 60 calls in flight, 2.4 replicas of 25 — in `agentfleet lag` and in the
// coordinator's agentfleet_pool_capacity_replicas.
TEST_F(RealKafkaTest, TheCapacitySignalAsksForWhatAQuotaCanUseWhereLagAsksForMore) {
  Fleet fleet("capacity");
  fleet.set_example("tests/integration/ratelimit.yaml");
  fleet.WriteConfig(bootstrap_, {{"requests_per_minute: 600", "requests_per_minute: 1800"},
                                 {"mean_ms: 1}", "mean_ms: 2000}"},
                                 {"work_partitions: 4", "work_partitions: 8"},
                                 {"\nworkflows:", "\nworker: {max_in_flight: 25}\n"
                                                  "coordinator: {capacity_drain_time: 5s, lag_interval: 1s}\nworkflows:"}});
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  pid_t coordinator = fleet.StartCoordinator();
  fleet.StartWorker("worker-1");
  auto submitted = SubmitAndCollect(*config, SampleTasks(600, fleet.prefix() + "task", 4), /*wait=*/false,
                                    absl::Seconds(30));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  Json lag;
  const std::string topic = Topics(config->kafka.topic_prefix).Work("answerer");
  int64_t work_lag = 0;
  for (absl::Time until = absl::Now() + absl::Seconds(90); work_lag < 250 && absl::Now() < until;) {
    absl::SleepFor(absl::Seconds(1));
    auto run = fleet.Run({"agentfleet", "lag", "--json", "--lag_threshold", "10", "--config", fleet.config_path()},
                         absl::Seconds(30));
    ASSERT_TRUE(run.ok()) << run.status();
    ASSERT_EQ(run->first, 0) << run->second;
    lag = Json::parse(run->second.substr(run->second.rfind("\n{") + 1), nullptr, false);
    ASSERT_TRUE(lag.is_object()) << run->second;
    for (const Json& row : lag["lag"]) {
      if (row["topic"] == topic) work_lag = row["lag"].get<int64_t>();
    }
  }
  ASSERT_GE(work_lag, 250) << "the work did not pile up: " << lag.dump() << fleet.LogTails();
  int keda = 0;
  for (const Json& row : lag["lag"]) {
    if (row["topic"] == topic) keda = row["replicas"].get<int>();
  }
  ASSERT_EQ(lag["capacity"].size(), 1u) << lag.dump();
  const Json& pool = lag["capacity"][0];
  std::cout << "work lag " << work_lag << ": KEDA's lag trigger asks for " << keda << " replicas, the capacity "
            << "signal for " << pool["replicas"] << " (" << pool["useful_replicas"] << " useful, limited by "
            << pool["agents"][0]["limited_by"] << ")\n";
  EXPECT_EQ(keda, 8) << "lag 250 over lagThreshold 10, capped at the 8 partitions";
  EXPECT_EQ(pool["keda_replicas"], keda);
  EXPECT_EQ(pool["replicas"], 3) << lag.dump();
  // 30/s × the mean call time (2 s, a little more under load) ÷ 25.
  EXPECT_NEAR(pool["useful_replicas"].get<double>(), 2.5, 0.2) << lag.dump();
  EXPECT_EQ(pool["agents"][0]["limited_by"], "quota") << lag.dump();
  // The coordinator exports the same figure for KEDA's Prometheus scaler.
  double exported = -1;
  for (absl::Time until = absl::Now() + absl::Seconds(10); exported < 0 && absl::Now() < until;
       absl::SleepFor(absl::Milliseconds(500))) {
    auto [status, body] = HttpGet(absl::StrCat("http://127.0.0.1:", fleet.HttpPort(coordinator), "/metrics"));
    for (absl::string_view line : absl::StrSplit(body, '\n')) {
      if (absl::StartsWith(line, "agentfleet_pool_capacity_replicas{")) {
        exported = std::stod(std::string(line.substr(line.rfind(' ') + 1)));
      }
    }
  }
  EXPECT_NEAR(exported, 2.5, 0.2) << "agentfleet_pool_capacity_replicas";
}

TEST_F(RealKafkaTest, ATenantNeverSpendsPastItsBudgetForThePeriod) {
  Fleet fleet("tenant");
  // A fleet-wide spend_limit far above it: it counts every call too.
  fleet.WriteConfig(bootstrap_, {{"\nworkflows:", "\ntenants:\n  acme: {period: day, max_cost_usd: 0.2, on_exhausted: reject}\n"
                                                  "spend_limit: {period: day, max_cost_usd: 100}\nworkflows:"}});
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  fleet.StartCoordinator();
  fleet.StartWorker("worker-1");
  constexpr int kTasks = 300;  // about $0.30 of work for a $0.20 budget
  std::vector<v1::TaskSubmission> tasks = SampleTasks(kTasks, fleet.prefix() + "task", 3);
  for (auto& t : tasks) t.set_tenant("acme");
  auto outcome = SubmitAndCollect(*config, tasks, /*wait=*/true, absl::Seconds(180));
  ASSERT_TRUE(outcome.ok()) << outcome.status() << fleet.LogTails();
  EXPECT_EQ(outcome->summary.received, kTasks);
  EXPECT_EQ(outcome->summary.duplicates, 0);
  double spent = 0;
  for (const auto& r : outcome->results) spent += r.usage().cost_usd();
  EXPECT_LE(spent, 0.2 + 1e-9);
  EXPECT_GT(outcome->summary.count(v1::TASK_STATUS_COMPLETED), 0);
  EXPECT_GT(outcome->summary.count(v1::TASK_STATUS_BUDGET_EXHAUSTED) + outcome->summary.count(v1::TASK_STATUS_REJECTED), 0);
  // What `agentfleet tenants` shows is what the results add up to.
  auto shown = fleet.Run({"agentfleet", "tenants", "--json", "--config", fleet.config_path()}, absl::Seconds(60));
  ASSERT_TRUE(shown.ok()) << shown.status();
  ASSERT_EQ(shown->first, 0) << shown->second;
  nlohmann::json tenants = nlohmann::json::parse(shown->second.substr(shown->second.find('[')), nullptr, false);
  ASSERT_TRUE(tenants.is_array() && tenants.size() == 2u) << shown->second;
  EXPECT_EQ(tenants[1]["tenant"], "acme");
  EXPECT_NEAR(tenants[1]["cost_usd"].get<double>(), spent, 1e-9);
  EXPECT_LE(tenants[1]["cost_usd"].get<double>(), 0.2 + 1e-9);
  EXPECT_EQ(tenants[0]["tenant"], "(fleet spend_limit)");
  EXPECT_NEAR(tenants[0]["cost_usd"].get<double>(), spent, 1e-9) << "every call counts against the fleet's limit";
  EXPECT_EQ(tenants[0]["max_cost_usd"], 100);
  std::cout << "tenant acme: $" << spent << " of $0.20 over " << kTasks << " tasks: "
            << outcome->summary.count(v1::TASK_STATUS_COMPLETED) << " completed, "
            << outcome->summary.count(v1::TASK_STATUS_BUDGET_EXHAUSTED) << " budget_exhausted, "
            << outcome->summary.count(v1::TASK_STATUS_REJECTED) << " rejected\n";
}

// Issue 20, item 4: the fleet's spend_limit is spent, so a non-critical
// agent's calls are held; the operator raises it and sends SIGHUP, and the
// held calls run at once, in the same period, with no restart. A reload of
// a config that does not load is refused and changes nothing.
TEST_F(RealKafkaTest, RaisingTheSpendLimitByAReloadReleasesTheHeldCalls) {
  Fleet fleet("reload");
  fleet.set_example("tests/integration/ratelimit.yaml");
  auto write = [&](const std::string& limit) {
    fleet.WriteConfig(bootstrap_, {{"requests_per_minute: 600", "requests_per_minute: 6000000"},
                                   {"    models: {default: m}\n", "    models: {default: m}\n    critical: false\n"},
                                   {"\nworkflows:", "\nspend_limit: {period: day, max_cost_usd: " + limit + "}\nworkflows:"}});
  };
  write("0.0000001");
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  pid_t coordinator = fleet.StartCoordinator();
  fleet.StartWorker("worker-1");
  auto metric = [&](const std::string& prefix) {
    auto [status, body] = HttpGet(absl::StrCat("http://127.0.0.1:", fleet.HttpPort(coordinator), "/metrics"));
    double sum = 0;
    for (absl::string_view line : absl::StrSplit(body, '\n')) {
      if (absl::StartsWith(line, prefix)) sum += std::stod(std::string(line.substr(line.rfind(' ') + 1)));
    }
    return sum;
  };
  auto wait_for = [&](const std::string& prefix, double at_least) {
    double seen = 0;
    for (absl::Time until = absl::Now() + absl::Seconds(60); (seen = metric(prefix)) < at_least && absl::Now() < until;) {
      absl::SleepFor(absl::Milliseconds(200));
    }
    return seen;
  };
  constexpr int kTasks = 20;
  auto collector = ResultCollector::Start(*config, nullptr);
  ASSERT_TRUE(collector.ok()) << collector.status();
  auto producer = NewProducer(ProducerProperties(config->kafka));
  ASSERT_TRUE(producer.ok());
  Topics topics(config->kafka.topic_prefix);
  for (v1::TaskSubmission t : SampleTasks(kTasks, fleet.prefix() + "task", 7)) {
    t.set_workflow("support");
    (*collector)->Expect(t.task_id(), absl::Now());
    Encoded e = Encode(t, NewTraceparent());
    ASSERT_TRUE((*producer)->Produce({topics.tasks, t.task_id(), e.payload, e.headers}).ok());
  }
  ASSERT_TRUE((*producer)->Flush(absl::Seconds(30)).ok());
  ASSERT_GE(wait_for("agentfleet_spend_limit_holds_total{", kTasks), kTasks) << fleet.LogTails();
  (*collector)->Poll(absl::Milliseconds(500));
  EXPECT_EQ((*collector)->results().size(), 0u) << "held, not failed";

  // A config that does not load: refused, the running one stays.
  std::ofstream(fleet.config_path(), std::ios::app) << "\nno_such_section: 1\n";
  fleet.Signal(coordinator, SIGHUP);
  ASSERT_GE(wait_for("agentfleet_config_reloads_total{outcome=\"refused\"}", 1), 1) << fleet.LogTails();
  EXPECT_THAT(fleet.LogOf(coordinator), HasSubstr("fleet.yaml:")) << "the refusal names file and line";
  (*collector)->Poll(absl::Milliseconds(500));
  EXPECT_EQ((*collector)->results().size(), 0u) << "still held under the running limit";

  // The limit raised: every held call runs now, in the same period.
  write("100");
  fleet.Signal(coordinator, SIGHUP);
  for (absl::Time until = absl::Now() + absl::Seconds(60); !(*collector)->Done() && absl::Now() < until;) {
    (*collector)->Poll(absl::Milliseconds(200));
  }
  ASSERT_EQ((*collector)->results().size(), static_cast<size_t>(kTasks)) << fleet.LogTails();
  for (const auto& r : (*collector)->results()) EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED) << r.task_id();
  EXPECT_EQ(metric("agentfleet_config_reloads_total{outcome=\"applied\"}"), 1);
  EXPECT_EQ(fleet.StopProcess(coordinator), 0) << "one process all along";
}

TEST_F(RealKafkaTest, TheResultCacheServesRepeatedInputsOnEveryReplica) {
  Fleet fleet("cache");
  fleet.WriteConfig(bootstrap_, {{"    description: Labels a ticket with a category and an urgency.\n",
                                  "    description: Labels a ticket with a category and an urgency.\n    cache: {ttl: 10m}\n"}});
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  pid_t first = fleet.StartCoordinator({"--instance", "a"});
  fleet.StartWorker("worker-1");
  auto run = [&](const std::string& batch) {
    std::vector<v1::TaskSubmission> tasks = SampleTasks(40, fleet.prefix() + "same", 9);
    for (auto& t : tasks) t.set_task_id(batch + t.task_id());  // new ids, the same inputs
    auto outcome = SubmitAndCollect(*config, tasks, true, absl::Seconds(120));
    EXPECT_TRUE(outcome.ok()) << outcome.status() << fleet.LogTails();
    return outcome.ok() ? outcome->results : std::vector<v1::TaskResult>{};
  };
  auto classify_of = [](const v1::TaskResult& r) -> const v1::StepSummary* {
    for (const auto& s : r.steps()) {
      if (s.step() == "classify") return &s;
    }
    return nullptr;
  };
  std::vector<v1::TaskResult> before = run("a-");
  ASSERT_EQ(before.size(), 40u);
  // Another replica takes over: it learns the cache from the cache topic.
  EXPECT_EQ(fleet.StopProcess(first), 0);
  fleet.StartCoordinator({"--instance", "b"});
  std::vector<v1::TaskResult> after = run("b-");
  ASSERT_EQ(after.size(), 40u);
  std::map<std::string, Json> first_output;
  for (const auto& r : before) first_output[r.task_id().substr(2)] = FromValue(r.output());
  for (const auto& r : after) {
    EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED);
    const v1::StepSummary* c = classify_of(r);
    ASSERT_NE(c, nullptr);
    EXPECT_TRUE(c->cached()) << r.task_id();
    EXPECT_EQ(c->usage().calls(), 0);
    EXPECT_EQ(FromValue(r.output()), first_output[r.task_id().substr(2)]) << "same input, same result";
  }
}

// The development broker and the fleet's config on it, loaded with its
// client settings (as --dev_broker applies them); empty if either failed.
std::optional<FleetConfig> OnDevBroker(Fleet& fleet) {
  auto bootstrap = fleet.StartDevBroker();
  EXPECT_TRUE(bootstrap.ok()) << bootstrap.status();
  if (!bootstrap.ok()) return std::nullopt;
  fleet.WriteConfig(*bootstrap);
  auto config = fleet.LoadConfig();
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return std::nullopt;
  ApplyDevBrokerSettings(&config->kafka);
  return *config;
}

TEST(DevBrokerTest, FiveHundredTasksOnTheDevelopmentBroker) {
  Fleet fleet("dev");
  auto config = OnDevBroker(fleet);
  ASSERT_TRUE(config.has_value());
  fleet.StartCoordinator();
  fleet.StartWorker("worker-1");
  fleet.StartWorker("worker-2");
  RunAndVerify(fleet, *config, 500);
  // A task's records are found without the broker's time index (the
  // development broker has none), and replay as recorded.
  std::string id = SampleTasks(1, fleet.prefix() + "task", 1234)[0].task_id();
  auto records = ReadTaskRecords(*config, id, absl::Seconds(60));
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_EQ(records->tasks.size(), 1u);
  EXPECT_FALSE(records->events.empty());
  auto report = Replay(*config, id, *records);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->identical()) << ReplayText(*report);
  EXPECT_GT(report->decisions.size(), 1u);
}

// librdkafka's mock cluster checks the sequence numbers of transactional
// producers only. An idempotent producer's request that fails (here with
// NOT_LEADER_FOR_PARTITION) is retried after a backoff, and the messages
// queued meanwhile go out right behind the retry. When the retry fails again
// and the request behind it does not, the mock appends the second, and
// librdkafka takes that success as proof that the retried messages were
// persisted too (an "implicit ack": right on a real broker, which refuses a
// request whose sequence skips ahead): they are reported delivered and are
// not in the log. This lost results in the development-broker chaos scenario
// (about one run in four). The development broker's settings keep one
// request in flight per connection, so every acknowledged message is in the log.
TEST(DevBrokerTest, EveryAcknowledgedMessageIsInTheLogThroughProduceErrors) {
  Fleet fleet("dev-acks");
  auto config = OnDevBroker(fleet);
  ASSERT_TRUE(config.has_value());
  Properties properties = ProducerProperties(config->kafka);
  auto producer = NewProducer(properties);
  ASSERT_TRUE(producer.ok()) << producer.status();
  const std::string topic = Topics(config->kafka.topic_prefix).dlq;  // nothing else writes there
  ASSERT_TRUE((*producer)->Warm(topic, absl::Seconds(30)).ok());
  // A message a millisecond to one partition; twice a second, two requests
  // in a row fail: the first, then its retry, with the backlog right behind.
  std::atomic<int> queued{0}, delivered{0}, failed{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop.load()) {
      absl::Status s = (*producer)->Produce({topic, absl::StrCat("m", queued.load()), "payload", {}, 0},
                                            [&](const absl::Status& s) { ++(s.ok() ? delivered : failed); });
      if (s.ok()) ++queued;
      absl::SleepFor(absl::Milliseconds(1));
    }
  });
  for (int i = 0; i < 6; ++i) {
    absl::SleepFor(absl::Milliseconds(500));
    EXPECT_TRUE(fleet.BrokerFault("errors Produce NOT_LEADER_FOR_PARTITION 2").ok());
  }
  absl::SleepFor(absl::Milliseconds(500));
  stop.store(true);
  writer.join();
  ASSERT_TRUE((*producer)->Flush(absl::Seconds(60)).ok());
  EXPECT_GT(queued.load(), 500);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(delivered.load(), queued.load());
  auto marks = QueryWatermarks(properties, topic, absl::Seconds(30));
  ASSERT_TRUE(marks.ok()) << marks.status();
  EXPECT_EQ((*marks)[0].low, 0);
  EXPECT_EQ((*marks)[0].high, delivered.load()) << "acknowledged messages missing from the log";
}

TEST(StartupTest, BadConfigFailsAtStartNamingFileLineAndField) {
  Fleet fleet("badconfig");
  std::string path = fleet.WriteConfig("127.0.0.1:1", {{"max_tokens: 256", "max_tokens: lots"}});
  for (const char* binary : {"agentfleet-coordinator", "agentfleet-worker"}) {
    auto r = fleet.Run({binary, "--config", path}, absl::Seconds(30));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->first, 2) << binary;
    EXPECT_THAT(r->second, HasSubstr(path + ":"));
    EXPECT_THAT(r->second, HasSubstr(": agents.classifier.max_tokens: expected an integer, got 'lots'"));
  }
}

TEST(StartupTest, NegativeLivenessTimeoutFailsAtStart) {
  Fleet fleet("badliveness");
  std::string path = fleet.WriteConfig("127.0.0.1:1");
  for (const char* binary : {"agentfleet-coordinator", "agentfleet-worker"}) {
    auto r = fleet.Run({binary, "--config", path, "--liveness_timeout=-5s"}, absl::Seconds(30));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->first, 2) << binary;
    EXPECT_THAT(r->second, HasSubstr("--liveness_timeout -5s: must be 0 (off) or positive"));
  }
}

TEST(DemoTest, DemoRunsTheSampleWorkloadAndPrintsAJsonSummary) {
  Fleet fleet("demo");
  auto r = fleet.Run({"agentfleet", "demo", "--tasks", "100", "--json",
                      "--config", std::string(AGENTFLEET_SOURCE_DIR) + "/examples/support.yaml"},
                     absl::Seconds(240));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->first, 0) << r->second;
  std::string out = r->second;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  std::string last = out.substr(out.rfind('\n') + 1);
  nlohmann::json summary = nlohmann::json::parse(last, nullptr, false);
  ASSERT_TRUE(summary.is_object()) << last;
  for (const char* key : {"submitted", "completed", "failed", "duplicates", "p50_ms", "p99_ms", "tasks_per_s"}) {
    EXPECT_TRUE(summary.contains(key)) << key;
  }
  EXPECT_EQ(summary["submitted"], 100);
  EXPECT_EQ(summary["completed"], 100);
  EXPECT_EQ(summary["duplicates"], 0);
  EXPECT_GT(summary["p50_ms"].get<double>(), 0);
  EXPECT_LE(summary["p50_ms"].get<double>(), summary["p99_ms"].get<double>());
  EXPECT_THAT(out, HasSubstr("stopped the broker, the coordinator and 2 workers"));
}

}  // namespace
}  // namespace agentfleet::testing
