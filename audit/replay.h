// Replaying a task: its recorded submission, events and signals fed through
// the coordinator's engine (TaskEngine) in their recorded order and at their
// recorded times, with no Kafka and no model call, and every decision the
// engine makes compared with what the fleet recorded — each attempt it
// dispatched (step, fan index, attempt, agent, model tier, token caps,
// input: so retries, timeouts, fallbacks, budget downgrades and routing)
// and the final result (status, output, every step's summary, usage, cost).
// The regression check for engine changes (`agentfleet replay`, and the
// golden logs of tests/golden/replay).
//
// What a replay cannot see: state shared with other tasks — a circuit
// breaker other tasks opened, a result-cache entry another task wrote, a
// tenant budget others spent. A decision that followed from them shows as a
// divergence. Inputs are applied at their records' timestamps; a
// coordinator that was down while a timer fell due between two of them may
// have taken them in another order (docs/observability.md, "Debugging a run").
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "audit/task_records.h"
#include "config/config.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

struct ReplayDecision {
  std::string what;  // "dispatch answer[2] attempt 3", "result"
  // What each side decided (the compared fields; no times); null when that
  // side did not make this decision.
  nlohmann::json recorded, replayed;
  std::optional<absl::Time> recorded_at, replayed_at;
  std::vector<std::string> differing;  // the top-level fields that differ
  bool same() const { return recorded == replayed; }
};

struct ReplayReport {
  std::string task_id, workflow;
  int submissions = 0, events = 0, signals = 0;  // the inputs fed
  // The recorded decisions in the order they were made, then the ones only
  // the replay made, in its order.
  std::vector<ReplayDecision> decisions;
  int first_divergence = -1;          // index into decisions; -1 if identical
  std::vector<std::string> problems;  // records that could not be read or used
  bool identical() const { return first_divergence < 0; }
};

// NotFound if `records` hold no readable submission.
[[nodiscard]] absl::StatusOr<ReplayReport> Replay(const FleetConfig& config, const std::string& task_id,
                                                  const TaskRecords& records);

std::string ReplayText(const ReplayReport& report);
std::string ReplayJson(const ReplayReport& report);  // one JSON document

}  // namespace agentfleet
