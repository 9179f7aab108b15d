#include "audit/replay.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agentfleet/v1/state.pb.h"
#include "codec/codec.h"
#include "codec/trace.h"
#include "common/clock.h"
#include "coordinator/task_engine.h"
#include "google/protobuf/util/json_util.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;

// Timers that keep falling due at the same instant would loop forever;
// after this many ticks the replay gives up, saying so.
constexpr int kMaxTicks = 1'000'000;

Json ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(message, &text, print);
  return Json::parse(text, nullptr, /*allow_exceptions=*/false);
}

// What a dispatch decided: the work item without its times and the fields
// derived from its identity.
Json DispatchDecision(const v1::WorkItem& item) {
  Json j = ToJson(item);
  for (const char* derived : {"task_id", "idempotency_key", "effect_id", "dispatched_at", "deadline",
                              "event_partition"}) {
    j.erase(derived);
  }
  return j;
}

// What the result decided: everything but the times (when it was
// submitted, accepted and finished; how long steps and questions took).
Json ResultDecision(const v1::TaskResult& result) {
  Json j = ToJson(result);
  for (const char* time : {"submitted_at", "accepted_at", "finished_at"}) j.erase(time);
  if (j.contains("steps")) {
    for (Json& step : j["steps"]) {
      step.erase("latency_ms");
      if (!step.contains("questions")) continue;
      for (Json& q : step["questions"]) {
        q.erase("asked_at");
        q.erase("answered_at");
      }
    }
  }
  if (j.contains("rescopes")) {
    for (Json& r : j["rescopes"]) r.erase("at");
  }
  return j;
}

std::string DispatchName(const v1::WorkItem& item) {
  return absl::StrCat("dispatch ", item.step(), item.fan_index() >= 0 ? absl::StrCat("[", item.fan_index(), "]") : "",
                      item.embed_text().empty() ? "" : " embedding", " attempt ", item.attempt());
}

std::vector<std::string> Differing(const Json& a, const Json& b) {
  std::vector<std::string> fields;
  if (!a.is_object() || !b.is_object()) return fields;
  std::set<std::string> keys;
  for (const auto& [k, v] : a.items()) keys.insert(k);
  for (const auto& [k, v] : b.items()) keys.insert(k);
  for (const std::string& k : keys) {
    if (a.value(k, Json()) != b.value(k, Json())) fields.push_back(k);
  }
  return fields;
}

struct Input {
  absl::Time at;
  const Message* message;
  enum Kind { kSubmission, kEvent, kSignal } kind;
  size_t index = 0;  // in the decoded events or signals
};

absl::Time RecordTime(const Message& m, const google::protobuf::Timestamp* fallback) {
  if (m.timestamp_ms > 0) return absl::FromUnixMillis(m.timestamp_ms);
  return fallback ? FromTimestamp(*fallback) : absl::UnixEpoch();
}

}  // namespace

