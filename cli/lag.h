// `agentfleet lag`: each consumer group's lag per topic, and the replica
// count KEDA's Kafka scaler would ask for, so lagThreshold and partition
// counts can be sized before deploying (docs/deployment.md).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "config/config.h"
#include "kafka/kafka.h"
#include "metrics/capacity.h"

namespace agentfleet {

// The Kafka trigger's settings that change its answer (KEDA's names).
struct KedaTrigger {
  int64_t lag_threshold = 10;
  int64_t activation_lag_threshold = 0;
  bool allow_idle_consumers = false;
  bool limit_to_partitions_with_lag = false;
  bool scale_to_zero_on_invalid_offset = false;
  // earliest: what the chart's triggers use, since workers start a new group
  // from the earliest message (auto.offset.reset).
  enum class OffsetReset { kLatest, kEarliest } offset_reset = OffsetReset::kEarliest;
  int min_replicas = 0;
  int max_replicas = 100;
};

struct KedaEstimate {
  int64_t lag = 0;                 // the trigger's total lag, before the cap
  int64_t partitions = 0;
  int64_t partitions_with_lag = 0;
  int64_t metric = 0;              // what the scaler reports: the lag, capped
  bool active = false;             // metric above activation_lag_threshold
  int replicas = 0;                // what the HPA sets: ceil(metric / lag_threshold), within min/max
};

// KEDA's Kafka scaler for one topic of one group: per partition, the high
// watermark minus the committed offset; with no committed offset, 1 (0 with
// scale_to_zero_on_invalid_offset) under offsetResetPolicy latest, or the
// high watermark under earliest. The total is capped at lag_threshold ×
// partitions (× partitions with lag when limit_to_partitions_with_lag) unless
// idle consumers are allowed. The HPA then asks for ceil(metric /
// lag_threshold) replicas; an inactive trigger scales to min_replicas.
KedaEstimate EstimateKeda(const TopicLag& lag, const KedaTrigger& trigger);

struct GroupTopicLag {
  std::string group;
  TopicLag lag;
  KedaEstimate keda;
};

// The coordinator group on tasks and events, and every worker pool's group
// (worker.pools) on each agent's work topic (all must exist).
[[nodiscard]] absl::StatusOr<std::vector<GroupTopicLag>> ReadFleetLag(const FleetConfig& config,
                                                                      const KedaTrigger& trigger,
                                                                      absl::Duration timeout);

// The capacity signal per pool (metrics/capacity.h) beside what KEDA's lag
// trigger asks for (the largest of the pool's topics, as the HPA takes it).
struct PoolCapacity {
  std::string pool;
  CapacityEstimate estimate;
  int replicas = 0;       // ceil(estimate.replicas), within min/max replicas
  int keda_replicas = 0;  // KEDA's Kafka trigger
};

// The capacity signal from `lags`, the agents' mean call times in the
// latest results (the last 200 of each results partition) and the breakers
// topic, as the coordinators compute agentfleet_pool_capacity_replicas.
[[nodiscard]] absl::StatusOr<std::vector<PoolCapacity>> ReadFleetCapacity(const FleetConfig& config,
                                                                         const std::vector<GroupTopicLag>& lags,
                                                                         const KedaTrigger& trigger,
                                                                         absl::Duration timeout);

std::string LagText(const std::vector<GroupTopicLag>& lags, const KedaTrigger& trigger,
                    const std::vector<PoolCapacity>& capacity = {});
std::string LagJson(const std::vector<GroupTopicLag>& lags, const KedaTrigger& trigger,
                    const std::vector<PoolCapacity>& capacity = {});

}  // namespace agentfleet
