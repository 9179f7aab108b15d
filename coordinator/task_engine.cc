#include "coordinator/task_engine.h"

#include <algorithm>
#include <cmath>

#include "absl/algorithm/container.h"
#include "google/protobuf/util/json_util.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "codec/codec.h"
#include "common/error_codes.h"
#include "codec/json_value.h"
#include "codec/trace.h"
#include "coordinator/task_engine_internal.h"
#include "workflow/condition_eval.h"
#include "workflow/input.h"

namespace agentfleet {
using namespace task_engine_internal;


TaskEngine::TaskEngine(const FleetConfig* config, const Clock* clock)
    : config_(config), clock_(clock), topics_(config->kafka.topic_prefix), tenants_(config), breakers_(config, ""), cache_(config), semantic_(config), rate_(config) {
  rate_.SetShare(1.0, clock->Now());
  epoch_ = std::random_device()() | (uint64_t{std::random_device()()} << 32) | 1;  // never 0
  for (const auto& [name, agent] : config->agents) {
    if (agent.max_in_flight > 0) windows_[name].freed = &window_freed_;
  }
  for (const auto& [name, wf] : config->workflows) {
    StepIndex& index = step_indexes_[&wf];
    for (size_t i = 0; i < wf.steps.size(); ++i) index[wf.steps[i].id] = i;
  }
}
TaskEngine::~TaskEngine() = default;

void TaskEngine::FreeFinished() { retired_.clear(); }

void TaskEngine::Activate(std::unique_ptr<Task> task) {
  // The key views the task's id, which lives as long as the task: an entry
  // is erased before its task is freed (Finish, takeover, revocation).
  absl::string_view id = task->id();
  active_.erase(id);  // a replaced task's key views the replaced task's id
  active_.emplace(id, std::move(task));
}

namespace {

// The submission's wire form without its input (field 4): serialized whole,
// then the input's bytes left out, which costs less than copying the message
// (its input's map) to clear it.
std::string SerializedWithoutInput(const v1::TaskSubmission& submission) {
  std::string whole = submission.SerializeAsString();
  if (!submission.has_input()) return whole;
  std::string out;
  out.reserve(whole.size());
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(whole.data()),
                                            static_cast<int>(whole.size()));
  while (true) {
    const int start = in.CurrentPosition();
    const uint32_t tag = in.ReadTag();
    if (tag == 0) break;
    if (!google::protobuf::internal::WireFormatLite::SkipField(&in, tag)) return whole;  // cannot be: we wrote it
    if (google::protobuf::internal::WireFormatLite::GetTagFieldNumber(tag) == v1::TaskSubmission::kInputFieldNumber) {
      continue;
    }
    out.append(whole, start, in.CurrentPosition() - start);
  }
  return out;
}

}  // namespace

std::unique_ptr<TaskEngine::Task> TaskEngine::NewTask(const v1::TaskSubmission& submission,
                                                      const WorkflowConfig* wf,
                                                      const std::string& traceparent,
                                                      int32_t partition) {
  auto task = std::make_unique<Task>();
  task->submission_bytes = SerializedWithoutInput(submission);
  task->task_id = submission.task_id();
  task->tenant = submission.tenant();
  task->priority = submission.priority();
  task->depth = submission.depth();
  task->traceparent = PackedTraceparent(traceparent);
  task->partition = partition;
  task->workflow = wf;
  // The input is held once, as JSON (what steps' inputs read); snapshots
  // put it back into the submission they carry.
  task->input = FromStruct(submission.input());
  task->limits = Limits::For(wf->budget, submission.budget());
  task->steps.resize(wf->steps.size());
  for (const v1::ReusedOutput& r : submission.fork().reused()) {
    task->mutable_extra().reused[{r.step(), r.fan_index()}] = {FromValue(r.output()), r.model()};
  }
  for (const v1::ModelOverride& m : submission.fork().models()) {
    const AgentConfig* agent = config_->FindAgent(m.agent());
    if (agent == nullptr) continue;  // refused at Submit; a restored one keeps the config's
    auto& copy = task->mutable_extra().agents[m.agent()];
    if (!copy) copy = std::make_unique<AgentConfig>(*agent);
    copy->models[m.tier()] = m.model();
  }
  task->step_index = &step_indexes_.at(wf);
  for (size_t i = 0; i < wf->steps.size(); ++i) {
    StepRun& s = task->steps[i];
    s.config = &wf->steps[i];
    s.agent = AgentFor(*task, s.config->agent);
    s.waiting_on = s.config->depends_on.size();
    for (const auto& dep : s.config->depends_on) task->steps[task->step_index->at(dep)].dependents.push_back(i);
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
      tenant && tenant->on_exhausted == TenantConfig::OnExhausted::kReject &&
      tenants_.Exhausted(submission.tenant(), partition, clock_->Now())) {
    ++stats_.rejected;
    ++stats_.tenant_rejected;
    std::string reason = absl::StrCat("tenant '", submission.tenant(), "' has spent its budget for this ",
                                      TenantLedgers::PeriodName(tenant->period));
    Reject(submission, traceparent, "tenant_budget_exhausted", reason, partition, out);
    return absl::ResourceExhaustedError(reason);
  }
  if (absl::Status fork = CheckFork(submission, *wf); !fork.ok()) {
    ++stats_.rejected;
    Reject(submission, traceparent, "invalid_submission", std::string(fork.message()), partition, out);
    return fork;
  }
  ++stats_.accepted;
  if (metrics_) metrics_->TaskAccepted(submission.workflow());
  std::unique_ptr<Task> task = NewTask(submission, wf, traceparent, partition);
  task->parent_traceparent = PackedTraceparent(parent_traceparent);
  absl::Time now = clock_->Now();
  task->accepted_at = now;
  task->deadline = now + wf->deadline;
  if (submission.has_deadline()) task->deadline = std::min(task->deadline, FromTimestamp(submission.deadline()));
  Task& t = *task;
  Activate(std::move(task));
  if (auto ahead = ahead_.find(id); ahead != ahead_.end()) {
    Ahead kept = ahead->second;
    expiries_.erase({kept.at + config_->coordinator.finished_retention, id});
    ForgetAhead(ahead);
    if (kept.cancel) {
      // Cancelled before it was read: it ends CANCELLED without running a step.
      v1::Error error = MakeError(kCancelled, kept.reason);
      ++stats_.cancelled;
      Finish(t, v1::TASK_STATUS_CANCELLED, &error, out);
      return absl::OkStatus();
    }
    // Signals that overtook it, as if they had come now: kept for the wait
    // steps (none has started).
    for (const v1::TaskSignal& signal : kept.signals) (void)DeliverSignal(t, signal, out);
  }
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
      {NewResult(submission, v1::TASK_STATUS_REJECTED, &error, clock_->Now()), traceparent, /*parent_traceparent=*/"", -1, {}});
  NotifyParent(out->results.back(), out);
}

void TaskEngine::NotifyParent(const Outbox::Result& result, Outbox* out) {
  const std::string& parent = result.result.parent_task_id();
  if (parent.empty()) return;
  // A child's result goes to its parent's step too (on the signals topic,
  // keyed by the parent, so the parent's replica reads it).
  v1::TaskSignal to_parent;
  to_parent.set_task_id(parent);
  to_parent.set_name("child");
  *to_parent.mutable_child_result() = result.result;
  Encoded e = Encode(to_parent, result.traceparent);
  out->records.push_back(
      {topics_.signals, parent, std::move(e.payload), std::move(e.headers)});
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
    auto it = task.step_index->find(id);
    return it == task.step_index->end() ? nullptr : &task.steps[it->second].output;
  };
  // A reference into an optional step that failed, or into a skipped one, reads null.
  ctx.step_failed = [&task](const std::string& id) {
    auto it = task.step_index->find(id);
    if (it == task.step_index->end()) return false;
    const StepRun& s = task.steps[it->second];
    return s.skipped || (!s.fanned_out && s.failed > 0);
  };
  return ctx;
}

void TaskEngine::StartStep(Task& task, size_t step, Outbox* out) {
  StepRun& s = task.steps[step];
  s.started = true;
  if (s.config->when) {
    absl::StatusOr<bool> holds = EvaluateCondition(*s.config->when, ContextFor(task));
    if (!holds.ok()) {
      FailTask(task, kInvalidCondition, absl::StrCat("step '", s.config->id, "': when: ", holds.status().message()), out);
      return;
    }
    if (!*holds) {
      // Neither failed nor partial: the step does not apply to this task.
      s.skipped = true;
      s.instances.resize(1);
      s.instances[0].SetStatus(v1::STEP_STATUS_SKIPPED);
      s.instances[0].mutable_extra().note = absl::StrCat("skipped: when ", s.config->when_text);
      CompleteStep(task, step, out);
      return;
    }
  }
  if (s.config->wait) {
    s.instances.resize(1);
    StartWait(task, step, out);
    return;
  }
  if (!s.config->child_workflow.empty()) {
    s.instances.resize(1);
    StartChild(task, step, out);
    return;
  }
  if (s.config->screen) {
    s.instances.resize(1);
    RunScreen(task, step, out);
    return;
  }
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
    &TaskEngine::BuildInput,      &TaskEngine::CheckMaxSteps,      &TaskEngine::ServeReused, &TaskEngine::ServeFromCache,
    &TaskEngine::ServeFromSemanticCache, &TaskEngine::CheckTaskBudget, &TaskEngine::CheckTenantBudget,
    &TaskEngine::CheckWindow,     &TaskEngine::CheckQuota,         &TaskEngine::CheckBreaker,
};

