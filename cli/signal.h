// `agentfleet signal` and `agentfleet cancel`: a TaskSignal on the signals
// topic, keyed by the task id (the coordinator replica that owns the task
// reads it).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "agentfleet/v1/task.pb.h"
#include "cli/commands.h"
#include "config/config.h"

namespace agentfleet {

// Produces `signal` to the signals topic and waits for its delivery.
[[nodiscard]] absl::Status SendSignal(const FleetConfig& config, const v1::TaskSignal& signal);

// Sends the signal `name` with `payload_json` (any JSON value; empty: null)
// to the task. Exit 0 once the broker has it, 2 for bad JSON.
int RunSignal(const FleetConfig& config, const std::string& task_id, const std::string& name,
              const std::string& payload_json, const std::string& sender, const CliOptions& options);

// Cancels the task and waits (options.timeout) for its result: exit 0 when
// it ended CANCELLED; 1 when it had already finished (with its status), is
// unknown (no submission under that id on the tasks topic), or no result
// came in time.
int RunCancel(const FleetConfig& config, const std::string& task_id, const std::string& reason,
              const std::string& sender, const CliOptions& options);

}  // namespace agentfleet
