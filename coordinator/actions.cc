// Actions (issue 19): the coordinator's part. An action step is dispatched
// like an agent step (its "agent" is the action, served by workers through
// the ActionProvider), with three differences made here and in
// task_engine.cc:
//  - every attempt of a step instance carries the same effect id, derived
//    from task, step and fan index (codec EffectId), so a retry after a
//    timeout, a worker crash or a coordinator takeover repeats the key, not
//    the effect;
//  - an outcome nobody saw (a timeout of the attempt, a worker that shut
//    down mid-request) under on_unknown: stop fails the step with
//    outcome_unknown instead of retrying: the task stops for a human;
//  - each dispatch and each outcome taken is an audit record, published in
//    the transaction that records the decision (Outbox::audit).
// Actions cost no tokens; they are never dispatched for a task that has
// ended (cancelled, failed) or that has spent its budget (PlanAttempt).
#include <string>

#include "absl/strings/str_cat.h"
#include "codec/audit_chain.h"
#include "codec/codec.h"
#include "common/error_codes.h"
#include "coordinator/task_engine.h"
#include "coordinator/task_engine_internal.h"
#include "safety/injection.h"
#include "workflow/input.h"

namespace agentfleet {

using namespace task_engine_internal;

namespace {

v1::AuditRecord BaseRecord(const v1::TaskSubmission& task, const std::string& step, int fan, int attempt,
                           const std::string& action, absl::Time at) {
  v1::AuditRecord r;
  *r.mutable_at() = ToTimestamp(at);
  r.set_task_id(task.task_id());
  r.set_tenant(task.tenant());
  r.set_workflow(task.workflow());
  r.set_step(step);
  r.set_fan_index(fan);
  r.set_attempt(attempt);
  r.set_action(action);
  r.set_effect_id(EffectId(task.task_id(), step, fan));
  return r;
}

}  // namespace

void TaskEngine::AuditDispatch(const Task& task, const StepRun& s, int fan, const v1::WorkItem& item, Outbox* out) {
  v1::AuditRecord r = BaseRecord(task.Submission(), s.config->id, fan, item.attempt(), item.agent(), clock_->Now());
  r.set_kind(v1::AuditRecord::KIND_ACTION_DISPATCHED);
  const ActionConfig& action = *config_->FindAgent(item.agent())->action;
  r.set_method(action.method);
  r.set_host(action.host);
  r.set_decision("dispatched");
  out->audit.push_back({task.partition, std::move(r)});
}

void TaskEngine::AuditOutcome(const Task& task, const StepRun& s, int fan, int attempt, const v1::WorkResult* result,
                              const v1::Error* error, absl::string_view decision, Outbox* out) {
  const Instance& inst = s.instances[s.Index(fan)];
  const AgentConfig& agent = AgentOf(s, inst);
  v1::AuditRecord r = BaseRecord(task.Submission(), s.config->id, fan, attempt, agent.name, clock_->Now());
  r.set_kind(v1::AuditRecord::KIND_ACTION_OUTCOME);
  r.set_decision(std::string(decision));
  r.set_method(agent.action->method);
  r.set_host(agent.action->host);
  if (result != nullptr) FillFromResult(*result, &r);
  if (error != nullptr) {
    // The coordinator's own view: it gave up waiting for the attempt.
    r.set_worker(inst.worker);
    r.set_outcome("unknown");
    r.set_error_code(error->code());
  }
  if (metrics_) metrics_->Action(agent.name, r.outcome(), r.decision());
  out->audit.push_back({task.partition, std::move(r)});
}

const char* TaskEngine::ActionDecision(const Task& task, const Instance& inst) {
  switch (inst.status) {
    case v1::STEP_STATUS_SUCCEEDED:
      return "succeeded";
    case v1::STEP_STATUS_FAILED:
      if (inst.extra().error.code() == kOutcomeUnknown) return "stopped";
      return task.finished ? "failed_task" : "failed";
    default:
      return task.finished ? "task_ended" : "retry";
  }
}

v1::Error TaskEngine::ActionError(const AgentConfig& agent, const v1::Error& error) {
  if (agent.action == nullptr || agent.action->on_unknown != ActionConfig::OnUnknown::kStop) return error;
  if (error.code() != kTimeout && error.code() != kWorkerShutdown && error.code() != kOutcomeUnknown) return error;
  v1::Error unknown = error;
  unknown.set_code(kOutcomeUnknown);
  unknown.set_retryable(false);
  unknown.set_message(absl::StrCat("the action may or may not have been applied (", error.code(), ": ",
                                   error.message(), "); stopped for a human (on_unknown: stop)"));
  return unknown;
}

namespace {

// Every string of `v` (values, not keys), with its JSON path.
void Strings(const Json& v, const std::string& path, std::vector<std::pair<std::string, std::string>>* out) {
  if (v.is_string()) {
    out->emplace_back(path, v.get<std::string>());
  } else if (v.is_object()) {
    for (const auto& [k, x] : v.items()) Strings(x, path + "." + k, out);
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) Strings(v[i], absl::StrCat(path, "[", i, "]"), out);
  }
}

}  // namespace

void TaskEngine::RunScreen(Task& task, size_t step, Outbox* out) {
  StepRun& s = task.steps[step];
  Instance& inst = s.instances[0];
  inst.dispatched_at = clock_->Now();
  auto input = agentfleet::BuildInput(s.config->input, ContextFor(task));
  if (!input.ok()) {
    FailTask(task, "invalid_input", absl::StrCat("step '", s.config->id, "': ", input.status().message()), out);
    return;
  }
  std::vector<std::pair<std::string, std::string>> texts;
  Strings(*input, "$", &texts);
  Json findings = Json::array();
  for (const auto& [path, text] : texts) {
    for (const InjectionFinding& f : DetectInjection(text).findings) {
      findings.push_back({{"field", path}, {"rule", f.rule}, {"language", f.language}, {"via", f.via}});
    }
  }
  bool flagged = !findings.empty();
  if (flagged) ++stats_.screens_flagged;
  if (metrics_) metrics_->Screen(task.workflow->name, flagged);
  std::string note = flagged ? absl::StrCat("screen: ", findings.size(), " injection finding(s), first ",
                                            findings[0]["rule"].get<std::string>(), " in ",
                                            findings[0]["field"].get<std::string>())
                             : "";
  EndWait(task, step, Json{{"flagged", flagged}, {"findings", std::move(findings)}}, note, out);
}

}  // namespace agentfleet
