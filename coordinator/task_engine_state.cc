// TaskEngine's durable state: snapshots of running tasks and finished
// records for the state topic, restoring them on another replica, and
// forgetting partitions this replica no longer owns.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/wire_format_lite.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "coordinator/task_engine.h"
#include "coordinator/task_engine_internal.h"

namespace agentfleet {

using namespace task_engine_internal;

namespace {

void WriteReservation(const Reservation& res, v1::Reservation* rp) {
  rp->set_attempt(res.attempt);
  rp->set_tokens(res.spend.tokens);
  rp->set_cost_usd(res.spend.cost_usd);
  if (res.expires != absl::InfiniteFuture()) *rp->mutable_expires() = ToTimestamp(res.expires);
}

// Appends the tag and length of a length-delimited field (a message, bytes)
// of `size` bytes to a message's wire bytes; AppendField also its bytes.
void AppendFieldHead(int field, size_t size, std::string* out) {
  using google::protobuf::internal::WireFormatLite;
  using google::protobuf::io::CodedOutputStream;
  uint8_t head[10];
  uint8_t* end = CodedOutputStream::WriteVarint32ToArray(
      WireFormatLite::MakeTag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED), head);
  end = CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(size), end);
  out->append(reinterpret_cast<const char*>(head), static_cast<size_t>(end - head));
}

void AppendField(int field, absl::string_view bytes, std::string* out) {
  AppendFieldHead(field, bytes.size(), out);
  out->append(bytes.data(), bytes.size());
}

#ifdef AGENTFLEET_CHECK_STATE_CACHE
// The test build's check (scripts/test.sh) that a frozen instance really did
// not change: its kept StepState must equal one written now.
void CheckKeptStepState(const std::string& task_id, const v1::StepState& now, const std::string& kept) {
  v1::StepState before;
  if (before.ParseFromString(kept) && google::protobuf::util::MessageDifferencer::Equals(before, now)) return;
  std::fprintf(stderr, "task %s: the kept StepState of a frozen instance is stale\nkept: %s\nnow:  %s\n",
               task_id.c_str(), before.ShortDebugString().c_str(), now.ShortDebugString().c_str());
  std::abort();
}
#endif

Reservation ReadReservation(const v1::Reservation& rp) {
  return {rp.attempt(), {rp.tokens(), rp.cost_usd()},
          rp.has_expires() ? FromTimestamp(rp.expires()) : absl::InfiniteFuture()};
}

}  // namespace

std::string TaskEngine::EncodeSnapshot(Task& task) {
  // Written in three parts, which a reader merges as one TaskState (fields
  // may come in any order; repeated ones keep theirs): the fields below, the
  // submission (its kept bytes and its input), then each instance's StepState.
  v1::TaskState st;
  *st.mutable_accepted_at() = ToTimestamp(task.accepted_at);
  if (task.deadline != absl::InfiniteFuture()) *st.mutable_deadline() = ToTimestamp(task.deadline);
  *st.mutable_usage() = task.usage;
  if (task.extra().children_usage.calls() || task.extra().children_usage.cost_usd() > 0) *st.mutable_children_usage() = task.extra().children_usage;
  st.set_traceparent(task.traceparent.str());
  if (!task.parent_traceparent.empty()) st.set_parent_traceparent(task.parent_traceparent.str());
  for (const v1::TaskSignal& p : task.extra().pending_signals) *st.add_pending_signals() = p;
  for (const v1::Rescope& r : task.extra().rescopes) *st.add_rescopes() = r;
  for (const Task::Abandoned& a : task.extra().abandoned) {
    v1::AbandonedAttempt* ap = st.add_abandoned();
    ap->set_step(a.step);
    ap->set_fan_index(a.fan);
    ap->set_attempt(a.attempt);
    if (a.agent) ap->set_agent(a.agent->name);
    ap->set_child_task_id(a.child_task_id);
    WriteReservation(a.reservation, ap->mutable_reservation());
  }
  for (const StepRun& s : task.steps) {
    if (s.attempt_offset > 0) (*st.mutable_attempt_offset())[s.config->id] = s.attempt_offset;
    if (s.started && (s.fanned_out || s.spawns())) {
      (*st.mutable_fan_out())[s.config->id] = static_cast<int32_t>(s.instances.size());
    }
  }
  std::string out = st.SerializeAsString();

  std::string input;
  if (!task.input.empty()) {
    AppendField(v1::TaskSubmission::kInputFieldNumber, ToStruct(task.input).SerializeAsString(), &input);
  }
  AppendFieldHead(v1::TaskState::kSubmissionFieldNumber, task.submission_bytes.size() + input.size(), &out);
  out += task.submission_bytes;
  out += input;

  v1::StepState ss;
  std::string bytes;
  for (StepRun& s : task.steps) {
    if (!s.started) continue;
    for (size_t i = 0; i < s.instances.size(); ++i) {
      Instance& inst = s.instances[i];
      if (!inst.state_bytes.empty()) {
#ifdef AGENTFLEET_CHECK_STATE_CACHE
        ss.Clear();
        WriteStepState(s, i, &ss);
        CheckKeptStepState(task.task_id, ss, inst.state_bytes);
#endif
        AppendField(v1::TaskState::kStepsFieldNumber, inst.state_bytes, &out);
        continue;
      }
      ss.Clear();
      WriteStepState(s, i, &ss);
      bytes.clear();
      ss.SerializeToString(&bytes);
      AppendField(v1::TaskState::kStepsFieldNumber, bytes, &out);
      if (inst.frozen()) inst.state_bytes = bytes;
    }
  }
  return out;
}

