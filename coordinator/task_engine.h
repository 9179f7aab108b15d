// TaskEngine: the coordinator's logic, free of Kafka and threads. It owns the
// state machine of every active task: it plans the workflow DAG, dispatches
// each ready step (or each element of a fan-out) as a WorkItem, accepts
// exactly one result per attempt, and emits exactly one TaskResult per task.
//
// Timeouts and retries follow Temporal's model, per agent: schedule-to-start
// (no receipt in time), heartbeat (a running attempt went quiet),
// start-to-close (an attempt ran too long), and the task's deadline across
// all attempts. Retryable failures and timeouts are retried after an
// exponential backoff with jitter, up to max_attempts.
//
// Durability: every change to a task is reported by TakeStateChanges() as a
// TaskState snapshot (timers included) for the compacted state topic; a
// replica that gains a partition Restore()s its tasks from those snapshots.
// Finished tasks shrink to a compact snapshot that keeps the id known (a
// resubmission is not run) until finished_retention, then a tombstone.
//
// Inputs arrive in order per task (all of a task's messages share a
// partition); outputs are appended to an Outbox that the caller publishes.
// Time comes from the Clock, and each retry's jitter from its attempt's
// identity: tests never sleep, and a task's decisions can be replayed.
// Not thread-safe: one coordinator thread drives it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agentfleet/v1/audit.pb.h"
#include "agentfleet/v1/state.pb.h"
#include "agentfleet/v1/task.pb.h"
#include "agentfleet/v1/work.pb.h"
#include "common/clock.h"
#include "common/headers.h"
#include "config/config.h"
#include "kafka/topics.h"
#include "coordinator/budget.h"
#include "coordinator/circuit_breaker.h"
#include "coordinator/rate_limiter.h"
#include "coordinator/result_cache.h"
#include "coordinator/semantic_cache.h"
#include "coordinator/tenant_ledgers.h"
#include "metrics/fleet_metrics.h"
#include "workflow/input.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

struct Outbox {
  struct Work {
    std::string topic_agent;  // the agent whose work topic it goes to
    v1::WorkItem item;
    std::string traceparent;
  };
  struct Result {
    v1::TaskResult result;
    std::string traceparent;
    // The submitter's traceparent (may be empty): the parent of the task's span.
    std::string parent_traceparent;
    // The share of its tightest budget (tokens or cost) the task spent;
    // negative when it had no such budget.
    double budget_used = -1;
    // The part of the result's usage its child tasks spent (they have cost
    // ledger entries of their own).
    v1::Usage children_usage;
  };
  // Any other message, as is: a step's or a task's `emit:`, a trigger's
  // submission to the tasks topic.
  struct Record {
    std::string topic;
    std::string key;
    std::string payload;
    Headers headers;
  };
  // An action's dispatch or outcome, for the audit topic: on the task's
  // partition, chained there by the coordinator (coordinator/audit_chain.h).
  struct Audit {
    int32_t partition = 0;
    v1::AuditRecord record;
  };
  std::vector<Work> work;
  std::vector<Result> results;
  std::vector<Record> records;
  std::vector<Audit> audit;
  bool empty() const { return work.empty() && results.empty() && records.empty() && audit.empty(); }
  void clear() {
    work.clear();
    results.clear();
    records.clear();
    audit.clear();
  }
};

