#include "cli/console.h"
#include "cli/cost.h"

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "codec/codec.h"
#include "config/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/http_server.h"
#include "kafka/dead_letter.h"
#include "nlohmann/json.hpp"

namespace agentfleet {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::TaskSubmission Submission(const std::string& id, const std::string& tenant, absl::Time at) {
  v1::TaskSubmission s;
  s.set_task_id(id);
  s.set_tenant(tenant);
  s.set_workflow("support");
  *s.mutable_submitted_at() = ToTimestamp(at);
  return s;
}

v1::TaskResult Result(const std::string& id, v1::TaskStatus status, double cost) {
  v1::TaskResult r;
  r.set_task_id(id);
  r.set_tenant("acme");
  r.set_workflow("support");
  r.set_status(status);
  r.mutable_usage()->set_cost_usd(cost);
  r.mutable_usage()->set_input_tokens(10);
  r.mutable_usage()->set_output_tokens(5);
  return r;
}

TEST(TaskIndexTest, SearchesByIdTenantStatusAndTimeNewestFirst) {
  absl::Time t0 = absl::FromUnixSeconds(1800000000);
  TaskIndex index(100);
  index.Add(Submission("a-1", "acme", t0));
  index.Add(Submission("a-2", "acme", t0 + absl::Minutes(1)));
  index.Add(Submission("b-1", "globex", t0 + absl::Minutes(2)));
  index.Add(Result("a-1", v1::TASK_STATUS_COMPLETED, 0.5));
  // A result whose submission was never read still lists the task.
  index.Add(Result("c-1", v1::TASK_STATUS_FAILED, 0.1));

  std::vector<TaskSummary> all = index.Search({}, 10);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].task_id, "b-1");
  EXPECT_EQ(all[1].task_id, "a-2");
  EXPECT_EQ(all[2].task_id, "a-1");

  TaskFilter by_prefix;
  by_prefix.id = "a-";
  EXPECT_EQ(index.Search(by_prefix, 10).size(), 2u);
  TaskFilter running;
  running.status = "RUNNING";
  running.tenant = "acme";
  auto r = index.Search(running, 10);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].task_id, "a-2");
  TaskFilter completed;
  completed.status = "COMPLETED";
  r = index.Search(completed, 10);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_DOUBLE_EQ(r[0].cost_usd, 0.5);
  EXPECT_EQ(r[0].tokens, 15);
  TaskFilter window;
  window.since = t0 + absl::Seconds(30);
  window.until = t0 + absl::Seconds(90);
  r = index.Search(window, 10);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].task_id, "a-2");
  EXPECT_EQ(index.Search({}, 2).size(), 2u) << "the limit holds";
}

TEST(TaskIndexTest, KeepsTheNewestTasksWithinItsCapacity) {
  TaskIndex index(3);
  for (int i = 0; i < 5; ++i) index.Add(Submission(absl::StrCat("t-", i), "acme", absl::FromUnixSeconds(i)));
  EXPECT_EQ(index.size(), 3u);
  EXPECT_EQ(index.evicted(), 2);
  std::vector<TaskSummary> kept = index.Search({}, 10);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept.back().task_id, "t-2");
}

