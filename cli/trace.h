// `agentfleet trace TASK_ID`: one task's timeline, rebuilt from what the
// fleet's topics hold about it — the submission (tasks), every attempt's work
// item (work.<agent>), the workers' receipts, heartbeats and results
// (events), the coordinator's latest snapshot (state) and the final result
// (results): each step and attempt with its agent, model, worker, queue wait
// and run time, tokens, cost and outcome, under the task's W3C trace id.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agentfleet/v1/state.pb.h"
#include "agentfleet/v1/task.pb.h"
#include "agentfleet/v1/work.pb.h"
#include "audit/task_records.h"
#include "config/config.h"
#include "kafka/kafka.h"

namespace agentfleet {

// The messages keyed by one task id, per topic (audit/task_records.h).
using TraceMessages = TaskRecords;

struct AttemptTrace {
  std::string step;
  int fan_index = -1;
  int attempt = 0;
  std::string agent;
  std::string fallback_for;  // the step's own agent, when this attempt ran on its fallback
  bool embedding = false;    // a semantic-cache lookup's embedding request, not a call of the agent
  std::string answering;     // the step's own agent, when this attempt answered its question (needs_info)
  std::string model_tier;
  std::string model;  // what the provider ran (from the result)
  std::string worker;
  int max_tokens = 0;
  std::optional<absl::Time> dispatched, started, finished;
  int heartbeats = 0;
  int64_t latency_ms = -1;  // as the worker measured the call
  v1::Usage usage;
  double cost_usd = 0;
  // "ok", the error code, "signal needs_info" / "signal rescope" (the
  // question or reason in `message`), or "running" / "no result" when no
  // result arrived.
  std::string outcome;
  std::string message;
  bool retryable = false;
  // The tools its model called (tool loops), and the model turns it took;
  // for an action, the request it made.
  std::vector<v1::ToolCall> tool_calls;
  int model_turns = 0;
  std::optional<v1::ActionCall> action;
};

struct TaskTrace {
  std::string task_id;
  bool found = false;  // anything at all was found
  std::string workflow, tenant, trace_id;
  std::optional<absl::Time> submitted, accepted, finished;
  std::optional<v1::TaskResult> result;
  std::optional<v1::TaskState> state;  // latest snapshot, if not tombstoned
  std::vector<AttemptTrace> attempts;  // by dispatch time
  std::vector<std::string> problems;   // messages that could not be read
};

// "COMPLETED", "FAILED", ...; "RUNNING" for no status.
const char* TaskStatusName(v1::TaskStatus status);

// Pure: the timeline of `task_id` from its messages.
TaskTrace BuildTrace(const FleetConfig& config, const std::string& task_id, const TraceMessages& messages);

std::string TraceText(const TaskTrace& trace);
std::string TraceJson(const TaskTrace& trace);  // one JSON document

}  // namespace agentfleet
