// Reading the messages of some keys without reading whole topics: the
// partition a key is produced to, the offsets of a time, and one read of
// offset ranges on any topics. audit/task_records reads tasks' records with
// them, from their partitions and time windows only (or, asked to, from
// every partition whole, through the same read).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kafka/kafka.h"

namespace agentfleet {

// The partition every agentfleet producer (murmur2_random, the Java client's
// default) writes `key` to, on a topic of `partitions` partitions.
int32_t KeyPartition(absl::string_view key, int32_t partitions);

// The partition count of each of `topics`, asked with one client.
[[nodiscard]] absl::StatusOr<std::map<std::string, int>> PartitionCounts(const Properties& properties,
                                                                         const std::vector<std::string>& topics,
                                                                         absl::Duration timeout);

// Offsets [begin, end) of one partition.
struct OffsetRange {
  static constexpr int64_t kBeginning = -2;  // the partition's first offset
  static constexpr int64_t kEnd = INT64_MAX;  // its end when the read reaches it
  std::string topic;
  int32_t partition = 0;
  int64_t begin = kBeginning;
  int64_t end = kEnd;
};

// The committed messages in `ranges` (read_committed; any topics, one client;
// an empty range is skipped) whose key is in `keys`. A range stops early at
// its partition's end as a read_committed reader sees it. `scanned`, when
// given, counts the messages read, kept or not.
[[nodiscard]] absl::StatusOr<std::vector<Message>> ReadKeysInRanges(const Properties& properties,
                                                                    const std::vector<OffsetRange>& ranges,
                                                                    const absl::flat_hash_set<std::string>& keys,
                                                                    absl::Duration timeout,
                                                                    int64_t* scanned = nullptr);

// Every committed message in `ranges`, whatever its key (one dead letter by
// its offset, the newest of a partition).
[[nodiscard]] absl::StatusOr<std::vector<Message>> ReadRanges(const Properties& properties,
                                                              const std::vector<OffsetRange>& ranges,
                                                              absl::Duration timeout);

// A partition and a time.
struct TimeQuery {
  std::string topic;
  int32_t partition = 0;
  absl::Time at;
};

// For each query, the first offset of its partition whose timestamp is at or
// after its time (ListOffsets by time), or the partition's end when none is;
// one client for all.
[[nodiscard]] absl::StatusOr<std::vector<int64_t>> OffsetsAtTimes(const Properties& properties,
                                                                  const std::vector<TimeQuery>& queries,
                                                                  absl::Duration timeout);

}  // namespace agentfleet