struct EngineStats {
  int64_t accepted = 0;
  int64_t rejected = 0;
  int64_t duplicate_submissions = 0;
  int64_t stale_events = 0;
  int64_t dispatched = 0;
  int64_t retries = 0;
  int64_t timeouts = 0;
  int64_t finished = 0;
  int64_t restored = 0;
  int64_t budget_exhausted = 0;
  int64_t downgrades = 0;  // attempts moved to a cheaper model tier by the budget
  int64_t fallbacks = 0;   // instances moved to their agent's fallback
  int64_t breaker_rejections = 0;  // dispatches refused by an open circuit breaker
  int64_t cache_hits = 0;          // step instances served from the result cache
  int64_t semantic_hits = 0;       // of those, by a similar input (semantic cache)
  int64_t embeddings = 0;          // embedding requests sent for the semantic cache
  int64_t batched = 0;             // attempts sent through a provider batch
  int64_t rate_waits = 0;          // dispatches that waited for a provider's quota
  int64_t window_waits = 0;        // dispatches that waited for room in an agent's max_in_flight
  int64_t spawned = 0;             // steps whose agent spawned sub-steps
  int64_t tenant_held = 0;         // dispatches held by an exhausted tenant budget
  int64_t tenant_rejected = 0;     // tasks rejected or stopped by an exhausted tenant budget
  int64_t spend_limit_held = 0;    // calls held by the fleet's spend_limit (non-critical or batch)
  int64_t cancelled = 0;           // tasks ended by a cancellation
  int64_t signals_ignored = 0;     // signals for unknown or finished tasks, duplicates, unwanted ones
  int64_t questions = 0;           // needs_info questions agents asked
  int64_t replans = 0;             // partial re-runs for agents' rescope signals
  int64_t invalid_signals = 0;     // agent signals their step does not allow (retried)
  int64_t actions_dispatched = 0;  // attempts of action steps sent to workers
  int64_t actions_unknown = 0;     // action attempts whose outcome nobody saw
  int64_t screens_flagged = 0;     // screen steps whose detector flagged their input
};

// What became of a TaskSignal (TaskEngine::OnSignal).
enum class SignalOutcome {
  kCancelled,     // the task ended CANCELLED
  kCancelAhead,   // no such task yet: kept, its submission will end CANCELLED
  kDelivered,     // a step waiting for it took it
  kBuffered,      // kept in the task's state until its step waits for it (or until its submission comes)
  kUnknownTask,   // no such task here: never submitted, or forgotten after finished_retention
  kFinishedTask,  // the task had already finished
  kDuplicate,     // its step already took one of that name, or one is buffered
  kUnwanted,      // no step of the task's workflow waits for that name, or too many are buffered
};
// The outcome's label in agentfleet_signals_total ("cancelled", "delivered", ...).
const char* SignalOutcomeName(SignalOutcome outcome);

// A change to the state topic: a task's snapshot or tombstone (no state), or
// a tenant's ledger for the partition (key TenantLedgers::LedgerKey(tenant)).
struct StateChange {
  std::string task_id;  // the record's key
  int32_t partition = 0;
  // The snapshot, serialized (a v1::TaskState's wire bytes: the engine
  // writes a finished step's part once and reuses it).
  std::optional<std::string> state;
  std::string traceparent;  // the task's, for the record's header
  std::optional<v1::TenantLedger> ledger;
};

class TaskEngine {
 public:
  // `config` and `clock` must outlive the engine.
  TaskEngine(const FleetConfig* config, const Clock* clock);
  ~TaskEngine();

  // Accepts a decoded submission read from tasks partition `partition`. A
  // task_id seen before (running, or finished within the retention) is
  // ignored (OK, no output). An invalid submission (unknown workflow) gets a
  // REJECTED result in `out` and returns InvalidArgument with the reason.
  // `traceparent` is the task's own span; `parent_traceparent` the
  // submitter's, if it sent one.
  [[nodiscard]] absl::Status Submit(const v1::TaskSubmission& submission,
                                    const std::string& traceparent, int32_t partition, Outbox* out,
                                    const std::string& parent_traceparent = "");

  // Whether `id` is running or finished (within the retention): a message
  // under that id must not produce another result.
  bool Knows(const std::string& id) const;
  // Records `id` as finished with a REJECTED result sent elsewhere (an
  // unreadable submission rejected by its key), so a resubmission is a duplicate.
  void RememberRejected(const std::string& id, int32_t partition);

  // Applies a worker's receipt, heartbeat or result. Events for unknown or
  // finished tasks, and for attempts other than the current one, are stale
  // and ignored.
  void OnEvent(const v1::WorkEvent& event, Outbox* out);

  // Applies a signal read from the signals topic: a cancellation ends the
  // task CANCELLED (its best output so far, its in-flight attempts
  // abandoned: their late results are stale, their reservations settled); a
  // named signal completes the step waiting for it, or is buffered until
  // that step starts. Signals for unknown or finished tasks, and duplicates,
  // change nothing.
  // `partition` is the signal's, which is its task's (co-partitioned).
  SignalOutcome OnSignal(const v1::TaskSignal& signal, int32_t partition, Outbox* out);

  // Fires every timer due at the clock's now: timeouts, backoffs, task
  // deadlines, and the retention of finished ids.
  void Tick(Outbox* out);
  // When Tick() next has something to do (InfiniteFuture if nothing).
  absl::Time NextTimer() const;

