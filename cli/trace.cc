#include "cli/trace.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agentfleet/v1/work.pb.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "codec/trace.h"
#include "common/error_codes.h"
#include "kafka/topics.h"
#include "nlohmann/json.hpp"

namespace agentfleet {
namespace {

using Json = nlohmann::json;

template <typename T>
struct Type {
  using type = T;
};

std::string TraceIdOf(const Message& m) {
  auto tp = FindHeader(m.headers, kTraceparentHeader);
  return tp ? TraceId(*tp) : "";
}

std::string Offset(const std::optional<absl::Time>& t, const std::optional<absl::Time>& origin) {
  if (!t || !origin) return "-";
  return absl::StrFormat("%+.3fs", absl::ToDoubleSeconds(*t - *origin));
}

std::string Millis(const std::optional<absl::Time>& from, const std::optional<absl::Time>& to) {
  if (!from || !to) return "-";
  return absl::StrFormat("%.0f ms", absl::ToDoubleMilliseconds(*to - *from));
}

std::string Label(const AttemptTrace& a) {
  return a.fan_index < 0 ? a.step : absl::StrCat(a.step, "[", a.fan_index, "]");
}

}  // namespace

TaskTrace BuildTrace(const FleetConfig& config, const std::string& task_id, const TraceMessages& messages) {
  TaskTrace trace;
  trace.task_id = task_id;
  const size_t limit = std::max(config.coordinator.max_payload_bytes, config.worker.max_payload_bytes);
  // Calls `use` with each message of `ms` that decodes as T; the others are
  // reported as problems. Tombstones (state) are passed on as nullopt.
  auto each = [&](const std::vector<Message>& ms, auto type, auto use) {
    using T = typename decltype(type)::type;
    for (const Message& m : ms) {
      if (m.payload.empty()) {
        use(m, std::optional<T>());
        continue;
      }
      auto decoded = Decode<T>(m.payload, m.headers, limit);
      if (!decoded.ok()) {
        trace.problems.push_back(absl::StrCat(m.topic, "/", m.partition, "@", m.offset, ": ", decoded.status().message()));
        continue;
      }
      trace.found = true;
      use(m, std::optional<T>(*std::move(decoded)));
    }
  };
  each(messages.tasks, Type<v1::TaskSubmission>(), [&](const Message& m, const auto& sub) {
    if (!sub || trace.submitted) return;  // a resubmission: the first one ran
    trace.workflow = sub->workflow();
    trace.tenant = sub->tenant();
    trace.trace_id = TraceIdOf(m);
    trace.submitted = sub->has_submitted_at() ? FromTimestamp(sub->submitted_at()) : absl::FromUnixMillis(m.timestamp_ms);
  });
  std::map<std::string, AttemptTrace> attempts;  // by idempotency key
  each(messages.work, Type<v1::WorkItem>(), [&](const Message& m, const auto& item) {
    if (!item) return;
    AttemptTrace& a = attempts[item->idempotency_key()];
    a.step = item->step();
    a.fan_index = item->fan_index();
    a.attempt = item->attempt();
    a.agent = item->agent();
    a.model_tier = item->model_tier();
    a.max_tokens = item->max_tokens();
    a.embedding = !item->embed_text().empty();
    a.dispatched = item->has_dispatched_at() ? FromTimestamp(item->dispatched_at()) : absl::FromUnixMillis(m.timestamp_ms);
    if (trace.trace_id.empty()) trace.trace_id = TraceIdOf(m);
  });
  each(messages.events, Type<v1::WorkEvent>(), [&](const Message& m, const auto& event) {
    if (!event) return;
    AttemptTrace& a = attempts[event->idempotency_key()];
    if (a.step.empty()) {  // its work item is gone (retention) or unreadable
      a.step = event->step();
      a.fan_index = event->fan_index();
      a.attempt = event->attempt();
    }
    absl::Time at = event->has_at() ? FromTimestamp(event->at()) : absl::FromUnixMillis(m.timestamp_ms);
    if (event->has_receipt()) {
      a.worker = event->receipt().worker();
      if (!a.started || at < *a.started) a.started = at;
    } else if (event->has_heartbeat()) {
      ++a.heartbeats;
    } else if (event->has_result() && !a.finished) {  // the first result counts, as in the coordinator
      const v1::WorkResult& r = event->result();
      a.finished = at;
      a.model = r.model();
      if (!r.worker().empty()) a.worker = r.worker();
      a.latency_ms = r.latency_ms();
      a.tool_calls.assign(r.tool_calls().begin(), r.tool_calls().end());
      a.model_turns = r.model_turns();
      if (r.has_action()) a.action = r.action();
      // A call that finished within worker.receipt_delay sent no receipt:
      // it started its run time before its result.
      if (!a.started) a.started = at - absl::Milliseconds(r.latency_ms());
      a.usage = r.usage();
      a.cost_usd = config.Cost(r.model(), r.usage().input_tokens(), r.usage().output_tokens());
      a.outcome = r.status() == v1::RESULT_STATUS_OK ? "ok" : r.error().code();
      if (r.embedding_size() > 0) a.outcome = absl::StrCat("embedded (", r.embedding_size(), " dims)");
      a.message = r.error().message();
      if (auto sig = r.output().fields().find(kAgentSignalField); sig != r.output().fields().end()) {
        // An agent signal instead of an output.
        Json s = FromValue(sig->second);
        // An agent wrote it: any member may be of any type.
        auto text = [&s](const char* key) {
          return s.is_object() && s.contains(key) && s[key].is_string() ? s[key].get<std::string>() : std::string();
        };
        std::string type = text("type");
        a.outcome = absl::StrCat("signal ", type.empty() ? "?" : type);
        a.message = text("question").empty() ? text("reason") : text("question");
      }
      a.retryable = r.error().retryable();
    }
  });
  each(messages.state, Type<v1::TaskState>(), [&](const Message&, const auto& state) {
    trace.state = state;  // nullopt: tombstoned
    if (state && state->has_accepted_at()) trace.accepted = FromTimestamp(state->accepted_at());
  });
  each(messages.results, Type<v1::TaskResult>(), [&](const Message& m, const auto& result) {
    if (!result || trace.result) return;  // the first result is the answer
    trace.result = result;
    if (trace.workflow.empty()) trace.workflow = trace.result->workflow();
    if (trace.tenant.empty()) trace.tenant = trace.result->tenant();
    if (trace.trace_id.empty()) trace.trace_id = TraceIdOf(m);
    if (trace.result->has_accepted_at()) trace.accepted = FromTimestamp(trace.result->accepted_at());
    if (trace.result->has_finished_at()) trace.finished = FromTimestamp(trace.result->finished_at());
    if (!trace.submitted && trace.result->has_submitted_at()) trace.submitted = FromTimestamp(trace.result->submitted_at());
  });
  bool done = trace.result.has_value();
  const WorkflowConfig* wf = config.FindWorkflow(trace.workflow);
  for (auto& [key, a] : attempts) {
    // An attempt on another agent than its step's (not a spawned sub-step) ran on the fallback.
    const StepConfig* step = wf ? wf->FindStep(a.step) : nullptr;
    if (step && !a.agent.empty() && step->agent != a.agent && step->signals.needs_info &&
        step->signals.needs_info->agent == a.agent) {
      a.answering = step->agent;  // the agent its question went to
    } else if (step && !a.agent.empty() && step->agent != a.agent && !step->spawn) {
      a.fallback_for = step->agent;
    }
    if (!a.outcome.empty()) continue;
    // No result: a later attempt of the same instance replaced it (it timed
    // out), or it is still running, or the task ended without it.
    bool superseded = false;
    for (const auto& [k, b] : attempts) {
      superseded |= b.step == a.step && b.fan_index == a.fan_index && b.attempt > a.attempt;
    }
    a.outcome = superseded || done ? "no result" : "running";
    if (superseded) a.message = "a later attempt replaced it (timed out)";
    if (a.outcome == "no result" && a.dispatched && wf != nullptr) {
      // Or a re-plan reset its step after it was sent: abandoned.
      const google::protobuf::RepeatedPtrField<v1::Rescope>* rescopes =
          trace.result ? &trace.result->rescopes() : trace.state ? &trace.state->rescopes() : nullptr;
      for (int i = 0; rescopes != nullptr && i < rescopes->size(); ++i) {
        const v1::Rescope& r = rescopes->Get(i);
        if (FromTimestamp(r.at()) >= *a.dispatched && wf->DependsOn(a.step, r.planner())) {
          a.message = absl::StrCat("abandoned: a re-plan from step '", r.planner(), "' reset its step");
          break;
        }
      }
    }
  }
  for (auto& [key, a] : attempts) trace.attempts.push_back(std::move(a));
  std::stable_sort(trace.attempts.begin(), trace.attempts.end(), [](const AttemptTrace& x, const AttemptTrace& y) {
    return x.dispatched.value_or(absl::InfiniteFuture()) < y.dispatched.value_or(absl::InfiniteFuture());
  });
  return trace;
}

std::string TraceText(const TaskTrace& t) {
  if (!t.found) return absl::StrCat("task ", t.task_id, ": nothing found in the fleet's topics\n");
  std::string out = absl::StrCat("task ", t.task_id, " · workflow ", t.workflow.empty() ? "?" : t.workflow,
                                 t.tenant.empty() ? "" : " · tenant " + t.tenant,
                                 t.trace_id.empty() ? "" : " · trace " + t.trace_id, "\n");
  std::optional<absl::Time> origin = t.submitted ? t.submitted : t.accepted;
  absl::StrAppend(&out, "submitted ",
                  t.submitted ? absl::FormatTime("%Y-%m-%d %H:%M:%E3S UTC", *t.submitted, absl::UTCTimeZone()) : "-",
                  " · accepted ", Offset(t.accepted, origin), " · finished ", Offset(t.finished, origin), " · ",
                  t.result ? TaskStatusName(t.result->status()) : "RUNNING", "\n");
  if (t.result) {
    const v1::Usage& u = t.result->usage();
    absl::StrAppend(&out, "usage ", u.input_tokens(), " in / ", u.output_tokens(), " out tokens · ",
                    absl::StrFormat("$%.6f", u.cost_usd()), " · ", u.calls(), " calls\n");
    if (t.result->has_error()) {
      absl::StrAppend(&out, "error ", t.result->error().code(), ": ", t.result->error().message(), "\n");
    }
    if (auto from = t.result->labels().find("forked_from"); from != t.result->labels().end()) {
      std::vector<std::string> reused;
      for (const v1::StepSummary& s : t.result->steps()) {
        if (s.reused()) reused.push_back(s.fan_index() < 0 ? s.step() : absl::StrCat(s.step(), "[", s.fan_index(), "]"));
      }
      auto step = t.result->labels().find("fork_from_step");
      absl::StrAppend(&out, "fork of ", from->second, " from '",
                      step == t.result->labels().end() ? "?" : step->second, "' · reused (no call, no cost): ",
                      reused.empty() ? "-" : absl::StrJoin(reused, ", "), "\n");
    }
  }
  absl::StrAppend(&out, "\n", absl::StrFormat("  %-9s %-16s %3s  %-24s %-12s %-14s %8s %8s %13s %10s  %s\n", "start",
                                              "step", "try", "agent", "model", "worker", "wait", "run",
                                              "tokens in/out", "cost", "outcome"));
  for (const AttemptTrace& a : t.attempts) {
    std::string agent = a.embedding                ? absl::StrCat(a.agent, " (cache lookup)")
                        : !a.answering.empty()     ? absl::StrCat(a.agent, " (answering ", a.answering, ")")
                        : a.fallback_for.empty() ? a.agent
                                                 : absl::StrCat(a.agent, " (for ", a.fallback_for, ")");
    std::string model = !a.model.empty() ? a.model : a.model_tier.empty() ? "-" : "tier " + a.model_tier;
    std::string run = a.latency_ms >= 0 ? absl::StrCat(a.latency_ms, " ms") : Millis(a.started, a.finished);
    std::string outcome = a.outcome;
    if (!a.message.empty()) absl::StrAppend(&outcome, a.retryable ? " (retryable): " : ": ", a.message);
    if (a.heartbeats > 0) absl::StrAppend(&outcome, " · ", a.heartbeats, " heartbeats");
    if (a.model_turns > 1) absl::StrAppend(&outcome, " · ", a.model_turns, " model turns");
    for (const v1::ToolCall& c : a.tool_calls) {
      absl::StrAppend(&outcome, " · tool ", c.name(), " ", c.status(), " ", c.latency_ms(), " ms ", c.bytes(), " B");
    }
    if (a.action) {
      absl::StrAppend(&outcome, " · ", a.action->method(), " ", a.action->host(), a.action->path(), " ",
                      a.action->outcome(), a.action->http_status() ? absl::StrCat(" HTTP ", a.action->http_status()) : "",
                      " effect ", a.action->effect_id());
    }
    absl::StrAppend(&out, absl::StrFormat("  %-9s %-16s %3d  %-24s %-12s %-14s %8s %8s %13s %10s  %s\n",
                                          Offset(a.dispatched, origin), Label(a), a.attempt, agent, model,
                                          a.worker.empty() ? "-" : a.worker, Millis(a.dispatched, a.started), run,
                                          absl::StrCat(a.usage.input_tokens(), "/", a.usage.output_tokens()),
                                          absl::StrFormat("$%.6f", a.cost_usd), outcome));
  }
  if (t.result) {
    bool header = false;
    for (const v1::StepSummary& s : t.result->steps()) {
      if (s.explanation().empty() && !s.cached()) continue;
      if (!header) absl::StrAppend(&out, "\nsteps\n");
      header = true;
      std::string label = s.fan_index() < 0 ? s.step() : absl::StrCat(s.step(), "[", s.fan_index(), "]");
      std::string served = s.semantic_similarity() > 0
                               ? absl::StrFormat("served from the semantic cache (similarity %.3f)", s.semantic_similarity())
                               : std::string("served from the result cache");
      absl::StrAppend(&out, "  ", label, ": ", s.cached() ? served : s.explanation(), "\n");
    }
    header = false;
    for (const v1::StepSummary& s : t.result->steps()) {
      for (const v1::AgentQuestion& q : s.questions()) {
        if (!header) absl::StrAppend(&out, "\nquestions\n");
        header = true;
        std::string label = s.fan_index() < 0 ? s.step() : absl::StrCat(s.step(), "[", s.fan_index(), "]");
        std::string answer = q.timed_out()  ? "no answer in time"
                             : q.answered() ? absl::StrCat(FromValue(q.answer()).dump(), " from ", q.answered_by())
                                            : "waiting for an answer";
        absl::StrAppend(&out, "  ", label, " asked: ", q.question(), "\n    ", answer, "\n");
      }
    }
    for (int i = 0; i < t.result->rescopes_size(); ++i) {
      const v1::Rescope& r = t.result->rescopes(i);
      if (i == 0) absl::StrAppend(&out, "\nre-plans\n");
      std::string label = r.fan_index() < 0 ? r.step() : absl::StrCat(r.step(), "[", r.fan_index(), "]");
      absl::StrAppend(&out, "  ", i + 1, ". ", label, " sent the plan back to ", r.planner(), ": ", r.reason(), "\n");
    }
  }
  for (const std::string& p : t.problems) absl::StrAppend(&out, "unreadable: ", p, "\n");
  return out;
}

const char* TaskStatusName(v1::TaskStatus s) {
  switch (s) {
    case v1::TASK_STATUS_COMPLETED: return "COMPLETED";
    case v1::TASK_STATUS_PARTIAL: return "PARTIAL";
    case v1::TASK_STATUS_BUDGET_EXHAUSTED: return "BUDGET_EXHAUSTED";
    case v1::TASK_STATUS_FAILED: return "FAILED";
    case v1::TASK_STATUS_REJECTED: return "REJECTED";
    case v1::TASK_STATUS_CANCELLED: return "CANCELLED";
    default: return "RUNNING";
  }
}

std::string TraceJson(const TaskTrace& t) {
  auto time = [](const std::optional<absl::Time>& v) -> Json {
    if (!v) return nullptr;
    return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", *v, absl::UTCTimeZone());
  };
  Json j = {{"task_id", t.task_id},   {"found", t.found},          {"workflow", t.workflow},
            {"tenant", t.tenant},     {"trace_id", t.trace_id},    {"submitted", time(t.submitted)},
            {"accepted", time(t.accepted)}, {"finished", time(t.finished)},
            {"status", t.result ? TaskStatusName(t.result->status()) : "RUNNING"}};
  if (t.result && t.result->labels().count("forked_from") > 0) j["forked_from"] = t.result->labels().at("forked_from");
  Json attempts = Json::array();
  for (const AttemptTrace& a : t.attempts) {
    attempts.push_back({{"step", a.step},
                        {"fan_index", a.fan_index},
                        {"attempt", a.attempt},
                        {"agent", a.agent},
                        {"fallback_for", a.fallback_for},
                        {"answering", a.answering},
                        {"model_tier", a.model_tier},
                        {"model", a.model},
                        {"worker", a.worker},
                        {"max_tokens", a.max_tokens},
                        {"dispatched", time(a.dispatched)},
                        {"started", time(a.started)},
                        {"finished", time(a.finished)},
                        {"wait_ms", a.dispatched && a.started ? Json(absl::ToDoubleMilliseconds(*a.started - *a.dispatched))
                                                              : Json(nullptr)},
                        {"latency_ms", a.latency_ms},
                        {"heartbeats", a.heartbeats},
                        {"input_tokens", a.usage.input_tokens()},
                        {"output_tokens", a.usage.output_tokens()},
                        {"cost_usd", a.cost_usd},
                        {"outcome", a.outcome},
                        {"message", a.message},
                        {"retryable", a.retryable}});
    Json& last = attempts.back();
    if (a.model_turns > 0) last["model_turns"] = a.model_turns;
    if (!a.tool_calls.empty()) {
      Json tools = Json::array();
      for (const v1::ToolCall& c : a.tool_calls) {
        tools.push_back({{"name", c.name()}, {"status", c.status()}, {"latency_ms", c.latency_ms()},
                         {"bytes", c.bytes()}, {"turn", c.turn()}, {"arguments_sha256", c.arguments_sha256()}});
      }
      last["tool_calls"] = std::move(tools);
    }
    if (a.action) {
      last["action"] = {{"method", a.action->method()}, {"host", a.action->host()}, {"path", a.action->path()},
                        {"outcome", a.action->outcome()}, {"http_status", a.action->http_status()},
                        {"effect_id", a.action->effect_id()}, {"payload_sha256", a.action->payload_sha256()}};
    }
  }
  j["attempts"] = std::move(attempts);
  if (t.result) {
    j["usage"] = {{"input_tokens", t.result->usage().input_tokens()},
                  {"output_tokens", t.result->usage().output_tokens()},
                  {"cost_usd", t.result->usage().cost_usd()},
                  {"calls", t.result->usage().calls()}};
    if (t.result->has_error()) j["error"] = {{"code", t.result->error().code()}, {"message", t.result->error().message()}};
    Json questions = Json::array();
    for (const v1::StepSummary& s : t.result->steps()) {
      for (const v1::AgentQuestion& q : s.questions()) {
        questions.push_back({{"step", s.step()},
                             {"fan_index", s.fan_index()},
                             {"question", q.question()},
                             {"answered", q.answered()},
                             {"answer", FromValue(q.answer())},
                             {"answered_by", q.answered_by()},
                             {"timed_out", q.timed_out()}});
      }
    }
    j["questions"] = std::move(questions);
    Json rescopes = Json::array();
    for (const v1::Rescope& r : t.result->rescopes()) {
      rescopes.push_back(
          {{"step", r.step()}, {"fan_index", r.fan_index()}, {"planner", r.planner()}, {"reason", r.reason()}});
    }
    j["rescopes"] = std::move(rescopes);
  }
  j["problems"] = t.problems;
  return j.dump();
}

}  // namespace agentfleet
