// What TaskEngine's source files share (task_engine.cc, task_engine_state.cc,
// tenant_ledgers.cc, rate_queues.cc): the in-memory task, its steps and
// their instances, and small helpers. Internal to coordinator/.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "coordinator/task_engine.h"
#include "codec/codec.h"
#include "common/compact_time.h"
#include "codec/trace.h"
#include "nlohmann/json.hpp"

namespace agentfleet {
namespace task_engine_internal {

using Json = nlohmann::json;

// Time a finished result may still arrive after an attempt's own timeout
// (the worker enforces the timeout; this covers delivery).
inline constexpr absl::Duration kCloseGrace = absl::Seconds(5);

// How long an attempt sent through a provider batch may take: the batch
// fills (max_wait), the provider's window, the poll that sees it end, and
// the online call of an item the batch did not answer.
inline absl::Duration BatchRunTime(const AgentConfig& agent) {
  return agent.batch->max_wait + kBatchWindow + agent.batch->poll_interval + agent.timeout;
}

// The one place a result starts: what every result carries, from its
// submission (id, tenant, workflow, labels, submitted_at), with its status,
// error (if any) and the time it finished. Callers add what they know
// besides: acceptance, usage, steps, output.
inline v1::TaskResult NewResult(const v1::TaskSubmission& submission, v1::TaskStatus status, const v1::Error* error,
                         absl::Time finished) {
  v1::TaskResult r;
  r.set_task_id(submission.task_id());
  r.set_tenant(submission.tenant());
  r.set_workflow(submission.workflow());
  r.set_status(status);
  if (error) *r.mutable_error() = *error;
  *r.mutable_submitted_at() = submission.submitted_at();
  *r.mutable_finished_at() = ToTimestamp(finished);
  *r.mutable_labels() = submission.labels();
  r.set_parent_task_id(submission.parent_task_id());
  return r;
}

inline v1::Error MakeError(const std::string& code, const std::string& message) {
  v1::Error e;
  e.set_code(code);
  e.set_message(message);
  return e;
}

// The worst case one attempt may still spend, held until its result settles
// it or it expires (it can no longer spend).
struct Reservation {
  int attempt = 0;
  Spend spend;
  absl::Time expires = absl::InfiniteFuture();
};

// The part of a struct that most of its objects never need, made on first
// write: get() reads it (a default T where there is none), mutable_get()
// makes it. Instance and Task keep their rarely used fields in one.
template <typename T>
class RarePart {
 public:
  const T& get() const {
    static const T kNone;
    return part_ ? *part_ : kNone;
  }
  T& mutable_get() {
    if (!part_) part_ = std::make_unique<T>();
    return *part_;
  }
  T* if_made() { return part_.get(); }  // null if never written

 private:
  std::unique_ptr<T> part_;
};

}  // namespace task_engine_internal

using task_engine_internal::Json;
using task_engine_internal::RarePart;

// An attempt's place in its agent's max_in_flight window: held while the
// attempt is out, given back when it ends (DisarmAttempt) or its instance
// goes. Move-only.
class WindowSlot {
 public:
  WindowSlot() = default;
  WindowSlot(WindowSlot&& o) noexcept : window_(std::exchange(o.window_, nullptr)) {}
  WindowSlot& operator=(WindowSlot&& o) noexcept {
    if (this != &o) {
      Release();
      window_ = std::exchange(o.window_, nullptr);
    }
    return *this;
  }
  ~WindowSlot() { Release(); }
  void Take(TaskEngine::Window* window) {
    Release();
    ++window->in_use;
    window_ = window;
  }
  void Release() {
    if (window_ == nullptr) return;
    --window_->in_use;
    *window_->freed = true;
    window_ = nullptr;
  }
  bool held() const { return window_ != nullptr; }