  // Moves the state changes since the last call into `changes`, one per
  // changed task (its latest snapshot or a tombstone).
  void TakeStateChanges(std::vector<StateChange>* changes);
  // Loads a task from its snapshot, replacing what the engine had for that
  // id; `state` == nullopt (a tombstone) forgets the id. No output: timers
  // that are already due fire at the next Tick().
  void Restore(const std::string& task_id, const std::optional<v1::TaskState>& state, int32_t partition);
  // The task's latest snapshot could not be decoded: forget what was restored
  // for it and fail it (FAILED, "state_unreadable") at the next Tick().
  void RestoreUnreadable(const std::string& task_id, const std::string& reason, int32_t partition);
  // Tenant budgets (coordinator/tenant_ledgers.h; the state-topic key of a
  // ledger is TenantLedgers::LedgerKey): a ledger read back from the state
  // topic, and one that could not be decoded (its slice counts as spent for
  // the current period).
  void RestoreLedger(const v1::TenantLedger& ledger, int32_t partition) { tenants_.Restore(ledger, partition); }
  void RestoreUnreadableLedger(const std::string& tenant, int32_t partition) {
    tenants_.RestoreUnreadable(tenant, partition, clock_->Now());
  }
  // Forgets every task (active or finished) of these partitions.
  void DropPartitions(const std::set<int32_t>& partitions);
  // Writes the id's state again at the next TakeStateChanges(): its
  // snapshot if it runs, its finished record if it has finished, else a
  // tombstone. After a foreign record under that key was dead-lettered.
  void Rewrite(const std::string& task_id, int32_t partition) {
    dirty_.insert(task_id);
    dirty_partition_[task_id] = partition;
  }
  // Fails an active task now (FAILED with `code` and `message`): what the
  // coordinator does when the task's state cannot be published. False if
  // the task is not active.
  bool Fail(const std::string& task_id, const std::string& code, const std::string& message, Outbox* out);

  // Circuit breakers: this replica's name in the transitions it publishes;
  // the transitions made since the last call (for the breakers topic); a
  // transition another replica published.
  void SetReplicaName(const std::string& replica) { breakers_.set_replica(replica); }
  std::vector<v1::BreakerState> TakeBreakerTransitions() { return breakers_.TakeTransitions(); }
  void ApplyBreaker(const v1::BreakerState& state) { breakers_.Apply(state); }
  v1::BreakerStatus BreakerStatus(const std::string& name) { return breakers_.Status(name, clock_->Now()); }
  // The result cache: entries added since the last call (for the cache
  // topic), and an entry another replica published.
  // The semantic cache's entries share the topic (they carry an embedding).
  std::vector<std::pair<std::string, v1::CacheEntry>> TakeCacheInserts() {
    auto inserts = cache_.TakeInserts();
    for (auto& e : semantic_.TakeInserts()) inserts.push_back(std::move(e));
    return inserts;
  }
  void ApplyCacheEntry(const v1::CacheEntry& entry) {
    if (entry.embedding_size() > 0) {
      semantic_.Apply(entry);
    } else {
      cache_.Apply(entry);
    }
  }
  // The config's tenants or spend_limit changed (a reload): every call held
  // by a spending limit is tried again under the new limits.
  void LimitsChanged() { tenants_.WakeAll(); }
  // This replica's share of every provider quota: the share of task
  // partitions it owns (1 for a lone replica, the default).
  void SetQuotaShare(double share) {
    rate_.SetShare(share, clock_->Now());
    UpdateRateTimer();
  }
  // Dispatches waiting for a provider's quota or an agent's max_in_flight.
  size_t rate_waiting() const;
  // Attempts of `agent` this replica has out (counted against its
  // max_in_flight), and those waiting for room there.
  int64_t window_in_use(const std::string& agent) const;
  size_t window_waiting(const std::string& agent) const;
  // An agent's window on this replica: the instances' WindowSlots count its
  // attempts out, and set `freed` as they end so the waiting are served.
  struct Window {
    int64_t in_use = 0;
    bool* freed = nullptr;
  };

  // Where the engine counts calls, retries, timeouts, fallbacks, cache hits
  // and rate-limit waits (null: nowhere). Must outlive the engine.
  void SetMetrics(CoordinatorMetrics* metrics) { metrics_ = metrics; }

