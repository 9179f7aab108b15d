#include "metrics/fleet_metrics.h"

#include "absl/container/flat_hash_set.h"
#include "common/error_codes.h"
#include "google/protobuf/util/time_util.h"

namespace agentfleet {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;

prometheus::Family<Counter>& CounterFamily(prometheus::Registry& r, const std::string& name, const std::string& help) {
  return BuildCounter().Name(name).Help(help).Register(r);
}
prometheus::Family<Histogram>& HistogramFamily(prometheus::Registry& r, const std::string& name,
                                               const std::string& help) {
  return BuildHistogram().Name(name).Help(help).Register(r);
}
prometheus::Family<Counter>& LivenessFamily(prometheus::Registry& r) {
  return CounterFamily(r, "agentfleet_liveness_events_total",
                       "Liveness backstops that fired so that nothing stalls silently, by component and kind "
                       "(docs/robustness.md).");
}

prometheus::Family<Gauge>& GaugeFamily(prometheus::Registry& r, const std::string& name, const std::string& help) {
  return BuildGauge().Name(name).Help(help).Register(r);
}

Histogram::BucketBoundaries Exponential(double start, double factor, int count) {
  Histogram::BucketBoundaries b;
  for (double v = start; count-- > 0; v *= factor) b.push_back(v);
  return b;
}

const char* StatusName(v1::TaskStatus status) {
  switch (status) {
    case v1::TASK_STATUS_COMPLETED: return "completed";
    case v1::TASK_STATUS_PARTIAL: return "partial";
    case v1::TASK_STATUS_BUDGET_EXHAUSTED: return "budget_exhausted";
    case v1::TASK_STATUS_FAILED: return "failed";
    case v1::TASK_STATUS_REJECTED: return "rejected";
    case v1::TASK_STATUS_CANCELLED: return "cancelled";
    default: return "unspecified";
  }
}

const char* BreakerName(v1::BreakerStatus status) {
  switch (status) {
    case v1::BREAKER_STATUS_OPEN: return "open";
    case v1::BREAKER_STATUS_HALF_OPEN: return "half_open";
    default: return "closed";
  }
}

double Seconds(const google::protobuf::Timestamp& from, const google::protobuf::Timestamp& to) {
  return google::protobuf::util::TimeUtil::DurationToNanoseconds(to - from) / 1e9;
}

}  // namespace

std::string CallOutcome(const v1::WorkResult& result) {
  if (result.status() == v1::RESULT_STATUS_OK) return "ok";
  static const absl::flat_hash_set<std::string> kKnown = {
      kTimeout,       kRateLimited,       kProviderUnavailable, kConnectionFailed, kTruncatedResponse,
      kInvalidResponse, kSchemaViolation, kWorkerShutdown,      kProviderRejected, kMaxTokensExceeded,
      kInvalidInput,  kInvalidWorkItem,   "invalid_spawn",      "simulated_failure", kInvalidSignal,
      kActionFailed, kActionUnreachable, kOutcomeUnknown, kActionInvalidPayload, kActionPolicyViolation,
      kActionRejected, kPromptInjection, kToolTurnsExceeded, kToolBudgetExceeded};
  return kKnown.contains(result.error().code()) ? result.error().code() : "other";
}

