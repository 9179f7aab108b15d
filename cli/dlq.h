// The dead-letter queue's operations on Kafka, shared by `agentfleet dlq`
// and the console (cli/console.h has the pure parts: what a dead letter
// holds, the replayed message, the action's record).
//
// A replay or a discard is one Kafka transaction under one transactional.id
// for the whole fleet (<topic_prefix>agentfleet-dlq-operator). Starting it
// fences any other operator's (a command's, a console's) and completes its
// transaction; dlq.actions is then read to its end, so a dead letter already
// handled is refused even when two operators act at once; the replayed
// record and the action's record are committed together or not at all.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/commands.h"
#include "cli/console.h"
#include "config/config.h"

namespace agentfleet {

using DeadLetterActions = std::map<std::pair<int32_t, int64_t>, DeadLetterAction>;  // by dead letter

// `letter` with the latest action recorded on it, if any.
DeadLetter WithDisposition(DeadLetter letter, const DeadLetterActions& actions);

// Every action on dlq.actions (the latest per dead letter); none when the
// topic does not exist yet. `unreadable` counts records that do not decode.
[[nodiscard]] absl::StatusOr<DeadLetterActions> ReadDeadLetterActions(const FleetConfig& config,
                                                                      absl::Duration timeout,
                                                                      int64_t* unreadable = nullptr);

// The newest `per_partition` records of each dlq partition (all of them
// when 0), oldest first, each with its disposition.
[[nodiscard]] absl::StatusOr<std::vector<DeadLetter>> ReadDeadLetters(const FleetConfig& config,
                                                                      int64_t per_partition, absl::Duration timeout);

// Replays (action.action "replayed") or discards ("discarded") the dead
// letter at action.partition/offset, recording `action` (its by, from and
// note as given; at and origin_topic filled in) on dlq.actions. Errors:
// InvalidArgument for another action; NotFound when the offset holds no
// dead letter (never written, or past retention); AlreadyExists when it
// was handled (the message says how, by whom and when);
// FailedPrecondition when it cannot be replayed (ReplayMessage); Aborted
// when another operator's action fenced this one; Kafka's errors
// otherwise. Nothing is written when it fails.
[[nodiscard]] absl::StatusOr<DeadLetterAction> ActOnDeadLetter(const FleetConfig& config, DeadLetterAction action,
                                                               absl::Duration timeout);

// `agentfleet dlq [list]`: the newest --count dead letters per partition
// (1,000 when 0) that match `filter`, newest first, as a table or JSON.
int RunDlqList(const FleetConfig& config, const DeadLetterFilter& filter, const CliOptions& options);
// `agentfleet dlq replay|discard PARTITION/OFFSET`: 0 when done, 1 when
// refused (unknown, already handled, not replayable), 2 for bad arguments,
// 3 when Kafka failed.
int RunDlqAction(const FleetConfig& config, const std::string& verb, const std::string& where,
                 const std::string& by, const std::string& note, const CliOptions& options);

}  // namespace agentfleet