 private:
  TaskEngine::Window* window_ = nullptr;
};

struct TaskEngine::Instance {
  int attempt = 0;
  v1::StepStatus status = v1::STEP_STATUS_PENDING;
  Json output;
  v1::Usage usage;  // summed over attempts
  std::string model;
  std::string worker;
  int64_t latency_ms = 0;
  // 8 bytes each (CompactTime), not absl::Time's 16: one instance per step
  // of every task in flight.
  CompactTime dispatched_at = absl::InfinitePast();
  CompactTime schedule_deadline = absl::InfiniteFuture();
  CompactTime heartbeat_deadline = absl::InfiniteFuture();
  CompactTime close_deadline = absl::InfiniteFuture();
  CompactTime retry_at = absl::InfiniteFuture();
  std::string tier;     // of the latest attempt (a budget may move it to a cheaper one)
  int max_tokens = 0;   // the latest attempt's cap (a budget may lower it)
  using Reservation = task_engine_internal::Reservation;
  std::vector<Reservation> reservations;  // attempts that may still spend
  // What an instance waits for before its next dispatch, one thing at a
  // time (a new wait replaces the old): budget its task's outstanding
  // attempts may release, its tenant's budget (released calls, or the next
  // period at retry_at), or a provider's quota (in rate_waiting_).
  // A wait step waits for its signal (kSignal) until retry_at, its timeout;
  // a child-workflow step for its child's result (kChild); an instance whose
  // agent asked a question (needs_info) for the answer signal until retry_at
  // (kAnswer).
  enum class Wait { kNone, kBudget, kTenant, kQuota, kSignal, kChild, kAnswer };
  Wait wait = Wait::kNone;
  bool waiting(Wait w) const { return wait == w; }
  void StopWaiting(Wait w) {
    if (wait == w) wait = Wait::kNone;
  }
  // Counts against the task's max_steps: dispatched, or held for budget or
  // a quota after the max_steps check passed (a tenant's hold comes before
  // it counts, unless the instance was in a quota's queue first).
  bool counts_as_started() const {
    return attempt > 0 || waiting(Wait::kBudget) || waiting(Wait::kQuota) || rate_seq != 0;
  }
  // The fallback, once the instance moved to it (at attempt fallback_from):
  // another agent, or another tier of the step's agent (extra().fallback_tier).
  int fallback_from = 0;
  const AgentConfig* fallback_agent = nullptr;
  bool in_fallback() const { return fallback_agent != nullptr || !extra().fallback_tier.empty(); }
  bool cached = false;      // served from the result cache (or, with `reused`, a fork's original run)
  bool reused = false;      // served the output a fork reuses
  uint64_t rate_seq = 0;    // its place in the fair queue it waits in
  // The agent answering the question its agent asked (or, waiting kAnswer,
  // a signal from outside): extra().questions.
  const AgentConfig* ask_agent = nullptr;

  // What only some instances need — a failed attempt's error, a tier
  // fallback, a note, a sub-step, a quota's queue, the caches, a provider
  // batch, a child task, questions —
  // held apart so the common instance stays small (a coordinator holds one
  // per step of every task in flight). Read it with extra(); mutable_extra()
  // makes it on first write.
  struct Extra {
    v1::Error error;            // the latest attempt's, if it failed
    std::string fallback_tier;  // the fallback tier of the step's agent
    std::string note;           // why the instance is degraded
    double saved_usd = 0;       // what the call that made a cached/reused output cost
    // A sub-step its step's agent asked for (spawn): its agent and input.
    const AgentConfig* spawn_agent = nullptr;
    Json spawn_input;
    std::string rate_key;     // the fair queue it waits in: a quota's key, or an agent's window
    double rate_tag = 0;      // its start tag in the queue's fair order
    int64_t rate_tokens = 0;  // the tokens it needs from the quota
    // Restored while waiting: its turn on the clock of the replica that gave
    // it (rate_epoch), until it queues here.
    double restored_tag = 0;
    uint64_t restored_epoch = 0;
    std::string cache_input;  // the canonical input of the attempt in flight, for caching its output
    // The semantic cache: looked up once, before the first call. The attempt
    // that was the embedding request (0: none) and whether it is still out;
    // after a miss, what the call's output is cached under (scope, text,
    // embedding, and the model the scope is for); after a hit, its similarity.
    int embed_attempt = 0;
    bool embedding_out = false;
    bool semantic_tried = false;
    std::string semantic_scope, semantic_text, semantic_model;
    std::vector<float> embedding;
    double similarity = 0;
    // The attempt sent through a provider batch (0: none), and what batch
    // prices saved on its calls.
    int batch_attempt = 0;
    double batch_saved_usd = 0;
    // A child-workflow step's child task, and the budget held for it until
    // its result settles it.
    std::string child_task_id;
    Spend child_budget;
    // Agent signals (needs_info): the questions its agent asked, the last
    // one open while it asks.
    std::vector<v1::AgentQuestion> questions;
  };
  const Extra& extra() const { return extra_.get(); }
  Extra& mutable_extra() { return extra_.mutable_get(); }
  RarePart<Extra> extra_;
  void ClearError() {
    if (Extra* e = extra_.if_made()) e->error.Clear();
  }
  bool asking() const { return ask_agent != nullptr || waiting(Wait::kAnswer); }
  // The attempts made before the agent now serving it took over (a
  // fallback, a question's answerer, the asker again): its max_attempts
  // count from there.
  int attempt_base = 0;
  int AttemptsHere() const { return attempt - std::max(attempt_base, fallback_from); }