TEST(TaskFilterTest, NamesTheBadField) {
  auto bad = ParseTaskFilter({{"status", "done"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("status: 'DONE' is not one of RUNNING, COMPLETED"));
  bad = ParseTaskFilter({{"since", "yesterday"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("since: 'yesterday'"));
  auto good = ParseTaskFilter({{"since", "2h"}, {"until", "2026-12-01T10:00:00Z"}, {"status", "failed"}});
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->status, "FAILED");
  EXPECT_NEAR(absl::ToDoubleSeconds(absl::Now() - *good->since), 7200, 60);
  EXPECT_EQ(*good->until, absl::FromUnixSeconds(1764583200 + 365 * 86400));
}

Message DeadLettered(const FleetConfig& config, const Message& original, size_t max_bytes = 1 << 20) {
  OutboundMessage out = DeadLetterMessage("agentfleet.dlq", original, "bad bytes", "coordinator", max_bytes);
  return {out.topic, 2, 17, out.key, out.payload, out.headers, 1800000000000};
}

TEST(DeadLetterTest, ReadsTheHeadersDecodesAndReplaysTheOriginalBytes) {
  FleetConfig config;
  v1::TaskSubmission s = Submission("t-9", "acme", absl::FromUnixSeconds(1800000000));
  Encoded e = Encode(s, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  Message original{"agentfleet.tasks", 5, 99, "t-9", e.payload, e.headers, 0};
  DeadLetter d = ParseDeadLetter(config, DeadLettered(config, original));
  EXPECT_EQ(d.reason, "bad bytes");
  EXPECT_EQ(d.component, "coordinator");
  EXPECT_EQ(d.origin_topic, "agentfleet.tasks");
  EXPECT_EQ(d.origin_partition, 5);
  EXPECT_EQ(d.origin_offset, 99);
  EXPECT_FALSE(d.truncated);
  EXPECT_THAT(d.decoded, HasSubstr("\"task_id\":\"t-9\""));

  auto replay = ReplayMessage(d);
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->topic, "agentfleet.tasks");
  EXPECT_EQ(replay->key, "t-9");
  EXPECT_EQ(replay->payload, e.payload);
  EXPECT_EQ(FindHeader(replay->headers, kDlqReasonHeader), std::nullopt);
  EXPECT_EQ(FindHeader(replay->headers, kTraceparentHeader), FindHeader(e.headers, kTraceparentHeader));
  EXPECT_EQ(FindHeader(replay->headers, kDlqReplayedFromHeader), "2:17");

  // Bytes that are no submission: listed with why they do not decode.
  Message junk{"agentfleet.tasks", 0, 1, "k", "\x08\xff", {}, 0};
  DeadLetter j = ParseDeadLetter(config, DeadLettered(config, junk));
  EXPECT_TRUE(j.decoded.empty());
  EXPECT_THAT(j.decode_error, HasSubstr("not a valid agentfleet.v1.TaskSubmission"));
}

TEST(DeadLetterTest, ALargePayloadIsNotKeptInMemory) {
  FleetConfig config;
  v1::TaskSubmission s = Submission("t-big", "acme", absl::FromUnixSeconds(1800000000));
  (*s.mutable_input()->mutable_fields())["blob"].set_string_value(std::string(40000, 'z'));
  Encoded e = Encode(s, "");
  DeadLetter d = ParseDeadLetter(config, DeadLettered(config, {"agentfleet.tasks", 0, 1, "t-big", e.payload, e.headers, 0}));
  EXPECT_FALSE(d.payload_kept);
  EXPECT_TRUE(d.message.payload.empty());
  EXPECT_EQ(d.payload_bytes, e.payload.size());
  EXPECT_LE(d.decoded.size(), kKeptDecodedBytes + 64);
  EXPECT_THAT(d.decoded, HasSubstr("t-big"));
  auto replay = ReplayMessage(d);
  ASSERT_FALSE(replay.ok());
  EXPECT_EQ(replay.status().code(), absl::StatusCode::kInternal) << "read again before replaying";
}

TEST(DeadLetterTest, ATruncatedCopyIsNotReplayed) {
  FleetConfig config;
  Message big{"agentfleet.tasks", 0, 1, "k", std::string(5000, 'x'), {}, 0};
  DeadLetter d = ParseDeadLetter(config, DeadLettered(config, big, 1000));
  EXPECT_TRUE(d.truncated);
  auto replay = ReplayMessage(d);
  ASSERT_FALSE(replay.ok());
  EXPECT_THAT(replay.status().message(), HasSubstr("truncated copy"));
}

TEST(DeadLetterTest, FiltersByReasonComponentAndDisposition) {
  DeadLetter d;
  d.reason = "payload is not a valid agentfleet.v1.WorkItem";
  d.component = "worker";
  EXPECT_TRUE(Matches({"workitem", "", false}, d));
  EXPECT_FALSE(Matches({"", "coordinator", false}, d));
  d.disposition = "discarded";
  EXPECT_FALSE(Matches({}, d));
  EXPECT_TRUE(Matches({"", "", true}, d));
}

TEST(DeadLetterTest, AnActionRoundTripsThroughItsRecord) {
  DeadLetterAction a{"replayed", 3, 1234, "alice", "10.0.0.7", absl::FromUnixMillis(1800000000123), "agentfleet.tasks", ""};
  auto back = ParseDeadLetterAction(DeadLetterActionJson(a));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->action, "replayed");
  EXPECT_EQ(back->partition, 3);
  EXPECT_EQ(back->offset, 1234);
  EXPECT_EQ(back->by, "alice");
  EXPECT_EQ(back->at, a.at);
  EXPECT_FALSE(ParseDeadLetterAction("{\"action\":1}").ok());
  EXPECT_FALSE(ParseDeadLetterAction("not json").ok());
}

TEST(ConsoleRenderTest, RedactsPiiAndKeysAndCutsLongText) {
  std::string shown = RedactForDisplay(
      "{\"email\":\"jane@example.com\",\"key\":\"sk-proj-abcdefghijklmnopqrstuvwxyz0123456789\"}", 1000);
  EXPECT_THAT(shown, Not(HasSubstr("jane@example.com")));
  EXPECT_THAT(shown, Not(HasSubstr("abcdefghijklmnopqrstuvwxyz0123456789")));
  EXPECT_THAT(shown, HasSubstr("redacted"));
  std::string cut = RedactForDisplay(std::string(100, 'a') + "é" + std::string(100, 'b'), 101);
  EXPECT_THAT(cut, HasSubstr("more bytes)"));
  EXPECT_EQ(cut.substr(0, 100), std::string(100, 'a'));
  EXPECT_EQ(cut.substr(100, 3), "…") << "never half a UTF-8 character";
}

TEST(ConsoleRenderTest, TheWaterfallPlacesEachAttemptsWaitAndRun) {
  absl::Time t0 = absl::FromUnixSeconds(1800000000);
  TaskTrace trace;
  trace.task_id = "t";
  trace.found = true;
  trace.submitted = t0 - absl::Seconds(4);  // queued 4 s before the coordinator accepted it
  trace.accepted = t0;
  AttemptTrace first;
  first.step = "answer";
  first.attempt = 1;
  first.agent = "primary";
  first.dispatched = t0 + absl::Milliseconds(10);
  first.started = t0 + absl::Milliseconds(30);
  first.finished = t0 + absl::Milliseconds(130);
  first.outcome = "provider_unavailable";
  AttemptTrace second = first;
  second.attempt = 2;
  second.agent = "backup";
  second.fallback_for = "primary";
  second.dispatched = t0 + absl::Milliseconds(200);
  second.started.reset();
  second.finished.reset();
  second.outcome = "running";
  trace.attempts = {first, second};
  std::vector<WaterfallBar> bars = Waterfall(trace, t0 + absl::Milliseconds(500));
  ASSERT_EQ(bars.size(), 2u);
  EXPECT_DOUBLE_EQ(bars[0].start_ms, 10);
  EXPECT_DOUBLE_EQ(bars[0].wait_ms, 20);
  EXPECT_DOUBLE_EQ(bars[0].run_ms, 100);
  EXPECT_DOUBLE_EQ(bars[1].start_ms, 200);
  EXPECT_DOUBLE_EQ(bars[1].wait_ms + bars[1].run_ms, 300) << "a running attempt reaches now";

  v1::TaskSignal approval;
  approval.set_task_id("t");
  approval.set_name("approve");
  approval.set_sender("alice");
  approval.mutable_payload()->set_string_value("<ok>");
  std::string page =
      TaskPage(trace, "{}", {approval}, t0 + absl::Milliseconds(500), "https://jaeger/trace/{trace_id}");
  // The payload as protobuf's JSON writes it (it escapes < and > itself).
  EXPECT_THAT(page, HasSubstr("<td>approve</td><td>alice</td><td>&quot;\\u003cok\\u003e&quot;</td>"));
  EXPECT_THAT(page, HasSubstr("data-attempt=\"1\" data-agent=\"primary\" data-outcome=\"provider_unavailable\""));
  EXPECT_THAT(page, HasSubstr("(fallback for primary)"));
  EXPECT_THAT(page, HasSubstr("http-equiv=\"refresh\"")) << "a running task's page follows it";
}

TEST(ConsoleRenderTest, EscapesWhatTheTopicsHold) {
  TaskTrace trace;
  trace.task_id = "<script>alert(1)</script>";
  trace.found = true;
  trace.tenant = "\"><img src=x>";
  std::string page = TaskPage(trace, "", {}, absl::Now(), "");
  EXPECT_THAT(page, Not(HasSubstr("<script>alert")));
  EXPECT_THAT(page, Not(HasSubstr("<img src=x>")));
  EXPECT_THAT(page, HasSubstr("&lt;script&gt;"));
  TaskSummary t;
  t.task_id = "<b>x</b>";
  std::string list = TasksPage({t}, {{"tenant", "\"><script>"}}, 1, 2, "");
  EXPECT_THAT(list, HasSubstr("1 shown of 1 tasks indexed; 2 records on the topics did not decode"));
  EXPECT_THAT(list, Not(HasSubstr("<b>x</b>")));
  EXPECT_THAT(list, Not(HasSubstr("\"><script>")));
}

TEST(ConsoleAccessTest, LoopbackAddresses) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:8080"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:8080"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:8080"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:8080"));
  EXPECT_FALSE(IsLoopbackAddress(":8080"));
  EXPECT_FALSE(IsLoopbackAddress("10.1.2.3:8080"));
}