void TaskEngine::WriteStepState(const StepRun& s, size_t i, v1::StepState* ss) const {
  const Instance& inst = s.instances[i];
  ss->set_step(s.config->id);
  ss->set_fan_index(s.Fan(i));
  ss->set_status(inst.status);
  ss->set_attempt(inst.attempt);
  ss->set_model_tier(inst.tier.empty() ? s.config->model_tier : inst.tier);
  ss->set_budget_wait(inst.waiting(Instance::Wait::kBudget));
  ss->set_max_tokens(inst.max_tokens);
  ss->set_fallback_from(inst.fallback_from);
  if (inst.fallback_agent) ss->set_fallback_agent(inst.fallback_agent->name);
  ss->set_fallback_tier(inst.extra().fallback_tier);
  ss->set_note(inst.extra().note);
  ss->set_cached(inst.cached);
  ss->set_reused(inst.reused);
  ss->set_saved_cost_usd(inst.extra().saved_usd);
  ss->set_embed_attempt(inst.extra().embed_attempt);
  ss->set_semantic_similarity(inst.extra().similarity);
  ss->set_batch_attempt(inst.extra().batch_attempt);
  ss->set_batch_saved_usd(inst.extra().batch_saved_usd);
  ss->set_rate_wait(inst.waiting(Instance::Wait::kQuota));
  if (inst.waiting(Instance::Wait::kQuota) && inst.rate_seq != 0) {
    ss->set_rate_key(inst.extra().rate_key);
    ss->set_rate_tag(inst.extra().rate_tag);
    ss->set_rate_epoch(epoch_);
  }
  ss->set_tenant_wait(inst.waiting(Instance::Wait::kTenant));
  ss->set_signal_wait(inst.waiting(Instance::Wait::kSignal));
  if (!inst.extra().child_task_id.empty()) {
    ss->set_child_task_id(inst.extra().child_task_id);
    ss->set_child_tokens(inst.extra().child_budget.tokens);
    ss->set_child_cost_usd(inst.extra().child_budget.cost_usd);
  }
  if (inst.extra().spawn_agent) {
    ss->set_spawn_agent(inst.extra().spawn_agent->name);
    *ss->mutable_spawn_input() = ToStruct(inst.extra().spawn_input);
  }
  for (const auto& res : inst.reservations) WriteReservation(res, ss->add_reservations());
  for (const v1::AgentQuestion& q : inst.extra().questions) *ss->add_questions() = q;
  if (inst.ask_agent) ss->set_ask_agent(inst.ask_agent->name);
  ss->set_ask_wait(inst.waiting(Instance::Wait::kAnswer));
  ss->set_attempt_base(inst.attempt_base);
  if (inst.status == v1::STEP_STATUS_SUCCEEDED) *ss->mutable_output() = ToStruct(inst.output);
  if (!inst.extra().error.code().empty()) *ss->mutable_error() = inst.extra().error;
  *ss->mutable_usage() = inst.usage;
  ss->set_latency_ms(inst.latency_ms);
  ss->set_worker(inst.worker);
  ss->set_model(inst.model);
  if (inst.dispatched_at != absl::InfinitePast()) *ss->mutable_dispatched_at() = ToTimestamp(inst.dispatched_at);
  // Unset timers are InfiniteFuture in memory and absent on the wire.
  constexpr absl::Time kUnset = absl::InfiniteFuture();
  if (inst.schedule_deadline != kUnset) *ss->mutable_schedule_deadline() = ToTimestamp(inst.schedule_deadline);
  if (inst.heartbeat_deadline != kUnset) *ss->mutable_heartbeat_deadline() = ToTimestamp(inst.heartbeat_deadline);
  if (inst.close_deadline != kUnset) *ss->mutable_close_deadline() = ToTimestamp(inst.close_deadline);
  if (inst.retry_at != kUnset) *ss->mutable_retry_at() = ToTimestamp(inst.retry_at);
}

