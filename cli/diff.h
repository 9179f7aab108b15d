// `agentfleet diff TASK_A TASK_B`: two runs side by side, step by step —
// status, model, tokens, cost and latency of each step instance, and the
// change in its output as a JSON Patch (RFC 6902) — then the totals. For a
// task and its fork, or any two tasks of the same workflow. Built from each
// task's result (the step summaries) and the workers' results on the events
// topic (the step outputs).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agentfleet/v1/task.pb.h"
#include "audit/task_records.h"
#include "config/config.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

struct StepDiff {
  std::string step;
  int fan_index = -1;
  std::optional<v1::StepSummary> a, b;  // absent: that run has no such step instance
  // The step's output in each run (null when it had none, or it was not
  // found on the events topic), and the patch from a's to b's.
  nlohmann::json output_a, output_b, patch;
  // What differs: "status", "model", "output", "tokens", "cost" (not the
  // tokens and cost of a fork's reused instance, which paid nothing for the
  // same output).
  std::vector<std::string> changed;
};

struct RunDiff {
  std::string task_a, task_b;
  v1::TaskResult a, b;
  std::vector<StepDiff> steps;  // in a's order, then the instances only b has
  nlohmann::json output_patch;  // of the tasks' final outputs
  int changed_steps() const;
};

// InvalidArgument if either task has no result in `records_*`.
[[nodiscard]] absl::StatusOr<RunDiff> DiffRuns(const FleetConfig& config, const std::string& task_a,
                                               const TaskRecords& records_a, const std::string& task_b,
                                               const TaskRecords& records_b);

std::string RunDiffText(const RunDiff& diff);
std::string RunDiffJson(const RunDiff& diff);

}  // namespace agentfleet
