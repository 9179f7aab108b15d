#include "coordinator/task_engine.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "codec/codec.h"
#include "common/error_codes.h"
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

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixNanos(TimeUtil::TimestampToNanoseconds(t));
}

// Time a finished result may still arrive after an attempt's own timeout
// (the worker enforces the timeout; this covers delivery).
constexpr absl::Duration kCloseGrace = absl::Seconds(5);

// The one place a result starts: what every result carries, from its
// submission (id, tenant, workflow, labels, submitted_at), with its status,
// error (if any) and the time it finished. Callers add what they know
// besides: acceptance, usage, steps, output.
v1::TaskResult NewResult(const v1::TaskSubmission& submission, v1::TaskStatus status, const v1::Error* error,
                         absl::Time finished) {
  v1::TaskResult r;
  r.set_task_id(submission.task_id());
  r.set_tenant(submission.tenant());
  r.set_workflow(submission.workflow());
  r.set_status(status);
  if (error) *r.mutable_error() = *error;
  *r.mutable_submitted_at() = submission.submitted_at();
  *r.mutable_finished_at() = ToProto(finished);
  *r.mutable_labels() = submission.labels();
  return r;
}

v1::Error MakeError(const std::string& code, const std::string& message) {
  v1::Error e;
  e.set_code(code);
  e.set_message(message);
  return e;
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
  absl::Time dispatched_at = absl::InfinitePast();
  absl::Time schedule_deadline = absl::InfiniteFuture();
  absl::Time heartbeat_deadline = absl::InfiniteFuture();
  absl::Time close_deadline = absl::InfiniteFuture();
  absl::Time retry_at = absl::InfiniteFuture();
  std::string tier;     // of the latest attempt (a budget may move it to a cheaper one)
  int max_tokens = 0;   // the latest attempt's cap (a budget may lower it)
  struct Reservation {
    int attempt = 0;
    Spend spend;
    absl::Time expires = absl::InfiniteFuture();
  };
  std::vector<Reservation> reservations;  // attempts that may still spend
  bool budget_wait = false;  // waiting for budget to be released before dispatch
  bool tenant_wait = false;  // held by its tenant's exhausted budget until retry_at
  // The fallback, once the instance moved to it (at attempt fallback_from).
  int fallback_from = 0;
  const AgentConfig* fallback_agent = nullptr;  // another agent
  std::string fallback_tier;                    // or another tier of the step's agent
  std::string note;                             // why the instance is degraded
  bool in_fallback() const { return fallback_agent != nullptr || !fallback_tier.empty(); }
  bool cached = false;      // served from the result cache
  // A sub-step its step's agent asked for (spawn): its agent and input.
  const AgentConfig* spawn_agent = nullptr;
  Json spawn_input;
  bool rate_wait = false;   // waiting in a quota's queue
  uint64_t rate_seq = 0;    // its place in that queue
  int64_t rate_tokens = 0;  // the tokens it needs from the quota
  std::string cache_input;  // the canonical input of the attempt in flight, for caching its output

  bool done() const { return status == v1::STEP_STATUS_SUCCEEDED || status == v1::STEP_STATUS_FAILED; }
  void DisarmAttempt() {
    schedule_deadline = heartbeat_deadline = close_deadline = absl::InfiniteFuture();
  }
  absl::Time NextTimer() const {
    absl::Time next = absl::InfiniteFuture();
    for (const Reservation& r : reservations) next = std::min(next, r.expires);
    if (tenant_wait) return std::min(next, retry_at);
    if (done() || attempt == 0) return next;
    return std::min({next, schedule_deadline, heartbeat_deadline, close_deadline, retry_at});
  }
  // Removes the reservation of `attempt_number` and returns it; nullopt if
  // there was none.
  std::optional<Spend> Release(int attempt_number) {
    auto it = std::find_if(reservations.begin(), reservations.end(),
                           [&](const Reservation& r) { return r.attempt == attempt_number; });
    if (it == reservations.end()) return std::nullopt;
    Spend spend = it->spend;
    reservations.erase(it);
    return spend;
  }
};

struct TaskEngine::StepRun {
  const StepConfig* config = nullptr;
  const AgentConfig* agent = nullptr;
  size_t waiting_on = 0;  // unfinished dependencies
  bool started = false;
  bool complete = false;
  bool fanned_out = false;
  std::vector<Instance> instances;
  size_t succeeded = 0;
  size_t failed = 0;  // instances of an optional step that failed for good
  Json output;  // set when the step is complete
  std::vector<size_t> dependents;

  // Instance index <-> the fan_index of its work items: element i of a
  // fanned-out step is fan i; a plain step's one instance is fan -1; a
  // spawning step's own call is fan -1 (instance 0) and its sub-step i is
  // fan i (instance i + 1).
  bool spawns() const { return config->spawn.has_value(); }
  size_t Index(int fan) const { return fanned_out ? fan : spawns() ? fan + 1 : 0; }
  int Fan(size_t index) const {
    return fanned_out ? static_cast<int>(index) : spawns() ? static_cast<int>(index) - 1 : -1;
  }
  bool ValidFan(int fan) const {
    if (fanned_out) return fan >= 0 && static_cast<size_t>(fan) < instances.size();
    if (spawns()) return fan >= -1 && static_cast<size_t>(fan + 1) < instances.size();
    return fan == -1;
  }
};

struct TaskEngine::Task {
  v1::TaskSubmission submission;
  std::string traceparent;
  std::string parent_traceparent;
  int32_t partition = 0;
  const WorkflowConfig* workflow = nullptr;
  Json input;
  std::vector<StepRun> steps;
  absl::flat_hash_map<std::string, size_t> step_index;
  size_t steps_done = 0;
  absl::Time accepted_at;
  absl::Time deadline = absl::InfiniteFuture();
  v1::Usage usage;
  Limits limits;
  absl::Time armed = absl::InfiniteFuture();  // the entry in timers_
  bool kick = false;  // restored with ready steps not started: start them at the next Tick
  bool kick_budget = false;  // restored with instances waiting for budget: retry them at the next Tick
  bool kick_rate = false;    // restored with instances waiting for a quota: queue them at the next Tick
  bool degraded = false;  // an optional step failed or a fallback served: the task ends PARTIAL
  // Finish() ran: the task has its result and is out of active_; nothing may
  // dispatch, arm timers or write state for it any more.
  bool finished = false;

  const std::string& id() const { return submission.task_id(); }
};

TaskEngine::TaskEngine(const FleetConfig* config, const Clock* clock, uint64_t seed)
    : config_(config), clock_(clock), rng_(seed), breakers_(config, ""), cache_(config), rate_(config) {
  rate_.SetShare(1.0, clock->Now());
}
TaskEngine::~TaskEngine() = default;

void TaskEngine::FreeFinished() { retired_.clear(); }

std::unique_ptr<TaskEngine::Task> TaskEngine::NewTask(const v1::TaskSubmission& submission,
                                                      const WorkflowConfig* wf,
                                                      const std::string& traceparent,
                                                      int32_t partition) {
  auto task = std::make_unique<Task>();
  task->submission = submission;
  task->traceparent = traceparent;
  task->partition = partition;
  task->workflow = wf;
  task->input = FromStruct(submission.input());
  task->limits = Limits::For(wf->budget, submission.budget());
  task->steps.resize(wf->steps.size());
  for (size_t i = 0; i < wf->steps.size(); ++i) task->step_index[wf->steps[i].id] = i;
  for (size_t i = 0; i < wf->steps.size(); ++i) {
    StepRun& s = task->steps[i];
    s.config = &wf->steps[i];
    s.agent = config_->FindAgent(s.config->agent);
    s.waiting_on = s.config->depends_on.size();
    for (const auto& dep : s.config->depends_on) task->steps[task->step_index[dep]].dependents.push_back(i);
  }
  return task;
}