TEST(ConsoleAccessTest, TheTokenComesFromItsFileOrTheEnvironment) {
  std::string dir = ::testing::TempDir();
  std::ofstream(dir + "/token") << "  s3cret\n";
  std::ofstream(dir + "/empty") << "\n";
  auto token = ReadConsoleToken(dir + "/token");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "s3cret");
  EXPECT_THAT(ReadConsoleToken(dir + "/empty").status().message(), HasSubstr("is empty"));
  EXPECT_THAT(ReadConsoleToken(dir + "/missing").status().message(), HasSubstr("cannot read --token_file"));
  setenv("AGENTFLEET_CONSOLE_TOKEN", "from-env", 1);
  EXPECT_EQ(ReadConsoleToken("").value_or(""), "from-env");
  unsetenv("AGENTFLEET_CONSOLE_TOKEN");
  EXPECT_EQ(ReadConsoleToken("").value_or("x"), "") << "no token";
}

// The running tasks' waits, as the state topic carries them.
v1::TaskState Waiting(const std::string& tenant, v1::Priority priority, int64_t accepted,
                      const std::vector<std::pair<std::string, std::string>>& steps) {
  v1::TaskState s;
  s.mutable_submission()->set_tenant(tenant);
  s.mutable_submission()->set_priority(priority);
  s.mutable_accepted_at()->set_seconds(accepted);
  for (const auto& [wait, key] : steps) {
    v1::StepState* step = s.add_steps();
    if (wait == "rate") {
      step->set_rate_wait(true);
      step->set_rate_key(key);
    } else if (wait == "tenant") {
      step->set_tenant_wait(true);
    }  // else running, not waiting
  }
  return s;
}