void TaskEngine::Dispatch(Task& task, size_t step, int fan_index, Outbox* out) {
  StepRun& s = task.steps[step];
  Instance& inst = s.instances[s.Index(fan_index)];
  const AgentConfig& agent = AgentOf(s, inst);
  std::string base_tier = inst.ask_agent != nullptr                             ? std::string("default")
                          : inst.extra().spawn_agent != nullptr && !inst.in_fallback() ? std::string("default")
                          : !inst.in_fallback()                               ? s.config->model_tier
                          : inst.extra().fallback_tier.empty() ? std::string("default")
                                                       : inst.extra().fallback_tier;
  if (s.config->model_tier_from && !inst.in_fallback() && inst.extra().spawn_agent == nullptr && inst.ask_agent == nullptr) {
    // The tier the data asks for, within the agent's.
    auto wanted = Resolve(*s.config->model_tier_from, ContextFor(task));
    std::string name = wanted.ok() && wanted->is_string() ? wanted->get<std::string>() : "";
    if (agent.models.count(name) > 0) {
      base_tier = name;
    } else if (inst.extra().note.empty()) {
      inst.mutable_extra().note = absl::StrCat("model tier from data: ", wanted.ok() ? wanted->dump() : "missing",
                               " is not one of agent '", agent.name, "''s tiers; default used");
    }
  }
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
  if (a.inst.extra().spawn_agent != nullptr) {
    item = a.inst.extra().spawn_input;  // a sub-step: its input came from the plan
  } else if (a.fan_index >= 0) {
    auto list = Resolve(*a.s.config->for_each, ctx);
    if (!list.ok() || !list->is_array() || static_cast<size_t>(a.fan_index) >= list->size()) {
      FailTask(a.task, "invalid_input", absl::StrCat("step '", a.s.config->id, "': for_each list changed"), out);
      return false;
    }
    item = (*list)[a.fan_index];
    ctx.item = &item;
  }
  auto input = a.inst.extra().spawn_agent != nullptr ? absl::StatusOr<Json>(item) : agentfleet::BuildInput(a.s.config->input, ctx);
  if (!input.ok()) {
    FailTask(a.task, "invalid_input", absl::StrCat("step '", a.s.config->id, "': ", input.status().message()), out);
    return false;
  }
  a.input = *std::move(input);
  AddSignalInputs(a.task, a.s, a.inst, &a.input);
  a.input_bytes = a.input.dump().size();
  return true;
}

// A new step instance must fit the task's max_steps.
bool TaskEngine::CheckMaxSteps(DispatchAttempt& a, Outbox* out) {
  const Limits& limits = a.task.limits;
  if (!a.inst.counts_as_started() && limits.max_steps > 0 &&
      StepsStarted(a.task) >= limits.max_steps) {
    ExhaustBudget(a.task, absl::StrCat("max_steps ", limits.max_steps, ": step '", a.s.config->id, "'",
                                       a.fan_index >= 0 ? absl::StrCat("[", a.fan_index, "]") : "",
                                       " would be one more"),
                  out);
    return false;
  }
  return true;
}

absl::Status TaskEngine::CheckFork(const v1::TaskSubmission& submission, const WorkflowConfig& wf) const {
  if (!submission.has_fork()) return absl::OkStatus();
  const v1::Fork& fork = submission.fork();
  if (wf.FindStep(fork.from_step()) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("fork.from_step: workflow '", wf.name, "' has no step '", fork.from_step(), "'"));
  }
  for (int i = 0; i < fork.models_size(); ++i) {
    const v1::ModelOverride& m = fork.models(i);
    const AgentConfig* agent = config_->FindAgent(m.agent());
    std::string where = absl::StrCat("fork.models[", i, "]: ");
    if (agent == nullptr) return absl::InvalidArgumentError(absl::StrCat(where, "no agent '", m.agent(), "'"));
    if (agent->models.count(m.tier()) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, "agent '", m.agent(), "' has no model tier '", m.tier(), "'"));
    }
    if (config_->pricing.count(m.model()) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "model '", m.model(), "' has no price in the fleet config's pricing table"));
    }
  }
  return absl::OkStatus();
}

const AgentConfig* TaskEngine::AgentFor(const Task& task, const std::string& name) const {
  if (auto it = task.extra().agents.find(name); it != task.extra().agents.end()) return it->second.get();
  return config_->FindAgent(name);
}

// A fork's instance before its from_step: the original run's output, as it
// was (no call, no cost).
bool TaskEngine::ServeReused(DispatchAttempt& a, Outbox* out) {
  if (a.inst.ask_agent != nullptr || a.inst.attempt > 0) return true;
  auto it = a.task.extra().reused.find({a.s.config->id, a.fan_index});
  if (it == a.task.extra().reused.end()) return true;
  a.inst.reused = true;
  ServeCached(a.task, a.step, a.inst, it->second.first, it->second.second, /*saved_usd=*/0, /*similarity=*/0, out);
  return false;
}

// A cached output for this exact input serves the instance: no call, no cost.
bool TaskEngine::ServeFromCache(DispatchAttempt& a, Outbox* out) {
  // A question's answer is not cached: each question is asked.
  if (a.agent.cache_ttl <= absl::ZeroDuration() || a.inst.ask_agent != nullptr) return true;
  std::string canonical = CanonicalJson(a.input);
  std::string model = a.agent.models.at(a.base_tier);
  double saved_usd = 0;
  const Json* hit = cache_.Find(a.agent, model, canonical, clock_->Now(), &saved_usd);
  if (hit == nullptr) {
    a.inst.mutable_extra().cache_input = std::move(canonical);
    return true;
  }
  ++stats_.cache_hits;
  if (metrics_) metrics_->CacheHit(a.agent.name);
  ServeCached(a.task, a.step, a.inst, *hit, model, saved_usd, /*similarity=*/0, out);
  return false;
}

void TaskEngine::ServeCached(Task& task, size_t step, Instance& inst, const Json& output, const std::string& model,
                             double saved_usd, double similarity, Outbox* out) {
  StepRun& s = task.steps[step];
  inst.SetStatus(v1::STEP_STATUS_SUCCEEDED);
  inst.output = output;
  inst.cached = true;
  inst.mutable_extra().saved_usd = saved_usd;
  inst.mutable_extra().similarity = similarity;
  inst.model = model;
  inst.ClearError();
  inst.wait = Instance::Wait::kNone;  // served: it waits for nothing (a quota's queue entry goes stale)
  inst.retry_at = absl::InfiniteFuture();
  inst.DisarmAttempt();
  if (inst.in_fallback()) task.degraded = true;
  if (++s.succeeded + s.failed == s.instances.size()) CompleteStep(task, step, out);
}

// The semantic cache, looked up once before an instance's first call: a
// worker embeds the compared text (an embedding request, which is not a
// call of the agent and reserves nothing), and OnEmbedding takes it from
// there. A failed or late embedding is a miss, never a failure.
bool TaskEngine::ServeFromSemanticCache(DispatchAttempt& a, Outbox* out) {
  const auto& cache = a.agent.semantic_cache;
  Instance& inst = a.inst;
  // Looked up before the first call only: an instance with an attempt made
  // was looked up then (a restored one says so by its attempt alone).
  if (!cache || inst.extra().semantic_tried || inst.attempt > 0 || inst.ask_agent != nullptr || inst.in_fallback()) {
    return true;
  }
  inst.mutable_extra().semantic_tried = true;
  auto text = SemanticCache::Text(*cache, a.input);
  if (!text) {
    if (metrics_) metrics_->SemanticLookup(a.agent.name, "no_text");
    return true;
  }
  inst.mutable_extra().semantic_model = a.agent.models.at(a.base_tier);
  inst.mutable_extra().semantic_scope = SemanticCache::Scope(a.agent, inst.extra().semantic_model, a.task.tenant, a.input);
  inst.mutable_extra().semantic_text = *std::move(text);
  v1::WorkItem w = NewAttempt(a, a.base_tier);
  inst.mutable_extra().embed_attempt = inst.attempt;
  inst.mutable_extra().embedding_out = true;
  // The lookup's bound, queueing in the pool included: past it the call goes
  // ahead (a late embedding is stale).
  inst.schedule_deadline = absl::InfiniteFuture();
  inst.close_deadline = clock_->Now() + cache->timeout;
  ++stats_.embeddings;
  w.set_embed_text(inst.extra().semantic_text);
  out->work.push_back({a.agent.name, std::move(w), a.task.traceparent.str()});
  return false;
}

