// End-to-end tests of the orchestration constructs (issue 18) on the real
// Kafka broker: routing, data-driven model tiers, signals, cancellation.
#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cli/signal.h"
#include "cli/tasks_input.h"
#include "codec/trace.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "fleet/run_summary.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kafka/kafka.h"
#include "kafka/topics.h"
#include "tests/integration/fleet_harness.h"

namespace agentfleet::testing {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

class OrchestrationTest : public KafkaTest {
 protected:
  // A fleet on examples/triage.yaml, with this test's own helpdesk topics
  // and `edits`: its topics made, a coordinator and `workers` workers
  // started (the coordinator's PID in `coordinator`). Null on failure (the
  // test has failed then).
  std::optional<FleetConfig> StartTriageFleet(Fleet& fleet, int workers,
                                              std::vector<std::pair<std::string, std::string>> edits = {},
                                              pid_t* coordinator = nullptr) {
    fleet.set_example("examples/triage.yaml");
    edits.push_back({"helpdesk.", "ext." + fleet.prefix() + "helpdesk."});
    fleet.WriteConfig(bootstrap_, edits);
    absl::Status created = fleet.CreateTopics();
    EXPECT_TRUE(created.ok()) << created << fleet.LogTails();
    auto config = fleet.LoadConfig();
    EXPECT_TRUE(config.ok()) << config.status();
    if (!created.ok() || !config.ok()) return std::nullopt;
    pid_t pid = fleet.StartCoordinator();
    if (coordinator) *coordinator = pid;
    for (int i = 1; i <= workers; ++i) fleet.StartWorker(absl::StrCat("worker-", i));
    return *config;
  }

