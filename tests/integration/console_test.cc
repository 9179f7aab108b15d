// `agentfleet console` on the real Kafka broker: what an operator does in it,
// through the JSON API its pages are built from and the pages themselves —
// find a task that was retried and fell back and see every attempt; see the
// dead-letter queue with reasons and origins; replay a dead-lettered
// submission and see the fleet process it; discard one; and find both
// actions still recorded after the console restarts. Access: a bearer token,
// read-only unless writes are enabled, cross-site posts refused.
#include <curl/curl.h>

#include <fstream>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli/console.h"
#include "cli/tasks_input.h"
#include "codec/codec.h"
#include "fleet/run_summary.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kafka/dead_letter.h"
#include "kafka/topics.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fake_llm.h"
#include "tests/integration/fleet_harness.h"

namespace agentfleet::testing {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

struct Reply {
  long status = 0;
  std::string body;
};

// One HTTP request to the console on 127.0.0.1.
Reply Call(const std::string& method, const std::string& url, const std::vector<std::string>& headers = {},
           const std::string& body = "") {
  CURL* c = curl_easy_init();
  Reply reply;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "POST") curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
  });
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  struct curl_slist* list = nullptr;
  for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
  curl_slist_free_all(list);
  curl_easy_cleanup(c);
  return reply;
}

class ConsoleTest : public KafkaTest {
 protected:
  // Starts the console and waits (at most 60 s) until it has read the
  // topics' history (/readyz).
  pid_t StartConsole(Fleet& fleet, int port, const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"console", "--config", fleet.config_path(), "--http_address",
                                     absl::StrCat("127.0.0.1:", port)};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_t pid = fleet.StartProgram(BinDir() + "/agentfleet", args, absl::StrCat("console-", port));
    std::string ready = absl::StrCat("http://127.0.0.1:", port, "/readyz");
    for (absl::Time until = absl::Now() + absl::Seconds(60); absl::Now() < until; absl::SleepFor(absl::Milliseconds(100))) {
      if (Call("GET", ready).status == 200) return pid;
      if (!fleet.IsAlive(pid)) break;
    }
    ADD_FAILURE() << "the console did not become ready: " << fleet.LogTailOf(pid, 20);
    return pid;
  }

  // A fleet on breakers.yaml (the primary agent always fails; it gets two
  // attempts before its fallback, backup, serves the step; its breaker opens
  // at the third failed call) that has run one
  // task (`id_`, PARTIAL), and two dead letters: bytes that are no
  // submission (the coordinator dead-letters them itself), and a good
  // submission (`lost_`) dead-lettered during an incident, copied there the
  // way every agentfleet process does it. The console's token is in `token_file_`.
  void RunFleet(Fleet& fleet) {
    fleet.set_example("tests/integration/breakers.yaml");
    fleet.WriteConfig(bootstrap_, {{"max_attempts: 1", "max_attempts: 2\n    retry: {initial_backoff: 100ms}"},
                                   {"minimum_calls: 5", "minimum_calls: 3"}});
    ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
    auto config = fleet.LoadConfig();
    ASSERT_TRUE(config.ok()) << config.status();
    Topics topics(config->kafka.topic_prefix);
    tasks_topic_ = topics.tasks;
    fleet.StartCoordinator();
    fleet.StartWorker("worker-1");
    std::vector<v1::TaskSubmission> tasks = SampleTasks(1, fleet.prefix() + "retried", 3);
    id_ = tasks[0].task_id();
    auto outcome = SubmitAndCollect(*config, tasks, true, absl::Seconds(90));
    ASSERT_TRUE(outcome.ok()) << outcome.status() << fleet.LogTails();
    ASSERT_EQ(outcome->results.size(), 1u) << fleet.LogTails();

    auto producer = NewProducer(ProducerProperties(config->kafka));
    ASSERT_TRUE(producer.ok()) << producer.status();
    OutboundMessage garbage_bytes;
    garbage_bytes.topic = topics.tasks;
    garbage_bytes.key = "garbage-1";
    garbage_bytes.payload = "\x08\xff\xff not protobuf";
    ASSERT_TRUE((*producer)->Produce(garbage_bytes).ok());
    lost_ = SampleTasks(1, fleet.prefix() + "replayed", 7)[0];
    // Larger than the console keeps in memory: its replay reads it again from Kafka.
    (*lost_.mutable_input()->mutable_fields())["attachment"].set_string_value(std::string(20000, 'a'));
    Encoded encoded = Encode(lost_, "");
    Message original{topics.tasks, 3, 41, lost_.task_id(), encoded.payload, encoded.headers,
                     absl::ToUnixMillis(absl::Now())};
    ASSERT_TRUE(
        SendToDeadLetter(**producer, topics.dlq, original, "schema registry unavailable", "coordinator", 1 << 20).ok());
    ASSERT_TRUE((*producer)->Flush(absl::Seconds(30)).ok());
    token_file_ = fleet.dir() + "/token";
    std::ofstream(token_file_) << "s3cret-console-token\n";
  }

  // The console's dead letters (?all=1: handled ones too), once `count` are in (at most 30 s).
  Json DeadLetters(const std::string& base, size_t count, const std::string& query = "") {
    Json letters;
    for (absl::Time until = absl::Now() + absl::Seconds(30); absl::Now() < until; absl::SleepFor(absl::Milliseconds(200))) {
      letters = Json::parse(Call("GET", base + "/api/dlq" + query, {kBearer}).body, nullptr, false)["dead_letters"];
      if (letters.is_array() && letters.size() >= count) break;
    }
    return letters;
  }

  // The task's summary once it has a result (at most 90 s).
  Json AwaitResult(Fleet& fleet, const std::string& base, const std::string& id) {
    Json task;
    for (absl::Time until = absl::Now() + absl::Seconds(90); absl::Now() < until; absl::SleepFor(absl::Milliseconds(250))) {
      task = Json::parse(Call("GET", base + "/api/tasks?id=" + id, {kBearer}).body, nullptr, false)["tasks"];
      if (task.is_array() && task.size() == 1 && task[0]["status"] != "RUNNING") return task[0];
    }
    ADD_FAILURE() << "no result for " << id << ": " << task.dump() << fleet.LogTails();
    return Json();
  }

  static constexpr char kBearer[] = "Authorization: Bearer s3cret-console-token";
  std::string id_, tasks_topic_, token_file_;
  v1::TaskSubmission lost_;
};

