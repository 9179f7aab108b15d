#include "cli/lag.h"

#include "absl/time/clock.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kafka/topics.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

KedaEstimate EstimateKeda(const TopicLag& lag, const KedaTrigger& t) {
  KedaEstimate e;
  e.partitions = static_cast<int64_t>(lag.partitions.size());
  for (const PartitionLag& p : lag.partitions) {
    int64_t l;
    if (p.committed < 0) {
      l = t.offset_reset == KedaTrigger::OffsetReset::kEarliest ? p.high
          : t.scale_to_zero_on_invalid_offset                   ? 0
                                                                : 1;
    } else {
      l = p.high - p.committed;
    }
    e.lag += l;
    if (l > 0) ++e.partitions_with_lag;
  }
  e.metric = e.lag;
  int64_t threshold = std::max<int64_t>(1, t.lag_threshold);
  if (!t.allow_idle_consumers || t.limit_to_partitions_with_lag) {
    int64_t bound = t.limit_to_partitions_with_lag ? e.partitions_with_lag : e.partitions;
    if (e.metric / threshold > bound) e.metric = bound * threshold;
  }
  e.active = e.metric > t.activation_lag_threshold;
  int64_t wanted = (e.metric + threshold - 1) / threshold;
  if (!e.active) wanted = 0;
  e.replicas = static_cast<int>(std::clamp<int64_t>(wanted, t.min_replicas, std::max(t.min_replicas, t.max_replicas)));
  if (e.active && e.replicas == 0) e.replicas = 1;
  return e;
}

absl::StatusOr<std::vector<GroupTopicLag>> ReadFleetLag(const FleetConfig& config, const KedaTrigger& trigger,
                                                        absl::Duration timeout) {
  Topics topics(config.kafka.topic_prefix);
  Properties props = ProducerProperties(config.kafka);
  std::vector<std::pair<std::string, std::vector<std::string>>> targets = {
      {config.coordinator.group_id, {topics.tasks, topics.events, topics.signals}}};
  for (const std::string& pool : config.worker.pools) {
    std::vector<std::string> work;
    for (const auto& [name, agent] : config.agents) work.push_back(topics.Work(name));
    targets.push_back({WorkerGroup(config, pool), work});
  }
  std::vector<GroupTopicLag> out;
  // One deadline for the whole read, however many groups and topics: an
  // unreachable broker must not multiply the wait.
  absl::Time deadline = absl::Now() + timeout;
  for (const auto& [group, names] : targets) {
    for (const std::string& topic : names) {
      absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::DeadlineExceededError(absl::StrCat("reading lag took longer than ", absl::FormatDuration(timeout),
                                                        " (", group, " on ", topic, " not read)"));
      }
      auto lag = GroupLag(props, group, {topic}, left);
      if (!lag.ok()) return absl::Status(lag.status().code(), absl::StrCat(group, " on ", topic, ": ", lag.status().message()));
      out.push_back({group, lag->front(), EstimateKeda(lag->front(), trigger)});
    }
  }
  return out;
}

std::string LagText(const std::vector<GroupTopicLag>& lags, const KedaTrigger& t) {
  std::string out = absl::StrFormat(
      "KEDA trigger: lagThreshold %d, activationLagThreshold %d, offsetResetPolicy %s%s%s\n\n", t.lag_threshold,
      t.activation_lag_threshold, t.offset_reset == KedaTrigger::OffsetReset::kLatest ? "latest" : "earliest",
      t.allow_idle_consumers ? ", allowIdleConsumers" : "", t.limit_to_partitions_with_lag ? ", limitToPartitionsWithLag" : "");
  absl::StrAppend(&out, absl::StrFormat("%-32s %-36s %10s %9s %10s %8s\n", "group", "topic", "partitions", "with lag",
                                        "lag", "replicas"));
  for (const GroupTopicLag& g : lags) {
    absl::StrAppend(&out, absl::StrFormat("%-32s %-36s %10d %9d %10d %8d\n", g.group, g.lag.topic, g.keda.partitions,
                                          g.keda.partitions_with_lag, g.keda.lag, g.keda.replicas));
  }
  return out;
}

std::string LagJson(const std::vector<GroupTopicLag>& lags, const KedaTrigger& t) {
  nlohmann::json rows = nlohmann::json::array();
  for (const GroupTopicLag& g : lags) {
    nlohmann::json parts = nlohmann::json::array();
    for (const PartitionLag& p : g.lag.partitions) {
      parts.push_back({{"partition", p.partition}, {"committed", p.committed}, {"low", p.low}, {"high", p.high}});
    }
    rows.push_back({{"group", g.group},
                    {"topic", g.lag.topic},
                    {"partitions", g.keda.partitions},
                    {"partitions_with_lag", g.keda.partitions_with_lag},
                    {"lag", g.keda.lag},
                    {"keda_metric", g.keda.metric},
                    {"active", g.keda.active},
                    {"replicas", g.keda.replicas},
                    {"by_partition", std::move(parts)}});
  }
  nlohmann::json j = {{"trigger",
                       {{"lagThreshold", t.lag_threshold},
                        {"activationLagThreshold", t.activation_lag_threshold},
                        {"allowIdleConsumers", t.allow_idle_consumers},
                        {"limitToPartitionsWithLag", t.limit_to_partitions_with_lag},
                        {"offsetResetPolicy", t.offset_reset == KedaTrigger::OffsetReset::kLatest ? "latest" : "earliest"},
                        {"minReplicaCount", t.min_replicas},
                        {"maxReplicaCount", t.max_replicas}}},
                      {"lag", std::move(rows)}};
  return j.dump();
}

}  // namespace agentfleet
