// StallWatch: the backstop for a partition that is assigned but not
// fetching — a fetcher stalled in the client (a pause kept across a
// rebalance, a committed-offset fetch that failed and never started, a
// fetcher that stopped after a fetch with its high watermark frozen at its
// position: docs/robustness.md). Every stall_after / 3 it looks at the
// consumer's partitions; one that has something to fetch and has not moved
// for stall_after while the consumer had room gets its fetch restarted
// (resumed, and sought to its position). The worker and the coordinator
// each run one on their own loop thread. Not thread-safe.
#pragma once

#include <map>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "kafka/kafka.h"

namespace agentfleet {

class StallWatch {
 public:
  explicit StallWatch(absl::Duration stall_after) : stall_after_(stall_after) {}

  // Checks `consumer`'s partitions if a check is due; `had_room`: whether
  // the consumer was fetching on purpose since the last call (a paused or
  // full consumer is not stalled). Logs each restart as `component`;
  // returns how many partitions it restarted.
  int Check(Consumer& consumer, absl::Time now, bool had_room, const char* component);

 private:
  struct Watch {
    int64_t position = -2;
    absl::Time since;  // when it last moved, or last had a reason not to
  };
  absl::Duration stall_after_;
  std::map<std::pair<std::string, int32_t>, Watch> watch_;
  absl::Time next_check_ = absl::InfinitePast();
};

}  // namespace agentfleet