TEST_F(ConsoleTest, AnOperatorFindsARetriedTaskAndReplaysADeadLetterFromTheConsole) {
  Fleet fleet("console");
  ASSERT_NO_FATAL_FAILURE(RunFleet(fleet));
  const std::string id = id_, token_file = token_file_, bearer = kBearer;
  const v1::TaskSubmission lost = lost_;
  int port = FreePort();
  std::string base = absl::StrCat("http://127.0.0.1:", port);
  pid_t console = StartConsole(fleet, port, {"--token_file", token_file, "--enable_writes", "--operator_name", "alice"});

  // Without the token: nothing but the probes.
  EXPECT_EQ(Call("GET", base + "/api/tasks").status, 401);
  EXPECT_EQ(Call("GET", base + "/tasks").status, 303) << "a browser is sent to /login";
  // The bytes that are no submission are counted, not lost in silence.
  EXPECT_THAT(Call("GET", base + "/tasks", {bearer}).body, HasSubstr("1 records on the topics did not decode"));
  EXPECT_EQ(Call("GET", base + "/api/tasks", {"Authorization: Bearer wrong"}).status, 401);

  // The task list, searched by id prefix and by status.
  Reply listed = Call("GET", base + "/api/tasks?id=" + id, {bearer});
  ASSERT_EQ(listed.status, 200) << listed.body;
  Json found = Json::parse(listed.body, nullptr, false)["tasks"];
  ASSERT_EQ(found.size(), 1u) << listed.body;
  EXPECT_EQ(found[0]["status"], "PARTIAL");
  EXPECT_EQ(found[0]["workflow"], "support");
  EXPECT_GT(found[0]["cost_usd"].get<double>(), 0);
  EXPECT_EQ(Json::parse(Call("GET", base + "/api/tasks?status=COMPLETED&id=" + id, {bearer}).body)["tasks"].size(), 0u);
  Reply bad = Call("GET", base + "/api/tasks?status=DONE", {bearer});
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(bad.body, HasSubstr("status: 'DONE' is not one of"));

  // The task: every attempt, the two failures of primary and the fallback.
  Reply trace = Call("GET", base + "/api/tasks/" + id, {bearer});
  ASSERT_EQ(trace.status, 200) << trace.body;
  Json attempts = Json::parse(trace.body)["attempts"];
  ASSERT_EQ(attempts.size(), 3u) << trace.body;
  EXPECT_EQ(attempts[0]["outcome"], "provider_unavailable");
  EXPECT_EQ(attempts[1]["outcome"], "provider_unavailable");
  EXPECT_EQ(attempts[2]["agent"], "backup");
  EXPECT_EQ(attempts[2]["fallback_for"], "primary");
  Reply page = Call("GET", base + "/tasks/" + id, {bearer});
  ASSERT_EQ(page.status, 200);
  EXPECT_THAT(page.body, HasSubstr("<tr class=\"attempt\" data-step=\"answer\" data-attempt=\"1\" data-agent=\"primary\" "
                                   "data-outcome=\"provider_unavailable\">"));
  EXPECT_THAT(page.body, HasSubstr("data-attempt=\"2\" data-agent=\"primary\""));
  EXPECT_THAT(page.body, HasSubstr("(fallback for primary)"));
  EXPECT_EQ(Call("GET", base + "/api/tasks/no-such-task", {bearer}).status, 404);

  // Costs, from the cost ledger: the task's spend under its tenant, today.
  Reply costs = Call("GET", base + "/api/costs?by=tenant", {bearer});
  ASSERT_EQ(costs.status, 200) << costs.body;
  Json report = Json::parse(costs.body, nullptr, false);
  EXPECT_EQ(report["source"], "ledger") << costs.body;
  EXPECT_NEAR(report["total"]["cost_usd"].get<double>(), found[0]["cost_usd"].get<double>(), 1e-12) << costs.body;
  EXPECT_THAT(costs.body, HasSubstr(found[0]["tenant"].get<std::string>()));
  EXPECT_EQ(Call("GET", base + "/api/costs?by=color", {bearer}).status, 400);
  // The fleet: the coordinator's group on tasks and every worker pool's lag.
  Reply fleet_state = Call("GET", base + "/api/fleet", {bearer});
  ASSERT_EQ(fleet_state.status, 200) << fleet_state.body;
  Json state = Json::parse(fleet_state.body, nullptr, false);
  EXPECT_EQ(state["lag_error"], "") << fleet_state.body;
  bool coordinator_lag = false;
  for (const Json& row : state["lag"]) coordinator_lag |= row["topic"] == tasks_topic_ && row["lag"] == 0;
  EXPECT_TRUE(coordinator_lag) << "the coordinator has read every submission: " << fleet_state.body;
  EXPECT_EQ(state["trigger"]["lagThreshold"], 10);
  // Its members: the one coordinator owns every partition of tasks; the one worker its pool's.
  EXPECT_EQ(state["groups_error"], "") << fleet_state.body;
  int coordinators = 0, workers = 0;
  for (const Json& g : state["groups"]) {
    bool coordinator = absl::EndsWith(g["group"].get<std::string>(), ".coordinator");
    EXPECT_EQ(g["state"], "Stable") << g;
    ASSERT_EQ(g["members"].size(), 1u) << g;
    int tasks_partitions = 0;
    for (const Json& tp : g["members"][0]["assignment"]) tasks_partitions += tp["topic"] == tasks_topic_;
    if (coordinator) {
      ++coordinators;
      EXPECT_EQ(tasks_partitions, 4) << g;
    } else {
      ++workers;
      EXPECT_FALSE(g["members"][0]["assignment"].empty()) << g;
    }
  }
  EXPECT_EQ(coordinators, 1) << fleet_state.body;
  EXPECT_EQ(workers, 1) << fleet_state.body;
  EXPECT_THAT(Call("GET", base + "/fleet", {bearer}).body, HasSubstr("<h2>Consumer-group lag</h2>"));

  // The dead-letter queue: both, with reason, component and origin.
  Json letters = DeadLetters(base, 2);
  ASSERT_EQ(letters.size(), 2u) << letters.dump(2);
  const Json* garbage = nullptr;
  const Json* replayable = nullptr;
  for (const Json& d : letters) (d["key"] == "garbage-1" ? garbage : replayable) = &d;
  ASSERT_TRUE(garbage && replayable) << letters.dump(2);
  EXPECT_EQ((*garbage)["component"], "coordinator");
  EXPECT_THAT((*garbage)["reason"].get<std::string>(), HasSubstr("not a valid agentfleet.v1.TaskSubmission"));
  EXPECT_EQ((*garbage)["origin"]["topic"], tasks_topic_);
  EXPECT_EQ((*replayable)["origin"]["partition"], 3);
  EXPECT_EQ((*replayable)["origin"]["offset"], 41);
  // Decoded (and redacted: the test's task ids look like phone numbers to the PII scan).
  EXPECT_THAT((*replayable)["decoded"].get<std::string>(), HasSubstr(".replayed-0\",\"tenant\":\"" + lost.tenant()));
  std::string replay_path = absl::StrCat("/api/dlq/", (*replayable)["partition"].get<int>(), "/",
                                         (*replayable)["offset"].get<int64_t>(), "/replay");
  std::string discard_path = absl::StrCat("/api/dlq/", (*garbage)["partition"].get<int>(), "/",
                                          (*garbage)["offset"].get<int64_t>(), "/discard");

  // A form posted from another site is refused; then the replay.
  EXPECT_EQ(Call("POST", base + replay_path, {bearer, "Origin: http://evil.example"}).status, 403);
  Reply replayed = Call("POST", base + replay_path, {bearer});
  ASSERT_EQ(replayed.status, 200) << replayed.body;
  EXPECT_EQ(Json::parse(replayed.body)["by"], "alice");
  EXPECT_EQ(Call("POST", base + replay_path, {bearer}).status, 409) << "a dead letter is replayed once";
  // The fleet processes the replayed submission to its result.
  Json task = AwaitResult(fleet, base, lost.task_id());
  EXPECT_EQ(task["status"], "PARTIAL") << "processed like the other task of this fleet: " << task.dump();
  EXPECT_EQ(Call("POST", base + discard_path, {bearer}).status, 200);
  // The replayed task's first failed call of primary was its third: its
  // breaker (minimum_calls 3 here) opened, and the fleet page says so.
  Json breakers;
  for (absl::Time until = absl::Now() + absl::Seconds(30); absl::Now() < until; absl::SleepFor(absl::Milliseconds(250))) {
    breakers = Json::parse(Call("GET", base + "/api/fleet", {bearer}).body, nullptr, false)["breakers"];
    if (breakers.is_array() && !breakers.empty()) break;
  }
  ASSERT_EQ(breakers.size(), 1u) << breakers.dump(2);
  EXPECT_EQ(breakers[0]["name"], "agent:primary");
  EXPECT_EQ(breakers[0]["state"], "OPEN");

  // Handled dead letters leave the default view; ?all=1 shows who did what.
  letters = Json::parse(Call("GET", base + "/api/dlq", {bearer}).body)["dead_letters"];
  EXPECT_EQ(letters.size(), 0u) << letters.dump(2);

  // The actions are on dlq.actions: a restarted, read-only console shows
  // them, and refuses writes.
  EXPECT_EQ(fleet.StopProcess(console), 0) << fleet.LogTailOf(console, 20);
  int port2 = FreePort();
  std::string base2 = absl::StrCat("http://127.0.0.1:", port2);
  StartConsole(fleet, port2, {"--token_file", token_file});
  letters = DeadLetters(base2, 2, "?all=1");
  ASSERT_EQ(letters.size(), 2u) << letters.dump(2);
  for (const Json& d : letters) {
    EXPECT_EQ(d["disposition"], d["key"] == "garbage-1" ? "discarded" : "replayed") << d;
    EXPECT_EQ(d["disposition_by"], "alice");
  }
  Reply refused = Call("POST", base2 + discard_path, {bearer});
  EXPECT_EQ(refused.status, 403);
  EXPECT_THAT(refused.body, HasSubstr("read-only"));
  Reply dlq_page = Call("GET", base2 + "/dlq?all=1", {bearer});
  EXPECT_THAT(dlq_page.body, HasSubstr("replayed by alice"));
  EXPECT_THAT(dlq_page.body, HasSubstr("Read-only"));

  // On loopback without a token it answers only requests addressed to a
  // loopback name (a page whose name was re-pointed at 127.0.0.1 is refused).
  int port3 = FreePort();
  std::string base3 = absl::StrCat("http://127.0.0.1:", port3);
  StartConsole(fleet, port3, {});
  EXPECT_EQ(Call("GET", base3 + "/api/tasks?id=" + id).status, 200);
  EXPECT_EQ(Call("GET", base3 + "/api/tasks?id=" + id, {absl::StrCat("Host: rebound.example:", port3)}).status, 403);

  // Off loopback without a token, it does not start.
  auto open = fleet.Run({"agentfleet", "console", "--config", fleet.config_path(), "--http_address",
                         absl::StrCat("0.0.0.0:", FreePort())},
                        absl::Seconds(30));
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_EQ(open->first, 2);
  EXPECT_THAT(open->second, HasSubstr("is not loopback"));
}