  size_t active_tasks() const { return active_.size(); }
  size_t finished_tasks() const { return finished_.size(); }
  const EngineStats& stats() const { return stats_; }

 private:
  struct Instance;
  struct StepRun;
  struct Task;

  // A workflow's step ids -> their places in its steps (and in its tasks').
  using StepIndex = absl::flat_hash_map<std::string, size_t>;
  absl::flat_hash_map<const WorkflowConfig*, StepIndex> step_indexes_;

  struct Finished {
    absl::Time at;
    int32_t partition = 0;
  };

  std::unique_ptr<Task> NewTask(const v1::TaskSubmission& submission, const WorkflowConfig* wf,
                                const std::string& traceparent, int32_t partition);
  void StartReadySteps(Task& task, Outbox* out);
  // Emits the REJECTED result of a submission that will not run.
  void Reject(const v1::TaskSubmission& submission, const std::string& traceparent, const std::string& code,
              const std::string& reason, int32_t partition, Outbox* out);
  // What a step's input template can read: the task's input, finished steps' outputs.
  static InputContext ContextFor(const Task& task);
  void StartStep(Task& task, size_t step, Outbox* out);
  // Dispatches a step instance: kDispatchChecks in order, then SendWorkItem.
  void Dispatch(Task& task, size_t step, int fan_index, Outbox* out);
  struct DispatchAttempt;
  using DispatchCheck = bool (TaskEngine::*)(DispatchAttempt&, Outbox*);
  static const DispatchCheck kDispatchChecks[];
  bool BuildInput(DispatchAttempt& a, Outbox* out);
  bool CheckMaxSteps(DispatchAttempt& a, Outbox* out);
  // Forks (TaskSubmission.fork): what Submit refuses (an unknown from_step,
  // an override of an unknown agent or tier, or to an unpriced model); the
  // agent a task's steps run (its override copy, else the config's); a
  // reused output serving an instance before the fork's step.
  absl::Status CheckFork(const v1::TaskSubmission& submission, const WorkflowConfig& wf) const;
  const AgentConfig* AgentFor(const Task& task, const std::string& name) const;
  bool ServeReused(DispatchAttempt& a, Outbox* out);
  bool ServeFromCache(DispatchAttempt& a, Outbox* out);
  bool ServeFromSemanticCache(DispatchAttempt& a, Outbox* out);
  // The instance is served a cached output (no call, no cost).
  void ServeCached(Task& task, size_t step, Instance& inst, const nlohmann::json& output, const std::string& model,
                   double saved_usd, double similarity, Outbox* out);
  // The embedding request of a semantic-cache lookup came back (or failed):
  // a hit serves the instance, anything else dispatches its call.
  void OnEmbedding(Task& task, size_t step, int fan, const v1::WorkResult* result, Outbox* out);
  bool CheckTaskBudget(DispatchAttempt& a, Outbox* out);
  bool CheckTenantBudget(DispatchAttempt& a, Outbox* out);
  AttemptPlan PlanWithinLedger(const DispatchAttempt& a, const std::string& name, const TenantConfig& limits,
                               bool* in_flight);
  void HoldOnLedger(DispatchAttempt& a, const std::string& name, TenantConfig::Period period);
  bool CheckWindow(DispatchAttempt& a, Outbox* out);
  bool CheckQuota(DispatchAttempt& a, Outbox* out);
  bool CheckBreaker(DispatchAttempt& a, Outbox* out);
  void SendWorkItem(DispatchAttempt& a, Outbox* out);
  v1::WorkItem NewAttempt(DispatchAttempt& a, const std::string& tier);
  void CompleteStep(Task& task, size_t step, Outbox* out);
  // Wait steps: start waiting (or take a signal that came early); a signal
  // for the task (delivered, buffered or ignored); the wait's end, with the
  // step's output and explanation.
  void StartWait(Task& task, size_t step, Outbox* out);
  SignalOutcome DeliverSignal(Task& task, const v1::TaskSignal& signal, Outbox* out);
  void EndWait(Task& task, size_t step, nlohmann::json output, const std::string& note, Outbox* out);
  // Child workflows: start the child task (a submission to the tasks topic,
  // its budget carved out of this task's); its result, which ends the step.
  void StartChild(Task& task, size_t step, Outbox* out);
  // A `screen: builtin` step: the built-in prompt-injection detector over
  // every string of its input, its output {flagged, findings}, at once.
  void RunScreen(Task& task, size_t step, Outbox* out);
  SignalOutcome EndChild(Task& task, const v1::TaskResult& child, Outbox* out);
  // A child task's result (any status) also goes to its parent, if it has one.
  void NotifyParent(const Outbox::Result& result, Outbox* out);
  // Tells a running child task that it is cancelled (its parent ended or re-planned).
  void CancelChild(const Task& task, const Instance& inst, const std::string& reason, Outbox* out);
  // Agent signals (coordinator/agent_signals.cc): a `_signal` in an
  // attempt's output; a needs_info question put to the step's answerer (an
  // agent, or a wait for a signal from outside); its answer (or timeout),
  // after which the asker runs again with the answers in its input; a
  // rescope's re-plan, which resets the planner and every step after it.
  void OnAgentSignal(Task& task, size_t step, int fan, const nlohmann::json& signal, Outbox* out);
  void AskQuestion(Task& task, size_t step, int fan, std::string question, Outbox* out);
  void AnswerQuestion(Task& task, size_t step, int fan, nlohmann::json answer, const std::string& by, bool timed_out,
                      Outbox* out);
  void AnswerTimedOut(Task& task, size_t step, int fan, Outbox* out);
  // Delivers a signal that answers an open question; false if `signal`'s
  // name is no question's answer (`*outcome` is set when it was one's).
  bool DeliverAnswer(Task& task, const v1::TaskSignal& signal, SignalOutcome* outcome, Outbox* out);
  void Replan(Task& task, size_t step, int fan, std::string reason, Outbox* out);
  void ResetStep(Task& task, size_t step, Outbox* out);
  // The input an instance's attempt gets on top of its template: the
  // answers to its questions (`_info`), a planner's rescope reasons
  // (`_rescope`); for a question's answering agent, the question itself.
  void AddSignalInputs(const Task& task, const StepRun& s, const Instance& inst, nlohmann::json* input) const;
  // The signal that answers an instance's question: the configured name, or
  // "<name>.<fan>" for a fanned-out or spawned instance.
  static std::string AnswerSignal(const StepRun& s, int fan);
  // A result of an attempt a re-plan abandoned: settles its reservation and
  // counts what it spent. False if the event is not one.
  bool SettleAbandoned(Task& task, const v1::WorkEvent& event, Outbox* out);
  // A failed or timed-out attempt: retry after a backoff, or fail the task.
  void AttemptFailed(Task& task, size_t step, int fan_index, const v1::Error& error, Outbox* out);
  void FireTimers(Task& task, absl::Time now, Outbox* out);
  void Finish(Task& task, v1::TaskStatus status, const v1::Error* error, Outbox* out);
  // A finished task's result: NewResult's fields, the output (the output
  // step's, or the best so far), every instance's summary, usage, the share
  // of its budget spent.
  static Outbox::Result BuildResult(const Task& task, v1::TaskStatus status, const v1::Error* error, absl::Time now);
  void FailTask(Task& task, const std::string& code, const std::string& message, Outbox* out);
  // The wait before the retry of attempt `attempt` (the `attempts_here`th
  // on its agent or tier): exponential, with a jitter fixed by the attempt's
  // identity (task, step, fan index, attempt).
  absl::Duration Backoff(const AgentConfig& agent, const std::string& task_id, const std::string& step, int fan,
                         int attempt, int attempts_here);
  // Budgets (coordinator/budget.h).
  void CountUsage(Task& task, const AgentConfig& agent, Instance& inst, const v1::WorkResult& result);
  // An action's audit record (coordinator/actions.cc): its dispatch, or the
  // outcome the coordinator took and what it decided.
  void AuditDispatch(const Task& task, const StepRun& s, int fan, const v1::WorkItem& item, Outbox* out);
  void AuditOutcome(const Task& task, const StepRun& s, int fan, int attempt, const v1::WorkResult* result,
                    const v1::Error* error, absl::string_view decision, Outbox* out);
  // What became of an action's instance after its outcome was taken:
  // "succeeded", "retry", "stopped" (outcome_unknown), "failed", ...
  static const char* ActionDecision(const Task& task, const Instance& inst);
  // An action's failure as the coordinator takes it: under on_unknown: stop,
  // an attempt nobody saw end (a timeout, a worker's shutdown) is the
  // non-retryable outcome_unknown. Other errors, and agents', unchanged.
  static v1::Error ActionError(const AgentConfig& agent, const v1::Error& error);
  static Spend Spent(const Task& task);
  static Spend Committed(const Task& task);  // spent plus reserved
  static bool HasReservations(const Task& task);
  static int64_t StepsStarted(const Task& task);
  // Dispatches the instances that waited for budget (again waiting, or
  // exhausting the budget, where it still cannot pay).
  void ResumeBudgetWaits(Task& task, Outbox* out);
  void ExhaustBudget(Task& task, const std::string& why, Outbox* out);
  // Tenant budgets (tenants_): a task's reservation added (+1) or released
  // (-1) on its tenant's ledger; a released reservation taken off (false if
  // none); the held calls of tenants whose budget was released, dispatched.
  void AddReserved(const Task& task, const Spend& spend, int sign);
  bool Unreserve(const Task& task, const std::optional<Spend>& released);
  void WakeTenantWaiters(Outbox* out);
  // The fair queues (a provider's quota, an agent's max_in_flight): whether
  // the instance may be dispatched now — nobody waits before it and
  // `admit` says yes — else it waits in queue `key`, interactive before
  // batch, fair between tenants by tokens.
  bool TakeTurn(Task& task, size_t step, int fan, const std::string& key, int64_t tokens,
                const std::function<bool()>& admit);
  // Dispatches the waiting instances whose quota has refilled or whose
  // agent has room again.
  void ServeRateQueues(Outbox* out);
  void UpdateRateTimer();
  // The instance a quota queue entry waits for, if the entry is its current
  // wait (same sequence number): entries left by a task that was dropped and
  // restored, or dispatched another way, are stale.
  Instance* LiveWaiter(const std::tuple<int, double, uint64_t, std::string, size_t, int>& waiter);
  // The instance's start tag in its quota's fair queue (start-time fair
  // queuing by tenant on estimated tokens): the later of the queue's
  // virtual time and where the tenant's previous request ended.
  double FairTag(const std::string& key, int priority, const std::string& tenant, int64_t tokens);
  // The instance's turn as it enters queue `key`: a restored turn, moved to
  // this replica's clock (the earliest restored from its clock starts at the
  // queue's virtual time, the others keep their distance from it), or a new
  // one (FairTag).
  double TurnFor(Instance& inst, const std::string& key, int priority, const std::string& tenant, int64_t tokens);
  // A complete step's output: its instance's, or the list of its instances'
  // in fan-out order (null for a failed optional instance).
  static nlohmann::json StepOutput(const StepRun& s);
  // The agent serving an instance: the step's, a spawned sub-step's, its
  // fallback, or the agent answering its question.
  static const AgentConfig& AgentOf(const StepRun& s, const Instance& inst);
  // The sub-steps a spawning step's output asks for, checked against the
  // step's spawn limits (InvalidArgument saying what is wrong).
  [[nodiscard]] absl::StatusOr<std::vector<std::pair<const AgentConfig*, nlohmann::json>>>
  PlanSpawn(const StepRun& s, const nlohmann::json& output) const;
  // The model the instance's latest attempt was sent to.
  static std::string ModelOf(const AgentConfig& agent, const Instance& inst);
  // Moves the instance to its agent's fallback and dispatches it.
  void StartFallback(Task& task, size_t step, int fan, const std::string& reason, Outbox* out);
  // Re-registers the task's earliest timer and marks its state changed.
  void Touch(Task& task);
  // The task's snapshot, serialized: the submission and each frozen
  // instance's StepState from the bytes kept, the rest written now.
  std::string EncodeSnapshot(Task& task);
  void WriteStepState(const StepRun& s, size_t i, v1::StepState* ss) const;
  void Remember(const std::string& id, absl::Time finished_at, int32_t partition);