CoordinatorMetrics::CoordinatorMetrics(prometheus::Registry& r)
    : calls_(CounterFamily(r, "agentfleet_agent_calls_total",
                           "Model calls answered by workers, by agent, model and outcome (ok or the error code)."),
             {"agent", "model", "outcome"}),
      tokens_(CounterFamily(r, "agentfleet_agent_tokens_total",
                            "Tokens the model calls used, by agent, model and direction (input or output)."),
              {"agent", "model", "direction"}),
      cost_(CounterFamily(r, "agentfleet_agent_cost_usd_total",
                          "What the model calls cost in US dollars, priced from the config's pricing table."),
            {"agent", "model"}),
      schema_violations_(CounterFamily(r, "agentfleet_agent_schema_violations_total",
                                       "Answers that failed the agent's output schema."),
                         {"agent", "model"}),
      call_seconds_(HistogramFamily(r, "agentfleet_agent_call_duration_seconds",
                                    "Model call latency as the worker measured it, by agent and model."),
                    {"agent", "model"}, LatencyBuckets()),
      timeouts_(CounterFamily(r, "agentfleet_agent_timeouts_total",
                              "Attempts the coordinator timed out, by agent and kind."),
                {"agent", "kind"}),
      retries_(CounterFamily(r, "agentfleet_agent_retries_total", "Attempts after the first, by agent."), {"agent"}),
      fallbacks_(CounterFamily(r, "agentfleet_agent_fallbacks_total",
                               "Step instances moved to their agent's fallback (an agent, or tier:<tier>)."),
                 {"agent", "to"}),
      cache_hits_(CounterFamily(r, "agentfleet_agent_cache_hits_total",
                                "Step instances served from the result cache, without a model call."),
                  {"agent"}),
      breaker_rejections_(CounterFamily(r, "agentfleet_agent_breaker_rejections_total",
                                        "Dispatches refused because a circuit breaker was open."),
                          {"agent"}),
      rate_waits_(CounterFamily(r, "agentfleet_rate_limit_waits_total",
                                "Dispatches that waited for a provider quota, by quota (provider/model)."),
                  {"quota"}),
      accepted_(CounterFamily(r, "agentfleet_tasks_accepted_total", "Tasks accepted, by workflow."), {"workflow"}),
      results_(CounterFamily(r, "agentfleet_task_results_total",
                             "Task results published, by workflow and status."),
               {"workflow", "status"}),
      task_seconds_(HistogramFamily(r, "agentfleet_task_duration_seconds",
                                    "Task latency from submission (or acceptance) to its result, by workflow."),
                    {"workflow"}, LatencyBuckets()),
      task_cost_(HistogramFamily(r, "agentfleet_task_cost_usd", "What one task cost in US dollars, by workflow."),
                 {"workflow"}, Exponential(0.0001, 4, 10)),
      task_tokens_(HistogramFamily(r, "agentfleet_task_tokens", "Tokens one task used, by workflow."), {"workflow"},
                   Exponential(100, 4, 10)),
      budget_used_(HistogramFamily(r, "agentfleet_task_budget_used_ratio",
                                   "Share of its tightest budget a task spent (tasks with a budget), by workflow."),
                   {"workflow"}, {0.1, 0.25, 0.5, 0.75, 0.9, 1, 1.1}),
      breaker_(GaugeFamily(r, "agentfleet_breaker_state",
                           "1 for the circuit breaker's current state (closed, open, half_open), 0 for the others."),
               {"breaker", "state"}),
      active_(GaugeFamily(r, "agentfleet_tasks_active", "Tasks running on this coordinator replica.").Add({})),
      rate_waiting_(GaugeFamily(r, "agentfleet_rate_limit_waiting",
                                "Dispatches waiting for a provider quota now.")
                        .Add({})),
      dlq_(CounterFamily(r, "agentfleet_dlq_messages_total",
                         "Messages sent to the dead-letter queue, by component and the topic they came from."),
           {"component", "topic"}),
      liveness_(LivenessFamily(r), {"component", "kind"}),
      signals_(CounterFamily(r, "agentfleet_signals_total",
                             "Signals and cancellations this replica read, by kind (signal, cancel) and outcome."),
               {"kind", "outcome"}),
      agent_signals_(CounterFamily(r, "agentfleet_agent_signals_total",
                                   "Signals agents sent in their output, by agent, signal (needs_info, rescope) "
                                   "and outcome (asked, replanned, invalid, exhausted)."),
                     {"agent", "signal", "outcome"}),
      replans_(CounterFamily(r, "agentfleet_replans_total",
                             "Re-runs of part of a workflow for an agent's rescope signal, by workflow."),
               {"workflow"}),
      actions_(CounterFamily(r, "agentfleet_actions_total",
                             "Action attempts whose outcome the coordinator took, by action, outcome (applied, "
                             "failed, rejected, unknown, not_sent, refused, confirmed) and decision (succeeded, "
                             "retry, failed, stopped, ...)."),
               {"action", "outcome", "decision"}),
      screens_(CounterFamily(r, "agentfleet_screens_total",
                             "Screen steps run (the built-in prompt-injection detector), by workflow and verdict."),
               {"workflow", "flagged"}),
      tenant_cost_(CounterFamily(r, "agentfleet_tenant_cost_usd_total",
                                 "What finished tasks spent themselves (their cost ledger entries), in US dollars, by "
                                 "tenant (\"(none)\" for tasks without one)."),
                   {"tenant"}),
      tenant_saved_(CounterFamily(r, "agentfleet_tenant_saved_usd_total",
                                  "What finished tasks did not spend thanks to the result cache (\"cache\") or batch "
                                  "pricing (\"batch\"), in US dollars, by tenant."),
                    {"tenant", "by"}),
      tenant_tasks_(CounterFamily(r, "agentfleet_tenant_tasks_total",
                                  "Finished tasks (children included: each has its own cost ledger entry), by tenant."),
                    {"tenant"}),
      pool_replicas_(GaugeFamily(r, "agentfleet_pool_capacity_replicas",
                                 "Worker replicas that would actually help the pool: the concurrency that drains its "
                                 "pending work within coordinator.capacity_drain_time, capped by the provider quotas "
                                 "and 0 for agents whose breaker is open, over a replica's max_in_flight. Scale on "
                                 "ceil() of it (autoscaling.mode: capacity)."),
                     {"pool"}),
      pool_pending_(GaugeFamily(r, "agentfleet_pool_pending_call_seconds",
                                "The pool's pending work in call-seconds: per agent, its work topic's lag times its "
                                "recent mean call time."),
                    {"pool"}),
      spend_limit_holds_(CounterFamily(r, "agentfleet_spend_limit_holds_total",
                                       "Calls held by the fleet's spend_limit until the next period (non-critical "
                                       "agents and batch work, once the period's limit is spent), by agent."),
                         {"agent"}),
      semantic_lookups_(CounterFamily(r, "agentfleet_semantic_cache_lookups_total",
                                      "Semantic-cache lookups, by agent and outcome (hit: served a similar input's "
                                      "output without a model call; miss; error: the embedding failed and the call "
                                      "went ahead; no_text: nothing to compare)."),
                        {"agent", "outcome"}),
      window_waits_(CounterFamily(r, "agentfleet_dispatch_window_waits_total",
                                  "Dispatches that waited in the coordinator because their agent had max_in_flight "
                                  "attempts out (its workers busy), by agent."),
                    {"agent"}),
      window_waiting_(GaugeFamily(r, "agentfleet_dispatch_window_waiting",
                                  "Attempts this replica holds for room in their agent's max_in_flight, by agent: "
                                  "pending work that is not on the work topic (the capacity signal counts it)."),
                      {"agent"}),
      config_reloads_(CounterFamily(r, "agentfleet_config_reloads_total",
                                    "Config reloads (SIGHUP), by outcome: applied (tenants and spend_limit taken "
                                    "from the file), refused (the file did not load; the running config stays)."),
                      {"outcome"}),
      commit_seconds_(HistogramFamily(r, "agentfleet_coordinator_commit_seconds",
                                      "exactly_once: how long committing one transaction took, by trigger: "
                                      "drained (the input was drained), interval (commit_interval was up), "
                                      "stop, rebalance."),
                      {"trigger"}, Exponential(0.0005, 2, 14)),
      commit_inputs_(HistogramFamily(r, "agentfleet_coordinator_commit_inputs",
                                     "exactly_once: input messages (submissions, events, signals) one transaction "
                                     "committed."),
                     {}, Exponential(1, 4, 9)),
      commit_failures_(CounterFamily(r, "agentfleet_coordinator_commit_failures_total",
                                     "exactly_once: transactions that failed to commit (aborted and redone)."),
                       {}),
      commit_wait_(CounterFamily(r, "agentfleet_coordinator_commit_wait_seconds_total",
                                 "exactly_once: time the coordinator's loop stood still for commits. A commit "
                                 "under load runs while the next batch is processed, so this is less than the "
                                 "sum of agentfleet_coordinator_commit_seconds."),
                   {}) {}