// `agentfleet dlq`: the same operations from the command line, on the same
// records. Two operators who replay the same dead letter at the same moment
// replay it once: the other is refused, and the origin topic gets one copy.
TEST_F(ConsoleTest, TheDlqCommandReplaysADeadLetterOnceWhenTwoOperatorsTryAtOnce) {
  Fleet fleet("dlq-cli");
  ASSERT_NO_FATAL_FAILURE(RunFleet(fleet));
  auto dlq = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"agentfleet", "dlq"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--config", fleet.config_path(), "--timeout", "60s"});
    auto run = fleet.Run(argv, absl::Seconds(90));
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? *run : std::make_pair(-1, std::string());
  };
  auto listed = [&](const std::vector<std::string>& args) {
    auto [code, out] = dlq(args);
    EXPECT_EQ(code, 0) << out;
    Json j = Json::parse(out.substr(out.rfind("\n{") + 1), nullptr, false);
    return j.is_object() ? j["dead_letters"] : Json::array();
  };
  // The coordinator dead-letters the bytes that are no submission as it reads them.
  Json letters;
  for (absl::Time until = absl::Now() + absl::Seconds(30); absl::Now() < until; absl::SleepFor(absl::Milliseconds(500))) {
    letters = listed({"--json"});
    if (letters.size() >= 2) break;
  }
  ASSERT_EQ(letters.size(), 2u) << letters.dump(2);
  const Json& replayable = letters[0]["key"] == "garbage-1" ? letters[1] : letters[0];
  const Json& garbage = letters[0]["key"] == "garbage-1" ? letters[0] : letters[1];
  const std::string replay_at = absl::StrCat(replayable["partition"].get<int>(), "/", replayable["offset"].get<int64_t>());
  const std::string garbage_at = absl::StrCat(garbage["partition"].get<int>(), "/", garbage["offset"].get<int64_t>());
  // As a table, and filtered.
  auto [code, table] = dlq({});
  EXPECT_EQ(code, 0) << table;
  EXPECT_THAT(table, HasSubstr(absl::StrCat(replay_at, " ")));
  EXPECT_THAT(table, HasSubstr(tasks_topic_ + "/3/41"));
  EXPECT_THAT(table, HasSubstr("schema registry unavailable"));
  EXPECT_THAT(table, HasSubstr("2 dead letter(s)"));
  EXPECT_EQ(listed({"--json", "--reason", "SCHEMA registry"}).size(), 1u);
  EXPECT_EQ(listed({"--json", "--component", "worker"}).size(), 0u);

  // Two operators at once.
  std::vector<std::string> common = {"--config", fleet.config_path(), "--timeout", "60s"};
  std::vector<std::string> bob = {"dlq", "replay", replay_at, "--sender", "bob"};
  std::vector<std::string> carol = {"dlq", "replay", replay_at, "--sender", "carol"};
  bob.insert(bob.end(), common.begin(), common.end());
  carol.insert(carol.end(), common.begin(), common.end());
  pid_t first = fleet.StartProgram(BinDir() + "/agentfleet", bob, "dlq-bob");
  pid_t second = fleet.StartProgram(BinDir() + "/agentfleet", carol, "dlq-carol");
  auto bob_code = fleet.WaitProcess(first, absl::Seconds(90));
  auto carol_code = fleet.WaitProcess(second, absl::Seconds(90));
  ASSERT_TRUE(bob_code.ok() && carol_code.ok()) << fleet.LogTails();
  std::string logs = fleet.LogOf(first) + fleet.LogOf(second);
  EXPECT_EQ(std::min(*bob_code, *carol_code), 0) << logs;
  EXPECT_EQ(std::max(*bob_code, *carol_code), 1) << "the other is refused: " << logs;
  EXPECT_THAT(logs, ::testing::ContainsRegex("was already replayed by (bob|carol)|at the same time")) << logs;
  const std::string winner = *bob_code == 0 ? "bob" : "carol";
  std::cout << winner << " replayed it; the other was told: " << fleet.LogTailOf(*bob_code == 0 ? second : first, 1);
  // One copy on the origin topic, and the fleet processes it.
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  auto on_tasks = ReadKeyToEnd(ConsumerProperties(config->kafka, "dlq-test"), tasks_topic_, lost_.task_id(),
                               absl::Seconds(60));
  ASSERT_TRUE(on_tasks.ok()) << on_tasks.status();
  const std::string replayed_from =
      absl::StrCat(replayable["partition"].get<int>(), ":", replayable["offset"].get<int64_t>());
  int copies = 0;
  for (const Message& m : *on_tasks) copies += FindHeader(m.headers, kDlqReplayedFromHeader) == replayed_from;
  EXPECT_EQ(copies, 1) << "replayed once";
  bool processed = false;
  Topics topics(config->kafka.topic_prefix);
  for (absl::Time until = absl::Now() + absl::Seconds(90); !processed && absl::Now() < until;
       absl::SleepFor(absl::Milliseconds(500))) {
    auto results = ReadKeyToEnd(ConsumerProperties(config->kafka, "dlq-test"), topics.results, lost_.task_id(),
                                absl::Seconds(30));
    processed = results.ok() && results->size() == 1;
  }
  EXPECT_TRUE(processed) << fleet.WhereIs(lost_.task_id());
  std::tie(code, table) = dlq({"replay", replay_at});
  EXPECT_EQ(code, 1);
  EXPECT_THAT(table, HasSubstr("was already replayed by " + winner));

  // Discard, with a note; once.
  std::tie(code, table) = dlq({"discard", garbage_at, "--sender", "dave", "--reason", "not ours", "--json"});
  ASSERT_EQ(code, 0) << table;
  Json action = Json::parse(table.substr(table.rfind("\n{") + 1), nullptr, false);
  EXPECT_EQ(action["action"], "discarded") << table;
  EXPECT_EQ(action["by"], "dave");
  EXPECT_EQ(action["note"], "not ours");
  std::tie(code, table) = dlq({"discard", garbage_at});
  EXPECT_EQ(code, 1);
  EXPECT_THAT(table, HasSubstr("was already discarded by dave"));
  std::tie(code, table) = dlq({"replay", absl::StrCat(replayable["partition"].get<int>(), "/999999")});
  EXPECT_EQ(code, 1);
  EXPECT_THAT(table, HasSubstr("no dead letter at"));
  EXPECT_EQ(dlq({"replay", "nonsense"}).first, 2);

  // Handled ones leave the list; --all shows who did what, as the console does.
  std::tie(code, table) = dlq({});
  EXPECT_THAT(table, HasSubstr("no dead letters to handle"));
  letters = listed({"--json", "--all"});
  ASSERT_EQ(letters.size(), 2u) << letters.dump(2);
  for (const Json& d : letters) {
    EXPECT_EQ(d["disposition"], d["key"] == "garbage-1" ? "discarded" : "replayed") << d;
    EXPECT_EQ(d["disposition_by"], d["key"] == "garbage-1" ? "dave" : winner) << d;
  }
  int port = FreePort();
  StartConsole(fleet, port, {"--token_file", token_file_});
  Reply page = Call("GET", absl::StrCat("http://127.0.0.1:", port, "/dlq?all=1"), {kBearer});
  EXPECT_THAT(page.body, HasSubstr("discarded by dave"));
}

