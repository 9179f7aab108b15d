#include "coordinator/task_engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "google/protobuf/util/time_util.h"
#include "workflow/input.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;
using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

}  // namespace

struct TaskEngine::Instance {
  int attempt = 0;
  v1::StepStatus status = v1::STEP_STATUS_PENDING;
  Json output;
  v1::Usage usage;  // summed over attempts
  std::string model;
  std::string worker;
  int64_t latency_ms = 0;
  v1::Error error;
};

struct TaskEngine::StepRun {
  const StepConfig* config = nullptr;
  const AgentConfig* agent = nullptr;
  size_t waiting_on = 0;  // unfinished dependencies
  bool started = false;
  bool fanned_out = false;
  std::vector<Instance> instances;
  size_t succeeded = 0;
  Json output;  // set when the step is complete
  std::vector<size_t> dependents;
};

struct TaskEngine::Task {
  v1::TaskSubmission submission;
  std::string traceparent;
  const WorkflowConfig* workflow = nullptr;
  Json input;
  std::vector<StepRun> steps;
  absl::flat_hash_map<std::string, size_t> step_index;
  size_t steps_done = 0;
  absl::Time accepted_at;
  v1::Usage usage;
};

TaskEngine::TaskEngine(const FleetConfig* config, const Clock* clock) : config_(config), clock_(clock) {}
TaskEngine::~TaskEngine() = default;

absl::Status TaskEngine::Submit(const v1::TaskSubmission& submission, const std::string& traceparent,
                                Outbox* out) {
  const std::string& id = submission.task_id();
  if (active_.contains(id) || finished_.contains(id)) {
    ++stats_.duplicate_submissions;
    return absl::OkStatus();
  }
  const WorkflowConfig* wf = config_->FindWorkflow(submission.workflow());
  if (wf == nullptr) {
    ++stats_.rejected;
    std::string reason = absl::StrCat("unknown workflow '", submission.workflow(), "'");
    v1::TaskResult r;
    r.set_task_id(id);
    r.set_tenant(submission.tenant());
    r.set_workflow(submission.workflow());
    r.set_status(v1::TASK_STATUS_REJECTED);
    r.mutable_error()->set_code("invalid_submission");
    r.mutable_error()->set_message(reason);
    *r.mutable_submitted_at() = submission.submitted_at();
    *r.mutable_finished_at() = ToProto(clock_->Now());
    *r.mutable_labels() = submission.labels();
    out->results.push_back({std::move(r), traceparent});
    return absl::InvalidArgumentError(reason);
  }
  ++stats_.accepted;
  auto task = std::make_unique<Task>();
  task->submission = submission;
  task->traceparent = traceparent;
  task->workflow = wf;
  task->input = FromStruct(submission.input());
  task->accepted_at = clock_->Now();
  task->steps.resize(wf->steps.size());
  for (size_t i = 0; i < wf->steps.size(); ++i) task->step_index[wf->steps[i].id] = i;
  for (size_t i = 0; i < wf->steps.size(); ++i) {
    StepRun& s = task->steps[i];
    s.config = &wf->steps[i];
    s.agent = config_->FindAgent(s.config->agent);
    s.waiting_on = s.config->depends_on.size();
    for (const auto& dep : s.config->depends_on) task->steps[task->step_index[dep]].dependents.push_back(i);
  }
  Task& t = *task;
  active_[id] = std::move(task);
  StartReadySteps(t, out);
  return absl::OkStatus();
}

void TaskEngine::StartReadySteps(Task& task, Outbox* out) {
  // Iterating by index: StartStep may finish the task (an empty fan-out), which
  // is checked through active_ after each call.
  std::string id = task.submission.task_id();
  for (size_t i = 0; active_.contains(id) && i < task.steps.size(); ++i) {
    StepRun& s = task.steps[i];
    if (!s.started && s.waiting_on == 0) StartStep(task, i, out);
  }
}

