// Auditing a fleet's topics: every task submitted to the tasks topic against
// every result on the results topic. What users (and the chaos tests) check
// after an incident: nothing lost, nothing duplicated, every output right.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "config/config.h"

namespace agentfleet {

struct AuditReport {
  int64_t submitted = 0;       // distinct task ids on the tasks topic (readable or by key)
  int64_t results = 0;         // result messages
  int64_t lost = 0;            // submitted, no result
  int64_t duplicated = 0;      // tasks with more than one result
  int64_t unexpected = 0;      // results for task ids never submitted
  int64_t verified = 0;        // outputs recomputed with the reference run
  int64_t mismatched = 0;      // ... that differ from the result
  int64_t overspent = 0;       // results whose usage passed the task's token or cost limit
  int64_t children = 0;        // child tasks (a parent_task_id), checked against their parent
  int64_t child_over_parent = 0;  // children given more budget than their parent's limits
  std::vector<std::string> examples;  // a few task ids per problem, for the report

  bool clean() const {
    return lost == 0 && duplicated == 0 && unexpected == 0 && mismatched == 0 && overspent == 0 &&
           child_over_parent == 0;
  }
  std::string Text() const;
  std::string Json() const;
};

// Reads both topics from the beginning to their current end (read_committed).
// Every result's usage is checked against its task's budget (the workflow's,
// tightened by the submission's). With `verify`, COMPLETED results of
// workflows that run only on simulated providers are compared with
// RunLocally(); tasks with a budget are left out of that comparison, since
// which parallel attempt settles first can move a later step to a cheaper
// model tier.
[[nodiscard]] absl::StatusOr<AuditReport> Audit(const FleetConfig& config, bool verify,
                                                absl::Duration timeout);

// One tenant's spending in the current period, summed over the task
// partitions' ledgers in the state topic (each partition holds an equal
// slice of the limit).
struct TenantSpending {
  std::string tenant;
  std::string period;        // hour, day or month
  absl::Time period_start;
  double cost_usd = 0;
  int64_t tokens = 0;
  double max_cost_usd = 0;   // the tenant's limit (0: none)
  int64_t max_tokens = 0;
  std::string on_exhausted;  // hold or reject
  int partitions_spent = 0;  // partitions whose slice is spent
  int partitions = 0;
};

// Every configured tenant with spending in the current period.
[[nodiscard]] absl::StatusOr<std::vector<TenantSpending>> Tenants(const FleetConfig& config,
                                                                  absl::Duration timeout);
std::string TenantsText(const std::vector<TenantSpending>& tenants);
std::string TenantsJson(const std::vector<TenantSpending>& tenants);

}  // namespace agentfleet