  const FleetConfig* config_;
  const Clock* clock_;
  Topics topics_;  // child submissions, child results and cancellations go to tasks and signals
  // Per agent with a max_in_flight: its attempts out from this replica.
  // Declared before the tasks, whose instances give their slots back as
  // they go.
  bool window_freed_ = false;
  std::map<std::string, Window> windows_;
  // This replica's share of `agent`'s max_in_flight (at least 1).
  int64_t WindowLimit(const AgentConfig& agent) const;
  static std::string WindowKey(const std::string& agent) { return "window:" + agent; }
  // Keyed by a view of each task's own id (see Activate).
  absl::flat_hash_map<absl::string_view, std::unique_ptr<Task>> active_;
  void Activate(std::unique_ptr<Task> task);
  // Tasks Finish() took out of active_ during this top-level call: the
  // callers up the stack may still hold them (and check Task::finished), so
  // they are freed when the next top-level call begins.
  std::vector<std::unique_ptr<Task>> retired_;
  void FreeFinished();
  // Finished task ids (resubmissions are ignored) until their retention ends.
  absl::flat_hash_map<std::string, Finished> finished_;
  // Signals read before their task's submission (they are on another topic,
  // so they can overtake it), kept until the retention ends, at most
  // kMaxAhead tasks: a cancellation ends the submission CANCELLED; named
  // signals (at most kMaxPendingSignals, one per name) go to the task when
  // its submission comes, as if they had come just after it.
  struct Ahead {
    bool cancel = false;
    std::string reason;
    std::vector<v1::TaskSignal> signals;
    absl::Time at;  // when the first was read
    int32_t partition = 0;
  };
  static constexpr size_t kMaxAhead = 100000;
  static constexpr size_t kMaxPendingSignals = 16;
  // What the kept named signals may hold in all (their payloads are the
  // senders'): past it, more are ignored as for an unknown task.
  static constexpr size_t kMaxAheadBytes = 64 << 20;
  absl::flat_hash_map<std::string, Ahead> ahead_;
  size_t ahead_bytes_ = 0;
  // Erases a kept entry (its expiry is the caller's).
  void ForgetAhead(absl::flat_hash_map<std::string, Ahead>::iterator it);
  // Keeps `signal`, for a task not seen yet (kCancelAhead, kBuffered; a
  // duplicate name or one over the bounds: kDuplicate, kUnknownTask).
  SignalOutcome KeepAhead(const v1::TaskSignal& signal, int32_t partition);
  // (due, task id): each active task's earliest timer; each finished id's expiry.
  // A timer names its task by a view of the task's own id (erased before the
  // task goes), and the B-tree keeps entries side by side: ~32 bytes per
  // task in flight, not a tree node and a copy of the id.
  absl::btree_set<std::pair<absl::Time, absl::string_view>> timers_;
  std::set<std::pair<absl::Time, std::string>> expiries_;
  // Restored tasks that cannot run (workflow removed from the config, state
  // unreadable): failed at the next Tick(), since a task never disappears
  // without a result.
  struct Orphan {
    v1::TaskState state;
    int32_t partition;
    std::string code;
    std::string message;
  };
  std::vector<Orphan> orphans_;
  // Tasks whose state changed since TakeStateChanges().
  absl::flat_hash_set<std::string> dirty_;
  absl::flat_hash_map<std::string, int32_t> dirty_partition_;
  TenantLedgers tenants_;
  Breakers breakers_;
  ResultCache cache_;
  SemanticCache semantic_;
  RateLimiter rate_;
  // Per quota: (priority, fair start tag, arrival, task id, step, fan
  // index) of the waiting instances: interactive before batch, then by tag.
  using Waiter = std::tuple<int, double, uint64_t, std::string, size_t, int>;
  std::map<std::string, std::set<Waiter>> rate_waiting_;
  // Per quota and priority while its queue is not empty: the virtual time
  // (the start tag last served) and each tenant's finish tag.
  struct FairClock {
    double virtual_time = 0;
    absl::flat_hash_map<std::string, double> finish;
  };
  std::map<std::pair<std::string, int>, FairClock> fair_;
  // This engine's clock id in snapshots' turns, and per (queue, priority,
  // clock id) the earliest turn restored from that clock.
  uint64_t epoch_ = 0;
  std::map<std::tuple<std::string, int, uint64_t>, double> restored_turns_;
  uint64_t rate_seq_ = 0;
  absl::Time rate_next_ = absl::InfiniteFuture();  // when a waiting instance's quota is back
  EngineStats stats_;
  CoordinatorMetrics* metrics_ = nullptr;
};

}  // namespace agentfleet