absl::Status TaskEngine::Submit(const v1::TaskSubmission& submission, const std::string& traceparent,
                                int32_t partition, Outbox* out, const std::string& parent_traceparent) {
  FreeFinished();
  const std::string& id = submission.task_id();
  if (active_.contains(id) || finished_.contains(id)) {
    ++stats_.duplicate_submissions;
    return absl::OkStatus();
  }
  const WorkflowConfig* wf = config_->FindWorkflow(submission.workflow());
  if (wf == nullptr) {
    ++stats_.rejected;
    std::string reason = absl::StrCat("unknown workflow '", submission.workflow(), "'");
    Reject(submission, traceparent, "invalid_submission", reason, partition, out);
    return absl::InvalidArgumentError(reason);
  }
  if (const TenantConfig* tenant = config_->FindTenant(submission.tenant());
      tenant && tenant->on_exhausted == TenantConfig::OnExhausted::kReject && TenantExhausted(submission, partition)) {
    ++stats_.rejected;
    ++stats_.tenant_rejected;
    std::string reason = absl::StrCat("tenant '", submission.tenant(), "' has spent its budget for this ",
                                      PeriodName(tenant->period));
    Reject(submission, traceparent, "tenant_budget_exhausted", reason, partition, out);
    return absl::ResourceExhaustedError(reason);
  }
  ++stats_.accepted;
  if (metrics_) metrics_->TaskAccepted(submission.workflow());
  std::unique_ptr<Task> task = NewTask(submission, wf, traceparent, partition);
  task->parent_traceparent = parent_traceparent;
  absl::Time now = clock_->Now();
  task->accepted_at = now;
  task->deadline = now + wf->deadline;
  if (submission.has_deadline()) task->deadline = std::min(task->deadline, FromProto(submission.deadline()));
  Task& t = *task;
  active_[id] = std::move(task);
  StartReadySteps(t, out);
  if (!t.finished) Touch(t);
  return absl::OkStatus();
}

void TaskEngine::Reject(const v1::TaskSubmission& submission, const std::string& traceparent, const std::string& code,
                        const std::string& reason, int32_t partition, Outbox* out) {
  // REJECTED is the id's one result: a resubmission under it is a duplicate
  // (found by fuzz/coordinator_input_fuzzer: a rejected id resubmitted with
  // a valid workflow ran and got a second result).
  Remember(submission.task_id(), clock_->Now(), partition);
  // Never accepted: no accepted_at, no usage.
  v1::Error error = MakeError(code, reason);
  out->results.push_back(
      {NewResult(submission, v1::TASK_STATUS_REJECTED, &error, clock_->Now()), traceparent, /*parent_traceparent=*/""});
}

void TaskEngine::StartReadySteps(Task& task, Outbox* out) {
  // Iterating by index: StartStep may finish the task (an empty fan-out, a bad
  // input), which is checked before each step.
  for (size_t i = 0; !task.finished && i < task.steps.size(); ++i) {
    StepRun& s = task.steps[i];
    if (!s.started && s.waiting_on == 0) StartStep(task, i, out);
  }
}

InputContext TaskEngine::ContextFor(const Task& task) {
  InputContext ctx;
  ctx.task_input = &task.input;
  ctx.step_output = [&task](const std::string& id) -> const Json* {
    auto it = task.step_index.find(id);
    return it == task.step_index.end() ? nullptr : &task.steps[it->second].output;
  };
  ctx.step_failed = [&task](const std::string& id) {
    auto it = task.step_index.find(id);
    return it != task.step_index.end() && !task.steps[it->second].fanned_out && task.steps[it->second].failed > 0;
  };
  return ctx;
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
  InputContext ctx = ContextFor(task);
  auto list = Resolve(*s.config->for_each, ctx);
  if (list.ok() && list->is_null()) *list = Json::array();  // over a failed optional step: nothing to do
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
  for (size_t i = 0; !task.finished && i < list->size(); ++i) Dispatch(task, step, static_cast<int>(i), out);
}

// One dispatch of a step instance, and what its checks learn on the way.
struct TaskEngine::DispatchAttempt {
  Task& task;
  size_t step;
  int fan_index;
  StepRun& s;
  Instance& inst;
  const AgentConfig& agent;
  std::string base_tier;  // the tier before any budget downgrade
  std::string tier;       // the tier of the instance's latest attempt, or base_tier
  Json input;
  size_t input_bytes = 0;
  AttemptPlan plan;
};

// The checks a dispatch passes, in order. Each either lets it go on (true)
// or has settled the instance for now (false): it waits (for budget, its
// tenant, a quota), was served (the cache), failed its attempt (an open
// breaker) or ended the task (a bad input, an exhausted budget).
const TaskEngine::DispatchCheck TaskEngine::kDispatchChecks[] = {
    &TaskEngine::BuildInput,      &TaskEngine::CheckMaxSteps,      &TaskEngine::ServeFromCache,
    &TaskEngine::CheckTaskBudget, &TaskEngine::CheckTenantBudget, &TaskEngine::CheckQuota,
    &TaskEngine::CheckBreaker,
};

void TaskEngine::Dispatch(Task& task, size_t step, int fan_index, Outbox* out) {
  StepRun& s = task.steps[step];
  Instance& inst = s.instances[s.Index(fan_index)];
  const AgentConfig& agent = AgentOf(s, inst);
  std::string base_tier = inst.spawn_agent != nullptr && !inst.in_fallback() ? std::string("default")
                          : !inst.in_fallback()                               ? s.config->model_tier
                          : inst.fallback_tier.empty() ? std::string("default")
                                                       : inst.fallback_tier;
  std::string tier = inst.tier.empty() ? base_tier : inst.tier;
  DispatchAttempt a{task, step, fan_index, s, inst, agent, std::move(base_tier), std::move(tier), Json(), 0, AttemptPlan()};
  for (DispatchCheck check : kDispatchChecks) {
    if (!(this->*check)(a, out)) return;
  }
  SendWorkItem(a, out);
}

bool TaskEngine::BuildInput(DispatchAttempt& a, Outbox* out) {
  InputContext ctx = ContextFor(a.task);
  Json item;
  if (a.inst.spawn_agent != nullptr) {
    item = a.inst.spawn_input;  // a sub-step: its input came from the plan
  } else if (a.fan_index >= 0) {
    auto list = Resolve(*a.s.config->for_each, ctx);
    if (!list.ok() || !list->is_array() || static_cast<size_t>(a.fan_index) >= list->size()) {
      FailTask(a.task, "invalid_input", absl::StrCat("step '", a.s.config->id, "': for_each list changed"), out);
      return false;
    }
    item = (*list)[a.fan_index];
    ctx.item = &item;
  }
  auto input = a.inst.spawn_agent != nullptr ? absl::StatusOr<Json>(item) : agentfleet::BuildInput(a.s.config->input, ctx);
  if (!input.ok()) {
    FailTask(a.task, "invalid_input", absl::StrCat("step '", a.s.config->id, "': ", input.status().message()), out);
    return false;
  }
  a.input = *std::move(input);
  a.input_bytes = a.input.dump().size();
  return true;
}

// A new step instance must fit the task's max_steps.
bool TaskEngine::CheckMaxSteps(DispatchAttempt& a, Outbox* out) {
  const Limits& limits = a.task.limits;
  if (a.inst.attempt == 0 && !a.inst.budget_wait && !a.inst.rate_wait && limits.max_steps > 0 &&
      StepsStarted(a.task) >= limits.max_steps) {
    ExhaustBudget(a.task, absl::StrCat("max_steps ", limits.max_steps, ": step '", a.s.config->id, "'",
                                       a.fan_index >= 0 ? absl::StrCat("[", a.fan_index, "]") : "",
                                       " would be one more"),
                  out);
    return false;
  }
  return true;
}

// A cached output for this exact input serves the instance: no call, no cost.
bool TaskEngine::ServeFromCache(DispatchAttempt& a, Outbox* out) {
  if (a.agent.cache_ttl <= absl::ZeroDuration()) return true;
  std::string canonical = CanonicalJson(a.input);
  std::string model = a.agent.models.at(a.base_tier);
  const Json* hit = cache_.Find(a.agent, model, canonical, clock_->Now());
  if (hit == nullptr) {
    a.inst.cache_input = std::move(canonical);
    return true;
  }
  ++stats_.cache_hits;
  if (metrics_) metrics_->CacheHit(a.agent.name);
  Instance& inst = a.inst;
  inst.status = v1::STEP_STATUS_SUCCEEDED;
  inst.output = *hit;
  inst.cached = true;
  inst.model = model;
  inst.error.Clear();
  inst.budget_wait = false;
  inst.retry_at = absl::InfiniteFuture();
  inst.DisarmAttempt();
  if (inst.in_fallback()) a.task.degraded = true;
  if (++a.s.succeeded + a.s.failed == a.s.instances.size()) CompleteStep(a.task, a.step, out);
  return false;
}

// The task's budget: every attempt must be affordable, its worst case
// reserved, its max_tokens capped (coordinator/budget.h).
bool TaskEngine::CheckTaskBudget(DispatchAttempt& a, Outbox* out) {
  a.plan = PlanAttempt(*config_, a.agent, a.base_tier, a.input_bytes, a.task.limits, Spent(a.task), Committed(a.task));
  if (!a.plan.affordable) {
    if (HasReservations(a.task)) {
      // Outstanding attempts may settle for less than their worst case.
      a.inst.budget_wait = true;
      a.inst.retry_at = absl::InfiniteFuture();
      a.inst.DisarmAttempt();
      return false;
    }
    ExhaustBudget(a.task, a.plan.why_not, out);
    return false;
  }
  a.inst.budget_wait = false;
  return true;
}