void TaskEngine::StartStep(Task& task, size_t step, Outbox* out) {
  StepRun& s = task.steps[step];
  s.started = true;
  if (!s.config->for_each) {
    s.instances.resize(1);
    Dispatch(task, step, -1, out);
    return;
  }
  s.fanned_out = true;
  InputContext ctx;
  ctx.task_input = &task.input;
  ctx.step_output = [&task](const std::string& id) -> const Json* {
    auto it = task.step_index.find(id);
    return it == task.step_index.end() ? nullptr : &task.steps[it->second].output;
  };
  auto list = Resolve(*s.config->for_each, ctx);
  if (!list.ok() || !list->is_array()) {
    FailTask(task, "invalid_input",
             absl::StrCat("step '", s.config->id, "': for_each ",
                          list.ok() ? "is not a list" : std::string(list.status().message())),
             out);
    return;
  }
  s.instances.resize(list->size());
  if (list->empty()) {
    CompleteStep(task, step, out);
    return;
  }
  for (size_t i = 0; i < list->size(); ++i) {
    Dispatch(task, step, static_cast<int>(i), out);
    if (!active_.contains(task.submission.task_id())) return;
  }
}

void TaskEngine::Dispatch(Task& task, size_t step, int fan_index, Outbox* out) {
  StepRun& s = task.steps[step];
  Instance& inst = s.instances[std::max(fan_index, 0)];
  InputContext ctx;
  ctx.task_input = &task.input;
  ctx.step_output = [&task](const std::string& id) -> const Json* {
    auto it = task.step_index.find(id);
    return it == task.step_index.end() ? nullptr : &task.steps[it->second].output;
  };
  Json item;
  if (fan_index >= 0) {
    auto list = Resolve(*s.config->for_each, ctx);
    item = (*list)[fan_index];
    ctx.item = &item;
  }
  auto input = BuildInput(s.config->input, ctx);
  if (!input.ok()) {
    FailTask(task, "invalid_input", absl::StrCat("step '", s.config->id, "': ", input.status().message()), out);
    return;
  }
  ++inst.attempt;
  inst.status = v1::STEP_STATUS_PENDING;
  ++stats_.dispatched;
  absl::Time now = clock_->Now();
  v1::WorkItem w;
  w.set_task_id(task.submission.task_id());
  w.set_step(s.config->id);
  w.set_fan_index(fan_index);
  w.set_attempt(inst.attempt);
  w.set_agent(s.agent->name);
  w.set_model_tier(s.config->model_tier);
  *w.mutable_input() = ToStruct(*input);
  *w.mutable_deadline() = ToProto(now + s.agent->timeout);
  w.set_max_tokens(s.agent->max_tokens);
  w.set_idempotency_key(IdempotencyKey(w.task_id(), w.step(), fan_index, inst.attempt));
  w.set_tenant(task.submission.tenant());
  *w.mutable_dispatched_at() = ToProto(now);
  out->work.push_back({s.agent->name, std::move(w), task.traceparent});
}

void TaskEngine::OnEvent(const v1::WorkEvent& event, Outbox* out) {
  auto it = active_.find(event.task_id());
  if (it == active_.end()) {
    ++stats_.stale_events;
    return;
  }
  Task& task = *it->second;
  auto step_it = task.step_index.find(event.step());
  if (step_it == task.step_index.end()) {
    ++stats_.stale_events;
    return;
  }
  size_t step = step_it->second;
  StepRun& s = task.steps[step];
  int fan = event.fan_index();
  if (!s.started || (s.fanned_out ? (fan < 0 || static_cast<size_t>(fan) >= s.instances.size()) : fan != -1)) {
    ++stats_.stale_events;
    return;
  }
  Instance& inst = s.instances[std::max(fan, 0)];
  bool finished = inst.status == v1::STEP_STATUS_SUCCEEDED || inst.status == v1::STEP_STATUS_FAILED;
  if (event.attempt() != inst.attempt || finished) {
    ++stats_.stale_events;
    return;
  }
  switch (event.kind_case()) {
    case v1::WorkEvent::kReceipt:
      inst.status = v1::STEP_STATUS_RUNNING;
      inst.worker = event.receipt().worker();
      return;
    case v1::WorkEvent::kHeartbeat:
      return;
    case v1::WorkEvent::kResult:
      break;
    default:
      ++stats_.stale_events;
      return;
  }
  const v1::WorkResult& r = event.result();
  double cost = config_->Cost(r.model(), r.usage().input_tokens(), r.usage().output_tokens());
  for (v1::Usage* u : {&inst.usage, &task.usage}) {
    u->set_input_tokens(u->input_tokens() + r.usage().input_tokens());
    u->set_output_tokens(u->output_tokens() + r.usage().output_tokens());
    u->set_cost_usd(u->cost_usd() + cost);
    u->set_calls(u->calls() + 1);
  }
  inst.model = r.model();
  inst.worker = r.worker();
  inst.latency_ms = r.latency_ms();
  if (r.status() == v1::RESULT_STATUS_OK) {
    inst.status = v1::STEP_STATUS_SUCCEEDED;
    inst.output = FromStruct(r.output());
    inst.error.Clear();
    if (++s.succeeded == s.instances.size()) CompleteStep(task, step, out);
    return;
  }
  inst.error = r.error();
  if (r.error().retryable() && inst.attempt < s.agent->max_attempts) {
    ++stats_.retries;
    Dispatch(task, step, fan, out);
    return;
  }
  inst.status = v1::STEP_STATUS_FAILED;
  FailTask(task, r.error().code().empty() ? "step_failed" : r.error().code(),
           absl::StrCat("step '", s.config->id, "'", fan >= 0 ? absl::StrCat("[", fan, "]") : "",
                        " failed after ", inst.attempt, " attempt(s): ", r.error().message()),
           out);
}