void TaskEngine::OnEmbedding(Task& task, size_t step, int fan, const v1::WorkResult* r, Outbox* out) {
  StepRun& s = task.steps[step];
  Instance& inst = s.instances[s.Index(fan)];
  const AgentConfig& agent = AgentOf(s, inst);
  inst.mutable_extra().embedding_out = false;
  inst.DisarmAttempt();
  inst.retry_at = absl::InfiniteFuture();
  inst.attempt_base = inst.attempt;  // the call's attempts count from here
  if (r != nullptr) CountUsage(task, agent, inst, *r);
  std::string outcome = "error";
  if (r != nullptr && r->status() == v1::RESULT_STATUS_OK && r->embedding_size() > 0 && !inst.extra().semantic_scope.empty()) {
    std::vector<float> embedding(r->embedding().begin(), r->embedding().end());
    if (auto hit = semantic_.Find(agent, inst.extra().semantic_scope, embedding, clock_->Now())) {
      ++stats_.cache_hits;
      ++stats_.semantic_hits;
      if (metrics_) metrics_->SemanticLookup(agent.name, "hit");
      ServeCached(task, step, inst, *hit->output, inst.extra().semantic_model, hit->cost_usd, hit->similarity, out);
      return;
    }
    outcome = "miss";
    inst.mutable_extra().embedding = std::move(embedding);
  }
  if (metrics_) metrics_->SemanticLookup(agent.name, outcome);
  Dispatch(task, step, fan, out);
}

// The task's budget: every attempt must be affordable, its worst case
// reserved, its max_tokens capped (coordinator/budget.h).
bool TaskEngine::CheckTaskBudget(DispatchAttempt& a, Outbox* out) {
  a.plan = PlanAttempt(*config_, a.agent, a.base_tier, a.input_bytes, a.task.limits, Spent(a.task), Committed(a.task));
  if (!a.plan.affordable) {
    if (HasReservations(a.task)) {
      // Outstanding attempts may settle for less than their worst case.
      a.inst.wait = Instance::Wait::kBudget;
      a.inst.retry_at = absl::InfiniteFuture();
      a.inst.DisarmAttempt();
      return false;
    }
    ExhaustBudget(a.task, a.plan.why_not, out);
    return false;
  }
  a.inst.StopWaiting(Instance::Wait::kBudget);
  return true;
}

// The attempt planned within this partition's slice of ledger `name` (a
// tenant's, or the fleet's spend_limit) for the current period; `in_flight`:
// whether calls that reserved on it are still out.
AttemptPlan TaskEngine::PlanWithinLedger(const DispatchAttempt& a, const std::string& name, const TenantConfig& limits,
                                         bool* in_flight) {
  const TenantLedgers::Ledger& ledger = tenants_.Current(name, a.task.partition, limits, clock_->Now());
  Spend used{ledger.settled.tokens + ledger.reserved.tokens, ledger.settled.cost_usd + ledger.reserved.cost_usd};
  *in_flight = ledger.reserved.tokens > 0 || ledger.reserved.cost_usd > 0;
  return PlanAttempt(*config_, a.agent, a.plan.tier, a.input_bytes, tenants_.Slice(limits), ledger.settled, used);
}

// Holds the attempt on ledger `name` until budget is released there, or
// the next period at the latest.
void TaskEngine::HoldOnLedger(DispatchAttempt& a, const std::string& name, TenantConfig::Period period) {
  a.inst.wait = Instance::Wait::kTenant;
  a.inst.retry_at = TenantLedgers::PeriodEnd(period, clock_->Now());
  a.inst.DisarmAttempt();
  tenants_.Hold(name, a.task.partition, {a.task.id(), a.step, a.fan_index});
}

// The tenant's budget, then the fleet's spend_limit: this partition's slice
// of each must pay too.
bool TaskEngine::CheckTenantBudget(DispatchAttempt& a, Outbox* out) {
  const std::string& name = a.task.tenant;
  bool in_flight = false;
  if (const TenantConfig* tenant = config_->FindTenant(name)) {
    AttemptPlan within = PlanWithinLedger(a, name, *tenant, &in_flight);
    if (!within.affordable) {
      // Calls in flight may settle for less than their worst case: wait for
      // them (and, holding, for the next period at the latest).
      if (in_flight || tenant->on_exhausted == TenantConfig::OnExhausted::kHold) {
        if (!a.inst.waiting(Instance::Wait::kTenant)) ++stats_.tenant_held;
        HoldOnLedger(a, name, tenant->period);
        return false;
      }
      ++stats_.tenant_rejected;
      ExhaustBudget(a.task,
                    absl::StrCat("tenant '", name, "' has spent its budget for this ",
                                 TenantLedgers::PeriodName(tenant->period), " (", within.why_not, ")"),
                    out);
      return false;
    }
    if (within.max_tokens < a.plan.max_tokens) a.plan = within;
  }
  // Once the fleet's spend_limit is spent, non-critical agents and batch
  // work wait for the next period; critical work goes on (and counts).
  const bool pausable = !a.agent.critical || a.task.priority == v1::PRIORITY_BATCH;
  if (config_->spend_limit && pausable) {
    AttemptPlan within = PlanWithinLedger(a, kFleetLedger, *config_->spend_limit, &in_flight);
    if (!within.affordable) {
      if (!a.inst.waiting(Instance::Wait::kTenant)) {
        ++stats_.spend_limit_held;
        if (metrics_) metrics_->SpendLimitHold(a.agent.name);
      }
      HoldOnLedger(a, kFleetLedger, config_->spend_limit->period);
      return false;
    }
    if (within.max_tokens < a.plan.max_tokens) a.plan = within;
  }
  a.inst.StopWaiting(Instance::Wait::kTenant);
  return true;
}

// The attempt's estimated tokens: its input (bytes / 4, as providers
// estimate) and the most it may answer.
static int64_t EstimatedTokens(size_t input_bytes, int max_tokens) {
  return static_cast<int64_t>(input_bytes / 4) + max_tokens;
}

// The agent's max_in_flight, split between the replicas: past it the
// attempt waits here, where the queue is fair, not on the work topic.
// Before the quota, so that a waiting attempt holds no quota.
bool TaskEngine::CheckWindow(DispatchAttempt& a, Outbox* out) {
  auto window = windows_.find(a.agent.name);
  if (window == windows_.end()) return true;
  const int64_t limit = WindowLimit(a.agent);
  return TakeTurn(a.task, a.step, a.fan_index, WindowKey(a.agent.name), EstimatedTokens(a.input_bytes, a.plan.max_tokens),
                  [&] { return window->second.in_use < limit; });
}

// The provider's quota, split between the replicas; interactive work first.
bool TaskEngine::CheckQuota(DispatchAttempt& a, Outbox* out) {
  std::string quota = rate_.Key(a.agent.provider, a.plan.model);
  if (quota.empty()) return true;
  const int64_t tokens = EstimatedTokens(a.input_bytes, a.plan.max_tokens);
  const absl::Time now = clock_->Now();
  return TakeTurn(a.task, a.step, a.fan_index, quota, tokens, [&] { return rate_.TryTake(quota, tokens, now); });
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
  // The first call after a semantic-cache lookup is no retry.
  if (inst.attempt > 0 && inst.attempt != inst.extra().embed_attempt) {
    ++stats_.retries;
    if (metrics_) metrics_->Retry(agent.name);
  }
  ++stats_.dispatched;
  v1::WorkItem w = NewAttempt(a, plan.tier);
  absl::Time now = clock_->Now();
  *w.mutable_input() = ToStruct(a.input);
  w.set_max_tokens(plan.max_tokens);
  if (plan.max_total_tokens > 0) w.set_max_total_tokens(plan.max_total_tokens);
  if (inst.extra().spawn_agent != nullptr || inst.ask_agent != nullptr) {
    // A sub-step's input is its planner's output; a question is its asker's.
    if (a.s.config->tainted_output) w.add_untrusted_fields("*");
  } else {
    for (const std::string& f : a.s.config->untrusted_fields) w.add_untrusted_fields(f);
  }
  // Batch work's first attempt goes through the provider's batch API when
  // the task's deadline leaves room for the batch to fill and the
  // provider's window; later attempts (and tight deadlines) are online.
  if (agent.batch && a.task.priority == v1::PRIORITY_BATCH && inst.AttemptsHere() == 1 &&
      !inst.in_fallback() && a.task.deadline - now >= BatchRunTime(agent)) {
    w.set_batch(true);
    inst.mutable_extra().batch_attempt = inst.attempt;
    ++stats_.batched;
  }
  // After the item's deadline no worker starts it, and a started call is
  // cut at the agent's timeout (a batched one at its batch's end): it can
  // spend no more.
  absl::Time item_deadline = w.has_deadline() ? FromTimestamp(w.deadline()) : absl::InfiniteFuture();
  absl::Duration run_for = w.batch() ? BatchRunTime(agent) : agent.timeout;
  absl::Time spend_until = item_deadline == absl::InfiniteFuture()
                               ? absl::InfiniteFuture()
                               : std::max(item_deadline, now + run_for) + kCloseGrace;
  inst.reservations.push_back({inst.attempt, plan.reserve, spend_until});
  AddReserved(a.task, plan.reserve, +1);
  if (agent.action) {
    w.set_effect_id(EffectId(w.task_id(), w.step(), a.fan_index));
    ++stats_.actions_dispatched;
    AuditDispatch(a.task, a.s, a.fan_index, w, out);
  }
  if (auto window = windows_.find(agent.name); window != windows_.end()) inst.slot.Take(&window->second);
  out->work.push_back({agent.name, std::move(w), a.task.traceparent.str()});
}