TEST(CoordinatorWaitsTest, CountsEachQueuesWaitingAttemptsByClassAndTenant) {
  CoordinatorWaits waits;
  waits.Update("t1", Waiting("acme", v1::PRIORITY_INTERACTIVE, 100, {{"rate", "sim/m"}, {"run", ""}}));
  waits.Update("t2", Waiting("acme", v1::PRIORITY_BATCH, 50, {{"rate", "sim/m"}, {"rate", "sim/m"}}));
  waits.Update("t3", Waiting("globex", v1::PRIORITY_BATCH, 200, {{"rate", "window:researcher"}, {"tenant", ""}}));
  waits.Update("t4", Waiting("globex", v1::PRIORITY_BATCH, 10, {{"run", ""}}));
  std::vector<WaitingQueue> q = waits.Queues();
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(q[0].kind, "quota");
  EXPECT_EQ(q[0].queue, "sim/m");
  EXPECT_EQ(q[0].attempts, 3);
  EXPECT_EQ(q[0].interactive, 1);
  EXPECT_EQ(q[0].tenants, 1);
  EXPECT_EQ(q[0].oldest_accepted, absl::FromUnixSeconds(50));
  EXPECT_EQ(q[1].kind, "tenant budget");
  EXPECT_EQ(q[1].queue, "globex");
  EXPECT_EQ(q[2].kind, "window");
  EXPECT_EQ(q[2].queue, "researcher");
  EXPECT_EQ(waits.tasks(), 3u) << "a task with nothing waiting is not kept";

  // A newer state replaces the task's waits; a finished task, or its tombstone, drops them.
  waits.Update("t2", Waiting("acme", v1::PRIORITY_BATCH, 50, {{"run", ""}, {"rate", "sim/m"}}));
  EXPECT_EQ(waits.Queues()[0].attempts, 2);
  v1::TaskState done = Waiting("acme", v1::PRIORITY_INTERACTIVE, 100, {{"rate", "sim/m"}});
  done.set_status(v1::TASK_STATUS_CANCELLED);
  waits.Update("t1", done);
  waits.Remove("t3");
  q = waits.Queues();
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].attempts, 1);
  EXPECT_EQ(q[0].interactive, 0);
  FleetView view;  // (a designated initializer leaves gcc warning about every other field)
  view.queues = q;
  EXPECT_THAT(FleetPage(view), HasSubstr("<td>model quota</td><td>sim/m</td><td class=\"num\">1</td>"));
  EXPECT_EQ(nlohmann::json::parse(FleetJson(view))["queues"][0]["batch"], 1);
}