void TaskEngine::CompleteStep(Task& task, size_t step, Outbox* out) {
  StepRun& s = task.steps[step];
  if (s.fanned_out) {
    s.output = Json::array();
    for (auto& inst : s.instances) s.output.push_back(inst.output);
  } else {
    s.output = s.instances[0].output;
  }
  ++task.steps_done;
  if (task.steps_done == task.steps.size()) {
    Finish(task, v1::TASK_STATUS_COMPLETED, nullptr, out);
    return;
  }
  for (size_t d : s.dependents) --task.steps[d].waiting_on;
  StartReadySteps(task, out);
}

void TaskEngine::FailTask(Task& task, const std::string& code, const std::string& message,
                          Outbox* out) {
  v1::Error error;
  error.set_code(code);
  error.set_message(message);
  Finish(task, v1::TASK_STATUS_FAILED, &error, out);
}

void TaskEngine::Finish(Task& task, v1::TaskStatus status, const v1::Error* error, Outbox* out) {
  v1::TaskResult r;
  r.set_task_id(task.submission.task_id());
  r.set_tenant(task.submission.tenant());
  r.set_workflow(task.submission.workflow());
  r.set_status(status);
  if (status == v1::TASK_STATUS_COMPLETED) {
    *r.mutable_output() = ToValue(task.steps[task.step_index[task.workflow->output_step]].output);
  }
  if (error) *r.mutable_error() = *error;
  for (const StepRun& s : task.steps) {
    for (size_t i = 0; i < s.instances.size(); ++i) {
      const Instance& inst = s.instances[i];
      v1::StepSummary* sum = r.add_steps();
      sum->set_step(s.config->id);
      sum->set_fan_index(s.fanned_out ? static_cast<int>(i) : -1);
      sum->set_agent(s.agent->name);
      sum->set_model(inst.model);
      sum->set_status(inst.attempt == 0 ? v1::STEP_STATUS_SKIPPED : inst.status);
      sum->set_attempts(inst.attempt);
      *sum->mutable_usage() = inst.usage;
      sum->set_latency_ms(inst.latency_ms);
      if (inst.status == v1::STEP_STATUS_FAILED) *sum->mutable_error() = inst.error;
      sum->set_worker(inst.worker);
    }
  }
  *r.mutable_usage() = task.usage;
  *r.mutable_submitted_at() = task.submission.submitted_at();
  *r.mutable_accepted_at() = ToProto(task.accepted_at);
  *r.mutable_finished_at() = ToProto(clock_->Now());
  *r.mutable_labels() = task.submission.labels();
  out->results.push_back({std::move(r), task.traceparent});
  ++stats_.finished;
  std::string id = task.submission.task_id();
  finished_.insert(id);
  active_.erase(id);  // destroys `task`
}

}  // namespace agentfleet