// A new attempt of the instance (its timers armed), and its work item's
// common fields.
v1::WorkItem TaskEngine::NewAttempt(DispatchAttempt& a, const std::string& tier) {
  Instance& inst = a.inst;
  const AgentConfig& agent = a.agent;
  absl::Time now = clock_->Now();
  ++inst.attempt;
  inst.SetStatus(v1::STEP_STATUS_PENDING);
  inst.dispatched_at = now;
  inst.retry_at = absl::InfiniteFuture();
  inst.DisarmAttempt();
  if (agent.schedule_to_start_timeout > absl::ZeroDuration()) {
    inst.schedule_deadline = now + agent.schedule_to_start_timeout;
  }
  v1::WorkItem w;
  w.set_task_id(a.task.id());
  w.set_step(a.s.config->id);
  w.set_fan_index(a.fan_index);
  w.set_attempt(a.s.attempt_offset + inst.attempt);
  w.set_agent(agent.name);
  w.set_model_tier(tier);
  if (a.task.extra().agents.count(agent.name) > 0) w.set_model(agent.models.at(tier));  // a fork's model
  // Past this the worker does not start the attempt: it would only be retried.
  absl::Time item_deadline = a.task.deadline;
  if (agent.schedule_to_start_timeout > absl::ZeroDuration()) {
    item_deadline = std::min(item_deadline, now + agent.schedule_to_start_timeout + agent.timeout);
  }
  if (item_deadline != absl::InfiniteFuture()) *w.mutable_deadline() = ToTimestamp(item_deadline);
  w.set_idempotency_key(IdempotencyKey(w.task_id(), w.step(), a.fan_index, w.attempt()));
  w.set_tenant(a.task.tenant);
  *w.mutable_dispatched_at() = ToTimestamp(now);
  w.set_event_partition(a.task.partition);
  return w;
}

void TaskEngine::OnEvent(const v1::WorkEvent& event, Outbox* out) {
  FreeFinished();
  auto it = active_.find(event.task_id());
  if (it == active_.end()) {
    ++stats_.stale_events;
    return;
  }
  Task& task = *it->second;
  auto step_it = task.step_index->find(event.step());
  if (step_it == task.step_index->end()) {
    ++stats_.stale_events;
    return;
  }
  size_t step = step_it->second;
  StepRun& s = task.steps[step];
  int fan = event.fan_index();
  if (!task.extra().abandoned.empty() && SettleAbandoned(task, event, out)) return;
  if (!s.started || !s.ValidFan(fan) || s.agent == nullptr) {  // a wait or child step has no attempts
    ++stats_.stale_events;
    return;
  }
  Instance& inst = s.instances[s.Index(fan)];
  // One result per attempt: a later attempt's dispatch, or an earlier
  // result, makes the event stale. A stale result still settles what its
  // attempt spent, if that attempt's reservation is held.
  const int attempt = event.attempt() - s.attempt_offset;
  if (attempt != inst.attempt || inst.done()) {
    ++stats_.stale_events;
    if (event.has_result() && AgentOf(s, inst).action) {
      AuditOutcome(task, s, fan, event.attempt(), &event.result(), nullptr, "ignored_stale", out);
    }
    if (event.has_result() && Unreserve(task, inst.Release(attempt))) {
      CountUsage(task, AgentOf(s, inst), inst, event.result());
      ResumeBudgetWaits(task, out);
      if (!task.finished) Touch(task);
    }
    return;
  }
  if (inst.waiting(Instance::Wait::kAnswer)) {
    // This attempt already answered with a question and waits for its
    // answer: another result of it is a redelivery (a worker consumes at
    // least once), not a second question. Found by
    // OrchestrationTest.AgentsAskAPersonAndSendPlansBackAndEveryTaskEndsOnce,
    // where one task recorded its question twice.
    ++stats_.stale_events;
    return;
  }
  if (attempt == inst.extra().embed_attempt && !inst.extra().embedding_out) {
    // A settled lookup's attempt number, while its call waits (a quota, a
    // budget, a backoff): a redelivered embedding request's events are stale.
    ++stats_.stale_events;
    return;
  }
  bool backing_off = inst.retry_at != absl::InfiniteFuture();
  absl::Time now = clock_->Now();
  switch (event.kind_case()) {
    case v1::WorkEvent::kReceipt:
    case v1::WorkEvent::kHeartbeat:
      if (backing_off) return;  // this attempt already timed out
      if (event.has_receipt()) {
        inst.SetStatus(v1::STEP_STATUS_RUNNING);
        inst.worker = event.receipt().worker();
        inst.schedule_deadline = absl::InfiniteFuture();
        if (!inst.extra().embedding_out) {
          const AgentConfig& agent = AgentOf(s, inst);
          // A batched attempt may take its batch's whole time.
          inst.close_deadline = inst.extra().batch_attempt == inst.attempt && agent.batch
                                    ? inst.dispatched_at + BatchRunTime(agent) + kCloseGrace
                                    : now + agent.timeout + kCloseGrace;
        }
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
  if (inst.extra().embedding_out && attempt == inst.extra().embed_attempt) {
    OnEmbedding(task, step, fan, &r, out);
    if (!task.finished) ResumeBudgetWaits(task, out);
    if (!task.finished) Touch(task);
    return;
  }
  // A timed-out attempt's late success is still a good result; its late
  // failure changes nothing (the retry is already scheduled).
  Unreserve(task, inst.Release(attempt));
  CountUsage(task, AgentOf(s, inst), inst, r);
  {
    const AgentConfig& agent = AgentOf(s, inst);
    bool failed = r.status() != v1::RESULT_STATUS_OK && CountsAsBreakerFailure(r.error().code());
    // A batch's answer is slow by design: never a slow call to a breaker.
    breakers_.Record(agent, ModelOf(agent, inst), now, failed, absl::Milliseconds(r.batch() ? 0 : r.latency_ms()));
  }
  const bool action = AgentOf(s, inst).action != nullptr;
  if (backing_off && r.status() != v1::RESULT_STATUS_OK) {
    if (action) AuditOutcome(task, s, fan, event.attempt(), &r, nullptr, "ignored_timed_out", out);
    ResumeBudgetWaits(task, out);
    if (!task.finished) Touch(task);
    return;
  }
  inst.model = r.model();
  inst.worker = r.worker();
  inst.latency_ms = r.latency_ms();
  inst.DisarmAttempt();
  inst.retry_at = absl::InfiniteFuture();
  if (r.status() == v1::RESULT_STATUS_OK && (inst.ask_agent != nullptr || r.output().fields().count(kAgentSignalField) > 0)) {
    // A question's answer, or an agent's signal instead of its output: not
    // an output of the step, and never cached.
    if (Instance::Extra* e = inst.extra_.if_made()) {
      e->cache_input.clear();
      e->embedding.clear();
    }
    if (inst.ask_agent != nullptr) {
      std::string by = absl::StrCat("agent:", inst.ask_agent->name);
      AnswerQuestion(task, step, fan, FromStruct(r.output()), by, /*timed_out=*/false, out);
    } else {
      OnAgentSignal(task, step, fan, FromValue(r.output().fields().at(kAgentSignalField)), out);
    }
    if (!task.finished) ResumeBudgetWaits(task, out);
    if (!task.finished) Touch(task);
    return;
  }
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
    inst.SetStatus(v1::STEP_STATUS_SUCCEEDED);
    inst.output = FromStruct(r.output());
    inst.ClearError();
    ++s.succeeded;
    if (inst.in_fallback()) task.degraded = true;
    if (!inst.extra().cache_input.empty()) {
      const AgentConfig& agent = AgentOf(s, inst);
      cache_.Insert(agent, ModelOf(agent, inst), inst.extra().cache_input, inst.output, now, inst.usage.cost_usd());
      inst.mutable_extra().cache_input.clear();
    }
    if (!inst.extra().embedding.empty()) {
      // Cached under the scope of the model it was looked up for, if that
      // model answered (a budget may have moved the call to a cheaper one).
      const AgentConfig& agent = AgentOf(s, inst);
      if (ModelOf(agent, inst) == inst.extra().semantic_model) {
        semantic_.Insert(agent, inst.extra().semantic_model, inst.extra().semantic_scope, inst.extra().semantic_text, std::move(inst.mutable_extra().embedding),
                         inst.output, now, inst.usage.cost_usd());
      }
      inst.mutable_extra().embedding.clear();
    }
    if (!spawned.empty()) {
      // The sub-steps run in parallel; the step completes when they all have.
      ++stats_.spawned;
      size_t first = s.instances.size();
      s.instances.resize(first + spawned.size());
      for (size_t i = 0; i < spawned.size(); ++i) {
        s.instances[first + i].mutable_extra().spawn_agent = spawned[i].first;
        s.instances[first + i].mutable_extra().spawn_input = std::move(spawned[i].second);
      }
      for (size_t i = first; !task.finished && i < s.instances.size(); ++i) Dispatch(task, step, s.Fan(i), out);
      if (!task.finished) Touch(task);
      return;
    }
    if (action) AuditOutcome(task, s, fan, event.attempt(), &r, nullptr, "succeeded", out);
    if (s.succeeded + s.failed == s.instances.size()) CompleteStep(task, step, out);
  } else if (action) {
    if (r.error().code() == kOutcomeUnknown) ++stats_.actions_unknown;
    AttemptFailed(task, step, fan, ActionError(AgentOf(s, inst), r.error()), out);
    AuditOutcome(task, s, fan, event.attempt(), &r, nullptr, ActionDecision(task, inst), out);
  } else {
    AttemptFailed(task, step, fan, r.error(), out);
  }
  if (!task.finished) ResumeBudgetWaits(task, out);
  if (!task.finished) Touch(task);
}

void TaskEngine::CountUsage(Task& task, const AgentConfig& agent, Instance& inst, const v1::WorkResult& r) {
  double cost = config_->Cost(r.model(), r.usage().input_tokens(), r.usage().output_tokens(), r.batch());
  if (r.batch()) inst.mutable_extra().batch_saved_usd += config_->Cost(r.model(), r.usage().input_tokens(), r.usage().output_tokens()) - cost;
  // An embedding request is no call of the agent's model (its cost counts).
  if (metrics_ && r.embedding_size() == 0 && inst.extra().embed_attempt != inst.attempt) metrics_->Call(agent.name, r, cost);
  if (const TenantConfig* tenant = config_->FindTenant(task.tenant)) {
    tenants_.Settle(task.tenant, task.partition, *tenant,
                    {r.usage().input_tokens() + r.usage().output_tokens(), cost}, clock_->Now());
  }
  if (config_->spend_limit) {
    tenants_.Settle(kFleetLedger, task.partition, *config_->spend_limit,
                    {r.usage().input_tokens() + r.usage().output_tokens(), cost}, clock_->Now());
  }
  for (v1::Usage* u : {&inst.usage, &task.usage}) {
    u->set_input_tokens(u->input_tokens() + r.usage().input_tokens());
    u->set_output_tokens(u->output_tokens() + r.usage().output_tokens());
    u->set_cost_usd(u->cost_usd() + cost);
    u->set_calls(u->calls() + (agent.action ? 0 : std::max<int64_t>(1, r.usage().calls())));  // actions are no model calls; a tool loop is several
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
      if (inst.waiting(Instance::Wait::kChild)) {
        c.tokens += inst.extra().child_budget.tokens;
        c.cost_usd += inst.extra().child_budget.cost_usd;
      }
    }
  }
  for (const Task::Abandoned& a : task.extra().abandoned) {
    c.tokens += a.reservation.spend.tokens;
    c.cost_usd += a.reservation.spend.cost_usd;
  }
  return c;
}

