// What the fleet's topics hold about one task, read by its key: its
// submission (tasks), every attempt's work item (work.<agent>), the workers'
// receipts, heartbeats and results (events), the signals sent to it
// (signals: cancellations, answers, child results), the coordinator's
// snapshots (state) and its result (results). `agentfleet trace` and
// `agentfleet replay` are built from them.
//
// A task's records can be saved as JSON Lines (one decoded message per line,
// with its topic, partition, offset, timestamp and traceparent) and loaded
// back, byte for byte the same messages: how a run is kept as a golden log
// for the replay tests, or attached to a bug report.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agentfleet/v1/task.pb.h"
#include "config/config.h"
#include "kafka/kafka.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

// The messages keyed by one task id, per topic, in the order read.
struct TaskRecords {
  std::vector<Message> tasks, work, events, signals, state, results;
};

// How a task's records are found. Every agentfleet producer writes a task's
// records to the partition murmur2 gives its id (docs/protocol.md#clients),
// so by default only that partition of each topic is read:
//  1. the results partition, newest records first, in chunks that grow
//     fourfold (a recent task is found in the first);
//  2. the task's window, from its submission or acceptance (the earlier) to
//     its end, widened by `margin` on both sides (records carry their
//     producers' clocks: workers', clients', other coordinator replicas'),
//     is turned into offsets by Kafka's time index (ListOffsets by time),
//     and only those offsets of the other topics are read;
//  3. a task whose submission is outside that window (a client clock far
//     off) has its tasks partition read in full; a task without a result
//     (running, or unknown) has all its partitions read in full, and so
//     do all tasks where the broker's time index does not place the result
//     just read at or before its offset (the development broker).
// `scan_all` reads every partition of every topic from the beginning (the
// fallback for records produced with another partitioner).
struct RecordsLookup {
  bool scan_all = false;
  absl::Duration margin = absl::Minutes(1);
};

// What a lookup read: messages read (kept or not), the rounds it took to
// find the results, and whether it read whole partitions because the
// broker's time index failed its check (a record it had just read, asked for
// by its timestamp, must come at or before its offset).
struct LookupStats {
  int64_t scanned = 0;
  int result_rounds = 0;
  bool whole_partitions = false;
};

// Reads the fleet's topics for messages keyed `task_id`.
[[nodiscard]] absl::StatusOr<TaskRecords> ReadTaskRecords(const FleetConfig& config, const std::string& task_id,
                                                          absl::Duration timeout, const RecordsLookup& lookup = {},
                                                          LookupStats* stats = nullptr);
// The same for many tasks, in one pass over each topic. Every id of
// `task_ids` has an entry (empty if nothing was found).
[[nodiscard]] absl::StatusOr<std::map<std::string, TaskRecords>> ReadTaskRecords(
    const FleetConfig& config, const std::vector<std::string>& task_ids, absl::Duration timeout,
    const RecordsLookup& lookup = {}, LookupStats* stats = nullptr);

// The first submission and the first result of `task_id` in `records` that
// decode (a resubmission is ignored by the fleet; a task has one result).
std::optional<v1::TaskSubmission> FindSubmission(const TaskRecords& records, const std::string& task_id,
                                                 size_t max_payload_bytes);
std::optional<v1::TaskResult> FindResult(const TaskRecords& records, const std::string& task_id,
                                         size_t max_payload_bytes);

// The output each step instance of `result` was served, from the workers'
// results on the events topic (its last attempt's, else the latest that
// succeeded) or, for a fork's reused instance, from its submission. By
// (step, fan index); an instance whose output is not there (served from a
// cache, a wait, a child task) has no entry.
std::map<std::pair<std::string, int>, nlohmann::json> StepOutputs(const TaskRecords& records,
                                                                  const v1::TaskResult& result,
                                                                  size_t max_payload_bytes);

// JSON Lines, state snapshots left out (they are derived from the others).
// A message that does not decode is kept as its bytes (base64) with the reason.
std::string SaveTaskRecords(const TaskRecords& records, size_t max_payload_bytes);
// The records of SaveTaskRecords' output; InvalidArgument naming `source`
// and the line of anything that is not such a record.
[[nodiscard]] absl::StatusOr<TaskRecords> LoadTaskRecords(const std::string& text, const std::string& source);

}  // namespace agentfleet
