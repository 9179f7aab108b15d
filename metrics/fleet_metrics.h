// The metrics each agentfleet process exports; docs/observability.md lists
// them with their labels and the questions they answer.
#pragma once

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agentfleet/v1/state.pb.h"
#include "agentfleet/v1/task.pb.h"
#include "agentfleet/v1/work.pb.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "metrics/capacity.h"
#include "metrics/metrics.h"

namespace agentfleet {

// What a coordinator replica saw: every model call its tasks made (as the
// workers reported them), retries, timeouts, fallbacks, cache hits, rate
// limit waits, breaker states and every task result it published.
// Thread-safe (prometheus-cpp's metrics and Series are).
class CoordinatorMetrics {
 public:
  explicit CoordinatorMetrics(prometheus::Registry& registry);

  // A worker's answer to one attempt of `agent`. `cost_usd` is priced by the
  // coordinator from the usage.
  void Call(absl::string_view agent, const v1::WorkResult& result, double cost_usd);
  // A timeout the coordinator declared (schedule_to_start, heartbeat, start_to_close).
  void Timeout(absl::string_view agent, absl::string_view kind);
  void Retry(absl::string_view agent);
  // An instance moved from `agent` to its fallback `to` (an agent or "tier:<tier>").
  void Fallback(absl::string_view agent, absl::string_view to);
  void CacheHit(absl::string_view agent);
  void BreakerRejection(absl::string_view agent);
  // A dispatch waits for the quota `quota` ("<provider>/<model>").
  void RateWait(absl::string_view quota);
  // A config reload (SIGHUP): "applied" or "refused".
  void ConfigReload(absl::string_view outcome);
  // A dispatch waits for room in `agent`'s max_in_flight.
  void WindowWait(absl::string_view agent);
  // Sampled each loop: the attempts of `agent` waiting for that room here;
  // read back by the capacity signal (pending work not on the work topic).
  void SetWindowWaiting(const std::string& agent, size_t waiting);
  int64_t WindowWaiting(const std::string& agent) const;
  void TaskAccepted(absl::string_view workflow);
  // A result this replica published. `budget_used` is the share of the
  // task's tightest budget it spent, or negative if it had none.
  void TaskFinished(const v1::TaskResult& result, double budget_used);
  // A breaker's status, as this replica knows it.
  void Breaker(absl::string_view name, v1::BreakerStatus status);
  // Sampled each loop: tasks running here, dispatches waiting for a quota.
  void SetActive(size_t tasks, size_t rate_waiting);
  void DeadLetter(absl::string_view component, absl::string_view topic);
  // A liveness backstop fired (kLiveness* kinds below).
  void Liveness(absl::string_view kind);
  // A TaskSignal read: `kind` "signal" or "cancel", and what became of it
  // (coordinator/task_engine.h, SignalOutcomeName).
  void Signal(absl::string_view kind, absl::string_view outcome);
  // An agent's signal in its output: `signal` needs_info, rescope or the
  // type it gave; `outcome` asked (to an agent or a person), replanned,
  // invalid, exhausted (max_questions or max_replans reached).
  void AgentSignal(absl::string_view agent, absl::string_view signal, absl::string_view outcome);
  // A task re-ran part of its workflow for a rescope signal.
  void Replan(absl::string_view workflow);
  // An action attempt's outcome as the coordinator took it (issue 19):
  // `outcome` applied, failed, rejected, unknown, not_sent, refused,
  // confirmed; `decision` succeeded, retry, failed, stopped, ...
  void Action(absl::string_view action, absl::string_view outcome, absl::string_view decision);
  // A screen step's verdict.
  void Screen(absl::string_view workflow, bool flagged);
  // A call of `agent` held by the fleet's spend_limit (non-critical or batch work).
  void SpendLimitHold(absl::string_view agent);
  // A semantic-cache lookup of `agent`: hit, miss, error (the embedding
  // request failed or timed out: the call went ahead), no_text (the compared
  // field was missing or not a string).
  void SemanticLookup(absl::string_view agent, absl::string_view outcome);
  // A finished task's own spend (its cost ledger entry), by tenant: the
  // series the cost-anomaly alert watches.
  void TaskCost(const v1::CostEntry& entry);
  // The capacity signal of worker pool `pool` (metrics/capacity.h).
  void Capacity(const std::string& pool, const CapacityEstimate& estimate);
  // What the capacity signal reads: an agent's recent mean call time (a
  // moving average over its calls' latencies; false before the first), and
  // whether a breaker is open as this replica knows it.
  bool MeanCallSeconds(const std::string& agent, double* seconds) const;
  bool BreakerOpen(const std::string& name) const;
  // exactly_once: one transaction's commit, `trigger` drained, interval,
  // stop or rebalance; `inputs` the input messages it committed.
  void Commit(absl::string_view trigger, absl::Duration took, size_t inputs, bool ok);
  // The loop waited `waited` for a commit (all of it, or what overlapping left).
  void CommitWaited(absl::Duration waited);