void TaskEngine::TakeStateChanges(std::vector<StateChange>* changes) {
  for (const std::string& id : dirty_) {
    StateChange change;
    change.task_id = id;
    change.partition = dirty_partition_[id];
    if (auto it = active_.find(id); it != active_.end()) {
      change.state = EncodeSnapshot(*it->second);
      change.traceparent = it->second->traceparent.str();
    } else if (auto f = finished_.find(id); f != finished_.end()) {
      // Compact: enough to recognise a resubmission until the retention ends.
      v1::TaskState st;
      st.mutable_submission()->set_task_id(id);
      st.set_finished(true);
      *st.mutable_finished_at() = ToTimestamp(f->second.at);
      change.state = st.SerializeAsString();
    } else if (auto a = ahead_.find(id); a != ahead_.end()) {
      v1::TaskState st;
      st.mutable_submission()->set_task_id(id);
      st.set_cancel_requested(a->second.cancel);
      st.set_cancel_reason(a->second.reason);
      for (const v1::TaskSignal& signal : a->second.signals) *st.add_pending_signals() = signal;
      *st.mutable_finished_at() = ToTimestamp(a->second.at);
      change.state = st.SerializeAsString();
    }  // else: tombstone
    changes->push_back(std::move(change));
  }
  dirty_.clear();
  dirty_partition_.clear();
  for (auto& [partition, ledger] : tenants_.TakeChanged()) {
    StateChange change;
    change.task_id = TenantLedgers::LedgerKey(ledger.tenant());
    change.partition = partition;
    change.ledger = std::move(ledger);
    changes->push_back(std::move(change));
  }
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
    for (const Task::Abandoned& a : it->second->extra().abandoned) {
      if (a.on_tenant_ledger()) AddReserved(*it->second, a.reservation.spend, -1);
    }
    active_.erase(it);
  }
  if (auto f = finished_.find(task_id); f != finished_.end()) {
    expiries_.erase({f->second.at + config_->coordinator.finished_retention, task_id});
    finished_.erase(f);
  }
  if (auto a = ahead_.find(task_id); a != ahead_.end()) {
    expiries_.erase({a->second.at + config_->coordinator.finished_retention, task_id});
    ForgetAhead(a);
  }
  dirty_.erase(task_id);
  if (!state) return;
  ++stats_.restored;
  if ((state->cancel_requested() || state->pending_signals_size() > 0) && !state->finished() &&
      state->steps_size() == 0 && state->submission().workflow().empty()) {
    absl::Time at = FromTimestamp(state->finished_at());
    Ahead& kept = ahead_[task_id];
    kept.cancel = state->cancel_requested();
    kept.reason = state->cancel_reason();
    kept.signals.assign(state->pending_signals().begin(), state->pending_signals().end());
    for (const v1::TaskSignal& signal : kept.signals) ahead_bytes_ += signal.ByteSizeLong();
    kept.at = at;
    kept.partition = partition;
    expiries_.insert({at + config_->coordinator.finished_retention, task_id});
    return;
  }
  if (state->finished()) {
    Remember(task_id, FromTimestamp(state->finished_at()), partition);
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
  task->accepted_at = FromTimestamp(state->accepted_at());
  task->deadline = state->has_deadline() ? FromTimestamp(state->deadline()) : absl::InfiniteFuture();
  task->usage = state->usage();
  // What only some tasks have is restored only where it is set.
  task->parent_traceparent = PackedTraceparent(state->parent_traceparent());
  if (state->has_children_usage()) task->mutable_extra().children_usage = state->children_usage();
  if (state->pending_signals_size() > 0) {
    task->mutable_extra().pending_signals.assign(state->pending_signals().begin(), state->pending_signals().end());
  }
  if (state->rescopes_size() > 0) task->mutable_extra().rescopes.assign(state->rescopes().begin(), state->rescopes().end());
  for (const auto& [step, offset] : state->attempt_offset()) {
    if (auto it = task->step_index->find(step); it != task->step_index->end()) task->steps[it->second].attempt_offset = offset;
  }
  for (const v1::AbandonedAttempt& a : state->abandoned()) {
    const AgentConfig* agent = config_->FindAgent(a.agent());
    // An agent removed from the config: its attempt's reservation is not held.
    if (agent == nullptr && a.child_task_id().empty()) continue;
    task->mutable_extra().abandoned.push_back(
        {a.step(), a.fan_index(), a.attempt(), agent, ReadReservation(a.reservation()), a.child_task_id()});
    if (task->extra().abandoned.back().on_tenant_ledger()) AddReserved(*task, task->extra().abandoned.back().reservation.spend, +1);
  }
  for (const auto& [step, count] : state->fan_out()) {
    auto it = task->step_index->find(step);
    if (it == task->step_index->end()) continue;
    StepRun& s = task->steps[it->second];
    s.started = true;
    s.fanned_out = !s.spawns();
    s.instances.resize(count);
  }
  auto timer = [](bool has, const google::protobuf::Timestamp& t) {
    return has ? FromTimestamp(t) : absl::InfiniteFuture();
  };
  for (const v1::StepState& ss : state->steps()) {
    auto it = task->step_index->find(ss.step());
    if (it == task->step_index->end()) continue;
    StepRun& s = task->steps[it->second];
    s.started = true;
    if (!s.ValidFan(ss.fan_index()) && s.fanned_out) continue;
    size_t index = s.Index(ss.fan_index());
    if (s.instances.size() <= index) s.instances.resize(index + 1);
    Instance& inst = s.instances[index];
    inst.attempt = ss.attempt();
    inst.status = ss.status();
    if (ss.has_output()) inst.output = FromStruct(ss.output());
    if (ss.has_error()) inst.mutable_extra().error = ss.error();
    inst.usage = ss.usage();
    inst.latency_ms = ss.latency_ms();
    inst.worker = ss.worker();
    inst.model = ss.model();
    if (ss.has_dispatched_at()) inst.dispatched_at = FromTimestamp(ss.dispatched_at());
    inst.schedule_deadline = timer(ss.has_schedule_deadline(), ss.schedule_deadline());
    inst.heartbeat_deadline = timer(ss.has_heartbeat_deadline(), ss.heartbeat_deadline());
    inst.close_deadline = timer(ss.has_close_deadline(), ss.close_deadline());
    inst.retry_at = timer(ss.has_retry_at(), ss.retry_at());
    inst.tier = ss.model_tier();
    inst.max_tokens = ss.max_tokens();
    inst.fallback_from = ss.fallback_from();
    inst.fallback_agent = ss.fallback_agent().empty() ? nullptr : AgentFor(*task, ss.fallback_agent());
    inst.cached = ss.cached();
    inst.reused = ss.reused();
    // What only some instances have is restored only where it is set, so a
    // restored instance is as small as a new one.
    if (!ss.fallback_tier().empty()) inst.mutable_extra().fallback_tier = ss.fallback_tier();
    if (!ss.note().empty()) inst.mutable_extra().note = ss.note();
    if (ss.saved_cost_usd() != 0) inst.mutable_extra().saved_usd = ss.saved_cost_usd();
    // The semantic cache is looked up before the first call only (an
    // instance with an attempt made counts as tried). An embedding request
    // still out comes back as a miss here (what to cache the call's output
    // under stayed with the replica that asked).
    if (ss.embed_attempt() > 0) {
      inst.mutable_extra().embed_attempt = ss.embed_attempt();
      inst.mutable_extra().semantic_tried = true;
    }
    if (ss.semantic_similarity() != 0) inst.mutable_extra().similarity = ss.semantic_similarity();
    if (ss.batch_attempt() != 0) inst.mutable_extra().batch_attempt = ss.batch_attempt();
    if (ss.batch_saved_usd() != 0) inst.mutable_extra().batch_saved_usd = ss.batch_saved_usd();
    if (ss.questions_size() > 0) inst.mutable_extra().questions.assign(ss.questions().begin(), ss.questions().end());
    inst.ask_agent = ss.ask_agent().empty() ? nullptr : config_->FindAgent(ss.ask_agent());
    inst.attempt_base = ss.attempt_base();
    inst.wait = ss.ask_wait() && s.config->signals.needs_info && s.config->signals.needs_info->wait &&
                        !inst.extra().questions.empty()
                    ? Instance::Wait::kAnswer
                : ss.budget_wait() ? Instance::Wait::kBudget
                : ss.tenant_wait() ? Instance::Wait::kTenant
                : ss.rate_wait()   ? Instance::Wait::kQuota  // re-queued at the next Tick
                : ss.signal_wait() && s.config->wait ? Instance::Wait::kSignal
                : !ss.child_task_id().empty() && ss.status() == v1::STEP_STATUS_RUNNING ? Instance::Wait::kChild
                                   : Instance::Wait::kNone;
    // Still out only while the lookup's attempt is the one in flight (after
    // a miss the call may wait for a quota or back off under that number).
    if (inst.extra().embed_attempt > 0 && inst.extra().embed_attempt == inst.attempt &&
        inst.state() == Instance::State::kInFlight) {
      inst.mutable_extra().embedding_out = true;
    }
    if (!ss.child_task_id().empty()) {
      inst.mutable_extra().child_task_id = ss.child_task_id();
      inst.mutable_extra().child_budget = {ss.child_tokens(), ss.child_cost_usd()};
    }
    if (!ss.spawn_agent().empty()) {
      inst.mutable_extra().spawn_agent = config_->FindAgent(ss.spawn_agent());
      inst.mutable_extra().spawn_input = FromStruct(ss.spawn_input());
    }
    // An attempt out counts in its agent's max_in_flight here too.
    if (inst.state() == Instance::State::kInFlight && !inst.extra().embedding_out &&
        (s.agent != nullptr || inst.extra().spawn_agent != nullptr || inst.ask_agent != nullptr)) {
      if (auto window = windows_.find(AgentOf(s, inst).name); window != windows_.end()) inst.slot.Take(&window->second);
    }
    if (inst.waiting(Instance::Wait::kQuota) && ss.rate_epoch() != 0 && !ss.rate_key().empty()) {
      // Its turn, kept relative to the earliest restored from that clock.
      inst.mutable_extra().rate_key = ss.rate_key();
      inst.mutable_extra().restored_tag = ss.rate_tag();
      inst.mutable_extra().restored_epoch = ss.rate_epoch();
      const int priority = task->priority == v1::PRIORITY_INTERACTIVE ? 0 : 1;
      auto [it, fresh] = restored_turns_.try_emplace({inst.extra().rate_key, priority, inst.extra().restored_epoch}, ss.rate_tag());
      if (!fresh) it->second = std::min(it->second, ss.rate_tag());
    }
    task->kick_rate = task->kick_rate || inst.waiting(Instance::Wait::kQuota);
    task->kick_budget = task->kick_budget || inst.waiting(Instance::Wait::kBudget);
    for (const v1::Reservation& rp : ss.reservations()) {
      inst.reservations.push_back(ReadReservation(rp));
      AddReserved(*task, inst.reservations.back().spend, +1);
    }
    if (inst.waiting(Instance::Wait::kTenant)) {
      tenants_.Hold(task->tenant, partition, {task_id, it->second, ss.fan_index()});
      tenants_.Wake(task->tenant, partition);  // retry once restored
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
    s.skipped = s.instances.size() == 1 && s.instances[0].status == v1::STEP_STATUS_SKIPPED;
    if (s.skipped || s.succeeded + s.failed == s.instances.size()) {
      s.complete = true;
      ++t.steps_done;
      s.output = StepOutput(s);
      for (size_t d : s.dependents) --t.steps[d].waiting_on;
    }
  }
  for (const StepRun& s : t.steps) t.kick = t.kick || (!s.started && s.waiting_on == 0);
  Activate(std::move(task));
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
  tenants_.DropPartitions(partitions);
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
  for (auto it = ahead_.begin(); it != ahead_.end();) {
    if (partitions.count(it->second.partition)) {
      expiries_.erase({it->second.at + config_->coordinator.finished_retention, it->first});
      dirty_.erase(it->first);
      ForgetAhead(it++);
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
