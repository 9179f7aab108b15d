// Agent signals: what an agent may send instead of its output, as
// {"_signal": {"type": ..., ...}} (docs/configuration.md, "Agent signals").
//
// needs_info: the instance stops and its question goes to the step's
// answerer — another agent (an ordinary dispatch of that agent, for the same
// instance), or the outside (the instance waits for a named signal, with a
// timeout). With the answer, the asker runs again, the answers so far in its
// input's `_info`. At most max_questions per instance.
//
// rescope: the step's planner (the step itself or one it depends on) and
// every step after it are reset and run again, the planner with the reasons
// in its input's `_rescope`; at most the workflow's max_replans per task.
// Attempts in flight in the reset steps are abandoned: their reservations
// stay held until their late results settle them (what they spent counts)
// or they expire, and the steps' attempt numbers move past them, so no late
// result can pass for a new attempt's.
#include <algorithm>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "common/error_codes.h"
#include "coordinator/task_engine.h"
#include "coordinator/task_engine_internal.h"

namespace agentfleet {

using namespace task_engine_internal;

namespace {

// Questions and reasons longer than this are cut (they live in the task's state).
constexpr size_t kMaxSignalText = 4000;

// `text` cut to at most `max` bytes on a UTF-8 character boundary.
std::string Cut(std::string text, size_t max) {
  if (text.size() <= max) return text;
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  text.resize(end);
  return text + "...";
}

std::string Where(const std::string& step, int fan) {
  return absl::StrCat("step '", step, "'", fan >= 0 ? absl::StrCat("[", fan, "]") : "");
}

}  // namespace

std::string TaskEngine::AnswerSignal(const StepRun& s, int fan) {
  const std::string& name = s.config->signals.needs_info->wait->signal;
  return fan < 0 ? name : absl::StrCat(name, ".", fan);
}

void TaskEngine::OnAgentSignal(Task& task, size_t step, int fan, const Json& signal, Outbox* out) {
  StepRun& s = task.steps[step];
  const StepSignalsConfig& allowed = s.config->signals;
  const std::string agent = AgentOf(s, s.instances[s.Index(fan)]).name;
  auto text = [&](const char* field) -> std::string {
    if (!signal.is_object() || !signal.contains(field) || !signal[field].is_string()) return "";
    return Cut(signal[field].get<std::string>(), kMaxSignalText);
  };
  std::string type = text("type");
  std::string why;
  if (type == "needs_info") {
    std::string question = text("question");
    if (!allowed.needs_info) {
      why = "the step does not take needs_info (signals.needs_info)";
    } else if (question.empty()) {
      why = "needs_info without a question";
    } else {
      AskQuestion(task, step, fan, std::move(question), out);
      return;
    }
  } else if (type == "rescope") {
    std::string reason = text("reason");
    if (allowed.rescope_planner.empty()) {
      why = "the step does not take rescope (signals.rescope)";
    } else if (reason.empty()) {
      why = "rescope without a reason";
    } else {
      Replan(task, step, fan, std::move(reason), out);
      return;
    }
  } else if (type == "delegate") {
    why = "delegate is not a signal: an agent delegates by planning sub-steps (the step's spawn:)";
  } else {
    why = type.empty() ? R"(expected {"type": "needs_info", "question": ...} or {"type": "rescope", "reason": ...})"
                       : absl::StrCat("unknown signal type '", type, "'");
  }
  // Retryable: the agent may answer properly next time.
  ++stats_.invalid_signals;
  if (metrics_) {
    metrics_->AgentSignal(agent, type == "needs_info" || type == "rescope" ? type : "other", "invalid");
  }
  v1::Error error = MakeError(kInvalidSignal, absl::StrCat(Where(s.config->id, fan), ": ", why));
  error.set_retryable(true);
  AttemptFailed(task, step, fan, error, out);
}

void TaskEngine::AskQuestion(Task& task, size_t step, int fan, std::string question, Outbox* out) {
  StepRun& s = task.steps[step];
  Instance& inst = s.instances[s.Index(fan)];
  const NeedsInfoConfig& ni = *s.config->signals.needs_info;
  const std::string asker = AgentOf(s, inst).name;
  if (inst.extra().questions.size() >= static_cast<size_t>(ni.max_questions)) {
    if (metrics_) metrics_->AgentSignal(asker, "needs_info", "exhausted");
    v1::Error error = MakeError(kNeedsInfoExhausted, absl::StrCat(Where(s.config->id, fan), " asked more than its ",
                                                                   ni.max_questions, " question(s): ", question));
    AttemptFailed(task, step, fan, error, out);
    return;
  }
  ++stats_.questions;
  if (metrics_) metrics_->AgentSignal(asker, "needs_info", "asked");
  absl::Time now = clock_->Now();
  v1::AgentQuestion q;
  q.set_question(question);
  *q.mutable_asked_at() = ToTimestamp(now);
  inst.mutable_extra().questions.push_back(std::move(q));
  inst.ClearError();
  inst.attempt_base = inst.attempt;
  if (!ni.agent.empty()) {
    inst.ask_agent = config_->FindAgent(ni.agent);  // validated: it exists
    inst.tier.clear();
    Dispatch(task, step, fan, out);
    return;
  }
  inst.SetStatus(v1::STEP_STATUS_RUNNING);
  inst.wait = Instance::Wait::kAnswer;
  inst.retry_at = now + ni.wait->timeout;
  if (!ni.emit.empty()) {
    // For the people (or systems) who answer: what was asked, and how to answer.
    Json record = {{"task_id", task.id()},
                   {"tenant", task.tenant},
                   {"workflow", task.workflow->name},
                   {"step", s.config->id},
                   {"fan_index", fan},
                   {"agent", asker},
                   {"question", inst.extra().questions.back().question()},
                   {"signal", AnswerSignal(s, fan)},
                   {"asked_at", absl::FormatTime(absl::RFC3339_full, now, absl::UTCTimeZone())},
                   {"answer_by", absl::FormatTime(absl::RFC3339_full, inst.retry_at, absl::UTCTimeZone())}};
    out->records.push_back({ni.emit, task.id(), record.dump(), {{"content-type", "application/json"}}});
  }
}

void TaskEngine::AnswerQuestion(Task& task, size_t step, int fan, Json answer, const std::string& by, bool timed_out,
                                Outbox* out) {
  StepRun& s = task.steps[step];
  Instance& inst = s.instances[s.Index(fan)];
  v1::AgentQuestion& q = inst.mutable_extra().questions.back();
  *q.mutable_answer() = ToValue(answer);
  q.set_answered(true);
  q.set_answered_by(by);
  q.set_timed_out(timed_out);
  *q.mutable_answered_at() = ToTimestamp(clock_->Now());
  // The asker again, its answers in its input; its attempts count afresh.
  inst.ask_agent = nullptr;
  inst.wait = Instance::Wait::kNone;
  inst.retry_at = absl::InfiniteFuture();
  inst.tier.clear();
  inst.attempt_base = inst.attempt;
  inst.SetStatus(v1::STEP_STATUS_PENDING);
  Dispatch(task, step, fan, out);
}

void TaskEngine::AnswerTimedOut(Task& task, size_t step, int fan, Outbox* out) {
  StepRun& s = task.steps[step];
  Instance& inst = s.instances[s.Index(fan)];
  const WaitConfig& wait = *s.config->signals.needs_info->wait;
  if (!wait.fail_on_timeout) {
    AnswerQuestion(task, step, fan, Json(), "", /*timed_out=*/true, out);
    return;
  }
  inst.wait = Instance::Wait::kNone;
  inst.retry_at = absl::InfiniteFuture();
  inst.mutable_extra().questions.back().set_timed_out(true);
  v1::Error error = MakeError(kWaitTimeout, absl::StrCat("no signal '", AnswerSignal(s, fan), "' answered its question within ",
                                                         absl::FormatDuration(wait.timeout)));
  AttemptFailed(task, step, fan, error, out);
}

bool TaskEngine::DeliverAnswer(Task& task, const v1::TaskSignal& signal, SignalOutcome* outcome, Outbox* out) {
  const std::string& name = signal.name();
  for (size_t i = 0; i < task.steps.size(); ++i) {
    StepRun& s = task.steps[i];
    const std::optional<NeedsInfoConfig>& ni = s.config->signals.needs_info;
    if (!ni || !ni->wait) continue;
    const std::string& base = ni->wait->signal;
    if (name != base && !absl::StartsWith(name, base + ".")) continue;
    for (size_t k = 0; k < s.instances.size(); ++k) {
      int fan = s.Fan(k);
      if (!s.instances[k].waiting(Instance::Wait::kAnswer) || AnswerSignal(s, fan) != name) continue;
      AnswerQuestion(task, i, fan, signal.has_payload() ? FromValue(signal.payload()) : Json(),
                     signal.sender().empty() ? "signal" : signal.sender(), /*timed_out=*/false, out);
      *outcome = SignalOutcome::kDelivered;
      return true;
    }
    // No open question under that name: answered already, timed out, or
    // never asked. Not kept: an answer cannot come before its question.
    *outcome = SignalOutcome::kDuplicate;
    return true;
  }
  return false;
}

void TaskEngine::Replan(Task& task, size_t step, int fan, std::string reason, Outbox* out) {
  StepRun& s = task.steps[step];
  const std::string agent = AgentOf(s, s.instances[s.Index(fan)]).name;
  const std::string planner = s.config->signals.rescope_planner;
  const int max = task.workflow->max_replans;
  if (static_cast<int>(task.extra().rescopes.size()) >= max) {
    if (metrics_) metrics_->AgentSignal(agent, "rescope", "exhausted");
    v1::Error error = MakeError(kReplansExhausted, absl::StrCat(Where(s.config->id, fan), " asked for a rescope after ",
                                                                 task.extra().rescopes.size(), " re-plan(s) (max_replans ", max,
                                                                 "): ", reason));
    AttemptFailed(task, step, fan, error, out);
    return;
  }
  ++stats_.replans;
  if (metrics_) {
    metrics_->AgentSignal(agent, "rescope", "replanned");
    metrics_->Replan(task.workflow->name);
  }
  v1::Rescope rescope;
  rescope.set_step(s.config->id);
  rescope.set_fan_index(fan);
  rescope.set_reason(std::move(reason));
  rescope.set_planner(planner);
  *rescope.mutable_at() = ToTimestamp(clock_->Now());
  task.mutable_extra().rescopes.push_back(std::move(rescope));
  // The planner and every step after it (the asking step is one of them).
  std::vector<bool> reset(task.steps.size(), false);
  std::vector<size_t> todo = {task.step_index->at(planner)};  // validated: it exists
  reset[todo[0]] = true;
  while (!todo.empty()) {
    size_t i = todo.back();
    todo.pop_back();
    for (size_t d : task.steps[i].dependents) {
      if (!reset[d]) {
        reset[d] = true;
        todo.push_back(d);
      }
    }
  }
  for (size_t i = 0; i < task.steps.size(); ++i) {
    if (reset[i]) ResetStep(task, i, out);
  }
  // What the reset steps wait for now: their dependencies that are not complete.
  for (size_t i = 0; i < task.steps.size(); ++i) {
    if (!reset[i]) continue;
    StepRun& r = task.steps[i];
    r.waiting_on = 0;
    for (const std::string& dep : r.config->depends_on) r.waiting_on += !task.steps[task.step_index->at(dep)].complete;
  }
  StartReadySteps(task, out);
}

void TaskEngine::ResetStep(Task& task, size_t step, Outbox* out) {
  StepRun& s = task.steps[step];
  if (!s.started) return;
  int next_offset = s.attempt_offset;
  for (size_t i = 0; i < s.instances.size(); ++i) {
    const Instance& inst = s.instances[i];
    next_offset = std::max(next_offset, s.attempt_offset + inst.attempt);
    for (const Instance::Reservation& r : inst.reservations) {
      task.mutable_extra().abandoned.push_back({s.config->id, s.Fan(i), s.attempt_offset + r.attempt, &AgentOf(s, inst), r, ""});
    }
    if (inst.waiting(Instance::Wait::kChild)) {
      // Held until the cancelled child's result says what it spent.
      task.mutable_extra().abandoned.push_back({s.config->id, s.Fan(i), 0, nullptr, {0, inst.extra().child_budget, absl::InfiniteFuture()},
                                inst.extra().child_task_id});
    }
    CancelChild(task, inst, absl::StrCat("its parent task ", task.id(), " re-planned from step '",
                                         task.extra().rescopes.back().planner(), "'"),
                out);
  }
  if (s.complete) --task.steps_done;
  s.started = s.complete = s.fanned_out = s.skipped = false;
  s.instances.clear();
  s.succeeded = s.failed = 0;
  s.output = Json();
  s.attempt_offset = next_offset;
}

bool TaskEngine::SettleAbandoned(Task& task, const v1::WorkEvent& event, Outbox* out) {
  if (!event.has_result()) return false;  // a receipt or heartbeat of any old attempt is stale anyway
  auto it = std::find_if(task.extra().abandoned.begin(), task.extra().abandoned.end(), [&](const Task::Abandoned& a) {
    return a.on_tenant_ledger() && a.step == event.step() && a.fan == event.fan_index() &&
           a.attempt == event.attempt();
  });
  if (it == task.extra().abandoned.end()) return false;
  ++stats_.stale_events;
  AddReserved(task, it->reservation.spend, -1);
  const AgentConfig& agent = *it->agent;
  task.mutable_extra().abandoned.erase(it);
  // What the abandoned attempt spent is the task's, though no step has it.
  Instance nobody;
  CountUsage(task, agent, nobody, event.result());
  ResumeBudgetWaits(task, out);
  if (!task.finished) Touch(task);
  return true;
}

void TaskEngine::AddSignalInputs(const Task& task, const StepRun& s, const Instance& inst, Json* input) const {
  if (inst.extra().questions.empty() && task.extra().rescopes.empty()) return;  // the common case: nothing to add
  Json info = Json::array();
  for (const v1::AgentQuestion& q : inst.extra().questions) {
    if (!q.answered()) continue;
    info.push_back({{"question", q.question()}, {"answer", FromValue(q.answer())}, {"timed_out", q.timed_out()}});
  }
  Json reasons = Json::array();
  if (inst.extra().spawn_agent == nullptr) {
    for (const v1::Rescope& r : task.extra().rescopes) {
      if (r.planner() == s.config->id) reasons.push_back({{"step", r.step()}, {"reason", r.reason()}});
    }
  }
  if (!info.empty() || !reasons.empty()) {
    if (!input->is_object()) *input = Json{{"input", std::move(*input)}};
    if (!info.empty()) (*input)["_info"] = std::move(info);
    if (!reasons.empty()) (*input)["_rescope"] = std::move(reasons);
  }
  if (inst.ask_agent != nullptr) {
    *input = Json{{"question", inst.extra().questions.back().question()}, {"step", s.config->id}, {"input", std::move(*input)}};
  }
}

}  // namespace agentfleet