  // Polls until every expected result is in (or `timeout`), then 2 s more
  // for a duplicate that would arrive right behind.
  static RunSummary Collect(ResultCollector& collector, absl::Duration timeout = absl::Seconds(120)) {
    for (absl::Time until = absl::Now() + timeout; !collector.Done() && absl::Now() < until;) {
      collector.Poll(absl::Milliseconds(200));
    }
    collector.Poll(absl::Seconds(2));
    return collector.Summary();
  }
};

// Each task's classify output, as the workers reported it on the events topic.
// Every message of one of the fleet's (or the user's) topics, all partitions.
absl::StatusOr<std::vector<Message>> ReadTopic(const FleetConfig& config, const std::string& topic,
                                              absl::Duration timeout = absl::Seconds(60)) {
  std::vector<int32_t> partitions;
  for (int32_t p = 0; p < config.kafka.partitions; ++p) partitions.push_back(p);
  return ReadPartitionsToEnd(ConsumerProperties(config.kafka, "orchestration-test"), topic, partitions, timeout);
}

// Each task's successful outputs of `step`, as the workers reported them on the events topic.
std::map<std::string, Json> StepOutputs(const FleetConfig& config, const std::string& step,
                                        absl::Duration timeout = absl::Seconds(60)) {
  auto events = ReadTopic(config, Topics(config.kafka.topic_prefix).events, timeout);
  std::map<std::string, Json> out;
  if (!events.ok()) return out;
  for (const Message& m : *events) {
    auto e = Decode<v1::WorkEvent>(m.payload, m.headers, 1 << 20);
    if (e.ok() && e->step() == step && e->has_result() && e->result().status() == v1::RESULT_STATUS_OK) {
      out[e->task_id()] = FromStruct(e->result().output());
    }
  }
  return out;
}

// Issue 18, item 1: 500 tickets through classify -> route -> one of three
// specialists -> review. Every task completes (a skipped branch is neither
// failed nor partial); exactly the branch its classifier's intent names ran,
// and the per-branch counts equal the classifier's intents; the branch ran on
// the tier its complexity names; the audit verifies every output.
TEST_F(OrchestrationTest, RoutingPicksExactlyTheBranchTheClassifierNamedForFiveHundredTasks) {
  Fleet fleet("route");
  auto config = StartTriageFleet(fleet, 2);
  ASSERT_TRUE(config.has_value());
  constexpr int kTasks = 500;
  std::vector<v1::TaskSubmission> tasks = SampleTasks(kTasks, fleet.prefix() + "task", 4321);
  for (auto& t : tasks) t.set_workflow("triage");
  auto outcome = SubmitAndCollect(*config, tasks, /*wait=*/true, absl::Seconds(180));
  ASSERT_TRUE(outcome.ok()) << outcome.status() << fleet.LogTails();
  EXPECT_EQ(outcome->summary.received, kTasks) << fleet.LogTails();
  EXPECT_EQ(outcome->summary.lost, 0);
  EXPECT_EQ(outcome->summary.duplicates, 0);
  EXPECT_EQ(outcome->summary.count(v1::TASK_STATUS_COMPLETED), kTasks) << fleet.LogTails();

  std::map<std::string, Json> classified = StepOutputs(*config, "classify");
  const std::map<std::string, std::string> kBranchOf = {
      {"billing", "billing"}, {"refund", "billing"}, {"bug", "technical"}, {"outage", "technical"}};
  std::map<std::string, int> expected_runs, actual_runs;
  for (const v1::TaskResult& r : outcome->results) {
    ASSERT_TRUE(classified.count(r.task_id())) << "no classify result on the events topic for " << r.task_id();
    const Json& c = classified[r.task_id()];
    std::string intent = c.value("intent", "");
    auto it = kBranchOf.find(intent);
    std::string expected = it == kBranchOf.end() ? "general" : it->second;
    ++expected_runs[expected];
    int ran = 0;
    for (const v1::StepSummary& s : r.steps()) {
      if (s.step() != "billing" && s.step() != "technical" && s.step() != "general") continue;
      if (s.status() == v1::STEP_STATUS_SUCCEEDED) {
        ++ran;
        ++actual_runs[s.step()];
        EXPECT_EQ(s.step(), expected) << r.task_id() << " intent " << intent;
        if (s.step() != "general") {
          // model_tier: $steps.classify.complexity
          EXPECT_EQ(s.model(), c.value("complexity", "") == "complex" ? "sim-large" : "sim-small") << r.task_id();
        }
      } else {
        EXPECT_EQ(s.status(), v1::STEP_STATUS_SKIPPED) << r.task_id() << " " << s.step();
        EXPECT_EQ(s.attempts(), 0) << r.task_id() << " " << s.step();
        EXPECT_EQ(s.usage().calls(), 0) << r.task_id() << " " << s.step();
      }
    }
    EXPECT_EQ(ran, 1) << r.task_id();
  }
  EXPECT_EQ(actual_runs, expected_runs);
  // Every branch was exercised by this workload.
  EXPECT_EQ(expected_runs.size(), 3u);
  for (const auto& [branch, n] : expected_runs) std::cout << "branch " << branch << ": " << n << " tasks\n";
  auto audit = fleet.Run({"agentfleet", "audit", "--verify", "--json", "--config", fleet.config_path()},
                         absl::Seconds(120));
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_EQ(audit->first, 0) << audit->second;
  EXPECT_THAT(audit->second, HasSubstr(absl::StrCat(R"("verified":)", kTasks)));
}


// Fast group failover for the tests that kill a coordinator.
const std::pair<std::string, std::string> kFastFailover = {
    "  replication_factor: 1\n",
    "  replication_factor: 1\n  consumer: {session.timeout.ms: \"6000\", heartbeat.interval.ms: \"1000\"}\n"};

// Produces `tasks` of `workflow` and registers them with `collector`.
void Submit(const FleetConfig& config, ResultCollector& collector, std::vector<v1::TaskSubmission> tasks,
            const std::string& workflow) {
  auto producer = NewProducer(ProducerProperties(config.kafka));
  ASSERT_TRUE(producer.ok()) << producer.status();
  Topics topics(config.kafka.topic_prefix);
  for (auto& t : tasks) {
    t.set_workflow(workflow);
    collector.Expect(t.task_id(), absl::Now());
    Encoded e = Encode(t, NewTraceparent());
    ASSERT_TRUE((*producer)->Produce({topics.tasks, t.task_id(), e.payload, e.headers}).ok());
  }
  ASSERT_TRUE((*producer)->Flush(absl::Seconds(30)).ok());
}

// Waits until the workers have answered `step` of `count` tasks (their
// results are on the events topic): those tasks have moved past it.
bool WaitForStepResults(const FleetConfig& config, const std::string& step, size_t count, absl::Duration timeout) {
  for (absl::Time until = absl::Now() + timeout; absl::Now() < until; absl::SleepFor(absl::Milliseconds(500))) {
    if (StepOutputs(config, step, absl::Seconds(30)).size() >= count) return true;
  }
  return false;
}

// Sends the signal `name` with `payload` to task `id` as a person would:
// with `agentfleet signal` (sender "cli-user"), or through the library
// (sender "lib-user").
void SendNamedSignal(Fleet& fleet, const FleetConfig& config, const std::string& id, const std::string& name,
                     const Json& payload, bool by_cli) {
  if (by_cli) {
    auto sent = fleet.Run({"agentfleet", "signal", id, name, payload.dump(), "--sender", "cli-user", "--config",
                           fleet.config_path()},
                          absl::Seconds(60));
    ASSERT_TRUE(sent.ok()) << sent.status();
    EXPECT_EQ(sent->first, 0) << sent->second;
    return;
  }
  v1::TaskSignal signal;
  signal.set_task_id(id);
  signal.set_name(name);
  signal.set_sender("lib-user");
  *signal.mutable_payload() = ToValue(payload);
  ASSERT_TRUE(SendSignal(config, signal).ok());
}

const v1::StepSummary* StepOf(const v1::TaskResult& r, const std::string& step) {
  for (const auto& s : r.steps()) {
    if (s.step() == step) return &s;
  }
  return nullptr;
}

// Issue 18, item 5: 40 refunds wait for a person's approval; the coordinator
// is SIGKILLed while they wait and a new one started; the approvals sent
// then (36 through the library, 4 with `agentfleet signal`) are taken by the
// new coordinator, which restored the waits from the state topic: every task
// completes once, the approved ones sent, the rejected ones not.
TEST_F(OrchestrationTest, ApprovalsSentAfterTheCoordinatorWasKilledAreTakenByTheOneThatTookOver) {
  Fleet fleet("approve");
  pid_t first = 0;
  auto config = StartTriageFleet(fleet, 1, {kFastFailover}, &first);
  ASSERT_TRUE(config.has_value());
  auto collector = ResultCollector::Start(*config, nullptr);
  ASSERT_TRUE(collector.ok()) << collector.status();
  constexpr int kTasks = 40;
  std::vector<v1::TaskSubmission> tasks = SampleTasks(kTasks, fleet.prefix() + "refund", 77);
  Submit(*config, **collector, tasks, "refund");
  // Every draft is written: every task waits for its approval.
  ASSERT_TRUE(WaitForStepResults(*config, "draft", kTasks, absl::Seconds(90))) << fleet.LogTails();
  EXPECT_EQ((*collector)->Poll(absl::Seconds(1)), 0u) << "no task may finish without its approval";
  fleet.Kill(first);
  fleet.StartCoordinator();
  std::map<std::string, bool> approved;
  for (int i = 0; i < kTasks; ++i) {
    const std::string& id = tasks[i].task_id();
    approved[id] = i % 3 != 0;
    std::string payload = approved[id] ? R"({"ok": true})" : R"({"ok": false, "why": "over the limit"})";
    SendNamedSignal(fleet, *config, id, "approve", Json::parse(payload), /*by_cli=*/i < 4);
  }
  RunSummary summary = Collect(**collector);
  EXPECT_EQ(summary.received, kTasks) << fleet.LogTails();
  EXPECT_EQ(summary.duplicates, 0);
  EXPECT_EQ(summary.count(v1::TASK_STATUS_COMPLETED), kTasks) << fleet.LogTails();
  for (const v1::TaskResult& r : (*collector)->results()) {
    const v1::StepSummary* approval = StepOf(r, "approval");
    const v1::StepSummary* send = StepOf(r, "send");
    ASSERT_TRUE(approval && send) << r.task_id();
    EXPECT_EQ(approval->status(), v1::STEP_STATUS_SUCCEEDED) << r.task_id();
    EXPECT_THAT(approval->explanation(), HasSubstr("signal from ")) << r.task_id();
    EXPECT_EQ(send->status(), approved[r.task_id()] ? v1::STEP_STATUS_SUCCEEDED : v1::STEP_STATUS_SKIPPED)
        << r.task_id();
  }
  EXPECT_TRUE(fleet.AllRunning()) << fleet.LogTails();
}

// Issue 18, item 6: under load (200 triage tasks running, 100 refunds
// waiting), every refund is cancelled and so are 50 triage tasks right after
// they were submitted. Each of the 300 tasks has exactly one result; every
// refund is CANCELLED with its draft as the best output; a triage task is
// CANCELLED or finished normally, whichever came first; the audit finds
// nothing lost or duplicated. `agentfleet cancel` says when a task has
// already finished or is unknown.
TEST_F(OrchestrationTest, CancellingUnderLoadEndsEachTaskOnceAndTheAuditIsClean) {
  Fleet fleet("cancel");
  auto config = StartTriageFleet(fleet, 2);
  ASSERT_TRUE(config.has_value());
  auto collector = ResultCollector::Start(*config, nullptr);
  ASSERT_TRUE(collector.ok()) << collector.status();
  std::vector<v1::TaskSubmission> refunds = SampleTasks(100, fleet.prefix() + "refund", 5);
  Submit(*config, **collector, refunds, "refund");
  ASSERT_TRUE(WaitForStepResults(*config, "draft", refunds.size(), absl::Seconds(90))) << fleet.LogTails();
  // One refund through the command line: it prints the CANCELLED result.
  auto cli = fleet.Run({"agentfleet", "cancel", refunds[0].task_id(), "--reason", "customer withdrew", "--config",
                        fleet.config_path(), "--timeout", "60s"},
                       absl::Seconds(120));
  ASSERT_TRUE(cli.ok()) << cli.status();
  EXPECT_EQ(cli->first, 0) << cli->second << fleet.LogTails();
  EXPECT_THAT(cli->second, HasSubstr(refunds[0].task_id() + ": CANCELLED (customer withdrew)"));
  // The cancellations go out through one producer, each right behind its
  // task's submission for the triage tasks, while the workers are busy.
  auto producer = NewProducer(ProducerProperties(config->kafka));
  ASSERT_TRUE(producer.ok()) << producer.status();
  Topics topics(config->kafka.topic_prefix);
  auto cancel = [&](const std::string& id) {
    v1::TaskSignal c;
    c.set_task_id(id);
    c.set_cancel(true);
    c.set_reason("load test");
    Encoded e = Encode(c, NewTraceparent());
    ASSERT_TRUE((*producer)->Produce({topics.signals, id, e.payload, e.headers}).ok());
  };
  std::set<std::string> cancelled;
  std::vector<v1::TaskSubmission> triage = SampleTasks(200, fleet.prefix() + "triage", 6);
  for (size_t i = 0; i < triage.size(); ++i) {
    v1::TaskSubmission& t = triage[i];
    t.set_workflow("triage");
    (*collector)->Expect(t.task_id(), absl::Now());
    Encoded e = Encode(t, NewTraceparent());
    ASSERT_TRUE((*producer)->Produce({topics.tasks, t.task_id(), e.payload, e.headers}).ok());
    if (i % 4 == 0) {
      cancel(t.task_id());
      cancelled.insert(t.task_id());
    }
  }
  for (size_t i = 1; i < refunds.size(); ++i) cancel(refunds[i].task_id());
  ASSERT_TRUE((*producer)->Flush(absl::Seconds(30)).ok());
  RunSummary summary = Collect(**collector);
  EXPECT_EQ(summary.received, 300) << fleet.LogTails();
  EXPECT_EQ(summary.duplicates, 0);
  int triage_cancelled = 0;
  for (const v1::TaskResult& r : (*collector)->results()) {
    if (r.workflow() == "refund") {
      EXPECT_EQ(r.status(), v1::TASK_STATUS_CANCELLED) << r.task_id();
      EXPECT_TRUE(r.output().has_struct_value() && r.output().struct_value().fields().count("reply"))
          << r.task_id() << ": the draft is the best output so far";
    } else if (r.status() == v1::TASK_STATUS_CANCELLED) {
      EXPECT_TRUE(cancelled.count(r.task_id())) << r.task_id() << " was cancelled but nobody asked";
      ++triage_cancelled;
    } else {
      EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED) << r.task_id();
    }
  }
  std::cout << "triage tasks cancelled before they finished: " << triage_cancelled << " of 50\n";
  auto audit = fleet.Run({"agentfleet", "audit", "--json", "--config", fleet.config_path()}, absl::Seconds(120));
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_EQ(audit->first, 0) << audit->second;
  EXPECT_THAT(audit->second, HasSubstr(R"("lost":0)"));
  EXPECT_THAT(audit->second, HasSubstr(R"("duplicated":0)"));
  // Cancelling a finished task, or one never submitted, says so and sends nothing.
  auto finished = fleet.Run({"agentfleet", "cancel", refunds[0].task_id(), "--config", fleet.config_path()},
                            absl::Seconds(120));
  ASSERT_TRUE(finished.ok());
  EXPECT_EQ(finished->first, 1);
  EXPECT_THAT(finished->second, HasSubstr("has already finished: CANCELLED; nothing to cancel"));
  auto unknown = fleet.Run({"agentfleet", "cancel", "no-such-task", "--config", fleet.config_path()},
                           absl::Seconds(120));
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->first, 1);
  EXPECT_THAT(unknown->second, HasSubstr("unknown task no-such-task"));
}


