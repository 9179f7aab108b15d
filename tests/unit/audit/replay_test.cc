// Golden replays (issue 21): representative tasks recorded as the fleet's
// topics hold them (tests/golden/replay/*.jsonl, with the fleet config
// beside them) must replay through today's engine with every decision
// identical — dispatches, retries, timeouts, fallbacks, fan-out, spawned
// steps, routing by data, budget downgrades, signals and the result. A
// deliberate change of behaviour records them again, explicitly:
//
//   AGENTFLEET_UPDATE_GOLDEN=1 build-test/bin/unit_audit --gtest_filter='*GoldenReplay*'
//
// and the diff of the .jsonl files is the change under review.
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "audit/replay.h"
#include "audit/task_records.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "codec/trace.h"
#include "common/clock.h"
#include "coordinator/task_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/golden_records.h"
#include "worker/execution.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

const std::string& kDir = golden::kReplayDir;
using golden::ReadFile;

FleetConfig LoadConfig(const std::string& yaml) {
  auto c = LoadConfigString(yaml, "fleet.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : FleetConfig();
}

// How the scripted worker answers one attempt.
struct Reply {
  enum Kind { kOk, kFail, kSilent } kind = kOk;
  Json output = Json::object();
  int64_t input_tokens = 100, output_tokens = 50;
  std::string code = "provider_unavailable";
  bool retryable = true;
  absl::Duration latency = absl::Milliseconds(120);
};
using Script = std::function<Reply(const v1::WorkItem&)>;
struct TimedSignal {
  absl::Duration after;  // after the submission
  v1::TaskSignal signal;
};

absl::Time CeilMillis(absl::Time t) { return absl::FromUnixMillis((absl::ToUnixMicros(t) + 999) / 1000); }

// Runs `submission` through the engine with a scripted worker, and returns
// what the fleet's topics would hold: the submission, every work item, the
// worker's receipts and results, the signals, the result. Inputs are applied
// as the coordinator applies them (each at its record's time, then the
// timers due), which is how Replay() reads them back.
TaskRecords Record(const FleetConfig& config, const v1::TaskSubmission& submission, const Script& script,
                   const std::vector<TimedSignal>& signals = {}) {
  TaskRecords records;
  FakeClock clock(absl::FromUnixMillis(1'800'000'000'000));
  TaskEngine engine(&config, &clock);
  Topics topics(config.kafka.topic_prefix);
  std::map<std::string, int64_t> offsets;
  auto message = [&](const std::string& topic, const google::protobuf::Message& m, absl::Time at) {
    Encoded e = Encode(m, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    return Message{topic, 0, offsets[topic]++, submission.task_id(), e.payload, e.headers, absl::ToUnixMillis(at)};
  };
  // Inputs not yet applied, by time (then in the order made).
  std::multimap<absl::Time, std::pair<Message, std::vector<Message> TaskRecords::*>> pending;
  Outbox out;
  auto publish = [&] {
    for (const Outbox::Work& w : out.work) {
      records.work.push_back(message(topics.Work(w.topic_agent), w.item, clock.Now()));
      Reply r = script(w.item);
      if (r.kind == Reply::kSilent) continue;
      absl::Time start = CeilMillis(clock.Now()) + absl::Milliseconds(1);
      v1::WorkEvent receipt = WorkEventFor(w.item, start);
      receipt.mutable_receipt()->set_worker("w1");
      pending.insert({start, {message(topics.events, receipt, start), &TaskRecords::events}});
      absl::Time end = start + r.latency;
      v1::WorkEvent done;
      if (r.kind == Reply::kOk) {
        ModelResponse response;
        response.ok = true;
        response.output = r.output;
        const AgentConfig* agent = config.FindAgent(w.item.agent());
        response.model = agent->models.at(w.item.model_tier().empty() ? "default" : w.item.model_tier());
        response.input_tokens = r.input_tokens;
        response.output_tokens = r.output_tokens;
        response.latency = r.latency;
        done = MakeResult(config, w.item, response, "w1", end);
      } else {
        done = MakeFailure(w.item, r.code, "scripted failure", r.retryable, "w1", end);
      }
      pending.insert({end, {message(topics.events, done, end), &TaskRecords::events}});
    }
    for (const Outbox::Result& r : out.results) records.results.push_back(message(topics.results, r.result, clock.Now()));
    out.clear();
  };
  const absl::Time start = clock.Now();
  Message sub = message(topics.tasks, submission, start);
  records.tasks.push_back(sub);
  EXPECT_TRUE(engine.Submit(submission, ChildTraceparent(*FindHeader(sub.headers, kTraceparentHeader)), 0, &out).ok());
  publish();
  for (const TimedSignal& s : signals) {
    pending.insert({start + s.after, {message(topics.signals, s.signal, start + s.after), &TaskRecords::signals}});
  }
  for (int guard = 0; guard < 10'000 && records.results.empty(); ++guard) {
    absl::Time next_input = pending.empty() ? absl::InfiniteFuture() : pending.begin()->first;
    absl::Time next_timer = engine.NextTimer();
    if (next_input == absl::InfiniteFuture() && next_timer == absl::InfiniteFuture()) break;
    if (next_input <= next_timer) {
      clock.Advance(std::max(next_input - clock.Now(), absl::ZeroDuration()));
      auto [m, list] = pending.begin()->second;
      pending.erase(pending.begin());
      (records.*list).push_back(m);
      if (list == &TaskRecords::events) {
        engine.OnEvent(*Decode<v1::WorkEvent>(m.payload, m.headers, SIZE_MAX), &out);
      } else {
        engine.OnSignal(*Decode<v1::TaskSignal>(m.payload, m.headers, SIZE_MAX), 0, &out);
      }
    } else {
      clock.Advance(std::max(next_timer - clock.Now(), absl::ZeroDuration()));
    }
    engine.Tick(&out);
    publish();
  }
  EXPECT_EQ(records.results.size(), 1u) << "the scripted task did not end";
  return records;
}

v1::TaskSubmission Submission(const std::string& id, const std::string& workflow, const Json& input) {
  v1::TaskSubmission s;
  s.set_task_id(id);
  s.set_workflow(workflow);
  *s.mutable_input() = ToStruct(input);
  return s;
}

struct Golden {
  friend void PrintTo(const Golden& g, std::ostream* os) { *os << g.name; }
  std::string name;
  std::function<TaskRecords(const FleetConfig&)> record;
  // What the log must show, or it no longer covers its case.
  std::function<void(const TaskRecords&, const ReplayReport&)> covers;
};

// Whether a recorded decision matching `pred` was made.
bool Has(const ReplayReport& report, const std::function<bool(const ReplayDecision&)>& pred) {
  for (const ReplayDecision& d : report.decisions) {
    if (pred(d)) return true;
  }
  return false;
}
bool Dispatched(const ReplayReport& report, const std::string& what) {
  return Has(report, [&](const ReplayDecision& d) { return d.what == what && !d.recorded.is_null(); });
}
std::string ResultStatus(const ReplayReport& report) {
  return report.decisions.empty() ? "" : report.decisions.back().recorded.value("status", "");
}

const std::vector<Golden>& Goldens() {
  static const auto* goldens = new std::vector<Golden>{
      {"retry_timeout_fanout_routing",
       [](const FleetConfig& c) {
         return Record(c, Submission("golden-retry", "support", {{"q", "refund?"}, {"sources", {"kb", "forum"}}}),
                       [](const v1::WorkItem& item) {
                         Reply r;
                         if (item.step() == "classify") {
                           if (item.attempt() == 1) r.kind = Reply::kFail;    // rate limited: backoff
                           if (item.attempt() == 2) r.kind = Reply::kSilent;  // no receipt: timeout
                           r.output = {{"topic", "billing"}, {"tier", "cheap"}};
                         } else if (item.step() == "research") {
                           if (item.fan_index() == 1 && item.attempt() == 1) r.kind = Reply::kFail;
                           r.output = {{"found", item.input().fields().at("source").string_value()}};
                         } else {
                           r.output = {{"reply", "refunded"}};
                         }
                         return r;
                       });
       },
       [](const TaskRecords&, const ReplayReport& r) {
         EXPECT_TRUE(Dispatched(r, "dispatch classify attempt 3"));
         EXPECT_TRUE(Dispatched(r, "dispatch research[1] attempt 2"));
         EXPECT_TRUE(Has(r, [](const ReplayDecision& d) {
           return d.what == "dispatch respond attempt 1" && d.recorded.value("model_tier", "") == "cheap";
         }));
         EXPECT_EQ(ResultStatus(r), "TASK_STATUS_COMPLETED");
       }},
      {"fallback_agent",
       [](const FleetConfig& c) {
         return Record(c, Submission("golden-fallback", "degrade", {{"q", "why"}}), [](const v1::WorkItem& item) {
           Reply r;
           if (item.agent() == "primary") r.kind = Reply::kFail;
           r.output = {{"answer", item.agent()}};
           return r;
         });
       },
       [](const TaskRecords&, const ReplayReport& r) {
         EXPECT_TRUE(Has(r, [](const ReplayDecision& d) { return d.recorded.value("agent", "") == "backup"; }));
         EXPECT_TRUE(Dispatched(r, "dispatch main attempt 2"));
       }},
      {"spawn",
       [](const FleetConfig& c) {
         return Record(c, Submission("golden-spawn", "plan", {{"q", "compare"}}), [](const v1::WorkItem& item) {
           Reply r;
           if (item.step() == "plan") {
             Json queries = Json::array();
             for (int i = 0; i < 3; ++i) queries.push_back({{"agent", "researcher"}, {"input", {{"query", i}}}});
             r.output = {{"queries", queries}};
           } else {
             r.output = {{"found", item.step()}};
           }
           return r;
         });
       },
       [](const TaskRecords&, const ReplayReport& r) {
         int spawned = 0;
         for (const ReplayDecision& d : r.decisions) spawned += d.recorded.value("agent", "") == "researcher";
         EXPECT_EQ(spawned, 3);
         EXPECT_EQ(ResultStatus(r), "TASK_STATUS_COMPLETED");
       }},
      {"budget_downgrade",
       [](const FleetConfig& c) {
         return Record(c, Submission("golden-budget", "spend", {{"q", "draft"}}), [](const v1::WorkItem& item) {
           Reply r;
           r.input_tokens = 40;
           r.output_tokens = std::min(150, item.max_tokens());
           r.output = {{"text", item.step()}};
           return r;
         });
       },
       [](const TaskRecords&, const ReplayReport& r) {
         EXPECT_TRUE(Has(r, [](const ReplayDecision& d) { return d.recorded.value("model_tier", "") == "cheap"; }))
             << "no attempt was moved to the cheaper tier";
       }},
      {"signal",
       [](const FleetConfig& c) {
         v1::TaskSignal approve;
         approve.set_task_id("golden-signal");
         approve.set_name("approve");
         *approve.mutable_payload() = ToValue(Json{{"by", "ops"}});
         return Record(
             c, Submission("golden-signal", "approve", {{"q", "send?"}}),
             [](const v1::WorkItem& item) {
               Reply r;
               r.output = {{"text", item.step()}};
               return r;
             },
             {{absl::Seconds(5), approve}});
       },
       [](const TaskRecords&, const ReplayReport& r) {
         EXPECT_EQ(r.signals, 1);
         EXPECT_TRUE(Dispatched(r, "dispatch send attempt 1"));
         EXPECT_EQ(ResultStatus(r), "TASK_STATUS_COMPLETED");
       }},
  };
  return *goldens;
}

class GoldenReplay : public ::testing::TestWithParam<Golden> {};

TEST_P(GoldenReplay, EveryRecordedDecisionIsMadeAgain) {
  const Golden& g = GetParam();
  FleetConfig config = LoadConfig(ReadFile(kDir + "fleet.yaml"));
  const std::string path = kDir + g.name + ".jsonl";
  if (std::getenv("AGENTFLEET_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path) << SaveTaskRecords(g.record(config), SIZE_MAX);
  }
  std::string text = ReadFile(path);
  ASSERT_FALSE(text.empty()) << path << " is missing; record it with AGENTFLEET_UPDATE_GOLDEN=1";
  auto records = LoadTaskRecords(text, path);
  ASSERT_TRUE(records.ok()) << records.status();
  std::string id = records->tasks.front().key;
  auto report = Replay(config, id, *records);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->identical()) << ReplayText(*report);
  EXPECT_TRUE(report->problems.empty()) << ReplayText(*report);
  EXPECT_THAT(ReplayText(*report), HasSubstr("identical: "));
  g.covers(*records, *report);
}

INSTANTIATE_TEST_SUITE_P(Logs, GoldenReplay, ::testing::ValuesIn(Goldens()),
                         [](const ::testing::TestParamInfo<Golden>& info) { return info.param.name; });

class ReplayDivergenceTest : public ::testing::Test {
 protected:
  static ReplayReport ReplayUnder(const std::string& yaml, const std::string& golden) {
    auto records = LoadTaskRecords(ReadFile(kDir + golden + ".jsonl"), golden);
    EXPECT_TRUE(records.ok()) << records.status();
    if (!records.ok() || records->tasks.empty()) return ReplayReport();
    FleetConfig config = LoadConfig(yaml);
    auto report = Replay(config, records->tasks.front().key, *records);
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : ReplayReport();
  }
};

TEST_F(ReplayDivergenceTest, FewerAttemptsMissTheRecordedThirdAttemptAndSayWhere) {
  std::string yaml = ReadFile(kDir + "fleet.yaml");
  ASSERT_THAT(yaml, HasSubstr("max_attempts: 3,"));
  ReplayReport report = ReplayUnder(absl::StrReplaceAll(yaml, {{"max_attempts: 3,", "max_attempts: 2,"}}),
                                    "retry_timeout_fanout_routing");
  ASSERT_FALSE(report.identical());
  const ReplayDecision& d = report.decisions[report.first_divergence];
  EXPECT_EQ(d.what, "dispatch classify attempt 3");
  EXPECT_FALSE(d.recorded.is_null());
  EXPECT_TRUE(d.replayed.is_null());  // the replay failed the task instead
  std::string text = ReplayText(report);
  EXPECT_THAT(text, HasSubstr("MISSING"));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("diverged at decision ", report.first_divergence + 1)));
  EXPECT_EQ(report.decisions.back().replayed.value("status", ""), "TASK_STATUS_FAILED");
}