TEST(CostReportFromTasksTest, WithoutALedgerTheResultsGiveSpendByTenantAndWorkflow) {
  auto result = [](const std::string& id, const std::string& tenant, const std::string& finished, double usd) {
    v1::TaskResult r;
    r.set_task_id(id);
    r.set_tenant(tenant);
    r.set_workflow("support");
    r.set_status(v1::TASK_STATUS_COMPLETED);
    absl::Time at;
    std::string err;
    EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, finished, &at, &err)) << err;
    *r.mutable_finished_at() = ToTimestamp(at);
    r.mutable_usage()->set_cost_usd(usd);
    r.mutable_usage()->set_input_tokens(100);
    r.mutable_usage()->set_output_tokens(50);
    r.mutable_usage()->set_calls(4);
    return r;
  };
  TaskIndex index(10);
  index.Add(result("a", "acme", "2026-11-02T10:00:00Z", 0.25));
  index.Add(result("b", "acme", "2026-11-02T11:00:00Z", 0.75));
  index.Add(result("c", "globex", "2026-11-03T09:00:00Z", 0.5));
  v1::TaskSubmission running;
  running.set_task_id("d");
  running.set_tenant("acme");
  index.Add(running);  // no result: no spend yet
  auto query = CostQueryOf("2026-11-02", "2026-11-03", "tenant", absl::FromUnixSeconds(1764800000));
  ASSERT_TRUE(query.ok()) << query.status();
  auto report = CostReportFromTasks(index.Search({}, 10), *query);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_DOUBLE_EQ(report->total.cost_usd, 1.5);
  EXPECT_EQ(report->total.tasks, 3);
  EXPECT_EQ(report->total.calls, 12);
  EXPECT_EQ(report->total.input_tokens, 300);
  std::map<std::string, double> by_day;  // "day tenant" -> spend
  for (const CostRow& row : report->rows) by_day[absl::StrCat(absl::FormatCivilTime(row.day), " ", row.key[0])] += row.cost_usd;
  EXPECT_DOUBLE_EQ(by_day["2026-11-02 acme"], 1.0);
  EXPECT_DOUBLE_EQ(by_day["2026-11-03 globex"], 0.5);
  EXPECT_DOUBLE_EQ(by_day["2026-11-03 acme"], 0.0);
  auto by_model = CostQueryOf("2026-11-02", "2026-11-03", "tenant,model", absl::FromUnixSeconds(1764800000));
  ASSERT_TRUE(by_model.ok());
  EXPECT_THAT(CostReportFromTasks(index.Search({}, 10), *by_model).status().message(),
              HasSubstr("by model needs the cost ledger"));
  EXPECT_THAT(CostsPage(*report, {}, "", "From the results"), HasSubstr("<p class=\"notice\">From the results</p>"));
}

TEST(ParseFormTest, DecodesAQueryOrAForm) {
  EXPECT_EQ(ParseForm("a=1&b=x+y%21&a=2&c")["b"], "x y!");
  EXPECT_EQ(ParseForm("a=1&b=x+y%21&a=2&c")["a"], "2");
  EXPECT_EQ(ParseForm("a=1&b=x+y%21&a=2&c").count("c"), 1u);
}

}  // namespace
}  // namespace agentfleet