void CoordinatorMetrics::Commit(absl::string_view trigger, absl::Duration took, size_t inputs, bool ok) {
  if (!ok) {
    commit_failures_.With({}).Increment();
    return;
  }
  commit_seconds_.With({trigger}).Observe(absl::ToDoubleSeconds(took));
  commit_inputs_.With({}).Observe(static_cast<double>(inputs));
}

void CoordinatorMetrics::CommitWaited(absl::Duration waited) {
  commit_wait_.With({}).Increment(absl::ToDoubleSeconds(waited));
}

void CoordinatorMetrics::SemanticLookup(absl::string_view agent, absl::string_view outcome) {
  semantic_lookups_.With({agent, outcome}).Increment();
}

void CoordinatorMetrics::Action(absl::string_view action, absl::string_view outcome, absl::string_view decision) {
  actions_.With({action, outcome.empty() ? "none" : outcome, decision}).Increment();
}

void CoordinatorMetrics::TaskCost(const v1::CostEntry& entry) {
  absl::string_view tenant = entry.tenant().empty() ? "(none)" : absl::string_view(entry.tenant());
  // Created at 0 on a tenant's first task, so increase() sees its first spend.
  tenant_cost_.With({tenant}).Increment(entry.usage().cost_usd());
  tenant_tasks_.With({tenant}).Increment();
  tenant_saved_.With({tenant, "cache"}).Increment(entry.cache_saved_usd());
  tenant_saved_.With({tenant, "batch"}).Increment(entry.batch_saved_usd());
}