// The tenant's budget: this partition's slice of it must pay too.
bool TaskEngine::CheckTenantBudget(DispatchAttempt& a, Outbox* out) {
  if (const TenantConfig* tenant = config_->FindTenant(a.task.submission.tenant())) {
    Ledger& ledger = LedgerOf(a.task, *tenant);
    Limits slice;
    slice.max_cost_usd = tenant->max_cost_usd / config_->kafka.partitions;
    slice.max_tokens = tenant->max_tokens / config_->kafka.partitions;
    slice.downgrade_at = 2;  // the tenant's budget does not change tiers
    Spend used{ledger.settled.tokens + ledger.reserved.tokens, ledger.settled.cost_usd + ledger.reserved.cost_usd};
    AttemptPlan within = PlanAttempt(*config_, a.agent, a.plan.tier, a.input_bytes, slice, ledger.settled, used);
    if (!within.affordable) {
      std::string why = absl::StrCat("tenant '", a.task.submission.tenant(), "' has spent its budget for this ",
                                     PeriodName(tenant->period), " (", within.why_not, ")");
      bool in_flight = ledger.reserved.tokens > 0 || ledger.reserved.cost_usd > 0;
      if (in_flight || tenant->on_exhausted == TenantConfig::OnExhausted::kHold) {
        // Calls in flight may settle for less than their worst case: wait for
        // them (and, holding, for the next period at the latest).
        if (!a.inst.tenant_wait) ++stats_.tenant_held;
        a.inst.tenant_wait = true;
        a.inst.retry_at = PeriodEnd(tenant->period, clock_->Now());
        a.inst.DisarmAttempt();
        tenant_waiters_[{a.task.submission.tenant(), a.task.partition}].insert({a.task.id(), a.step, a.fan_index});
        return false;
      }
      if (tenant->on_exhausted == TenantConfig::OnExhausted::kReject) {
        ++stats_.tenant_rejected;
        ExhaustBudget(a.task, why, out);
        return false;
      }
    }
    if (within.max_tokens < a.plan.max_tokens) a.plan = within;
  }
  a.inst.tenant_wait = false;
  return true;
}

// The provider's quota, split between the replicas; interactive work first.
bool TaskEngine::CheckQuota(DispatchAttempt& a, Outbox* out) {
  std::string quota = rate_.Key(a.agent.provider, a.plan.model);
  return quota.empty() ||
         TakeQuota(a.task, a.step, a.fan_index, quota, static_cast<int64_t>(a.input_bytes / 4) + a.plan.max_tokens);
}

// An open circuit breaker: the fallback, or fail fast.
bool TaskEngine::CheckBreaker(DispatchAttempt& a, Outbox* out) {
  std::string open;
  if (breakers_.Allow(a.agent, a.plan.model, clock_->Now(), &open)) return true;
  ++stats_.breaker_rejections;
  if (metrics_) metrics_->BreakerRejection(a.agent.name);
  v1::Error error;
  error.set_code("circuit_open");
  error.set_message(absl::StrCat("circuit breaker '", open, "' is open"));
  AttemptFailed(a.task, a.step, a.fan_index, error, out);
  return false;
}

// Every check passed: the attempt is made, its worst case reserved, its
// work item sent.
void TaskEngine::SendWorkItem(DispatchAttempt& a, Outbox* out) {
  Instance& inst = a.inst;
  const AgentConfig& agent = a.agent;
  const AttemptPlan& plan = a.plan;
  if (plan.tier != a.tier) ++stats_.downgrades;
  inst.tier = plan.tier;
  inst.max_tokens = plan.max_tokens;
  absl::Time now = clock_->Now();
  ++inst.attempt;
  if (inst.attempt > 1) {
    ++stats_.retries;
    if (metrics_) metrics_->Retry(agent.name);
  }
  inst.status = v1::STEP_STATUS_PENDING;
  inst.dispatched_at = now;
  inst.retry_at = absl::InfiniteFuture();
  inst.DisarmAttempt();
  if (agent.schedule_to_start_timeout > absl::ZeroDuration()) {
    inst.schedule_deadline = now + agent.schedule_to_start_timeout;
  }
  ++stats_.dispatched;
  v1::WorkItem w;
  w.set_task_id(a.task.id());
  w.set_step(a.s.config->id);
  w.set_fan_index(a.fan_index);
  w.set_attempt(inst.attempt);
  w.set_agent(agent.name);
  w.set_model_tier(plan.tier);
  *w.mutable_input() = ToStruct(a.input);
  // Past this the worker does not start the attempt: it would only be retried.
  absl::Time item_deadline = a.task.deadline;
  if (agent.schedule_to_start_timeout > absl::ZeroDuration()) {
    item_deadline = std::min(item_deadline, now + agent.schedule_to_start_timeout + agent.timeout);
  }
  if (item_deadline != absl::InfiniteFuture()) *w.mutable_deadline() = ToProto(item_deadline);
  w.set_max_tokens(plan.max_tokens);
  // After the item's deadline no worker starts it, and a started call is
  // cut at the agent's timeout: it can spend no more.
  absl::Time spend_until = item_deadline == absl::InfiniteFuture()
                               ? absl::InfiniteFuture()
                               : std::max(item_deadline, now + agent.timeout) + kCloseGrace;
  inst.reservations.push_back({inst.attempt, plan.reserve, spend_until});
  AddReserved(a.task, plan.reserve, +1);
  w.set_idempotency_key(IdempotencyKey(w.task_id(), w.step(), a.fan_index, inst.attempt));
  w.set_tenant(a.task.submission.tenant());
  *w.mutable_dispatched_at() = ToProto(now);
  w.set_event_partition(a.task.partition);
  out->work.push_back({agent.name, std::move(w), a.task.traceparent});
}

void TaskEngine::OnEvent(const v1::WorkEvent& event, Outbox* out) {
  FreeFinished();
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
  if (!s.started || !s.ValidFan(fan)) {
    ++stats_.stale_events;
    return;
  }
  Instance& inst = s.instances[s.Index(fan)];
  // One result per attempt: a later attempt's dispatch, or an earlier
  // result, makes the event stale. A stale result still settles what its
  // attempt spent, if that attempt's reservation is held.
  if (event.attempt() != inst.attempt || inst.done()) {
    ++stats_.stale_events;
    if (event.has_result() && Unreserve(task, inst.Release(event.attempt()))) {
      CountUsage(task, AgentOf(s, inst), inst, event.result());
      ResumeBudgetWaits(task, out);
      if (!task.finished) Touch(task);
    }
    return;
  }
  bool backing_off = inst.retry_at != absl::InfiniteFuture();
  absl::Time now = clock_->Now();
  switch (event.kind_case()) {
    case v1::WorkEvent::kReceipt:
    case v1::WorkEvent::kHeartbeat:
      if (backing_off) return;  // this attempt already timed out
      if (event.has_receipt()) {
        inst.status = v1::STEP_STATUS_RUNNING;
        inst.worker = event.receipt().worker();
        inst.schedule_deadline = absl::InfiniteFuture();
        inst.close_deadline = now + AgentOf(s, inst).timeout + kCloseGrace;
      }
      inst.heartbeat_deadline = now + AgentOf(s, inst).heartbeat_timeout;
      Touch(task);
      return;
    case v1::WorkEvent::kResult:
      break;
    default:
      ++stats_.stale_events;
      return;
  }
  const v1::WorkResult& r = event.result();
  // A timed-out attempt's late success is still a good result; its late
  // failure changes nothing (the retry is already scheduled).
  Unreserve(task, inst.Release(event.attempt()));
  CountUsage(task, AgentOf(s, inst), inst, r);
  {
    const AgentConfig& agent = AgentOf(s, inst);
    bool failed = r.status() != v1::RESULT_STATUS_OK && CountsAsBreakerFailure(r.error().code());
    breakers_.Record(agent, ModelOf(agent, inst), now, failed, absl::Milliseconds(r.latency_ms()));
  }
  if (backing_off && r.status() != v1::RESULT_STATUS_OK) {
    ResumeBudgetWaits(task, out);
    if (!task.finished) Touch(task);
    return;
  }
  inst.model = r.model();
  inst.worker = r.worker();
  inst.latency_ms = r.latency_ms();
  inst.DisarmAttempt();
  inst.retry_at = absl::InfiniteFuture();
  std::vector<std::pair<const AgentConfig*, Json>> spawned;
  if (r.status() == v1::RESULT_STATUS_OK && s.spawns() && fan == -1) {
    auto planned = PlanSpawn(s, FromStruct(r.output()));
    if (!planned.ok()) {
      // A plan the workflow does not allow: the agent gets another attempt.
      v1::Error error;
      error.set_code("invalid_spawn");
      error.set_message(std::string(planned.status().message()));
      error.set_retryable(true);
      AttemptFailed(task, step, fan, error, out);
      if (!task.finished) Touch(task);
      return;
    }
    spawned = *std::move(planned);
  }
  if (r.status() == v1::RESULT_STATUS_OK) {
    inst.status = v1::STEP_STATUS_SUCCEEDED;
    inst.output = FromStruct(r.output());
    inst.error.Clear();
    ++s.succeeded;
    if (inst.in_fallback()) task.degraded = true;
    if (!inst.cache_input.empty()) {
      const AgentConfig& agent = AgentOf(s, inst);
      cache_.Insert(agent, ModelOf(agent, inst), inst.cache_input, inst.output, now);
      inst.cache_input.clear();
    }
    if (!spawned.empty()) {
      // The sub-steps run in parallel; the step completes when they all have.
      ++stats_.spawned;
      size_t first = s.instances.size();
      s.instances.resize(first + spawned.size());
      for (size_t i = 0; i < spawned.size(); ++i) {
        s.instances[first + i].spawn_agent = spawned[i].first;
        s.instances[first + i].spawn_input = std::move(spawned[i].second);
      }
      for (size_t i = first; !task.finished && i < s.instances.size(); ++i) Dispatch(task, step, s.Fan(i), out);
      if (!task.finished) Touch(task);
      return;
    }
    if (s.succeeded + s.failed == s.instances.size()) CompleteStep(task, step, out);
  } else {
    AttemptFailed(task, step, fan, r.error(), out);
  }
  if (!task.finished) ResumeBudgetWaits(task, out);
  if (!task.finished) Touch(task);
}