bool TaskEngine::HasReservations(const Task& task) {
  if (!task.extra().abandoned.empty()) return true;
  for (const StepRun& s : task.steps) {
    for (const Instance& inst : s.instances) {
      if (!inst.reservations.empty() || inst.waiting(Instance::Wait::kChild)) return true;
    }
  }
  return false;
}

int64_t TaskEngine::StepsStarted(const Task& task) {
  int64_t n = 0;
  for (const StepRun& s : task.steps) {
    for (const Instance& inst : s.instances) n += inst.counts_as_started();
  }
  return n;
}

void TaskEngine::ResumeBudgetWaits(Task& task, Outbox* out) {
  for (size_t step = 0; !task.finished && step < task.steps.size(); ++step) {
    StepRun& s = task.steps[step];
    for (size_t i = 0; !task.finished && i < s.instances.size(); ++i) {
      if (!s.instances[i].waiting(Instance::Wait::kBudget)) continue;
      if (s.agent == nullptr) {
        s.instances[i].wait = Instance::Wait::kNone;
        StartChild(task, step, out);  // a child step that waited for budget
      } else {
        Dispatch(task, step, s.Fan(i), out);
      }
    }
  }
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
  if (inst.extra().embedding_out && inst.attempt == inst.extra().embed_attempt) {
    // The embedding request timed out: a miss, and the call goes ahead.
    OnEmbedding(task, step, fan, nullptr, out);
    return;
  }
  inst.mutable_extra().error = error;
  inst.DisarmAttempt();
  const AgentConfig& agent = AgentOf(s, inst);
  if (error.code() == kMaxTokensExceeded && inst.max_tokens > 0 && inst.max_tokens < agent.max_tokens) {
    // The answer needed more than the budget could pay for.
    inst.SetStatus(v1::STEP_STATUS_FAILED);
    ExhaustBudget(task,
                  absl::StrCat("step '", s.config->id, "'", fan >= 0 ? absl::StrCat("[", fan, "]") : "",
                               " needed more than the ", inst.max_tokens, " output tokens it could pay for"),
                  out);
    return;
  }
  int attempts_here = inst.AttemptsHere();  // on the current agent or tier
  if (error.retryable() && attempts_here < agent.max_attempts) {
    inst.SetStatus(v1::STEP_STATUS_PENDING);
    // The provider's Retry-After is a floor; a worker that shut down before
    // finishing the item is no reason to wait.
    absl::Duration wait = std::max(Backoff(agent, task.task_id, s.config->id, fan, inst.attempt, attempts_here), absl::Milliseconds(error.retry_after_ms()));
    if (error.code() == kWorkerShutdown) wait = absl::ZeroDuration();
    inst.retry_at = clock_->Now() + wait;
    return;
  }
  std::string where = absl::StrCat("step '", s.config->id, "'", fan >= 0 ? absl::StrCat("[", fan, "]") : "");
  std::string why = absl::StrCat(where, " failed after ", inst.attempt, " attempt(s): ", error.message());
  if (inst.ask_agent != nullptr) {
    // The agent asked to answer its question could not: the asker fails
    // (its own fallback would ask the same).
    why = absl::StrCat(where, ": agent '", inst.ask_agent->name, "' could not answer its question (",
                       error.code(), ": ", error.message(), ")");
    inst.mutable_extra().error = MakeError(kNeedsInfoFailed, why);
    inst.ask_agent = nullptr;
  }
  // The agent cannot serve it: its fallback may (input errors are the
  // input's fault; a question nobody answered is no agent's).
  if (!inst.in_fallback() && agent.fallback && error.code() != kInvalidInput && error.code() != kWaitTimeout &&
      inst.extra().error.code() != kNeedsInfoFailed) {
    StartFallback(task, step, fan, absl::StrCat("agent '", agent.name, "' failed (", error.code(), ": ",
                                                error.message(), ")"),
                  out);
    return;
  }
  inst.SetStatus(v1::STEP_STATUS_FAILED);
  if (s.config->optional) {
    // Degrade: the task goes on without this output.
    ++s.failed;
    task.degraded = true;
    inst.mutable_extra().note = absl::StrCat("optional ", why);
    if (s.succeeded + s.failed == s.instances.size()) CompleteStep(task, step, out);
    return;
  }
  FailTask(task, inst.extra().error.code().empty() ? "step_failed" : inst.extra().error.code(), why, out);
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
  return inst.ask_agent        ? *inst.ask_agent  // answering the instance's question
         : inst.fallback_agent ? *inst.fallback_agent
         : inst.extra().spawn_agent    ? *inst.extra().spawn_agent
                               : *s.agent;
}

void TaskEngine::StartFallback(Task& task, size_t step, int fan, const std::string& reason, Outbox* out) {
  StepRun& s = task.steps[step];
  Instance& inst = s.instances[s.Index(fan)];
  const FallbackConfig& fb = *(inst.extra().spawn_agent ? inst.extra().spawn_agent : s.agent)->fallback;
  ++stats_.fallbacks;
  if (metrics_) {
    metrics_->Fallback((inst.extra().spawn_agent ? inst.extra().spawn_agent : s.agent)->name,
                       fb.agent.empty() ? "tier:" + fb.model_tier : fb.agent);
  }
  inst.fallback_from = inst.attempt;
  inst.attempt_base = inst.attempt;
  inst.fallback_agent = fb.agent.empty() ? nullptr : AgentFor(task, fb.agent);
  inst.mutable_extra().fallback_tier = fb.model_tier;
  inst.tier.clear();
  inst.SetStatus(v1::STEP_STATUS_PENDING);
  inst.retry_at = absl::InfiniteFuture();
  inst.DisarmAttempt();
  inst.mutable_extra().note = absl::StrCat("served by the fallback ",
                           fb.agent.empty() ? absl::StrCat("model tier '", fb.model_tier, "'")
                                            : absl::StrCat("agent '", fb.agent, "'"),
                           ": ", reason);
  Dispatch(task, step, fan, out);
}