// Issue 18, item 7: a helpdesk's "ticket created" topic fed twice with the
// same 100 events (the second time under other keys, as a producer's retry
// or a replay would) starts 100 tasks, each once; each result is also on
// the emit: topic, once, as JSON; the audit is clean.
TEST_F(OrchestrationTest, ATriggerTopicFedTwiceWithTheSameEventsRunsEachOnceAndEmitsEachResultOnce) {
  Fleet fleet("trigger");
  auto config = StartTriageFleet(fleet, 1);
  ASSERT_TRUE(config.has_value());
  const TriggerConfig& trigger = config->triggers.at("ticket_created");
  auto collector = ResultCollector::Start(*config, nullptr);
  ASSERT_TRUE(collector.ok()) << collector.status();
  auto producer = NewProducer(ProducerProperties(config->kafka));
  ASSERT_TRUE(producer.ok());
  constexpr int kEvents = 100;
  std::vector<v1::TaskSubmission> tickets = SampleTasks(kEvents, "", 11);
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < kEvents; ++i) {
      Json event = {{"ticket_id", absl::StrCat("T-", i)}, {"ticket", FromStruct(tickets[i].input())["ticket"]}};
      if (round == 0) (*collector)->Expect(absl::StrCat("ticket_created/T-", i), absl::Now());
      ASSERT_TRUE((*producer)->Produce({trigger.topic, absl::StrCat("round", round, "-", i), event.dump(), {}}).ok());
    }
    ASSERT_TRUE((*producer)->Flush(absl::Seconds(30)).ok());
  }
  RunSummary summary = Collect(**collector);
  EXPECT_EQ(summary.received, kEvents) << fleet.LogTails();
  EXPECT_EQ(summary.duplicates, 0);
  EXPECT_EQ(summary.count(v1::TASK_STATUS_COMPLETED), kEvents) << fleet.LogTails();
  for (const v1::TaskResult& r : (*collector)->results()) EXPECT_EQ(r.labels().at("trigger"), "ticket_created");
  // Every result is on the emit: topic, once, as JSON.
  const std::string emitted_topic = config->workflows.at("triage").emit;
  auto emitted = ReadTopic(*config, emitted_topic);
  ASSERT_TRUE(emitted.ok()) << emitted.status();
  std::map<std::string, int> emitted_by_id;
  for (const Message& m : *emitted) {
    Json j = Json::parse(m.payload, nullptr, false);
    ASSERT_TRUE(j.is_object()) << m.payload;
    EXPECT_EQ(j.value("task_id", ""), m.key);
    EXPECT_EQ(j.value("status", ""), "TASK_STATUS_COMPLETED");
    ++emitted_by_id[m.key];
  }
  EXPECT_EQ(emitted_by_id.size(), static_cast<size_t>(kEvents));
  for (const auto& [id, n] : emitted_by_id) EXPECT_EQ(n, 1) << id;
  auto audit = fleet.Run({"agentfleet", "audit", "--json", "--config", fleet.config_path()}, absl::Seconds(120));
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_EQ(audit->first, 0) << audit->second;
  EXPECT_THAT(audit->second, HasSubstr(R"("lost":0)"));
  EXPECT_THAT(audit->second, HasSubstr(R"("duplicated":0)"));
}