void TaskEngine::CountUsage(Task& task, const AgentConfig& agent, Instance& inst, const v1::WorkResult& r) {
  double cost = config_->Cost(r.model(), r.usage().input_tokens(), r.usage().output_tokens());
  if (metrics_) metrics_->Call(agent.name, r, cost);
  if (const TenantConfig* tenant = config_->FindTenant(task.submission.tenant())) {
    Ledger& ledger = LedgerOf(task, *tenant);
    ledger.settled.tokens += r.usage().input_tokens() + r.usage().output_tokens();
    ledger.settled.cost_usd += cost;
    dirty_ledgers_.insert({task.submission.tenant(), task.partition});
  }
  for (v1::Usage* u : {&inst.usage, &task.usage}) {
    u->set_input_tokens(u->input_tokens() + r.usage().input_tokens());
    u->set_output_tokens(u->output_tokens() + r.usage().output_tokens());
    u->set_cost_usd(u->cost_usd() + cost);
    u->set_calls(u->calls() + 1);
  }
}

Spend TaskEngine::Spent(const Task& task) {
  return {task.usage.input_tokens() + task.usage.output_tokens(), task.usage.cost_usd()};
}

Spend TaskEngine::Committed(const Task& task) {
  Spend c = Spent(task);
  for (const StepRun& s : task.steps) {
    for (const Instance& inst : s.instances) {
      for (const auto& r : inst.reservations) {
        c.tokens += r.spend.tokens;
        c.cost_usd += r.spend.cost_usd;
      }
    }
  }
  return c;
}

bool TaskEngine::HasReservations(const Task& task) {
  for (const StepRun& s : task.steps) {
    for (const Instance& inst : s.instances) {
      if (!inst.reservations.empty()) return true;
    }
  }
  return false;
}

int64_t TaskEngine::StepsStarted(const Task& task) {
  int64_t n = 0;
  for (const StepRun& s : task.steps) {
    for (const Instance& inst : s.instances) n += inst.attempt > 0 || inst.budget_wait || inst.rate_wait;
  }
  return n;
}

void TaskEngine::ResumeBudgetWaits(Task& task, Outbox* out) {
  for (size_t step = 0; !task.finished && step < task.steps.size(); ++step) {
    StepRun& s = task.steps[step];
    for (size_t i = 0; !task.finished && i < s.instances.size(); ++i) {
      if (s.instances[i].budget_wait) Dispatch(task, step, s.Fan(i), out);
    }
  }
}

bool TaskEngine::TakeQuota(Task& task, size_t step, int fan, const std::string& key, int64_t tokens) {
  Instance& inst = task.steps[step].instances[task.steps[step].Index(fan)];
  int priority = task.submission.priority() == v1::PRIORITY_INTERACTIVE ? 0 : 1;
  if (inst.rate_seq == 0) inst.rate_seq = ++rate_seq_;
  Waiter me{priority, inst.rate_seq, task.id(), step, fan};
  std::set<Waiter>& queue = rate_waiting_[key];
  queue.erase(me);
  // Drop waiters whose task finished, moved, or that were dispatched another way.
  while (!queue.empty() && LiveWaiter(*queue.begin()) == nullptr) queue.erase(queue.begin());
  bool someone_first = !queue.empty() && *queue.begin() < me;
  if (someone_first || !rate_.TryTake(key, tokens, clock_->Now())) {
    if (!inst.rate_wait) {
      ++stats_.rate_waits;
      if (metrics_) metrics_->RateWait(key);
    }
    inst.rate_wait = true;
    inst.rate_tokens = tokens;
    inst.retry_at = absl::InfiniteFuture();
    inst.DisarmAttempt();
    queue.insert(me);
    UpdateRateTimer();
    return false;
  }
  inst.rate_wait = false;
  inst.rate_seq = 0;
  if (queue.empty()) rate_waiting_.erase(key);
  return true;
}

TaskEngine::Instance* TaskEngine::LiveWaiter(const Waiter& waiter) {
  const auto& [p, seq, id, st, f] = waiter;
  auto task = active_.find(id);
  if (task == active_.end() || st >= task->second->steps.size() || !task->second->steps[st].ValidFan(f)) return nullptr;
  Instance& inst = task->second->steps[st].instances[task->second->steps[st].Index(f)];
  return inst.rate_wait && inst.rate_seq == seq ? &inst : nullptr;
}

void TaskEngine::ServeRateQueues(Outbox* out) {
  for (auto it = rate_waiting_.begin(); it != rate_waiting_.end();) {
    std::string key = it->first;
    for (;;) {
      auto q = rate_waiting_.find(key);
      if (q == rate_waiting_.end() || q->second.empty()) break;
      auto [p, seq, id, st, f] = *q->second.begin();
      if (LiveWaiter(*q->second.begin()) == nullptr) {
        q->second.erase(q->second.begin());
        continue;
      }
      Task& t = *active_.at(id);
      Dispatch(t, st, f, out);
      if (!t.finished) Touch(t);
      // Still at the head and waiting: the quota is empty for now.
      auto again = rate_waiting_.find(key);
      if (again != rate_waiting_.end() && !again->second.empty() && *again->second.begin() == Waiter{p, seq, id, st, f}) {
        break;
      }
    }
    it = rate_waiting_.upper_bound(key);
    if (auto q = rate_waiting_.find(key); q != rate_waiting_.end() && q->second.empty()) rate_waiting_.erase(q);
  }
  UpdateRateTimer();
}

void TaskEngine::UpdateRateTimer() {
  rate_next_ = absl::InfiniteFuture();
  absl::Time now = clock_->Now();
  for (const auto& [key, queue] : rate_waiting_) {
    if (queue.empty()) continue;
    const Instance* head = LiveWaiter(*queue.begin());
    if (head == nullptr) {
      rate_next_ = now;  // a stale head to clear
      continue;
    }
    rate_next_ = std::min(rate_next_, rate_.ReadyAt(key, head->rate_tokens, now));
  }
}

size_t TaskEngine::rate_waiting() const {
  size_t n = 0;
  for (const auto& [key, queue] : rate_waiting_) n += queue.size();
  return n;
}

void TaskEngine::ExhaustBudget(Task& task, const std::string& why, Outbox* out) {
  ++stats_.budget_exhausted;
  v1::Error error;
  error.set_code("budget_exhausted");
  error.set_message(absl::StrCat("the task's budget cannot pay for the next call: ", why));
  Finish(task, v1::TASK_STATUS_BUDGET_EXHAUSTED, &error, out);
}

