// End-to-end tests of the orchestration constructs (issue 18) on the real
// Kafka broker: routing, data-driven model tiers, signals, cancellation.
#include <map>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli/tasks_input.h"
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

class OrchestrationTest : public KafkaTest {};

// Each task's classify output, as the workers reported it on the events topic.
std::map<std::string, Json> ClassifierOutputs(const FleetConfig& config) {
  Topics topics(config.kafka.topic_prefix);
  std::vector<int32_t> partitions;
  for (int32_t p = 0; p < config.kafka.partitions; ++p) partitions.push_back(p);
  auto events = ReadPartitionsToEnd(ConsumerProperties(config.kafka, "orchestration-test"), topics.events,
                                    partitions, absl::Seconds(60));
  EXPECT_TRUE(events.ok()) << events.status();
  std::map<std::string, Json> out;
  if (!events.ok()) return out;
  for (const Message& m : *events) {
    auto e = Decode<v1::WorkEvent>(m.payload, m.headers, 1 << 20);
    if (!e.ok() || e->step() != "classify" || !e->has_result() ||
        e->result().status() != v1::RESULT_STATUS_OK) {
      continue;
    }
    out[e->task_id()] = FromStruct(e->result().output());
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
  fleet.set_example("examples/triage.yaml");
  fleet.WriteConfig(bootstrap_);
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  fleet.StartCoordinator();
  fleet.StartWorker("worker-1");
  fleet.StartWorker("worker-2");
  constexpr int kTasks = 500;
  std::vector<v1::TaskSubmission> tasks = SampleTasks(kTasks, fleet.prefix() + "task", 4321);
  for (auto& t : tasks) t.set_workflow("triage");
  auto outcome = SubmitAndCollect(*config, tasks, /*wait=*/true, absl::Seconds(180));
  ASSERT_TRUE(outcome.ok()) << outcome.status() << fleet.LogTails();
  EXPECT_EQ(outcome->summary.received, kTasks) << fleet.LogTails();
  EXPECT_EQ(outcome->summary.lost, 0);
  EXPECT_EQ(outcome->summary.duplicates, 0);
  EXPECT_EQ(outcome->summary.count(v1::TASK_STATUS_COMPLETED), kTasks) << fleet.LogTails();

  std::map<std::string, Json> classified = ClassifierOutputs(*config);
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

}  // namespace
}  // namespace agentfleet::testing