  bool done() const { return status == v1::STEP_STATUS_SUCCEEDED || status == v1::STEP_STATUS_FAILED; }
  // Every change of status goes through here: it also drops `state_bytes`.
  void SetStatus(v1::StepStatus s) {
    status = s;
    state_bytes.clear();
  }
  // Nothing more can happen to it while its status stays: it ended
  // (succeeded, failed or was skipped), waits for nothing, has no timer
  // armed and no reservation to settle. Its snapshot's StepState is then
  // written once and kept (state_bytes) until its status changes (a
  // re-plan resets it).
  bool frozen() const {
    constexpr absl::Time kUnset = absl::InfiniteFuture();
    return (done() || status == v1::STEP_STATUS_SKIPPED) && wait == Wait::kNone && reservations.empty() &&
           schedule_deadline == kUnset && heartbeat_deadline == kUnset && close_deadline == kUnset &&
           retry_at == kUnset;
  }
  // Its StepState's wire bytes, once frozen (TaskEngine::EncodeSnapshot).
  std::string state_bytes;
  // Where the instance is, derived from its fields: not dispatched yet;
  // waiting (see `wait`); backing off until retry_at; an attempt in flight
  // (its deadlines armed); or done.
  enum class State { kNotStarted, kWaiting, kBackingOff, kInFlight, kDone };
  State state() const {
    if (done()) return State::kDone;
    if (wait != Wait::kNone) return State::kWaiting;
    if (attempt == 0) return State::kNotStarted;
    if (retry_at != absl::InfiniteFuture()) return State::kBackingOff;
    return State::kInFlight;
  }
  // Its attempt out, counted in its agent's max_in_flight.
  WindowSlot slot;
  void DisarmAttempt() {
    schedule_deadline = heartbeat_deadline = close_deadline = absl::InfiniteFuture();
    slot.Release();
  }
  absl::Time NextTimer() const {
    absl::Time next = absl::InfiniteFuture();
    for (const Reservation& r : reservations) next = std::min(next, r.expires);
    if (waiting(Wait::kTenant) || waiting(Wait::kSignal) || waiting(Wait::kAnswer)) return std::min(next, retry_at.time());
    if (done() || attempt == 0) return next;
    return std::min({next, schedule_deadline.time(), heartbeat_deadline.time(), close_deadline.time(), retry_at.time()});
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
  bool skipped = false;  // its when: did not hold: one instance, SKIPPED, output null
  // Work items carry attempt_offset + the instance's attempt. A re-plan
  // (rescope) that resets the step raises it past every attempt made, so a
  // late result of an abandoned attempt never passes for a new one.
  int attempt_offset = 0;
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
    return fan == -1 && !instances.empty();
  }
};

struct TaskEngine::Task {
  // The submission, serialized without its input (that is `input`): the
  // whole message is read only for snapshots, results, audit records and
  // child tasks, and a TaskSubmission held as it is takes 224 bytes before
  // its strings. What the engine reads on its hot paths is kept beside it.
  std::string submission_bytes;
  std::string task_id;
  std::string tenant;
  v1::Priority priority = v1::PRIORITY_UNSPECIFIED;
  int32_t depth = 0;
  v1::TaskSubmission Submission() const {  // without its input
    v1::TaskSubmission s;
    s.ParseFromString(submission_bytes);
    return s;
  }
  // Its span's traceparent, and its submitter's (the parent span; empty if
  // none came with the submission).
  PackedTraceparent traceparent;
  PackedTraceparent parent_traceparent;
  int32_t partition = 0;
  const WorkflowConfig* workflow = nullptr;
  Json input;
  std::vector<StepRun> steps;
  const StepIndex* step_index = nullptr;  // its workflow's, shared by all its tasks
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
  // An attempt a re-plan abandoned whose reservation is still held (until
  // settled by a late result or expired). A child task a re-plan cancelled
  // is one too: its carved budget is held until its result comes, and what
  // it spent then counts in this task's.
  struct Abandoned {
    std::string step;
    int fan = -1;
    int attempt = 0;  // as sent (the step's attempt_offset included)
    const AgentConfig* agent = nullptr;  // null for a child
    Instance::Reservation reservation;
    std::string child_task_id;
    // An attempt's reservation is also on its tenant's ledger; a child's
    // budget is not (the child's own attempts reserve there).
    bool on_tenant_ledger() const { return child_task_id.empty(); }
  };

  // What only some tasks have — a fork's reused outputs and model
  // overrides, child tasks' usage, early signals, re-plans — held
  // apart so the common task stays small (as Instance::Extra). Read it with
  // extra(); mutable_extra() makes it on first write.
  struct Extra {
    // A fork's (submission.fork): the original run's outputs, served as they
    // are, by (step, fan index); and the agents whose models it overrides,
    // as copies of the config's with the overriding models (AgentFor).
    std::map<std::pair<std::string, int>, std::pair<Json, std::string>> reused;  // -> output, model
    std::map<std::string, std::unique_ptr<AgentConfig>> agents;
    v1::Usage children_usage;        // the part of `usage` child tasks spent
    // Signals for wait steps that have not started yet.
    std::vector<v1::TaskSignal> pending_signals;
    // The re-plans made for rescope signals, and the attempts they abandoned.
    std::vector<v1::Rescope> rescopes;
    std::vector<Abandoned> abandoned;
  };
  const Extra& extra() const { return extra_.get(); }
  Extra& mutable_extra() { return extra_.mutable_get(); }
  RarePart<Extra> extra_;

  const std::string& id() const { return task_id; }
};

}  // namespace agentfleet