TEST_F(ReplayDivergenceTest, APriceChangeShowsInTheResultOnly) {
  std::string yaml = ReadFile(kDir + "fleet.yaml");
  ReplayReport report = ReplayUnder(
      absl::StrReplaceAll(yaml, {{"small: {input_per_mtok: 1,", "small: {input_per_mtok: 3,"}}), "fallback_agent");
  ASSERT_FALSE(report.identical());
  const ReplayDecision& d = report.decisions[report.first_divergence];
  EXPECT_EQ(d.what, "result");
  EXPECT_THAT(d.differing, ::testing::Contains("usage"));
  EXPECT_EQ(report.first_divergence, static_cast<int>(report.decisions.size()) - 1);  // every dispatch the same
}

TEST(TaskRecordsTest, SavedRecordsLoadBackToTheSameMessages) {
  std::string text = ReadFile(kDir + "signal.jsonl");
  auto records = LoadTaskRecords(text, "signal.jsonl");
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_EQ(SaveTaskRecords(*records, SIZE_MAX), text);
  EXPECT_EQ(records->signals.size(), 1u);
  EXPECT_FALSE(records->work.empty());
}

TEST(TaskRecordsTest, ABadLineIsRefusedNamingTheFileAndLine) {
  auto records = LoadTaskRecords("{\"kind\":\"tasks\",\"message\":{}}\nnot json\n", "run.jsonl");
  ASSERT_FALSE(records.ok());
  EXPECT_THAT(records.status().message(), HasSubstr("run.jsonl:2:"));
  auto unknown = LoadTaskRecords("{\"kind\":\"gossip\"}\n", "run.jsonl");
  EXPECT_THAT(unknown.status().message(), HasSubstr("run.jsonl:1: unknown kind 'gossip'"));
}

TEST(TaskRecordsTest, AnUndecodableRecordIsKeptAsItsBytes) {
  TaskRecords records;
  records.events.push_back(Message{"agentfleet.events", 0, 7, "t1", "\xff\xff not protobuf", {}, 1});
  std::string text = SaveTaskRecords(records, SIZE_MAX);
  EXPECT_THAT(text, HasSubstr("\"unreadable\""));
  auto back = LoadTaskRecords(text, "x");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->events.at(0).payload, records.events[0].payload);
}

}  // namespace
}  // namespace agentfleet