void TaskEngine::AttemptFailed(Task& task, size_t step, int fan, const v1::Error& error, Outbox* out) {
  StepRun& s = task.steps[step];
  Instance& inst = s.instances[s.Index(fan)];
  inst.error = error;
  inst.DisarmAttempt();
  const AgentConfig& agent = AgentOf(s, inst);
  if (error.code() == kMaxTokensExceeded && inst.max_tokens > 0 && inst.max_tokens < agent.max_tokens) {
    // The answer needed more than the budget could pay for.
    inst.status = v1::STEP_STATUS_FAILED;
    ExhaustBudget(task,
                  absl::StrCat("step '", s.config->id, "'", fan >= 0 ? absl::StrCat("[", fan, "]") : "",
                               " needed more than the ", inst.max_tokens, " output tokens it could pay for"),
                  out);
    return;
  }
  int attempts_here = inst.attempt - inst.fallback_from;  // on the current agent or tier
  if (error.retryable() && attempts_here < agent.max_attempts) {
    inst.status = v1::STEP_STATUS_PENDING;
    // The provider's Retry-After is a floor; a worker that shut down before
    // finishing the item is no reason to wait.
    absl::Duration wait = std::max(Backoff(agent, attempts_here), absl::Milliseconds(error.retry_after_ms()));
    if (error.code() == kWorkerShutdown) wait = absl::ZeroDuration();
    inst.retry_at = clock_->Now() + wait;
    return;
  }
  std::string where = absl::StrCat("step '", s.config->id, "'", fan >= 0 ? absl::StrCat("[", fan, "]") : "");
  std::string why = absl::StrCat(where, " failed after ", inst.attempt, " attempt(s): ", error.message());
  // The agent cannot serve it: its fallback may (input errors are the input's fault).
  if (!inst.in_fallback() && agent.fallback && error.code() != kInvalidInput) {
    StartFallback(task, step, fan, absl::StrCat("agent '", agent.name, "' failed (", error.code(), ": ",
                                                error.message(), ")"),
                  out);
    return;
  }
  inst.status = v1::STEP_STATUS_FAILED;
  if (s.config->optional) {
    // Degrade: the task goes on without this output.
    ++s.failed;
    task.degraded = true;
    inst.note = absl::StrCat("optional ", why);
    if (s.succeeded + s.failed == s.instances.size()) CompleteStep(task, step, out);
    return;
  }
  FailTask(task, error.code().empty() ? "step_failed" : error.code(), why, out);
}

Json TaskEngine::StepOutput(const StepRun& s) {
  // A failed optional instance contributes null.
  auto output_of = [](const Instance& inst) { return inst.status == v1::STEP_STATUS_SUCCEEDED ? inst.output : Json(); };
  if (s.spawns()) {
    Json out = output_of(s.instances[0]);
    if (!out.is_object()) return out;
    Json results = Json::array();
    for (size_t i = 1; i < s.instances.size(); ++i) results.push_back(output_of(s.instances[i]));
    out[s.config->spawn->into] = std::move(results);
    return out;
  }
  if (!s.fanned_out) return output_of(s.instances[0]);
  Json list = Json::array();
  for (const Instance& inst : s.instances) list.push_back(output_of(inst));
  return list;
}

std::string TaskEngine::ModelOf(const AgentConfig& agent, const Instance& inst) {
  auto it = agent.models.find(inst.tier.empty() ? "default" : inst.tier);
  return it == agent.models.end() ? std::string() : it->second;
}

absl::StatusOr<std::vector<std::pair<const AgentConfig*, Json>>> TaskEngine::PlanSpawn(const StepRun& s,
                                                                                      const Json& output) const {
  const SpawnConfig& spawn = *s.config->spawn;
  std::string where = absl::StrCat("step '", s.config->id, "' spawn: ");
  if (!output.is_object() || !output.contains(spawn.field)) {
    return absl::InvalidArgumentError(absl::StrCat(where, "the output has no '", spawn.field, "' list"));
  }
  const Json& list = output[spawn.field];
  if (!list.is_array()) return absl::InvalidArgumentError(absl::StrCat(where, "'", spawn.field, "' is not a list"));
  if (list.size() > static_cast<size_t>(spawn.max)) {
    return absl::InvalidArgumentError(absl::StrCat(where, list.size(), " sub-steps asked for, at most ", spawn.max));
  }
  std::vector<std::pair<const AgentConfig*, Json>> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& sub = list[i];
    std::string at = absl::StrCat(where, spawn.field, "[", i, "]: ");
    if (!sub.is_object() || !sub.contains("agent") || !sub["agent"].is_string() || !sub.contains("input") ||
        !sub["input"].is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(at, "expected {\"agent\": name, \"input\": {...}}"));
    }
    std::string agent = sub["agent"];
    if (std::find(spawn.agents.begin(), spawn.agents.end(), agent) == spawn.agents.end()) {
      return absl::InvalidArgumentError(absl::StrCat(at, "agent '", agent, "' is not allowed here"));
    }
    out.emplace_back(config_->FindAgent(agent), sub["input"]);
  }
  return out;
}

const AgentConfig& TaskEngine::AgentOf(const StepRun& s, const Instance& inst) {
  return inst.fallback_agent ? *inst.fallback_agent : inst.spawn_agent ? *inst.spawn_agent : *s.agent;
}

void TaskEngine::StartFallback(Task& task, size_t step, int fan, const std::string& reason, Outbox* out) {
  StepRun& s = task.steps[step];
  Instance& inst = s.instances[s.Index(fan)];
  const FallbackConfig& fb = *(inst.spawn_agent ? inst.spawn_agent : s.agent)->fallback;
  ++stats_.fallbacks;
  if (metrics_) {
    metrics_->Fallback((inst.spawn_agent ? inst.spawn_agent : s.agent)->name,
                       fb.agent.empty() ? "tier:" + fb.model_tier : fb.agent);
  }
  inst.fallback_from = inst.attempt;
  inst.fallback_agent = fb.agent.empty() ? nullptr : config_->FindAgent(fb.agent);
  inst.fallback_tier = fb.model_tier;
  inst.tier.clear();
  inst.status = v1::STEP_STATUS_PENDING;
  inst.retry_at = absl::InfiniteFuture();
  inst.DisarmAttempt();
  inst.note = absl::StrCat("served by the fallback ",
                           fb.agent.empty() ? absl::StrCat("model tier '", fb.model_tier, "'")
                                            : absl::StrCat("agent '", fb.agent, "'"),
                           ": ", reason);
  Dispatch(task, step, fan, out);
}

absl::Duration TaskEngine::Backoff(const AgentConfig& agent, int attempt) {
  const RetryPolicy& p = agent.retry;
  double base = absl::ToDoubleSeconds(p.initial_backoff) * std::pow(p.multiplier, attempt - 1);
  base = std::min(base, absl::ToDoubleSeconds(p.max_backoff));
  std::uniform_real_distribution<double> jitter(1 - p.jitter, 1 + p.jitter);
  return absl::Seconds(base * jitter(rng_));
}

void TaskEngine::CompleteStep(Task& task, size_t step, Outbox* out) {
  StepRun& s = task.steps[step];
  s.complete = true;
  s.output = StepOutput(s);
  ++task.steps_done;
  if (task.steps_done == task.steps.size()) {
    Finish(task, task.degraded ? v1::TASK_STATUS_PARTIAL : v1::TASK_STATUS_COMPLETED, nullptr, out);
    return;
  }
  for (size_t d : s.dependents) --task.steps[d].waiting_on;
  StartReadySteps(task, out);
}

void TaskEngine::FireTimers(Task& task, absl::Time now, Outbox* out) {
  if (task.deadline <= now) {
    FailTask(task, "deadline_exceeded",
             absl::StrCat("the task's deadline passed after ",
                          absl::FormatDuration(now - task.accepted_at), " with ", task.steps_done, " of ",
                          task.steps.size(), " steps done"),
             out);
    return;
  }
  if (task.kick) {
    task.kick = false;
    StartReadySteps(task, out);
  }
  // Attempts past their spending window free their reservations.
  bool released = false;
  for (StepRun& s : task.steps) {
    for (Instance& inst : s.instances) {
      for (auto r = inst.reservations.begin(); r != inst.reservations.end();) {
        if (r->expires > now) {
          ++r;
          continue;
        }
        AddReserved(task, r->spend, -1);
        r = inst.reservations.erase(r);
        released = true;
      }
    }
  }
  if (released || task.kick_budget) {
    task.kick_budget = false;
    ResumeBudgetWaits(task, out);
  }
  if (task.kick_rate) {
    // Restored while waiting for a quota: back into the queue.
    task.kick_rate = false;
    for (size_t step = 0; !task.finished && step < task.steps.size(); ++step) {
      StepRun& s = task.steps[step];
      for (size_t i = 0; !task.finished && i < s.instances.size(); ++i) {
        if (s.instances[i].rate_wait) Dispatch(task, step, s.Fan(i), out);
      }
    }
  }
  for (size_t step = 0; !task.finished && step < task.steps.size(); ++step) {
    StepRun& s = task.steps[step];
    for (size_t i = 0; !task.finished && i < s.instances.size(); ++i) {
      Instance& inst = s.instances[i];
      if (inst.tenant_wait) {
        if (inst.retry_at <= now) Dispatch(task, step, s.Fan(i), out);  // a new period
        continue;
      }
      if (inst.done() || inst.attempt == 0 || inst.budget_wait || inst.rate_wait) continue;
      int fan = s.Fan(i);
      if (inst.retry_at <= now) {
        Dispatch(task, step, fan, out);
        continue;
      }
      const char* kind = nullptr;
      if (inst.schedule_deadline <= now) {
        kind = "schedule_to_start";
      } else if (inst.heartbeat_deadline <= now) {
        kind = "heartbeat";
      } else if (inst.close_deadline <= now) {
        kind = "start_to_close";
      }
      if (kind == nullptr) continue;
      ++stats_.timeouts;
      if (metrics_) metrics_->Timeout(AgentOf(s, inst).name, kind);
      breakers_.Record(AgentOf(s, inst), ModelOf(AgentOf(s, inst), inst), now, /*failure=*/true,
                       now - inst.dispatched_at);
      v1::Error error;
      error.set_code(kTimeout);
      error.set_message(absl::StrCat(kind, " timeout of attempt ", inst.attempt,
                                     inst.worker.empty() ? "" : absl::StrCat(" on ", inst.worker)));
      error.set_retryable(true);
      AttemptFailed(task, step, fan, error, out);
    }
  }
}