// Attempts a model's quota holds back are not on any topic's lag: the fleet
// page counts them from the running tasks' state, by queue, priority class
// and tenant, as the coordinator's agentfleet_rate_limit_waiting does.
TEST_F(ConsoleTest, TheFleetPageShowsTheAttemptsWaitingForAModelsQuota) {
  Fleet fleet("console-quota");
  fleet.set_example("tests/integration/ratelimit.yaml");
  // One request a minute, and the bucket starts empty: nothing goes for a minute.
  fleet.WriteConfig(bootstrap_, {{"requests_per_minute: 600", "requests_per_minute: 1"}});
  ASSERT_TRUE(fleet.CreateTopics().ok()) << fleet.LogTails();
  auto config = fleet.LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  pid_t coordinator = fleet.StartCoordinator();
  fleet.StartWorker("worker-1");
  std::vector<v1::TaskSubmission> tasks = SampleTasks(5, fleet.prefix() + "held", 11);
  for (size_t i = 0; i < tasks.size(); ++i) {
    tasks[i].set_tenant(i < 3 ? "acme" : "globex");
    tasks[i].set_priority(i < 2 ? v1::PRIORITY_INTERACTIVE : v1::PRIORITY_BATCH);
  }
  auto submitted = SubmitAndCollect(*config, tasks, /*wait=*/false, absl::Seconds(30));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  int port = FreePort();
  std::string base = absl::StrCat("http://127.0.0.1:", port);
  StartConsole(fleet, port, {});
  Json queues;
  for (absl::Time until = absl::Now() + absl::Seconds(30); absl::Now() < until; absl::SleepFor(absl::Milliseconds(250))) {
    queues = Json::parse(Call("GET", base + "/api/fleet").body, nullptr, false)["queues"];
    if (queues.is_array() && queues.size() == 1 && queues[0]["attempts"] == 5) break;
  }
  ASSERT_EQ(queues.size(), 1u) << queues.dump(2) << fleet.LogTails();
  EXPECT_EQ(queues[0]["kind"], "quota");
  EXPECT_THAT(queues[0]["queue"].get<std::string>(), HasSubstr("m"));
  EXPECT_EQ(queues[0]["attempts"], 5);
  EXPECT_EQ(queues[0]["interactive"], 2);
  EXPECT_EQ(queues[0]["batch"], 3);
  EXPECT_EQ(queues[0]["tenants"], 2);
  // The coordinator's own count agrees.
  std::string metrics = HttpGet(absl::StrCat("http://127.0.0.1:", fleet.HttpPort(coordinator), "/metrics")).second;
  EXPECT_THAT(metrics, HasSubstr("agentfleet_rate_limit_waiting 5")) << metrics.substr(0, 4000);
  Reply page = Call("GET", base + "/fleet");
  EXPECT_THAT(page.body, HasSubstr("<h2>Waiting in the coordinators</h2>"));
  EXPECT_THAT(page.body, HasSubstr("<td>model quota</td>"));
  // Cancelled, a task leaves the queue.
  auto cancel = fleet.Run({"agentfleet", "cancel", tasks[0].task_id(), "--config", fleet.config_path()},
                          absl::Seconds(60));
  ASSERT_TRUE(cancel.ok()) << cancel.status();
  ASSERT_EQ(cancel->first, 0) << cancel->second;
  for (absl::Time until = absl::Now() + absl::Seconds(30); absl::Now() < until; absl::SleepFor(absl::Milliseconds(250))) {
    queues = Json::parse(Call("GET", base + "/api/fleet").body, nullptr, false)["queues"];
    if (queues.is_array() && queues.size() == 1 && queues[0]["attempts"] == 4) break;
  }
  ASSERT_EQ(queues.size(), 1u) << queues.dump(2);
  EXPECT_EQ(queues[0]["attempts"], 4);
  EXPECT_EQ(queues[0]["interactive"], 1);
}