void CoordinatorMetrics::SpendLimitHold(absl::string_view agent) { spend_limit_holds_.With({agent}).Increment(); }

void CoordinatorMetrics::Capacity(const std::string& pool, const CapacityEstimate& estimate) {
  pool_replicas_.With({pool}).Set(estimate.replicas);
  pool_pending_.With({pool}).Set(estimate.pending_call_seconds);
}

bool CoordinatorMetrics::MeanCallSeconds(const std::string& agent, double* seconds) const {
  absl::MutexLock lock(&mu_);
  auto it = mean_call_s_.find(agent);
  if (it == mean_call_s_.end()) return false;
  *seconds = it->second;
  return true;
}

bool CoordinatorMetrics::BreakerOpen(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = breaker_open_.find(name);
  return it != breaker_open_.end() && it->second;
}

void CoordinatorMetrics::Screen(absl::string_view workflow, bool flagged) {
  screens_.With({workflow, flagged ? "true" : "false"}).Increment();
}

void CoordinatorMetrics::AgentSignal(absl::string_view agent, absl::string_view signal, absl::string_view outcome) {
  agent_signals_.With({agent, signal, outcome}).Increment();
}

void CoordinatorMetrics::Replan(absl::string_view workflow) { replans_.With({workflow}).Increment(); }

void CoordinatorMetrics::Signal(absl::string_view kind, absl::string_view outcome) {
  signals_.With({kind, outcome}).Increment();
}

void CoordinatorMetrics::Call(absl::string_view agent, const v1::WorkResult& result, double cost_usd) {
  const std::string& model = result.model();
  std::string outcome = CallOutcome(result);
  calls_.With({agent, model, outcome}).Increment();
  if (outcome == kSchemaViolation) schema_violations_.With({agent, model}).Increment();
  tokens_.With({agent, model, "input"}).Increment(result.usage().input_tokens());
  tokens_.With({agent, model, "output"}).Increment(result.usage().output_tokens());
  if (cost_usd > 0) cost_.With({agent, model}).Increment(cost_usd);
  // A provider batch's answer took as long as its batch (hours): no call
  // time, for the latency histogram nor for the capacity signal.
  if (result.batch()) return;
  call_seconds_.With({agent, model}).Observe(result.latency_ms() / 1000.0);
  // The capacity signal's mean call time: an exponential moving average
  // (the last ~20 calls weigh most).
  absl::MutexLock lock(&mu_);
  auto [it, first] = mean_call_s_.try_emplace(std::string(agent), result.latency_ms() / 1000.0);
  if (!first) it->second += 0.05 * (result.latency_ms() / 1000.0 - it->second);
}

void CoordinatorMetrics::Timeout(absl::string_view agent, absl::string_view kind) {
  timeouts_.With({agent, kind}).Increment();
}
void CoordinatorMetrics::Retry(absl::string_view agent) { retries_.With({agent}).Increment(); }
void CoordinatorMetrics::Fallback(absl::string_view agent, absl::string_view to) {
  fallbacks_.With({agent, to}).Increment();
}
void CoordinatorMetrics::CacheHit(absl::string_view agent) { cache_hits_.With({agent}).Increment(); }
void CoordinatorMetrics::BreakerRejection(absl::string_view agent) { breaker_rejections_.With({agent}).Increment(); }
void CoordinatorMetrics::RateWait(absl::string_view quota) { rate_waits_.With({quota}).Increment(); }
void CoordinatorMetrics::ConfigReload(absl::string_view outcome) { config_reloads_.With({outcome}).Increment(); }
void CoordinatorMetrics::WindowWait(absl::string_view agent) { window_waits_.With({agent}).Increment(); }

void CoordinatorMetrics::SetWindowWaiting(const std::string& agent, size_t waiting) {
  window_waiting_.With({agent}).Set(static_cast<double>(waiting));
  absl::MutexLock lock(&mu_);
  window_waiting_n_[agent] = static_cast<int64_t>(waiting);
}