void TaskEngine::Tick(Outbox* out) {
  FreeFinished();
  absl::Time now = clock_->Now();
  for (auto& [state, partition, code, message] : orphans_) {
    const v1::TaskSubmission& sub = state.submission();
    v1::Error error = MakeError(code, message);
    v1::TaskResult r = NewResult(sub, v1::TASK_STATUS_FAILED, &error, now);
    *r.mutable_usage() = state.usage();
    *r.mutable_accepted_at() = state.accepted_at();
    out->results.push_back({std::move(r), state.traceparent(), state.parent_traceparent()});
    ++stats_.finished;
    Remember(sub.task_id(), now, partition);
  }
  orphans_.clear();
  while (!timers_.empty() && timers_.begin()->first <= now) {
    std::string id = timers_.begin()->second;
    timers_.erase(timers_.begin());
    auto it = active_.find(id);
    if (it == active_.end()) continue;
    Task& task = *it->second;
    task.armed = absl::InfiniteFuture();
    FireTimers(task, now, out);
    if (!task.finished) Touch(task);
  }
  if (!tenant_wakes_.empty()) WakeTenantWaiters(out);
  if (!rate_waiting_.empty()) ServeRateQueues(out);
  while (!expiries_.empty() && expiries_.begin()->first <= now) {
    std::string id = expiries_.begin()->second;
    expiries_.erase(expiries_.begin());
    auto it = finished_.find(id);
    if (it == finished_.end()) continue;
    dirty_.insert(id);
    dirty_partition_[id] = it->second.partition;
    finished_.erase(it);  // tombstone: the id may be used again
  }
}

absl::Time TaskEngine::NextTimer() const {
  if (!orphans_.empty() || !tenant_wakes_.empty()) return absl::InfinitePast();
  absl::Time next = absl::InfiniteFuture();
  if (!timers_.empty()) next = timers_.begin()->first;
  if (!expiries_.empty()) next = std::min(next, expiries_.begin()->first);
  return std::min(next, rate_next_);
}

void TaskEngine::Touch(Task& task) {
  absl::Time next = task.kick || task.kick_budget || task.kick_rate ? absl::InfinitePast() : task.deadline;
  for (const StepRun& s : task.steps) {
    for (const Instance& inst : s.instances) next = std::min(next, inst.NextTimer());
  }
  if (next != task.armed) {
    if (task.armed != absl::InfiniteFuture()) timers_.erase({task.armed, task.id()});
    if (next != absl::InfiniteFuture()) timers_.insert({next, task.id()});
    task.armed = next;
  }
  dirty_.insert(task.id());
  dirty_partition_[task.id()] = task.partition;
}

bool TaskEngine::Fail(const std::string& task_id, const std::string& code, const std::string& message,
                      Outbox* out) {
  FreeFinished();
  auto it = active_.find(task_id);
  if (it == active_.end()) return false;
  FailTask(*it->second, code, message, out);
  return true;
}

void TaskEngine::FailTask(Task& task, const std::string& code, const std::string& message,
                          Outbox* out) {
  v1::Error error = MakeError(code, message);
  Finish(task, v1::TASK_STATUS_FAILED, &error, out);
}

void TaskEngine::Finish(Task& task, v1::TaskStatus status, const v1::Error* error, Outbox* out) {
  absl::Time now = clock_->Now();
  v1::TaskResult r = NewResult(task.submission, status, error, now);
  if (status == v1::TASK_STATUS_COMPLETED || status == v1::TASK_STATUS_PARTIAL ||
      status == v1::TASK_STATUS_BUDGET_EXHAUSTED) {
    // The output step's output; when the budget stopped the task first, the
    // best result so far: the last completed step's, in workflow order.
    const StepRun* best = &task.steps[task.step_index[task.workflow->output_step]];
    for (size_t i = task.steps.size(); !best->complete && i-- > 0;) {
      if (task.steps[i].complete) best = &task.steps[i];
    }
    if (best->complete) *r.mutable_output() = ToValue(best->output);
  }
  for (const StepRun& s : task.steps) {
    for (size_t i = 0; i < s.instances.size(); ++i) {
      const Instance& inst = s.instances[i];
      v1::StepSummary* sum = r.add_steps();
      sum->set_step(s.config->id);
      sum->set_fan_index(s.Fan(i));
      sum->set_agent(AgentOf(s, inst).name);
      sum->set_explanation(inst.note);
      sum->set_model(inst.model);
      sum->set_status(inst.done() || inst.attempt > 0 ? inst.status : v1::STEP_STATUS_SKIPPED);
      sum->set_cached(inst.cached);
      sum->set_attempts(inst.attempt);
      *sum->mutable_usage() = inst.usage;
      sum->set_latency_ms(inst.latency_ms);
      if (inst.status != v1::STEP_STATUS_SUCCEEDED && inst.error.code().size()) *sum->mutable_error() = inst.error;
      sum->set_worker(inst.worker);
    }
  }
  *r.mutable_usage() = task.usage;
  *r.mutable_accepted_at() = ToProto(task.accepted_at);
  double used = -1;
  if (task.limits.max_cost_usd > 0) used = task.usage.cost_usd() / task.limits.max_cost_usd;
  if (task.limits.max_tokens > 0) {
    used = std::max(used, static_cast<double>(task.usage.input_tokens() + task.usage.output_tokens()) /
                              static_cast<double>(task.limits.max_tokens));
  }
  out->results.push_back({std::move(r), task.traceparent, task.parent_traceparent, used});
  ++stats_.finished;
  for (const StepRun& s : task.steps) {
    for (const Instance& inst : s.instances) {
      for (const auto& res : inst.reservations) AddReserved(task, res.spend, -1);
    }
  }
  std::string id = task.id();
  int32_t partition = task.partition;
  if (task.armed != absl::InfiniteFuture()) timers_.erase({task.armed, id});
  // The callers up the stack may still hold `task`: it is freed when the
  // next top-level call begins (FreeFinished), and they see `finished`.
  task.finished = true;
  auto it = active_.find(id);
  retired_.push_back(std::move(it->second));
  active_.erase(it);
  Remember(id, now, partition);
}

bool TaskEngine::Knows(const std::string& id) const { return active_.contains(id) || finished_.contains(id); }

void TaskEngine::RememberRejected(const std::string& id, int32_t partition) { Remember(id, clock_->Now(), partition); }

void TaskEngine::Remember(const std::string& id, absl::Time finished_at, int32_t partition) {
  auto old = finished_.find(id);
  if (old != finished_.end()) expiries_.erase({old->second.at + config_->coordinator.finished_retention, id});
  finished_[id] = Finished{finished_at, partition};
  expiries_.insert({finished_at + config_->coordinator.finished_retention, id});
  dirty_.insert(id);
  dirty_partition_[id] = partition;
}