// Issue 18, item 4: 120 supervised tasks, a third with a budget too tight
// for their child's full slice. Each delegates to a child workflow, a task
// of its own: every parent and every child has exactly one result, each
// child's result names its parent, no child got more budget than its
// parent had, the parent's usage includes its child's, and the audit
// (which checks children against parents) is clean.
TEST_F(OrchestrationTest, ChildWorkflowsRunAsTasksWithinTheirParentsBudget) {
  Fleet fleet("child");
  // The triager caches its answers: the cost ledger's test below sends a
  // second wave of the same tickets.
  auto config = StartTriageFleet(
      fleet, 2,
      {{"    description: Names the ticket's intent and how hard it is to answer.\n",
        "    description: Names the ticket's intent and how hard it is to answer.\n    cache: {ttl: 1h}\n"}});
  ASSERT_TRUE(config.has_value());
  auto collector = ResultCollector::Start(*config, nullptr);
  ASSERT_TRUE(collector.ok()) << collector.status();
  constexpr int kTasks = 120;
  std::vector<v1::TaskSubmission> tasks = SampleTasks(kTasks, fleet.prefix() + "sup", 21);
  for (int i = 0; i < kTasks; i += 3) tasks[i].mutable_budget()->set_max_cost_usd(0.004);
  for (const auto& t : tasks) (*collector)->Expect(t.task_id() + "/investigate", absl::Now());
  Submit(*config, **collector, tasks, "supervised");
  RunSummary summary = Collect(**collector);
  EXPECT_EQ(summary.received, 2 * kTasks) << fleet.LogTails();
  EXPECT_EQ(summary.duplicates, 0);
  std::map<std::string, v1::TaskResult> by_id;
  for (const v1::TaskResult& r : (*collector)->results()) by_id[r.task_id()] = r;
  int completed = 0;
  for (const auto& t : tasks) {
    const v1::TaskResult& parent = by_id[t.task_id()];
    const v1::TaskResult& child = by_id[t.task_id() + "/investigate"];
    EXPECT_EQ(child.parent_task_id(), t.task_id());
    EXPECT_EQ(child.workflow(), "investigate");
    double limit = t.budget().max_cost_usd() > 0 ? t.budget().max_cost_usd() : 0.05;
    EXPECT_LE(parent.usage().cost_usd(), limit * (1 + 1e-9)) << t.task_id();
    EXPECT_LE(child.usage().cost_usd(), 0.02 * (1 + 1e-9)) << t.task_id();
    if (parent.status() == v1::TASK_STATUS_COMPLETED) {
      ++completed;
      EXPECT_EQ(child.status(), v1::TASK_STATUS_COMPLETED) << t.task_id();
      // The parent's usage includes its child's.
      EXPECT_GE(parent.usage().calls(), child.usage().calls() + 2 - StepOf(parent, "classify")->cached()) << t.task_id();
      EXPECT_GE(parent.usage().cost_usd() + 1e-12, child.usage().cost_usd()) << t.task_id();
    }
  }
  EXPECT_GT(completed, kTasks / 2) << fleet.LogTails();
  std::cout << "supervised: " << completed << " of " << kTasks << " parents completed\n";
  auto audit = fleet.Run({"agentfleet", "audit", "--json", "--config", fleet.config_path()}, absl::Seconds(120));
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_EQ(audit->first, 0) << audit->second;
  EXPECT_THAT(audit->second, HasSubstr(absl::StrCat(R"("children":)", kTasks)));
  EXPECT_THAT(audit->second, HasSubstr(R"("child_over_parent":0)"));
  EXPECT_THAT(audit->second, HasSubstr(R"("overspent":0)"));

  // Issue 20, item 3: the cost ledger. A second wave of ten tickets the
  // first wave had (new ids): their classify steps are cache hits.
  std::vector<v1::TaskSubmission> again(tasks.begin(), tasks.begin() + 10);
  for (auto& t : again) {
    t.set_task_id(t.task_id() + "-again");
    (*collector)->Expect(t.task_id() + "/investigate", absl::Now());
  }
  Submit(*config, **collector, again, "supervised");
  summary = Collect(**collector);
  ASSERT_EQ(summary.received, 2 * (kTasks + 10)) << fleet.LogTails();
  // What the results say each tenant spent (a parent's usage includes its
  // child's: the parents add up to everything), and what the cache saved.
  std::map<std::string, double> spent;
  double total = 0, saved = 0;
  int hits = 0;
  for (const v1::TaskResult& r : (*collector)->results()) {
    for (const v1::StepSummary& s : r.steps()) {
      hits += s.cached();
      saved += s.saved_cost_usd();
    }
    if (!r.parent_task_id().empty()) continue;
    spent[r.tenant()] += r.usage().cost_usd();
    total += r.usage().cost_usd();
  }
  EXPECT_GE(hits, 10) << "every ticket of the second wave was classified before";
  auto report = fleet.Run({"agentfleet", "cost", "--by", "tenant", "--json", "--config", fleet.config_path()},
                          absl::Seconds(60));
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->first, 0) << report->second;
  Json j = Json::parse(report->second.substr(report->second.find("{\n")), nullptr, false);  // past any log line
  ASSERT_TRUE(j.is_object()) << report->second;
  EXPECT_EQ(j["total"]["tasks"], 2 * (kTasks + 10)) << "one entry per task, children included";
  EXPECT_EQ(j["duplicates"], 0);
  EXPECT_EQ(std::lround(j["total"]["cost_usd"].get<double>() * 100), std::lround(total * 100)) << "to the cent";
  EXPECT_NEAR(j["total"]["cost_usd"].get<double>(), total, 1e-9);
  EXPECT_NEAR(j["total"]["cache_saved_usd"].get<double>(), saved, 1e-9);
  EXPECT_GT(saved, 0);
  std::map<std::string, double> reported;
  for (const Json& row : j["rows"]) reported[row["key"]["tenant"].get<std::string>()] += row["cost_usd"].get<double>();
  ASSERT_EQ(reported.size(), spent.size()) << report->second;
  for (const auto& [tenant, usd] : spent) EXPECT_NEAR(reported[tenant], usd, 1e-9) << tenant;
  // By agent and model, as CSV: the same total.
  auto csv = fleet.Run({"agentfleet", "cost", "--by", "agent,model", "--csv", "--config", fleet.config_path()},
                       absl::Seconds(60));
  ASSERT_TRUE(csv.ok()) << csv.status();
  ASSERT_EQ(csv->first, 0) << csv->second;
  double by_line = 0;
  std::set<std::string> agents;
  for (absl::string_view line : absl::StrSplit(csv->second, '\n', absl::SkipEmpty())) {
    std::vector<std::string> cells = absl::StrSplit(line, ',');
    if (cells.size() < 4 || cells[0] == "day" || cells[0].size() != 10) continue;
    agents.insert(cells[1]);
    by_line += std::stod(cells[3]);
  }
  EXPECT_NEAR(by_line, total, 1e-4) << csv->second;  // the CSV prints 6 decimals per row
  EXPECT_EQ(agents, (std::set<std::string>{"reviewer", "specialist", "triager"})) << csv->second;
}