absl::Duration TaskEngine::Backoff(const AgentConfig& agent, const std::string& task_id, const std::string& step,
                                   int fan, int attempt, int attempts_here) {
  const RetryPolicy& p = agent.retry;
  double base = absl::ToDoubleSeconds(p.initial_backoff) * std::pow(p.multiplier, attempts_here - 1);
  base = std::min(base, absl::ToDoubleSeconds(p.max_backoff));
  // The jitter is drawn from the attempt's own identity, not from a stream
  // shared by every task: the same on any replica that takes the task over,
  // and in `agentfleet replay`.
  std::vector<uint32_t> identity(task_id.begin(), task_id.end());
  identity.push_back(0);
  identity.insert(identity.end(), step.begin(), step.end());
  identity.push_back(static_cast<uint32_t>(fan));
  identity.push_back(static_cast<uint32_t>(attempt));
  std::seed_seq seq(identity.begin(), identity.end());
  std::mt19937_64 rng(seq);
  std::uniform_real_distribution<double> jitter(1 - p.jitter, 1 + p.jitter);
  return absl::Seconds(base * jitter(rng));
}

void TaskEngine::CompleteStep(Task& task, size_t step, Outbox* out) {
  StepRun& s = task.steps[step];
  s.complete = true;
  s.output = StepOutput(s);
  if (!s.config->emit.empty() && !s.skipped) {
    Json record = {{"task_id", task.id()},
                   {"tenant", task.tenant},
                   {"workflow", task.workflow->name},
                   {"step", s.config->id},
                   {"output", s.output}};
    out->records.push_back({s.config->emit, task.id(), record.dump(), {{"content-type", "application/json"}}});
  }
  ++task.steps_done;
  if (task.steps_done == task.steps.size()) {
    Finish(task, task.degraded ? v1::TASK_STATUS_PARTIAL : v1::TASK_STATUS_COMPLETED, nullptr, out);
    return;
  }
  for (size_t d : s.dependents) --task.steps[d].waiting_on;
  StartReadySteps(task, out);
}

const char* SignalOutcomeName(SignalOutcome outcome) {
  switch (outcome) {
    case SignalOutcome::kCancelled: return "cancelled";
    case SignalOutcome::kCancelAhead: return "cancel_ahead";
    case SignalOutcome::kDelivered: return "delivered";
    case SignalOutcome::kBuffered: return "buffered";
    case SignalOutcome::kUnknownTask: return "unknown_task";
    case SignalOutcome::kFinishedTask: return "finished_task";
    case SignalOutcome::kDuplicate: return "duplicate";
    case SignalOutcome::kUnwanted: return "unwanted";
  }
  return "unknown";
}

void TaskEngine::StartWait(Task& task, size_t step, Outbox* out) {
  StepRun& s = task.steps[step];
  const WaitConfig& wait = *s.config->wait;
  Instance& inst = s.instances[0];
  inst.dispatched_at = clock_->Now();
  inst.SetStatus(v1::STEP_STATUS_RUNNING);
  inst.wait = Instance::Wait::kSignal;
  inst.retry_at = inst.dispatched_at + wait.timeout;
  for (auto it = task.extra().pending_signals.begin(); it != task.extra().pending_signals.end(); ++it) {
    if (it->name() != wait.signal) continue;
    v1::TaskSignal early = std::move(*it);
    task.mutable_extra().pending_signals.erase(it);
    DeliverSignal(task, early, out);  // the step now waits for it: delivered
    return;
  }
}

void TaskEngine::StartChild(Task& task, size_t step, Outbox* out) {
  StepRun& s = task.steps[step];
  const StepConfig& c = *s.config;
  Instance& inst = s.instances[0];
  int depth = task.depth + 1;
  if (depth > config_->coordinator.max_child_depth) {
    FailTask(task, "child_depth_exceeded",
             absl::StrCat("step '", c.id, "' would start a child at depth ", depth,
                          "; coordinator.max_child_depth is ", config_->coordinator.max_child_depth),
             out);
    return;
  }
  auto input = agentfleet::BuildInput(c.input, ContextFor(task));
  if (!input.ok() || !input->is_object()) {
    FailTask(task, "invalid_input",
             absl::StrCat("step '", c.id, "': ", input.ok() ? "a child's input must be an object" : input.status().message()),
             out);
    return;
  }
  // The child's budget: its own cap, never more than this task has left.
  Spend committed = Committed(task);
  Spend budget{c.child_max_tokens, c.child_max_cost_usd};
  if (task.limits.max_tokens > 0) {
    int64_t left = task.limits.max_tokens - committed.tokens;
    budget.tokens = budget.tokens > 0 ? std::min(budget.tokens, left) : left;
  }
  if (task.limits.max_cost_usd > 0) {
    double left = task.limits.max_cost_usd - committed.cost_usd;
    budget.cost_usd = budget.cost_usd > 0 ? std::min(budget.cost_usd, left) : left;
  }
  if ((task.limits.max_tokens > 0 && budget.tokens <= 0) || (task.limits.max_cost_usd > 0 && budget.cost_usd <= 0)) {
    if (HasReservations(task)) {
      inst.wait = Instance::Wait::kBudget;  // retried when a reservation settles
      return;
    }
    ExhaustBudget(task, absl::StrCat("nothing left for the child workflow of step '", c.id, "'"), out);
    return;
  }
  v1::TaskSubmission child;
  // After a re-plan the step's child is a new task: "<id>/<step>~<re-plans so far>".
  child.set_task_id(task.extra().rescopes.empty() ? absl::StrCat(task.id(), "/", c.id)
                                          : absl::StrCat(task.id(), "/", c.id, "~", task.extra().rescopes.size()));
  child.set_tenant(task.tenant);
  child.set_workflow(c.child_workflow);
  *child.mutable_input() = ToStruct(*input);
  if (budget.tokens > 0) child.mutable_budget()->set_max_tokens(budget.tokens);
  if (budget.cost_usd > 0) child.mutable_budget()->set_max_cost_usd(budget.cost_usd);
  child.set_priority(task.priority);
  if (task.deadline != absl::InfiniteFuture()) *child.mutable_deadline() = ToTimestamp(task.deadline);
  *child.mutable_submitted_at() = ToTimestamp(clock_->Now());
  *child.mutable_labels() = task.Submission().labels();
  (*child.mutable_labels())["parent_task_id"] = task.id();
  child.set_parent_task_id(task.id());
  child.set_depth(depth);
  Encoded e = Encode(child, ChildTraceparent(task.traceparent.str()));
  out->records.push_back({topics_.tasks, child.task_id(), std::move(e.payload), std::move(e.headers)});
  inst.mutable_extra().child_task_id = child.task_id();
  inst.mutable_extra().child_budget = budget;
  inst.SetStatus(v1::STEP_STATUS_RUNNING);
  inst.wait = Instance::Wait::kChild;
  inst.dispatched_at = clock_->Now();
  inst.mutable_extra().note = absl::StrCat("child task ", child.task_id());
}

SignalOutcome TaskEngine::EndChild(Task& task, const v1::TaskResult& child, Outbox* out) {
  for (auto it = task.extra().abandoned.begin(); it != task.extra().abandoned.end(); ++it) {
    if (it->child_task_id != child.task_id()) continue;
    // A child a re-plan cancelled: what it spent is this task's; its budget is free again.
    AddUsage(child.usage(), &task.usage);
    AddUsage(child.usage(), &task.mutable_extra().children_usage);
    task.mutable_extra().abandoned.erase(it);
    ResumeBudgetWaits(task, out);
    return SignalOutcome::kDelivered;
  }
  for (size_t i = 0; i < task.steps.size(); ++i) {
    StepRun& s = task.steps[i];
    if (s.config->child_workflow.empty() || !s.started || s.complete) continue;
    Instance& inst = s.instances[0];
    if (inst.extra().child_task_id != child.task_id() || !inst.waiting(Instance::Wait::kChild)) continue;
    inst.wait = Instance::Wait::kNone;
    inst.mutable_extra().child_budget = {};
    inst.usage = child.usage();
    AddUsage(child.usage(), &task.usage);
    AddUsage(child.usage(), &task.mutable_extra().children_usage);
    inst.latency_ms = absl::ToInt64Milliseconds(clock_->Now() - inst.dispatched_at);
    bool ok = child.status() == v1::TASK_STATUS_COMPLETED || child.status() == v1::TASK_STATUS_PARTIAL;
    std::string status = v1::TaskStatus_Name(child.status()).substr(sizeof("TASK_STATUS_") - 1);
    if (ok) {
      inst.SetStatus(v1::STEP_STATUS_SUCCEEDED);
      inst.output = child.has_output() ? FromValue(child.output()) : Json();
      if (child.status() == v1::TASK_STATUS_PARTIAL) {
        task.degraded = true;
        inst.mutable_extra().note = absl::StrCat("child task ", child.task_id(), " ended PARTIAL");
      }
      s.succeeded = 1;
    } else {
      inst.SetStatus(v1::STEP_STATUS_FAILED);
      inst.mutable_extra().error = MakeError("child_failed", absl::StrCat("child task ", child.task_id(), " ended ", status,
                                                           child.has_error() ? ": " + child.error().message() : ""));
      if (!s.config->optional) {
        FailTask(task, "child_failed", absl::StrCat("step '", s.config->id, "': ", inst.extra().error.message()), out);
        return SignalOutcome::kDelivered;
      }
      task.degraded = true;
      inst.mutable_extra().note = inst.extra().error.message();
      s.failed = 1;
    }
    CompleteStep(task, i, out);
    if (!task.finished) ResumeBudgetWaits(task, out);  // its unused budget is free again
    return SignalOutcome::kDelivered;
  }
  return SignalOutcome::kDuplicate;  // no step waits for that child (any more)
}