v1::TaskState TaskEngine::Snapshot(const Task& task) const {
  v1::TaskState st;
  *st.mutable_submission() = task.submission;
  *st.mutable_accepted_at() = ToProto(task.accepted_at);
  if (task.deadline != absl::InfiniteFuture()) *st.mutable_deadline() = ToProto(task.deadline);
  *st.mutable_usage() = task.usage;
  st.set_traceparent(task.traceparent);
  if (!task.parent_traceparent.empty()) st.set_parent_traceparent(task.parent_traceparent);
  for (const StepRun& s : task.steps) {
    if (!s.started) continue;
    if (s.fanned_out || s.spawns()) (*st.mutable_fan_out())[s.config->id] = static_cast<int32_t>(s.instances.size());
    for (size_t i = 0; i < s.instances.size(); ++i) {
      const Instance& inst = s.instances[i];
      v1::StepState* ss = st.add_steps();
      ss->set_step(s.config->id);
      ss->set_fan_index(s.Fan(i));
      ss->set_status(inst.status);
      ss->set_attempt(inst.attempt);
      ss->set_model_tier(inst.tier.empty() ? s.config->model_tier : inst.tier);
      ss->set_budget_wait(inst.budget_wait);
      ss->set_max_tokens(inst.max_tokens);
      ss->set_fallback_from(inst.fallback_from);
      if (inst.fallback_agent) ss->set_fallback_agent(inst.fallback_agent->name);
      ss->set_fallback_tier(inst.fallback_tier);
      ss->set_note(inst.note);
      ss->set_cached(inst.cached);
      ss->set_rate_wait(inst.rate_wait);
      ss->set_tenant_wait(inst.tenant_wait);
      if (inst.spawn_agent) {
        ss->set_spawn_agent(inst.spawn_agent->name);
        *ss->mutable_spawn_input() = ToStruct(inst.spawn_input);
      }
      for (const auto& res : inst.reservations) {
        v1::Reservation* rp = ss->add_reservations();
        rp->set_attempt(res.attempt);
        rp->set_tokens(res.spend.tokens);
        rp->set_cost_usd(res.spend.cost_usd);
        if (res.expires != absl::InfiniteFuture()) *rp->mutable_expires() = ToProto(res.expires);
      }
      if (inst.status == v1::STEP_STATUS_SUCCEEDED) *ss->mutable_output() = ToStruct(inst.output);
      if (!inst.error.code().empty()) *ss->mutable_error() = inst.error;
      *ss->mutable_usage() = inst.usage;
      ss->set_latency_ms(inst.latency_ms);
      ss->set_worker(inst.worker);
      ss->set_model(inst.model);
      if (inst.dispatched_at != absl::InfinitePast()) *ss->mutable_dispatched_at() = ToProto(inst.dispatched_at);
      // Unset timers are InfiniteFuture in memory and absent on the wire.
      constexpr absl::Time kUnset = absl::InfiniteFuture();
      if (inst.schedule_deadline != kUnset) *ss->mutable_schedule_deadline() = ToProto(inst.schedule_deadline);
      if (inst.heartbeat_deadline != kUnset) *ss->mutable_heartbeat_deadline() = ToProto(inst.heartbeat_deadline);
      if (inst.close_deadline != kUnset) *ss->mutable_close_deadline() = ToProto(inst.close_deadline);
      if (inst.retry_at != kUnset) *ss->mutable_retry_at() = ToProto(inst.retry_at);
    }
  }
  return st;
}

void TaskEngine::TakeStateChanges(std::vector<StateChange>* changes) {
  for (const std::string& id : dirty_) {
    StateChange change;
    change.task_id = id;
    change.partition = dirty_partition_[id];
    if (auto it = active_.find(id); it != active_.end()) {
      change.state = Snapshot(*it->second);
    } else if (auto f = finished_.find(id); f != finished_.end()) {
      // Compact: enough to recognise a resubmission until the retention ends.
      v1::TaskState st;
      st.mutable_submission()->set_task_id(id);
      st.set_finished(true);
      *st.mutable_finished_at() = ToProto(f->second.at);
      change.state = std::move(st);
    }  // else: tombstone
    changes->push_back(std::move(change));
  }
  dirty_.clear();
  dirty_partition_.clear();
  for (const auto& key : dirty_ledgers_) {
    auto it = ledgers_.find(key);
    if (it == ledgers_.end()) continue;
    StateChange change;
    change.task_id = LedgerKey(key.first);
    change.partition = key.second;
    v1::TenantLedger l;
    l.set_tenant(key.first);
    *l.mutable_period_start() = ToProto(it->second.period_start);
    l.set_cost_usd(it->second.settled.cost_usd);
    l.set_tokens(it->second.settled.tokens);
    change.ledger = std::move(l);
    changes->push_back(std::move(change));
  }
  dirty_ledgers_.clear();
}

std::string TaskEngine::LedgerKey(const std::string& tenant) { return "\x1ftenant/" + tenant; }

void TaskEngine::RestoreUnreadableLedger(const std::string& tenant, int32_t partition) {
  // What was spent is unknown: count the slice as spent for this period
  // rather than as untouched, so the limit cannot be passed.
  const TenantConfig* tc = config_->FindTenant(tenant);
  if (tc == nullptr) return;
  Ledger& l = ledgers_[{tenant, partition}];
  l.period_start = PeriodStart(tc->period, clock_->Now());
  l.settled = {tc->max_tokens / config_->kafka.partitions, tc->max_cost_usd / config_->kafka.partitions};
  dirty_ledgers_.insert({tenant, partition});
}

void TaskEngine::RestoreLedger(const v1::TenantLedger& ledger, int32_t partition) {
  Ledger& l = ledgers_[{ledger.tenant(), partition}];
  l.period_start = FromProto(ledger.period_start());
  l.settled = {ledger.tokens(), ledger.cost_usd()};
}

absl::Time TaskEngine::PeriodStart(TenantConfig::Period period, absl::Time now) {
  absl::CivilSecond t = absl::ToCivilSecond(now, absl::UTCTimeZone());
  switch (period) {
    case TenantConfig::Period::kHour:
      return absl::FromCivil(absl::CivilHour(t), absl::UTCTimeZone());
    case TenantConfig::Period::kDay:
      return absl::FromCivil(absl::CivilDay(t), absl::UTCTimeZone());
    case TenantConfig::Period::kMonth:
      return absl::FromCivil(absl::CivilMonth(t), absl::UTCTimeZone());
  }
  return now;
}

absl::Time TaskEngine::PeriodEnd(TenantConfig::Period period, absl::Time now) {
  absl::CivilSecond t = absl::ToCivilSecond(now, absl::UTCTimeZone());
  switch (period) {
    case TenantConfig::Period::kHour:
      return absl::FromCivil(absl::CivilHour(t) + 1, absl::UTCTimeZone());
    case TenantConfig::Period::kDay:
      return absl::FromCivil(absl::CivilDay(t) + 1, absl::UTCTimeZone());
    case TenantConfig::Period::kMonth:
      return absl::FromCivil(absl::CivilMonth(t) + 1, absl::UTCTimeZone());
  }
  return now;
}

const char* TaskEngine::PeriodName(TenantConfig::Period period) {
  switch (period) {
    case TenantConfig::Period::kHour:
      return "hour";
    case TenantConfig::Period::kDay:
      return "day";
    case TenantConfig::Period::kMonth:
      return "month";
  }
  return "period";
}

TaskEngine::Ledger& TaskEngine::LedgerOf(const Task& task, const TenantConfig& tenant) {
  Ledger& l = ledgers_[{task.submission.tenant(), task.partition}];
  absl::Time start = PeriodStart(tenant.period, clock_->Now());
  if (l.period_start < start) {  // a new period: what was spent before no longer counts
    l.period_start = start;
    l.settled = Spend();
    dirty_ledgers_.insert({task.submission.tenant(), task.partition});
  }
  return l;
}

void TaskEngine::AddReserved(const Task& task, const Spend& spend, int sign) {
  if (config_->FindTenant(task.submission.tenant()) == nullptr) return;
  std::pair<std::string, int32_t> key{task.submission.tenant(), task.partition};
  Ledger& l = ledgers_[key];
  l.reserved.tokens += sign * spend.tokens;
  l.reserved.cost_usd += sign * spend.cost_usd;
  if (l.reserved.tokens <= 0 && l.reserved.cost_usd < 1e-12) l.reserved = Spend();  // no drift below zero
  // Released budget: the tenant's waiting calls try again at the next Tick.
  if (sign < 0 && tenant_waiters_.count(key)) tenant_wakes_.insert(key);
}

void TaskEngine::WakeTenantWaiters(Outbox* out) {
  auto wakes = std::move(tenant_wakes_);
  tenant_wakes_.clear();
  for (const auto& key : wakes) {
    auto it = tenant_waiters_.find(key);
    if (it == tenant_waiters_.end()) continue;
    auto waiters = std::move(it->second);
    tenant_waiters_.erase(it);
    for (const auto& [id, step, fan] : waiters) {
      auto task = active_.find(id);
      if (task == active_.end() || step >= task->second->steps.size() || !task->second->steps[step].ValidFan(fan)) {
        continue;
      }
      Task& t = *task->second;
      if (!t.steps[step].instances[t.steps[step].Index(fan)].tenant_wait) continue;
      Dispatch(t, step, fan, out);
      if (!t.finished) Touch(t);
    }
  }
}

bool TaskEngine::Unreserve(const Task& task, const std::optional<Spend>& released) {
  if (!released) return false;
  AddReserved(task, *released, -1);
  return true;
}

