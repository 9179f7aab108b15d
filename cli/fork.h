// `agentfleet fork TASK --from STEP [--set agents.X.models.T=M ...]
// [--tenant T]`: a new task (a new id, linked to the original by its
// labels and its `fork` field) that re-runs TASK from STEP. The step
// instances before STEP are served the outputs the original recorded (no
// call, no cost, `reused` in the result); STEP and everything after run for
// real — under the config the fleet runs now, with --set's models.
//
// Refused, saying why, when a reused output would no longer apply: when
// the original's decisions before STEP, replayed under the new config
// (audit/replay.h), change — another agent, tier or input — or a step
// before STEP would now run on another model, or its output is not on the
// events topic (served from a cache, a wait or a child task).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agentfleet/v1/task.pb.h"
#include "audit/task_records.h"
#include "config/config.h"

namespace agentfleet {

// "agents.X.models.T=M" (an agent's model tier, and the model it runs).
[[nodiscard]] absl::StatusOr<v1::ModelOverride> ParseModelOverride(const std::string& set);

// `config` with the overrides applied (each checked: the agent and its tier
// exist, the model is priced).
[[nodiscard]] absl::StatusOr<FleetConfig> WithOverrides(const FleetConfig& config,
                                                        const std::vector<v1::ModelOverride>& overrides);

struct ForkPlan {
  v1::TaskSubmission submission;     // the fork, to submit
  std::vector<std::string> reused;   // the instances it reuses: "classify", "research[1]"
  std::vector<std::string> rerun;    // the recorded instances it runs again
};

// Plans the fork of `task_id` (whose records are `records`) from
// `from_step`, under `config` (the fleet's, overrides applied). The fork's
// id is `new_id`; its tenant `tenant`, or the original's when empty.
// FailedPrecondition, with the reason, when the fork is refused.
[[nodiscard]] absl::StatusOr<ForkPlan> PlanFork(const FleetConfig& config, const std::string& task_id,
                                                const TaskRecords& records, const std::string& from_step,
                                                const std::vector<v1::ModelOverride>& overrides,
                                                const std::string& tenant, const std::string& new_id);

}  // namespace agentfleet