SignalOutcome TaskEngine::DeliverSignal(Task& task, const v1::TaskSignal& signal, Outbox* out) {
  // Signals beyond kMaxPendingSignals, for steps that have not started, are dropped.
  if (SignalOutcome answered; DeliverAnswer(task, signal, &answered, out)) return answered;
  bool later = false;  // a step that has not started waits for this name
  for (size_t i = 0; i < task.steps.size(); ++i) {
    StepRun& s = task.steps[i];
    if (!s.config->wait || s.config->wait->signal != signal.name()) continue;
    if (s.started && !s.complete && s.instances[0].waiting(Instance::Wait::kSignal)) {
      Json payload = signal.has_payload() ? FromValue(signal.payload()) : Json();
      EndWait(task, i,
              Json{{"signal", signal.name()}, {"payload", std::move(payload)}, {"sender", signal.sender()},
                   {"timed_out", false}},
              signal.sender().empty() ? std::string() : absl::StrCat("signal from ", signal.sender()), out);
      return SignalOutcome::kDelivered;
    }
    later = later || !s.started;
  }
  if (!later) {
    // Its steps already took one (a duplicate, or a signal after a timeout),
    // or were skipped; or no step waits for that name at all.
    bool named = absl::c_any_of(task.steps, [&](const StepRun& s) {
      return s.config->wait && s.config->wait->signal == signal.name();
    });
    return named ? SignalOutcome::kDuplicate : SignalOutcome::kUnwanted;
  }
  for (const v1::TaskSignal& p : task.extra().pending_signals) {
    if (p.name() == signal.name()) return SignalOutcome::kDuplicate;
  }
  if (task.extra().pending_signals.size() >= kMaxPendingSignals) return SignalOutcome::kUnwanted;
  task.mutable_extra().pending_signals.push_back(signal);
  return SignalOutcome::kBuffered;
}

SignalOutcome TaskEngine::KeepAhead(const v1::TaskSignal& signal, int32_t partition) {
  const std::string& id = signal.task_id();
  auto it = ahead_.find(id);
  if (it == ahead_.end()) {
    if (ahead_.size() >= kMaxAhead) return SignalOutcome::kUnknownTask;
    const absl::Time now = clock_->Now();
    it = ahead_.emplace(id, Ahead{}).first;
    it->second.at = now;
    it->second.partition = partition;
    expiries_.insert({now + config_->coordinator.finished_retention, id});
  }
  Ahead& a = it->second;
  SignalOutcome outcome = SignalOutcome::kBuffered;
  if (signal.cancel()) {
    a.cancel = true;
    a.reason = signal.reason().empty() ? "cancelled" : signal.reason();
    outcome = SignalOutcome::kCancelAhead;
  } else {
    for (const v1::TaskSignal& s : a.signals) {
      if (s.name() == signal.name()) return SignalOutcome::kDuplicate;
    }
    const size_t bytes = signal.ByteSizeLong();
    if (a.signals.size() >= kMaxPendingSignals) return SignalOutcome::kUnwanted;
    if (ahead_bytes_ + bytes > kMaxAheadBytes) {
      if (!a.cancel && a.signals.empty()) {  // nothing kept for it after all
        expiries_.erase({a.at + config_->coordinator.finished_retention, id});
        ahead_.erase(it);
      }
      return SignalOutcome::kUnknownTask;
    }
    ahead_bytes_ += bytes;
    a.signals.push_back(signal);
  }
  dirty_.insert(id);
  dirty_partition_[id] = partition;
  return outcome;
}

void TaskEngine::ForgetAhead(absl::flat_hash_map<std::string, Ahead>::iterator it) {
  for (const v1::TaskSignal& signal : it->second.signals) ahead_bytes_ -= signal.ByteSizeLong();
  ahead_.erase(it);
}

void TaskEngine::EndWait(Task& task, size_t step, Json output, const std::string& note, Outbox* out) {
  StepRun& s = task.steps[step];
  Instance& inst = s.instances[0];
  inst.wait = Instance::Wait::kNone;
  inst.retry_at = absl::InfiniteFuture();
  inst.SetStatus(v1::STEP_STATUS_SUCCEEDED);
  inst.output = std::move(output);
  inst.mutable_extra().note = note;
  inst.latency_ms = absl::ToInt64Milliseconds(clock_->Now() - inst.dispatched_at);
  s.succeeded = 1;
  CompleteStep(task, step, out);
}

