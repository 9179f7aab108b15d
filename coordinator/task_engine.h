// TaskEngine: the coordinator's logic, free of Kafka and threads. It owns the
// state machine of every active task: it plans the workflow DAG, dispatches
// each ready step (or each element of a fan-out) as a WorkItem, accepts
// exactly one result per attempt, retries retryable failures up to the
// agent's max_attempts, and emits exactly one TaskResult per task.
//
// Inputs arrive in order per task (all of a task's messages share a
// partition); outputs are appended to an Outbox that the caller publishes.
// Not thread-safe: one coordinator thread drives it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "agentfleet/v1/task.pb.h"
#include "agentfleet/v1/work.pb.h"
#include "common/clock.h"
#include "config/config.h"
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
  };
  std::vector<Work> work;
  std::vector<Result> results;
  bool empty() const { return work.empty() && results.empty(); }
  void clear() {
    work.clear();
    results.clear();
  }
};

struct EngineStats {
  int64_t accepted = 0;
  int64_t rejected = 0;
  int64_t duplicate_submissions = 0;
  int64_t stale_events = 0;
  int64_t dispatched = 0;
  int64_t retries = 0;
  int64_t finished = 0;
};

class TaskEngine {
 public:
  // `config` and `clock` must outlive the engine.
  TaskEngine(const FleetConfig* config, const Clock* clock);
  ~TaskEngine();

  // Accepts a decoded submission. A task_id seen before is ignored (OK, no
  // output). An invalid submission (unknown workflow) gets a REJECTED result
  // in `out` and returns InvalidArgument with the reason.
  absl::Status Submit(const v1::TaskSubmission& submission, const std::string& traceparent,
                      Outbox* out);

  // Applies a worker's receipt, heartbeat or result. Events for unknown or
  // finished tasks, and for attempts other than the current one, are stale
  // and ignored.
  void OnEvent(const v1::WorkEvent& event, Outbox* out);

  size_t active_tasks() const { return active_.size(); }
  const EngineStats& stats() const { return stats_; }

 private:
  struct Instance;
  struct StepRun;
  struct Task;

  void StartReadySteps(Task& task, Outbox* out);
  void StartStep(Task& task, size_t step, Outbox* out);
  void Dispatch(Task& task, size_t step, int fan_index, Outbox* out);
  void CompleteStep(Task& task, size_t step, Outbox* out);
  void Finish(Task& task, v1::TaskStatus status, const v1::Error* error, Outbox* out);
  void FailTask(Task& task, const std::string& code, const std::string& message, Outbox* out);

  const FleetConfig* config_;
  const Clock* clock_;
  absl::flat_hash_map<std::string, std::unique_ptr<Task>> active_;
  // Ids of finished tasks, so a resubmission is not run twice. Unbounded in
  // memory for now; the durable coordinator keeps them in the state topic
  // with a retention.
  absl::flat_hash_set<std::string> finished_;
  EngineStats stats_;
};

}  // namespace agentfleet