absl::StatusOr<ReplayReport> Replay(const FleetConfig& config, const std::string& task_id,
                                    const TaskRecords& records) {
  ReplayReport report;
  report.task_id = task_id;
  const size_t limit = std::max(config.coordinator.max_payload_bytes, config.worker.max_payload_bytes);
  auto unreadable = [&](const Message& m, const absl::Status& why) {
    report.problems.push_back(absl::StrCat(m.topic, "/", m.partition, "@", m.offset, ": ", why.message()));
  };

  // What was recorded: the result, and each attempt's first work item (a
  // coordinator that crashed before committing may have sent one twice).
  std::optional<v1::TaskResult> recorded_result;
  for (const Message& m : records.results) {
    auto r = Decode<v1::TaskResult>(m.payload, m.headers, limit);
    if (!r.ok()) {
      unreadable(m, r.status());
    } else if (r->task_id() == task_id && !recorded_result) {
      recorded_result = *std::move(r);
    }
  }
  std::vector<v1::WorkItem> recorded_work;
  std::set<std::string> seen_keys;
  for (const Message& m : records.work) {
    auto item = Decode<v1::WorkItem>(m.payload, m.headers, limit);
    if (!item.ok()) {
      unreadable(m, item.status());
    } else if (item->task_id() == task_id && seen_keys.insert(item->idempotency_key()).second) {
      recorded_work.push_back(*std::move(item));
    }
  }
  std::stable_sort(recorded_work.begin(), recorded_work.end(), [](const v1::WorkItem& a, const v1::WorkItem& b) {
    return FromTimestamp(a.dispatched_at()) < FromTimestamp(b.dispatched_at());
  });

  // The inputs, in time order: the submission (when it was accepted), the
  // workers' events and the signals (when they were written).
  std::vector<Input> inputs;
  std::optional<v1::TaskSubmission> submission;
  for (const Message& m : records.tasks) {
    auto sub = Decode<v1::TaskSubmission>(m.payload, m.headers, limit);
    if (!sub.ok()) {
      unreadable(m, sub.status());
      continue;
    }
    if (sub->task_id() != task_id || submission) continue;  // a resubmission is ignored by the fleet too
    submission = *sub;
    absl::Time at = recorded_result && recorded_result->has_accepted_at()
                        ? FromTimestamp(recorded_result->accepted_at())
                        : RecordTime(m, sub->has_submitted_at() ? &sub->submitted_at() : nullptr);
    inputs.push_back({at, &m, Input::kSubmission});
  }
  if (!submission) return absl::NotFoundError(absl::StrCat("no readable submission of task '", task_id, "'"));
  report.workflow = submission->workflow();
  std::vector<v1::WorkEvent> events(records.events.size());
  for (size_t i = 0; i < records.events.size(); ++i) {
    const Message& m = records.events[i];
    auto e = Decode<v1::WorkEvent>(m.payload, m.headers, limit);
    if (!e.ok()) {
      unreadable(m, e.status());
      continue;
    }
    events[i] = *std::move(e);
    inputs.push_back({RecordTime(m, events[i].has_at() ? &events[i].at() : nullptr), &m, Input::kEvent, i});
  }
  std::vector<v1::TaskSignal> signals(records.signals.size());
  for (size_t i = 0; i < records.signals.size(); ++i) {
    const Message& m = records.signals[i];
    auto s = Decode<v1::TaskSignal>(m.payload, m.headers, limit);
    if (!s.ok()) {
      unreadable(m, s.status());
      continue;
    }
    signals[i] = *std::move(s);
    inputs.push_back(
        {RecordTime(m, signals[i].has_sent_at() ? &signals[i].sent_at() : nullptr), &m, Input::kSignal, i});
  }
  // By time; a task's events are in one partition, in the order written.
  std::stable_sort(inputs.begin(), inputs.end(), [](const Input& a, const Input& b) {
    if (a.kind == Input::kSubmission || b.kind == Input::kSubmission) {
      return a.kind == Input::kSubmission && b.kind != Input::kSubmission;
    }
    return a.at < b.at;
  });

  // The replay: the engine on a clock that moves to each input and to each
  // timer that falls due before it.
  FakeClock clock(inputs.front().at);
  TaskEngine engine(&config, &clock);
  struct Made {
    std::string what;
    Json decision;
    absl::Time at;
  };
  std::vector<Made> replayed;
  std::optional<v1::TaskResult> replayed_result;
  absl::Time replayed_result_at;
  Outbox out;
  auto collect = [&] {
    for (const Outbox::Work& w : out.work) {
      if (w.item.task_id() == task_id) replayed.push_back({DispatchName(w.item), DispatchDecision(w.item), clock.Now()});
    }
    for (const Outbox::Result& r : out.results) {
      if (r.result.task_id() == task_id && !replayed_result) {
        replayed_result = r.result;
        replayed_result_at = clock.Now();
      }
    }
    out.clear();
  };
  int ticks = 0;
  // Fires the timers due before `t` (and at `t` if `inclusive`), then moves
  // the clock to `t`. An input at the instant a timer falls due goes first,
  // as in the coordinator, which ticks after each batch of inputs.
  auto advance_to = [&](absl::Time t, bool inclusive) {
    for (absl::Time next = engine.NextTimer(); (inclusive ? next <= t : next < t) && ticks < kMaxTicks;
         next = engine.NextTimer()) {
      if (next > clock.Now()) clock.Advance(next - clock.Now());
      engine.Tick(&out);
      collect();
      ++ticks;
      // A timer still due after its tick: move on a millisecond.
      if (engine.NextTimer() <= clock.Now()) clock.Advance(absl::Milliseconds(1));
    }
    if (t > clock.Now()) clock.Advance(t - clock.Now());
  };
  for (const Input& in : inputs) {
    advance_to(in.at, /*inclusive=*/false);
    const Message& m = *in.message;
    switch (in.kind) {
      case Input::kSubmission: {
        auto parent = FindHeader(m.headers, kTraceparentHeader);
        std::string traceparent = parent && IsValidTraceparent(*parent) ? ChildTraceparent(*parent) : NewTraceparent();
        (void)engine.Submit(*submission, traceparent, m.partition, &out,
                            parent && IsValidTraceparent(*parent) ? *parent : std::string());
        ++report.submissions;
        break;
      }
      case Input::kEvent:
        engine.OnEvent(events[in.index], &out);
        ++report.events;
        break;
      case Input::kSignal:
        (void)engine.OnSignal(signals[in.index], m.partition, &out);
        ++report.signals;
        break;
    }
    collect();
    advance_to(clock.Now(), /*inclusive=*/true);  // what the coordinator's Tick after the batch fires
  }
  // Timers after the last input: as far as the recorded end of the task.
  if (recorded_result && recorded_result->has_finished_at()) {
    absl::Time end = FromTimestamp(recorded_result->finished_at()) + absl::Milliseconds(1);
    while (!replayed_result && engine.NextTimer() <= end && ticks < kMaxTicks) advance_to(engine.NextTimer(), /*inclusive=*/true);
  }
  if (ticks >= kMaxTicks) {
    report.problems.push_back(absl::StrCat("the replay stopped after ", kMaxTicks, " timer ticks"));
  }

  // The comparison: the recorded decisions in their order, then the
  // replay's own.
  std::vector<bool> matched(replayed.size(), false);
  for (const v1::WorkItem& item : recorded_work) {
    ReplayDecision d;
    d.what = DispatchName(item);
    d.recorded = DispatchDecision(item);
    d.recorded_at = FromTimestamp(item.dispatched_at());
    for (size_t i = 0; i < replayed.size(); ++i) {
      if (!matched[i] && replayed[i].what == d.what) {
        matched[i] = true;
        d.replayed = replayed[i].decision;
        d.replayed_at = replayed[i].at;
        break;
      }
    }
    report.decisions.push_back(std::move(d));
  }
  for (size_t i = 0; i < replayed.size(); ++i) {
    if (matched[i]) continue;
    ReplayDecision d;
    d.what = replayed[i].what;
    d.replayed = replayed[i].decision;
    d.replayed_at = replayed[i].at;
    report.decisions.push_back(std::move(d));
  }
  if (recorded_result || replayed_result) {
    ReplayDecision d;
    d.what = "result";
    if (recorded_result) {
      d.recorded = ResultDecision(*recorded_result);
      if (recorded_result->has_finished_at()) d.recorded_at = FromTimestamp(recorded_result->finished_at());
    }
    if (replayed_result) {
      d.replayed = ResultDecision(*replayed_result);
      d.replayed_at = replayed_result_at;
    }
    report.decisions.push_back(std::move(d));
  }
  for (size_t i = 0; i < report.decisions.size(); ++i) {
    ReplayDecision& d = report.decisions[i];
    d.differing = Differing(d.recorded, d.replayed);
    if (!d.same() && report.first_divergence < 0) report.first_divergence = static_cast<int>(i);
  }
  return report;
}