SignalOutcome TaskEngine::OnSignal(const v1::TaskSignal& signal, int32_t partition, Outbox* out) {
  FreeFinished();
  const std::string& id = signal.task_id();
  auto it = active_.find(id);
  if (it == active_.end()) {
    if (finished_.contains(id)) {
      ++stats_.signals_ignored;
      return SignalOutcome::kFinishedTask;
    }
    // A signal that overtook its submission (a child's result is for a
    // parent that exists): kept, durably, for when the submission is read.
    SignalOutcome kept = signal.has_child_result() ? SignalOutcome::kUnknownTask : KeepAhead(signal, partition);
    if (kept != SignalOutcome::kCancelAhead && kept != SignalOutcome::kBuffered) ++stats_.signals_ignored;
    return kept;
  }
  Task& task = *it->second;
  if (signal.has_child_result()) {
    SignalOutcome outcome = EndChild(task, signal.child_result(), out);
    if (outcome != SignalOutcome::kDelivered) ++stats_.signals_ignored;
    if (!task.finished) Touch(task);
    return outcome;
  }
  if (signal.cancel()) {
    v1::Error error = MakeError(kCancelled, signal.reason().empty() ? "cancelled" : signal.reason());
    ++stats_.cancelled;
    Finish(task, v1::TASK_STATUS_CANCELLED, &error, out);
    return SignalOutcome::kCancelled;
  }
  SignalOutcome outcome = DeliverSignal(task, signal, out);
  if (outcome != SignalOutcome::kDelivered && outcome != SignalOutcome::kBuffered) ++stats_.signals_ignored;
  if (!task.finished) Touch(task);
  return outcome;
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
  for (auto a = task.extra().abandoned.begin(); a != task.extra().abandoned.end();) {
    if (a->reservation.expires > now) {
      ++a;
      continue;
    }
    if (a->on_tenant_ledger()) AddReserved(task, a->reservation.spend, -1);
    a = task.mutable_extra().abandoned.erase(a);
    released = true;
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
        if (s.instances[i].waiting(Instance::Wait::kQuota)) Dispatch(task, step, s.Fan(i), out);
      }
    }
  }
  for (size_t step = 0; !task.finished && step < task.steps.size(); ++step) {
    StepRun& s = task.steps[step];
    for (size_t i = 0; !task.finished && i < s.instances.size(); ++i) {
      Instance& inst = s.instances[i];
      int fan = s.Fan(i);
      switch (inst.state()) {
        case Instance::State::kWaiting:
          // Only a tenant's wait (the next period) and a signal's (its
          // timeout) have a time.
          if (inst.waiting(Instance::Wait::kTenant) && inst.retry_at <= now) Dispatch(task, step, fan, out);
          if (inst.waiting(Instance::Wait::kAnswer) && inst.retry_at <= now) AnswerTimedOut(task, step, fan, out);
          if (inst.waiting(Instance::Wait::kSignal) && inst.retry_at <= now) {
            const WaitConfig& wait = *s.config->wait;
            if (wait.fail_on_timeout) {
              FailTask(task, kWaitTimeout,
                       absl::StrCat("step '", s.config->id, "' waited ", absl::FormatDuration(wait.timeout),
                                    " for signal '", wait.signal, "'"),
                       out);
            } else {
              EndWait(task, step, Json{{"signal", wait.signal}, {"timed_out", true}},
                      absl::StrCat("no signal '", wait.signal, "' within ", absl::FormatDuration(wait.timeout)), out);
            }
          }
          continue;
        case Instance::State::kBackingOff:
          if (inst.retry_at <= now) Dispatch(task, step, fan, out);
          continue;
        case Instance::State::kInFlight:
          break;  // its deadlines
        case Instance::State::kNotStarted:
        case Instance::State::kDone:
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
      const AgentConfig& agent = AgentOf(s, inst);
      if (!agent.action) {
        AttemptFailed(task, step, fan, error, out);
        continue;
      }
      // Whether the action was applied is unknown: a retry repeats its
      // effect id; under on_unknown: stop the task stops here.
      ++stats_.actions_unknown;
      v1::Error taken = ActionError(agent, error);
      AttemptFailed(task, step, fan, taken, out);
      AuditOutcome(task, s, fan, s.attempt_offset + inst.attempt, nullptr, &taken, ActionDecision(task, inst), out);
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
    out->results.push_back({std::move(r), state.traceparent(), state.parent_traceparent(), -1, state.children_usage()});
    NotifyParent(out->results.back(), out);
    ++stats_.finished;
    Remember(sub.task_id(), now, partition);
  }
  orphans_.clear();
  while (!timers_.empty() && timers_.begin()->first <= now) {
    std::string id(timers_.begin()->second);
    timers_.erase(timers_.begin());
    auto it = active_.find(id);
    if (it == active_.end()) continue;
    Task& task = *it->second;
    task.armed = absl::InfiniteFuture();
    FireTimers(task, now, out);
    if (!task.finished) Touch(task);
  }
  // Every restored waiter due has queued with its turn by now.
  restored_turns_.clear();
  if (tenants_.has_woken()) WakeTenantWaiters(out);
  // Cleared before serving: a slot freed while the queues are served (a
  // failed task's) asks for another round.
  window_freed_ = false;
  if (!rate_waiting_.empty()) ServeRateQueues(out);
  while (!expiries_.empty() && expiries_.begin()->first <= now) {
    std::string id = expiries_.begin()->second;
    expiries_.erase(expiries_.begin());
    if (auto ahead = ahead_.find(id);
        ahead != ahead_.end() && ahead->second.at + config_->coordinator.finished_retention <= now) {
      dirty_.insert(id);
      dirty_partition_[id] = ahead->second.partition;
      ForgetAhead(ahead);  // tombstone: its submission never came
      continue;
    }
    auto it = finished_.find(id);
    if (it == finished_.end()) continue;
    dirty_.insert(id);
    dirty_partition_[id] = it->second.partition;
    finished_.erase(it);  // tombstone: the id may be used again
  }
}

absl::Time TaskEngine::NextTimer() const {
  if (!orphans_.empty() || tenants_.has_woken() || (window_freed_ && !rate_waiting_.empty())) {
    return absl::InfinitePast();
  }
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
  for (const Task::Abandoned& a : task.extra().abandoned) next = std::min(next, a.reservation.expires);
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

Outbox::Result TaskEngine::BuildResult(const Task& task, v1::TaskStatus status, const v1::Error* error,
                                       absl::Time now) {
  v1::TaskResult r = NewResult(task.Submission(), status, error, now);
  if (status == v1::TASK_STATUS_COMPLETED || status == v1::TASK_STATUS_PARTIAL ||
      status == v1::TASK_STATUS_BUDGET_EXHAUSTED || status == v1::TASK_STATUS_CANCELLED) {
    // The output step's output; when the budget stopped the task first, the
    // best result so far: the last completed step's, in workflow order.
    auto output_step = task.step_index->find(task.workflow->output_step);  // validated: it exists
    const StepRun* best = output_step == task.step_index->end() ? nullptr : &task.steps[output_step->second];
    for (size_t i = task.steps.size(); (best == nullptr || !best->complete) && i-- > 0;) {
      if (task.steps[i].complete) best = &task.steps[i];
    }
    if (best != nullptr && best->complete) *r.mutable_output() = ToValue(best->output);
  }
  for (const StepRun& s : task.steps) {
    for (size_t i = 0; i < s.instances.size(); ++i) {
      const Instance& inst = s.instances[i];
      v1::StepSummary* sum = r.add_steps();
      sum->set_step(s.config->id);
      sum->set_fan_index(s.Fan(i));
      sum->set_agent(s.agent == nullptr ? "" : AgentOf(s, inst).name);
      sum->set_explanation(inst.extra().note);
      sum->set_model(inst.model);
      // PENDING: never sent (waiting for budget, a quota, its tenant, or
      // the task ended first); SKIPPED only when its when: did not hold.
      sum->set_status(inst.status);
      sum->set_cached(inst.cached && !inst.reused);
      sum->set_reused(inst.reused);
      sum->set_saved_cost_usd(inst.extra().saved_usd);
      sum->set_semantic_similarity(inst.extra().similarity);
      sum->set_batch_saved_usd(inst.extra().batch_saved_usd);
      sum->set_attempts(inst.attempt - (inst.extra().embed_attempt > 0 ? 1 : 0));  // an embedding request is no attempt
      *sum->mutable_usage() = inst.usage;
      sum->set_latency_ms(inst.latency_ms);
      if (inst.status != v1::STEP_STATUS_SUCCEEDED && inst.extra().error.code().size()) *sum->mutable_error() = inst.extra().error;
      sum->set_worker(inst.worker);
      for (const v1::AgentQuestion& q : inst.extra().questions) *sum->add_questions() = q;
    }
  }
  for (const v1::Rescope& rs : task.extra().rescopes) *r.add_rescopes() = rs;
  *r.mutable_usage() = task.usage;
  *r.mutable_accepted_at() = ToTimestamp(task.accepted_at);
  double used = -1;
  if (task.limits.max_cost_usd > 0) used = task.usage.cost_usd() / task.limits.max_cost_usd;
  if (task.limits.max_tokens > 0) {
    used = std::max(used, static_cast<double>(task.usage.input_tokens() + task.usage.output_tokens()) /
                              static_cast<double>(task.limits.max_tokens));
  }
  return {std::move(r), task.traceparent.str(), task.parent_traceparent.str(), used, task.extra().children_usage};
}

void TaskEngine::CancelChild(const Task& task, const Instance& inst, const std::string& reason, Outbox* out) {
  if (!inst.waiting(Instance::Wait::kChild)) return;
  v1::TaskSignal cancel;
  cancel.set_task_id(inst.extra().child_task_id);
  cancel.set_cancel(true);
  cancel.set_reason(reason);
  Encoded e = Encode(cancel, task.traceparent.str());
  out->records.push_back({topics_.signals, cancel.task_id(), std::move(e.payload), std::move(e.headers)});
}

void TaskEngine::Finish(Task& task, v1::TaskStatus status, const v1::Error* error, Outbox* out) {
  absl::Time now = clock_->Now();
  out->results.push_back(BuildResult(task, status, error, now));
  NotifyParent(out->results.back(), out);
  for (const StepRun& s : task.steps) {
    for (const Instance& inst : s.instances) {
      // The parent ended first: its running children are cancelled.
      CancelChild(task, inst,
                  absl::StrCat("its parent task ", task.id(), " ended ",
                               v1::TaskStatus_Name(status).substr(sizeof("TASK_STATUS_") - 1)),
                  out);
    }
  }
  if (!task.workflow->emit.empty()) {
    std::string json;
    google::protobuf::util::JsonPrintOptions print;
    print.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(out->results.back().result, &json, print);
    out->records.push_back({task.workflow->emit, task.id(), std::move(json), {{"content-type", "application/json"}}});
  }
  ++stats_.finished;
  for (StepRun& s : task.steps) {
    for (Instance& inst : s.instances) {
      for (const auto& res : inst.reservations) AddReserved(task, res.spend, -1);
      inst.slot.Release();  // its attempt is over for the window now, not when the task is freed
    }
  }
  for (const Task::Abandoned& a : task.extra().abandoned) {
    if (a.on_tenant_ledger()) AddReserved(task, a.reservation.spend, -1);
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

void TaskEngine::AddReserved(const Task& task, const Spend& spend, int sign) {
  tenants_.Reserve(task.tenant, task.partition, spend, sign);
  if (config_->spend_limit) tenants_.Reserve(kFleetLedger, task.partition, spend, sign);
}

bool TaskEngine::Unreserve(const Task& task, const std::optional<Spend>& released) {
  if (!released) return false;
  AddReserved(task, *released, -1);
  return true;
}

void TaskEngine::WakeTenantWaiters(Outbox* out) {
  for (const auto& [id, step, fan] : tenants_.TakeWoken()) {
    auto task = active_.find(id);
    if (task == active_.end() || step >= task->second->steps.size() || !task->second->steps[step].ValidFan(fan)) {
      continue;
    }
    Task& t = *task->second;
    if (!t.steps[step].instances[t.steps[step].Index(fan)].waiting(Instance::Wait::kTenant)) continue;
    Dispatch(t, step, fan, out);
    if (!t.finished) Touch(t);
  }
}

}  // namespace agentfleet