int64_t CoordinatorMetrics::WindowWaiting(const std::string& agent) const {
  absl::MutexLock lock(&mu_);
  auto it = window_waiting_n_.find(agent);
  return it == window_waiting_n_.end() ? 0 : it->second;
}
void CoordinatorMetrics::TaskAccepted(absl::string_view workflow) { accepted_.With({workflow}).Increment(); }

void CoordinatorMetrics::TaskFinished(const v1::TaskResult& r, double budget_used) {
  const std::string& wf = r.workflow();
  results_.With({wf, StatusName(r.status())}).Increment();
  if (r.status() == v1::TASK_STATUS_REJECTED) return;  // never ran
  const auto& from = r.has_submitted_at() ? r.submitted_at() : r.accepted_at();
  if (r.has_finished_at() && (r.has_submitted_at() || r.has_accepted_at())) {
    task_seconds_.With({wf}).Observe(std::max(0.0, Seconds(from, r.finished_at())));
  }
  task_cost_.With({wf}).Observe(r.usage().cost_usd());
  task_tokens_.With({wf}).Observe(static_cast<double>(r.usage().input_tokens() + r.usage().output_tokens()));
  if (budget_used >= 0) budget_used_.With({wf}).Observe(budget_used);
}

void CoordinatorMetrics::Breaker(absl::string_view name, v1::BreakerStatus status) {
  for (auto s : {v1::BREAKER_STATUS_CLOSED, v1::BREAKER_STATUS_OPEN, v1::BREAKER_STATUS_HALF_OPEN}) {
    breaker_.With({name, BreakerName(s)}).Set(s == status ? 1 : 0);
  }
  absl::MutexLock lock(&mu_);
  breaker_open_[std::string(name)] = status == v1::BREAKER_STATUS_OPEN;
}

void CoordinatorMetrics::SetActive(size_t tasks, size_t rate_waiting) {
  active_.Set(static_cast<double>(tasks));
  rate_waiting_.Set(static_cast<double>(rate_waiting));
}

void CoordinatorMetrics::DeadLetter(absl::string_view component, absl::string_view topic) {
  dlq_.With({component, topic}).Increment();
}

void CoordinatorMetrics::Liveness(absl::string_view kind) { liveness_.With({"coordinator", kind}).Increment(); }

WorkerMetrics::WorkerMetrics(prometheus::Registry& r)
    : started_(CounterFamily(r, "agentfleet_worker_items_started_total", "Work items this worker started, by agent."),
               {"agent"}),
      finished_(CounterFamily(r, "agentfleet_worker_items_total",
                              "Work items this worker finished, by agent, model and outcome (ok or the error code)."),
                {"agent", "model", "outcome"}),
      seconds_(HistogramFamily(r, "agentfleet_worker_call_duration_seconds",
                               "Model call latency measured by this worker, by agent."),
               {"agent"}, LatencyBuckets()),
      in_flight_(GaugeFamily(r, "agentfleet_worker_items_in_flight", "Work items this worker is running now.").Add({})),
      dlq_(CounterFamily(r, "agentfleet_dlq_messages_total",
                         "Messages sent to the dead-letter queue, by component and the topic they came from."),
           {"component", "topic"}),
      liveness_(LivenessFamily(r), {"component", "kind"}),
      tool_calls_(CounterFamily(r, "agentfleet_tool_calls_total",
                                "Tool calls agents' models made, by agent, tool and status (ok, withheld, "
                                "invalid_arguments, unknown_tool, http_<status>, timeout, ...)."),
                  {"agent", "tool", "status"}) {}

void WorkerMetrics::ToolCall(absl::string_view agent, absl::string_view tool, absl::string_view status) {
  tool_calls_.With({agent, tool, status}).Increment();
}

void WorkerMetrics::Started(absl::string_view agent) { started_.With({agent}).Increment(); }

void WorkerMetrics::Finished(absl::string_view agent, absl::string_view model, absl::string_view outcome,
                             absl::Duration latency) {
  finished_.With({agent, model, outcome}).Increment();
  seconds_.With({agent}).Observe(absl::ToDoubleSeconds(latency));
}

void WorkerMetrics::SetInFlight(size_t items) { in_flight_.Set(static_cast<double>(items)); }
void WorkerMetrics::DeadLetter(absl::string_view topic) { dlq_.With({"worker", topic}).Increment(); }
void WorkerMetrics::Liveness(absl::string_view kind) { liveness_.With({"worker", kind}).Increment(); }

}  // namespace agentfleet
