// Reading the messages of many keys at once: one pass over a topic for a
// whole set of task ids (`agentfleet replay` of a sample, the tests that
// replay every task of a run), where ReadKeyToEnd (kafka.h) reads the topic
// once per key.
#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kafka/kafka.h"

namespace agentfleet {

// Every committed message of `topic` (all partitions) whose key is in
// `keys`, from the beginning to the end as it is when the read starts.
[[nodiscard]] absl::StatusOr<std::vector<Message>> ReadKeysToEnd(const Properties& properties,
                                                                 const std::string& topic,
                                                                 const absl::flat_hash_set<std::string>& keys,
                                                                 absl::Duration timeout);

}  // namespace agentfleet