// Issue 18, items 3 and 8: the example's support pipeline (routing, a tier
// from data, a billing agent that asks a person, a child investigation) and
// its research workflow (a researcher that sends the plan back). Every
// question published to the questions topic is answered with the signal it
// names — the first after the coordinator was SIGKILLed and replaced, so
// the new one restored the waits — and the asker ran again with the answer.
// Every task ends once; research tasks re-planned (at most max_replans
// times, each recorded in the result) and completed, or failed saying
// replans_exhausted; the audit is clean.
TEST_F(OrchestrationTest, AgentsAskAPersonAndSendPlansBackAndEveryTaskEndsOnce) {
  Fleet fleet("asks");
  pid_t first = 0;
  auto config = StartTriageFleet(fleet, 2, {kFastFailover}, &first);
  ASSERT_TRUE(config.has_value());
  auto collector = ResultCollector::Start(*config, nullptr);
  ASSERT_TRUE(collector.ok()) << collector.status();
  constexpr int kSupport = 60, kResearch = 40;
  std::vector<v1::TaskSubmission> support = SampleTasks(kSupport, fleet.prefix() + "sup", 31);
  std::vector<v1::TaskSubmission> research = SampleTasks(kResearch, fleet.prefix() + "res", 32);
  Submit(*config, **collector, support, "support");
  Submit(*config, **collector, research, "research");
  const std::string questions_topic =
      config->workflows.at("support").FindStep("billing")->signals.needs_info->emit;
  std::map<std::string, Json> answered;  // task id -> the answer sent
  bool killed = false;
  for (absl::Time until = absl::Now() + absl::Seconds(240); absl::Now() < until;) {
    (*collector)->Poll(absl::Milliseconds(500));
    // Technical tickets' children report too: the parents are what the test waits for.
    size_t parents = 0;
    for (const v1::TaskResult& r : (*collector)->results()) parents += r.parent_task_id().empty();
    if (parents >= static_cast<size_t>(kSupport + kResearch)) break;
    auto asked = ReadTopic(*config, questions_topic, absl::Seconds(30));
    ASSERT_TRUE(asked.ok()) << asked.status();
    for (const Message& m : *asked) {
      Json q = Json::parse(m.payload, nullptr, false);
      ASSERT_TRUE(q.is_object()) << m.payload;
      const std::string id = q.value("task_id", "");
      if (answered.count(id)) continue;
      if (!killed) {
        // A question is waiting: the coordinator dies, another takes over.
        fleet.Kill(first);
        fleet.StartCoordinator();
        killed = true;
      }
      EXPECT_EQ(q.value("step", ""), "billing");
      EXPECT_EQ(q.value("question", ""), "simulated: which order is this about?");
      Json answer = {{"answer", absl::StrCat("order of ", id)}};
      answered[id] = answer;
      SendNamedSignal(fleet, *config, id, q.value("signal", ""), answer, /*by_cli=*/answered.size() == 1);
    }
  }
  (*collector)->Poll(absl::Seconds(2));
  std::map<std::string, v1::TaskResult> by_id;
  std::map<std::string, int> results_per_id;
  for (const v1::TaskResult& r : (*collector)->results()) {
    by_id[r.task_id()] = r;
    ++results_per_id[r.task_id()];
  }
  for (const auto& [id, n] : results_per_id) EXPECT_EQ(n, 1) << id;
  EXPECT_TRUE(killed) << "no billing agent asked a question" << fleet.LogTails();
  int asked_tasks = 0;
  for (const auto& t : support) {
    ASSERT_TRUE(by_id.count(t.task_id())) << t.task_id() << " has no result" << fleet.WhereIs(t.task_id())
                                          << fleet.LogTails();
    const v1::TaskResult& r = by_id[t.task_id()];
    EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED) << t.task_id() << " " << r.error().ShortDebugString();
    const v1::StepSummary* billing = StepOf(r, "billing");
    ASSERT_NE(billing, nullptr);
    if (billing->questions_size() == 0) {
      EXPECT_EQ(answered.count(t.task_id()), 0u) << t.task_id();
      continue;
    }
    ++asked_tasks;
    ASSERT_EQ(billing->questions_size(), 1) << t.task_id();
    const v1::AgentQuestion& q = billing->questions(0);
    EXPECT_TRUE(q.answered()) << t.task_id();
    EXPECT_EQ(FromValue(q.answer()), answered[t.task_id()]) << t.task_id();
    EXPECT_THAT(q.answered_by(), ::testing::AnyOf("cli-user", "lib-user"));
    EXPECT_EQ(billing->status(), v1::STEP_STATUS_SUCCEEDED) << "the asker ran again with the answer";
  }
  EXPECT_EQ(asked_tasks, static_cast<int>(answered.size())) << "every question published was one a task asked";
  int replanned = 0, exhausted = 0;
  for (const auto& t : research) {
    ASSERT_TRUE(by_id.count(t.task_id())) << t.task_id() << " has no result" << fleet.WhereIs(t.task_id())
                                          << fleet.LogTails();
    const v1::TaskResult& r = by_id[t.task_id()];
    EXPECT_LE(r.rescopes_size(), 2) << t.task_id();
    replanned += r.rescopes_size() > 0;
    if (r.status() == v1::TASK_STATUS_FAILED) {
      EXPECT_EQ(r.error().code(), "replans_exhausted") << t.task_id();
      EXPECT_EQ(r.rescopes_size(), 2) << t.task_id();
      ++exhausted;
      continue;
    }
    EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED) << t.task_id() << " " << r.error().ShortDebugString();
    for (const v1::Rescope& rs : r.rescopes()) {
      EXPECT_EQ(rs.planner(), "plan");
      EXPECT_EQ(rs.step(), "lookup");
      EXPECT_EQ(rs.reason(), "simulated: the plan does not fit the input");
    }
  }
  EXPECT_GT(replanned, 0) << "some research task re-planned";
  std::cout << "support: " << asked_tasks << " of " << kSupport << " asked a person; research: " << replanned
            << " of " << kResearch << " re-planned, " << exhausted << " ran out of re-plans\n";
  auto audit = fleet.Run({"agentfleet", "audit", "--json", "--config", fleet.config_path()}, absl::Seconds(120));
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_EQ(audit->first, 0) << audit->second;
  EXPECT_THAT(audit->second, HasSubstr(R"("lost":0)"));
  EXPECT_THAT(audit->second, HasSubstr(R"("duplicated":0)"));
  // `agentfleet trace` shows the question, its answer and the re-plans.
  if (!answered.empty()) {
    const std::string id = answered.begin()->first;
    auto text = fleet.Run({"agentfleet", "trace", id, "--config", fleet.config_path()}, absl::Seconds(60));
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_THAT(text->second, HasSubstr("signal needs_info: simulated: which order is this about?"));
    EXPECT_THAT(text->second, HasSubstr(absl::StrCat("billing asked: simulated: which order is this about?\n    ",
                                                     answered.begin()->second.dump())));
  }
  for (const auto& t : research) {
    if (by_id[t.task_id()].rescopes_size() == 0) continue;
    auto text = fleet.Run({"agentfleet", "trace", t.task_id(), "--config", fleet.config_path()}, absl::Seconds(60));
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_THAT(text->second, HasSubstr("signal rescope: simulated: the plan does not fit the input"));
    EXPECT_THAT(text->second, HasSubstr("sent the plan back to plan: simulated: the plan does not fit the input"));
    break;
  }
  EXPECT_TRUE(fleet.AllRunning()) << fleet.LogTails();
}

}  // namespace
}  // namespace agentfleet::testing
