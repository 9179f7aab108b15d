// Actions on the real Kafka broker with real processes (issue 19): a worker
// and the coordinator SIGKILLed while hundreds of refunds are in flight to
// an external system that honours Idempotency-Key (tests/fake_llm/fake_llm.py
// /ext) — exactly one effect per task downstream, the audit log's chains
// intact, payloads that break the policy refused, and the payment token in
// no log and no topic.
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "common/error_codes.h"
#include "fleet/run_summary.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kafka/kafka.h"
#include "kafka/topics.h"
#include "tests/integration/fake_llm.h"
#include "tests/integration/fleet_harness.h"

namespace agentfleet::testing {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

constexpr char kToken[] = "pay-live-5b7c0e19d2a84f63";

class ActionFleetTest : public KafkaTest {};

TEST_F(ActionFleetTest, KilledWorkerAndCoordinatorStillMakeExactlyOneEffectPerTask) {
  Fleet fleet("actions");
  auto fake = FakeLlm::Start(fleet.dir());
  ASSERT_TRUE(fake.ok()) << fake.status();
  setenv("PAYMENTS_API_TOKEN", kToken, 1);
  fleet.set_example("examples/actions.yaml");
  fleet.WriteConfig(bootstrap_,
                    {{"http://127.0.0.1:8000", (*fake)->base_url()},
                     {"heartbeat_timeout: 15s", "heartbeat_timeout: 3s"},
                     {"\nworkflows:", absl::StrCat("\ntracing: {otlp_endpoint: '", (*fake)->base_url(),
                                                    "/v1/traces', export_interval: 200ms}\nworkflows:")},
                     {"  replication_factor: 1\n",
                      "  replication_factor: 1\n  consumer: {session.timeout.ms: \"6000\", heartbeat.interval.ms: "
                      "\"1000\"}\n"}},
                    "", "heartbeat_interval: 1s");
  ASSERT_TRUE(fleet.CreateTopics().ok());
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();

  pid_t coordinator = fleet.StartCoordinator({"--instance", "c1"});
  pid_t doomed = fleet.StartWorker("worker-1", {"--max_in_flight", "150"});
  fleet.StartWorker("worker-2", {"--max_in_flight", "150"});

  // 500 refunds that take 2 s each at the payment system, and two whose
  // payload must never leave: one carries a cloud key, one links outside
  // the allowlist. (The configured token itself is refused the same way:
  // tests/integration/action_test.cc.)
  constexpr int kGood = 500;
  std::vector<v1::TaskSubmission> tasks;
  for (int i = 0; i < kGood + 2; ++i) {
    std::string reason = "fake:ext_delay=2 parcel late; reach me at ann@example.com";
    if (i == kGood) reason = "refund it, my AWS key is AKIAIOSFODNN7EXAMPLE";
    if (i == kGood + 1) reason = "see https://evil.example.net/claim?order=1";
    v1::TaskSubmission t;
    t.set_task_id(absl::StrCat(fleet.prefix(), "refund-", i));
    t.set_workflow("refund");
    *t.mutable_input() = ToStruct(Json{{"order_id", absl::StrCat("o-", i)}, {"reason", reason}});
    tasks.push_back(std::move(t));
  }
  std::optional<absl::StatusOr<RunOutcome>> outcome;
  std::thread submitter([&] { outcome = SubmitAndCollect(*config, tasks, true, absl::Seconds(240)); });

  // Once a hundred refunds are at the payment system, kill a worker and the
  // coordinator mid-flight; a new coordinator (same instance: it fences the
  // old one's transaction) and a new worker take over.
  auto effects = [&] { return Json::parse(HttpGet((*fake)->base_url() + "/_effects").second, nullptr, false); };
  for (absl::Time until = absl::Now() + absl::Seconds(120); absl::Now() < until; absl::SleepFor(absl::Milliseconds(50))) {
    if (effects().value("requests", 0) >= 100) break;
  }
  Json at_kill = effects();
  ASSERT_GE(at_kill.value("requests", 0), 100) << fleet.LogTails();
  ASSERT_LT(at_kill.value("applied", 0), kGood) << "the kill must come while refunds are in flight";
  fleet.Kill(doomed);
  fleet.Kill(coordinator);
  pid_t takeover = fleet.StartCoordinator({"--instance", "c1"});
  pid_t fresh = fleet.StartWorker("worker-3", {"--max_in_flight", "150"});
  submitter.join();
  ASSERT_TRUE(outcome.has_value() && outcome->ok()) << (outcome ? outcome->status().ToString() : "") << fleet.LogTails();

  // Every task ended once: 500 refunded, 2 refused.
  const RunSummary& s = (*outcome)->summary;
  EXPECT_EQ(s.received, kGood + 2) << fleet.LogTails();
  EXPECT_EQ(s.lost, 0);
  EXPECT_EQ(s.duplicates, 0);
  EXPECT_EQ(s.count(v1::TASK_STATUS_COMPLETED), kGood) << fleet.LogTails();
  std::set<std::string> refused;
  for (const v1::TaskResult& r : (*outcome)->results) {
    if (r.status() == v1::TASK_STATUS_COMPLETED) continue;
    EXPECT_EQ(r.error().code(), kActionPolicyViolation) << r.task_id() << ": " << r.error().message();
    EXPECT_THAT(r.error().message(), ::testing::Not(HasSubstr(kToken)));
    refused.insert(r.task_id());
  }
  EXPECT_EQ(refused, (std::set<std::string>{absl::StrCat(fleet.prefix(), "refund-", kGood),
                                            absl::StrCat(fleet.prefix(), "refund-", kGood + 1)}));

  // Exactly one effect per refunded task downstream, under its effect id;
  // retries (the killed worker's refunds) came back with the same key.
  Json done = effects();
  EXPECT_EQ(done["applied"], kGood) << done.dump().substr(0, 400);
  int retried = 0;
  for (int i = 0; i < kGood; ++i) {
    std::string key = EffectId(absl::StrCat(fleet.prefix(), "refund-", i), "refund", -1);
    ASSERT_TRUE(done["keys"].contains(key)) << key;
    if (done["keys"][key].get<int>() > 1) ++retried;
    EXPECT_EQ(done["bodies"][key]["note"], "fake:ext_delay=2 parcel late; reach me at [email]");
  }
  EXPECT_GT(retried, 0) << "no refund was retried: the kill came too late to test anything";
  std::cout << "effects: " << done["applied"] << " applied from " << done["requests"] << " requests; " << retried
            << " refunds retried under their key (" << done["replays"] << " replayed, " << done["conflicts"]
            << " in progress)\n";

  // The audit log: chains intact through the takeover; each refund's
  // success recorded, the refusals with their violations.
  auto audit = fleet.Run({"agentfleet", "audit-log", "--config", fleet.config_path(), "--verify", "--json"},
                         absl::Seconds(120));
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_EQ(audit->first, 0) << audit->second.substr(audit->second.size() > 2000 ? audit->second.size() - 2000 : 0);
  Json log = Json::parse(audit->second.substr(audit->second.find('{')), nullptr, false);
  ASSERT_TRUE(log.is_object()) << audit->second.substr(0, 500);
  EXPECT_TRUE(log["verification"]["ok"].get<bool>()) << log["verification"].dump();
  std::set<std::string> succeeded, refused_in_log;
  for (const Json& e : log["entries"]) {
    if (e["decision"] == "succeeded") succeeded.insert(e["task_id"].get<std::string>());
    if (e["outcome"] == "refused") {
      // Also a redelivered copy of a refusal that arrives after its task ended.
      refused_in_log.insert(e["task_id"].get<std::string>());
      EXPECT_TRUE(e.contains("violations") && !e["violations"].empty()) << e.dump();
    }
  }
  EXPECT_EQ(succeeded.size(), static_cast<size_t>(kGood));
  EXPECT_EQ(refused_in_log, refused);
  auto one = fleet.Run({"agentfleet", "audit-log", "--config", fleet.config_path(), "--task",
                        absl::StrCat(fleet.prefix(), "refund-7")},
                       absl::Seconds(120));
  ASSERT_TRUE(one.ok());
  EXPECT_THAT(one->second, HasSubstr("dispatched dispatched  task " + fleet.prefix() + "refund-7 refund"));
  EXPECT_THAT(one->second, HasSubstr("outcome succeeded"));
  EXPECT_THAT(one->second, HasSubstr("chains verified"));

  // The token: sent where it belongs (the payment system's Authorization
  // header), and in no process log, metric, span or record of any topic.
  ASSERT_THAT((*fake)->Requests().dump(), HasSubstr(absl::StrCat("Bearer ", kToken)));
  for (pid_t pid : {takeover, fresh}) {
    auto [status, body] = HttpGet(absl::StrCat("http://127.0.0.1:", fleet.HttpPort(pid), "/metrics"));
    EXPECT_EQ(status, 200);
    EXPECT_THAT(body, HasSubstr("agentfleet_"));
    EXPECT_EQ(body.find(kToken), std::string::npos) << "metrics of pid " << pid;
  }
  for (absl::Time until = absl::Now() + absl::Seconds(10); (*fake)->Spans().empty() && absl::Now() < until;) {
    absl::SleepFor(absl::Milliseconds(200));
  }
  std::string spans = (*fake)->Spans().dump();
  EXPECT_THAT(spans, HasSubstr("agentfleet.effect_id")) << "the actions' spans arrived";
  EXPECT_EQ(spans.find(kToken), std::string::npos);
  for (const auto& entry : std::filesystem::directory_iterator(fleet.dir())) {
    std::ifstream in(entry.path());
    std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(text.find(kToken), std::string::npos) << entry.path();
  }
  Properties props = ConsumerProperties(config->kafka, fleet.prefix() + "secret-scan");
  for (const TopicSpec& topic : FleetTopics(*config)) {
    std::vector<int32_t> partitions;
    for (int p = 0; p < topic.partitions; ++p) partitions.push_back(p);
    auto records = ReadPartitionsToEnd(props, topic.name, partitions, absl::Seconds(60));
    ASSERT_TRUE(records.ok()) << topic.name << ": " << records.status();
    for (const Message& m : *records) {
      EXPECT_FALSE(absl::StrContains(m.payload, kToken))
          << "the token is on " << topic.name << " at offset " << m.offset;
    }
  }
}

}  // namespace
}  // namespace agentfleet::testing