bool TaskEngine::TenantExhausted(const v1::TaskSubmission& submission, int32_t partition) {
  const TenantConfig* tenant = config_->FindTenant(submission.tenant());
  if (tenant == nullptr) return false;
  auto it = ledgers_.find({submission.tenant(), partition});
  if (it == ledgers_.end() || it->second.period_start < PeriodStart(tenant->period, clock_->Now())) return false;
  // What was spent, not what is reserved: calls in flight may settle for less.
  const Ledger& l = it->second;
  double cost = l.settled.cost_usd;
  int64_t tokens = l.settled.tokens;
  return (tenant->max_cost_usd > 0 && cost >= tenant->max_cost_usd / config_->kafka.partitions) ||
         (tenant->max_tokens > 0 && tokens >= tenant->max_tokens / config_->kafka.partitions);
}

void TaskEngine::Restore(const std::string& task_id, const std::optional<v1::TaskState>& state,
                         int32_t partition) {
  // Replace whatever the engine had for this id (a pending failure included).
  orphans_.erase(std::remove_if(orphans_.begin(), orphans_.end(),
                                [&](const Orphan& o) { return o.state.submission().task_id() == task_id; }),
                 orphans_.end());
  if (auto it = active_.find(task_id); it != active_.end()) {
    if (it->second->armed != absl::InfiniteFuture()) timers_.erase({it->second->armed, task_id});
    for (const StepRun& s : it->second->steps) {
      for (const Instance& inst : s.instances) {
        for (const auto& res : inst.reservations) AddReserved(*it->second, res.spend, -1);
      }
    }
    active_.erase(it);
  }
  if (auto f = finished_.find(task_id); f != finished_.end()) {
    expiries_.erase({f->second.at + config_->coordinator.finished_retention, task_id});
    finished_.erase(f);
  }
  dirty_.erase(task_id);
  if (!state) return;
  ++stats_.restored;
  if (state->finished()) {
    Remember(task_id, FromProto(state->finished_at()), partition);
    dirty_.erase(task_id);  // already durable
    return;
  }
  const WorkflowConfig* wf = config_->FindWorkflow(state->submission().workflow());
  if (wf == nullptr) {
    orphans_.push_back({*state, partition, "workflow_removed",
                        absl::StrCat("workflow '", state->submission().workflow(),
                                     "' is no longer in the fleet config")});
    return;
  }
  std::unique_ptr<Task> task = NewTask(state->submission(), wf, state->traceparent(), partition);
  task->parent_traceparent = state->parent_traceparent();
  task->accepted_at = FromProto(state->accepted_at());
  task->deadline = state->has_deadline() ? FromProto(state->deadline()) : absl::InfiniteFuture();
  task->usage = state->usage();
  for (const auto& [step, count] : state->fan_out()) {
    auto it = task->step_index.find(step);
    if (it == task->step_index.end()) continue;
    StepRun& s = task->steps[it->second];
    s.started = true;
    s.fanned_out = !s.spawns();
    s.instances.resize(count);
  }
  auto timer = [](bool has, const google::protobuf::Timestamp& t) {
    return has ? FromProto(t) : absl::InfiniteFuture();
  };
  for (const v1::StepState& ss : state->steps()) {
    auto it = task->step_index.find(ss.step());
    if (it == task->step_index.end()) continue;
    StepRun& s = task->steps[it->second];
    s.started = true;
    if (!s.ValidFan(ss.fan_index()) && s.fanned_out) continue;
    size_t index = s.Index(ss.fan_index());
    if (s.instances.size() <= index) s.instances.resize(index + 1);
    Instance& inst = s.instances[index];
    inst.attempt = ss.attempt();
    inst.status = ss.status();
    if (ss.has_output()) inst.output = FromStruct(ss.output());
    inst.error = ss.error();
    inst.usage = ss.usage();
    inst.latency_ms = ss.latency_ms();
    inst.worker = ss.worker();
    inst.model = ss.model();
    if (ss.has_dispatched_at()) inst.dispatched_at = FromProto(ss.dispatched_at());
    inst.schedule_deadline = timer(ss.has_schedule_deadline(), ss.schedule_deadline());
    inst.heartbeat_deadline = timer(ss.has_heartbeat_deadline(), ss.heartbeat_deadline());
    inst.close_deadline = timer(ss.has_close_deadline(), ss.close_deadline());
    inst.retry_at = timer(ss.has_retry_at(), ss.retry_at());
    inst.tier = ss.model_tier();
    inst.budget_wait = ss.budget_wait();
    inst.max_tokens = ss.max_tokens();
    inst.fallback_from = ss.fallback_from();
    inst.fallback_agent = ss.fallback_agent().empty() ? nullptr : config_->FindAgent(ss.fallback_agent());
    inst.fallback_tier = ss.fallback_tier();
    inst.note = ss.note();
    inst.cached = ss.cached();
    inst.rate_wait = ss.rate_wait();  // re-queued at the next Tick
    if (!ss.spawn_agent().empty()) {
      inst.spawn_agent = config_->FindAgent(ss.spawn_agent());
      inst.spawn_input = FromStruct(ss.spawn_input());
    }
    task->kick_rate = task->kick_rate || inst.rate_wait;
    task->kick_budget = task->kick_budget || inst.budget_wait;
    for (const v1::Reservation& rp : ss.reservations()) {
      inst.reservations.push_back(
          {rp.attempt(), {rp.tokens(), rp.cost_usd()}, timer(rp.has_expires(), rp.expires())});
      AddReserved(*task, {rp.tokens(), rp.cost_usd()}, +1);
    }
    inst.tenant_wait = ss.tenant_wait();
    if (inst.tenant_wait) {
      tenant_waiters_[{task->submission.tenant(), partition}].insert({task_id, it->second, ss.fan_index()});
      tenant_wakes_.insert({task->submission.tenant(), partition});  // retry once restored
    }
  }
  // Derive completion, outputs and readiness from the instances.
  Task& t = *task;
  for (size_t i = 0; i < t.steps.size(); ++i) {
    StepRun& s = t.steps[i];
    if (!s.started) continue;
    s.succeeded = s.failed = 0;
    for (const Instance& inst : s.instances) {
      s.succeeded += inst.status == v1::STEP_STATUS_SUCCEEDED;
      s.failed += inst.status == v1::STEP_STATUS_FAILED && s.config->optional;
      t.degraded = t.degraded || (inst.status == v1::STEP_STATUS_SUCCEEDED && inst.in_fallback()) ||
                   (inst.status == v1::STEP_STATUS_FAILED && s.config->optional);
    }
    if (s.succeeded + s.failed == s.instances.size()) {
      s.complete = true;
      ++t.steps_done;
      s.output = StepOutput(s);
      for (size_t d : s.dependents) --t.steps[d].waiting_on;
    }
  }
  for (const StepRun& s : t.steps) t.kick = t.kick || (!s.started && s.waiting_on == 0);
  active_[task_id] = std::move(task);
  Touch(t);
  dirty_.erase(task_id);  // restored state is already durable
}

void TaskEngine::RestoreUnreadable(const std::string& task_id, const std::string& reason,
                                   int32_t partition) {
  // Whatever older snapshot was restored is not the task's state: do not run
  // from it (that would redo finished work). Fail the task, saying why.
  Restore(task_id, std::nullopt, partition);
  v1::TaskState state;
  state.mutable_submission()->set_task_id(task_id);
  orphans_.push_back({std::move(state), partition, "state_unreadable",
                      absl::StrCat("the coordinator's saved state of this task is unreadable: ", reason)});
}

void TaskEngine::DropPartitions(const std::set<int32_t>& partitions) {
  for (auto it = ledgers_.begin(); it != ledgers_.end();) {
    if (partitions.count(it->first.second)) {
      dirty_ledgers_.erase(it->first);
      ledgers_.erase(it++);
    } else {
      ++it;
    }
  }
  orphans_.erase(std::remove_if(orphans_.begin(), orphans_.end(),
                                [&](const Orphan& o) { return partitions.count(o.partition) > 0; }),
                 orphans_.end());
  for (auto it = active_.begin(); it != active_.end();) {
    if (partitions.count(it->second->partition)) {
      if (it->second->armed != absl::InfiniteFuture()) timers_.erase({it->second->armed, it->first});
      dirty_.erase(it->first);
      active_.erase(it++);
    } else {
      ++it;
    }
  }
  for (auto it = finished_.begin(); it != finished_.end();) {
    if (partitions.count(it->second.partition)) {
      expiries_.erase({it->second.at + config_->coordinator.finished_retention, it->first});
      dirty_.erase(it->first);
      finished_.erase(it++);
    } else {
      ++it;
    }
  }
}

}  // namespace agentfleet