 private:
  Series<prometheus::Counter> calls_, tokens_, cost_, schema_violations_;
  Series<prometheus::Histogram> call_seconds_;
  Series<prometheus::Counter> timeouts_, retries_, fallbacks_, cache_hits_, breaker_rejections_, rate_waits_;
  Series<prometheus::Counter> accepted_, results_;
  Series<prometheus::Histogram> task_seconds_, task_cost_, task_tokens_, budget_used_;
  Series<prometheus::Gauge> breaker_;
  prometheus::Gauge& active_;
  prometheus::Gauge& rate_waiting_;
  Series<prometheus::Counter> dlq_;
  Series<prometheus::Counter> liveness_;
  Series<prometheus::Counter> signals_;
  Series<prometheus::Counter> agent_signals_, replans_;
  Series<prometheus::Counter> actions_, screens_;
  Series<prometheus::Counter> tenant_cost_, tenant_saved_, tenant_tasks_;
  Series<prometheus::Gauge> pool_replicas_, pool_pending_;
  Series<prometheus::Counter> spend_limit_holds_;
  Series<prometheus::Counter> semantic_lookups_;
  Series<prometheus::Counter> window_waits_;
  Series<prometheus::Gauge> window_waiting_;
  Series<prometheus::Counter> config_reloads_;
  Series<prometheus::Histogram> commit_seconds_, commit_inputs_;
  Series<prometheus::Counter> commit_failures_;
  Series<prometheus::Counter> commit_wait_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, int64_t> window_waiting_n_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, double> mean_call_s_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, bool> breaker_open_ ABSL_GUARDED_BY(mu_);
};

// What a worker process did: items in flight, items by outcome, model call
// latency as it measured it, dead letters.
// Thread-safe: the worker's loop and its providers' threads call it at once
// (prometheus-cpp's metrics and Series are thread-safe).
class WorkerMetrics {
 public:
  explicit WorkerMetrics(prometheus::Registry& registry);
  void Started(absl::string_view agent);
  // An item finished: "ok" or its error code.
  void Finished(absl::string_view agent, absl::string_view model, absl::string_view outcome, absl::Duration latency);
  void SetInFlight(size_t items);
  void DeadLetter(absl::string_view topic);
  // A liveness backstop fired (kLiveness* kinds below).
  void Liveness(absl::string_view kind);
  // A tool its agent's model called: "ok", "withheld", "http_404", ...
  void ToolCall(absl::string_view agent, absl::string_view tool, absl::string_view status);

 private:
  Series<prometheus::Counter> started_, finished_;
  Series<prometheus::Histogram> seconds_;
  prometheus::Gauge& in_flight_;
  Series<prometheus::Counter> dlq_;
  Series<prometheus::Counter> liveness_;
  Series<prometheus::Counter> tool_calls_;
};

// Kinds of agentfleet_liveness_events_total{component, kind}: what a process
// did so that nothing stalls silently (docs/robustness.md, "Liveness").
inline constexpr char kLivenessDeadLetterFailed[] = "dead_letter_failed";      // let go of an undeliverable dead letter
inline constexpr char kLivenessResumedOnAssign[] = "resumed_on_assign";        // cleared a pause kept across a rebalance
inline constexpr char kLivenessPartitionRestarted[] = "partition_restarted";   // restarted the fetch of a stalled partition
inline constexpr char kLivenessOversizedOutput[] = "oversized_output";         // an output too large to publish failed its step or task
inline constexpr char kLivenessUnreadableSharedState[] = "unreadable_shared_state";  // garbage on breakers/cache/state skipped

// The outcome label of a call: "ok", or its error code when it is one of
// the documented codes (common/error_codes.h), else "other".
std::string CallOutcome(const v1::WorkResult& result);

}  // namespace agentfleet