std::string ReplayText(const ReplayReport& report) {
  std::string out = absl::StrCat("replay of ", report.task_id, " (workflow ", report.workflow, "): ",
                                 report.submissions, " submission, ", report.events, " events, ", report.signals,
                                 " signals through the engine\n");
  std::optional<absl::Time> origin;
  for (const ReplayDecision& d : report.decisions) {
    if (d.recorded_at && (!origin || *d.recorded_at < *origin)) origin = d.recorded_at;
  }
  auto offset = [&](const std::optional<absl::Time>& t) {
    if (!t || !origin) return std::string("-");
    double s = absl::ToDoubleSeconds(*t - *origin);
    return absl::StrFormat("%+.3fs", std::abs(s) < 0.0005 ? 0.0 : s);  // no "-0.000s"
  };
  for (size_t i = 0; i < report.decisions.size(); ++i) {
    const ReplayDecision& d = report.decisions[i];
    std::string mark = d.same() ? "same     " : d.recorded.is_null() ? "EXTRA    " : d.replayed.is_null() ? "MISSING  " : "DIFFERENT";
    absl::StrAppend(&out, absl::StrFormat("  %s %-40s recorded %9s  replayed %9s", mark, d.what, offset(d.recorded_at),
                                          offset(d.replayed_at)));
    if (!d.differing.empty()) absl::StrAppend(&out, "  fields: ", absl::StrJoin(d.differing, ", "));
    absl::StrAppend(&out, "\n");
    if (static_cast<int>(i) == report.first_divergence) {
      absl::StrAppend(&out, "      recorded: ", d.recorded.is_null() ? "(not made)" : d.recorded.dump(), "\n");
      absl::StrAppend(&out, "      replayed: ", d.replayed.is_null() ? "(not made)" : d.replayed.dump(), "\n");
    }
  }
  for (const std::string& p : report.problems) absl::StrAppend(&out, "  problem: ", p, "\n");
  if (report.identical()) {
    absl::StrAppend(&out, "identical: ", report.decisions.size(), " of ", report.decisions.size(), " decisions\n");
  } else {
    const ReplayDecision& d = report.decisions[report.first_divergence];
    absl::StrAppend(&out, "diverged at decision ", report.first_divergence + 1, " of ", report.decisions.size(), " (",
                    d.what, ")", d.differing.empty() ? "" : absl::StrCat(": ", absl::StrJoin(d.differing, ", ")),
                    "\n");
  }
  return out;
}

std::string ReplayJson(const ReplayReport& report) {
  Json decisions = Json::array();
  for (const ReplayDecision& d : report.decisions) {
    Json j = {{"what", d.what}, {"same", d.same()}, {"recorded", d.recorded}, {"replayed", d.replayed},
              {"differing", d.differing}};
    if (d.recorded_at) j["recorded_at"] = absl::FormatTime(*d.recorded_at, absl::UTCTimeZone());
    if (d.replayed_at) j["replayed_at"] = absl::FormatTime(*d.replayed_at, absl::UTCTimeZone());
    decisions.push_back(std::move(j));
  }
  Json j = {{"task_id", report.task_id},
            {"workflow", report.workflow},
            {"identical", report.identical()},
            {"first_divergence", report.first_divergence},
            {"inputs", {{"submissions", report.submissions}, {"events", report.events}, {"signals", report.signals}}},
            {"decisions", std::move(decisions)},
            {"problems", report.problems}};
  return j.dump();
}

}  // namespace agentfleet