// The same pages in Debian's headless Chromium (tests/browser/console.mjs,
// puppeteer-core): sign in with the token, read the retried task's
// waterfall, replay a dead letter by pressing its button, and see the fleet
// process it. The screenshots are kept in the build's artifacts/console/.
TEST_F(ConsoleTest, TheTaskPageAndTheDeadLetterQueueWorkInARealBrowser) {
  Fleet fleet("console-browser");
  ASSERT_NO_FATAL_FAILURE(RunFleet(fleet));
  int port = FreePort();
  std::string base = absl::StrCat("http://127.0.0.1:", port);
  StartConsole(fleet, port, {"--token_file", token_file_, "--enable_writes"});
  Json letters = DeadLetters(base, 2);
  ASSERT_EQ(letters.size(), 2u) << letters.dump(2);
  const Json& replayable = letters[0]["key"] == "garbage-1" ? letters[1] : letters[0];
  std::string artifacts = BinDir() + "/../artifacts/console";
  auto run = fleet.Run({std::string(AGENTFLEET_SOURCE_DIR) + "/tests/browser/run.sh", "--base", base, "--token",
                        "s3cret-console-token", "--task", id_, "--dlq",
                        absl::StrCat(replayable["partition"].get<int>(), "/", replayable["offset"].get<int64_t>()),
                        "--out", artifacts},
                       absl::Minutes(5));
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->first, 0) << run->second;
  Json seen = Json::parse(run->second.substr(run->second.rfind("\n{") + 1), nullptr, false);
  ASSERT_TRUE(seen.is_object()) << run->second;
  EXPECT_EQ(seen["login_url"], "/login") << "without the token the browser is sent to sign in";
  EXPECT_EQ(seen["after_login"], "/tasks/" + id_) << "and back to the page it asked for";
  // Every attempt of the retried task that fell back, each with a bar.
  const Json& attempts = seen["attempts"];
  ASSERT_EQ(attempts.size(), 3u) << seen.dump(2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(attempts[i]["agent"], "primary");
    EXPECT_EQ(attempts[i]["attempt"], i + 1);
    EXPECT_EQ(attempts[i]["outcome"], "provider_unavailable");
  }
  EXPECT_EQ(attempts[2]["agent"], "backup");
  EXPECT_EQ(attempts[2]["outcome"], "ok");
  EXPECT_THAT(attempts[2]["text"].get<std::string>(), HasSubstr("fallback for primary"));
  for (const Json& a : attempts) EXPECT_GT(a["bar_px"].get<double>(), 0) << a;
  // Later attempts start further right.
  EXPECT_LT(attempts[0]["bar_left_px"].get<double>(), attempts[2]["bar_left_px"].get<double>());
  EXPECT_EQ(seen["listed"], Json::array({id_}));
  EXPECT_EQ(seen["dead_letters"], 2);
  EXPECT_THAT(seen["notice"].get<std::string>(), HasSubstr("replayed to " + tasks_topic_));
  EXPECT_EQ(seen["dead_letters_after"], 1) << "the replayed one leaves the list";
  EXPECT_EQ(seen["screenshots"].size(), 6u);
  EXPECT_EQ(seen["costs_rows"], 1) << "one tenant, one day with tasks: today";
  EXPECT_GE(seen["fleet_rows"].get<int>(), 2) << "the coordinator's group and the worker pool's";
  for (const Json& file : seen["screenshots"]) {
    std::ifstream png(file.get<std::string>(), std::ios::binary);
    char magic[4] = {};
    png.read(magic, 4);
    EXPECT_EQ(std::string(magic + 1, 3), "PNG") << file;
  }
  Json task = AwaitResult(fleet, base, lost_.task_id());
  EXPECT_EQ(task["status"], "PARTIAL") << task.dump();
}

}  // namespace
}  // namespace agentfleet::testing
