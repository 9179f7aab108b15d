#include "cli/lag.h"

#include "absl/time/clock.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agentfleet/v1/state.pb.h"
#include "agentfleet/v1/task.pb.h"
#include "codec/codec.h"
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

absl::StatusOr<std::vector<PoolCapacity>> ReadFleetCapacity(const FleetConfig& config,
                                                             const std::vector<GroupTopicLag>& lags,
                                                             const KedaTrigger& trigger, absl::Duration timeout) {
  Topics topics(config.kafka.topic_prefix);
  Properties props = ConsumerProperties(config.kafka, "agentfleet-lag");
  absl::Time deadline = absl::Now() + timeout;
  // Mean call time per agent, from the step summaries of recent results.
  std::map<std::string, std::pair<double, int>> calls;
  auto count = PartitionCount(props, topics.results, timeout);
  if (!count.ok()) return count.status();
  std::vector<int32_t> partitions;
  for (int32_t p = 0; p < *count; ++p) partitions.push_back(p);
  auto recent = ReadPartitionTails(props, topics.results, partitions, 200, deadline - absl::Now());
  if (!recent.ok()) return recent.status();
  for (const Message& m : *recent) {
    auto r = Decode<v1::TaskResult>(m.payload, m.headers);
    if (!r.ok()) continue;
    for (const v1::StepSummary& s : r->steps()) {
      if (s.agent().empty() || s.attempts() == 0 || s.cached()) continue;
      auto& [sum, n] = calls[s.agent()];
      sum += static_cast<double>(s.latency_ms()) / 1000.0;
      ++n;
    }
  }
  // Breakers as the replicas share them: the latest state of each.
  std::map<std::string, bool> open;
  auto breakers = ReadPartitionsToEnd(props, topics.breakers, {0}, std::max(absl::Seconds(1), deadline - absl::Now()));
  if (breakers.ok()) {
    for (const Message& m : *breakers) {
      auto b = Decode<v1::BreakerState>(m.payload, m.headers);
      if (b.ok()) open[b->name()] = b->status() == v1::BREAKER_STATUS_OPEN;
    }
  }
  std::map<std::pair<std::string, std::string>, const GroupTopicLag*> by_topic;
  for (const GroupTopicLag& g : lags) by_topic[{g.group, g.lag.topic}] = &g;
  FleetLoad load;
  load.lag = [&](const std::string& group, const std::string& topic, int64_t* lag) {
    auto it = by_topic.find({group, topic});
    if (it == by_topic.end() || (config.worker.pools.size() > 1 && !it->second->lag.consumed())) return false;
    *lag = it->second->lag.total();
    return true;
  };
  load.mean_call = [&](const std::string& agent, double* seconds) {
    auto it = calls.find(agent);
    if (it == calls.end() || it->second.second == 0) return false;
    *seconds = it->second.first / it->second.second;
    return true;
  };
  load.breaker_open = [&](const std::string& name) { return open.count(name) && open[name]; };
  std::vector<PoolCapacity> out;
  for (auto& [pool, estimate] : FleetCapacity(config, load)) {
    PoolCapacity p;
    p.pool = pool;
    p.replicas = static_cast<int>(std::clamp<double>(std::ceil(estimate.replicas - 1e-9), trigger.min_replicas,
                                                     std::max(trigger.min_replicas, trigger.max_replicas)));
    const std::string group = WorkerGroup(config, pool);
    for (const GroupTopicLag& g : lags) {
      if (g.group == group) p.keda_replicas = std::max(p.keda_replicas, g.keda.replicas);
    }
    p.estimate = std::move(estimate);
    out.push_back(std::move(p));
  }
  return out;
}

std::string LagText(const std::vector<GroupTopicLag>& lags, const KedaTrigger& t,
                    const std::vector<PoolCapacity>& capacity) {
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
  if (!capacity.empty()) {
    absl::StrAppend(&out, "\ncapacity signal (agentfleet_pool_capacity_replicas; autoscaling.mode: capacity):\n");
    for (const PoolCapacity& p : capacity) {
      absl::StrAppend(&out, absl::StrFormat("  pool %s: %.1f call-seconds pending, %.2f useful replicas -> %d "
                                            "(KEDA's lag trigger: %d)\n",
                                            p.pool, p.estimate.pending_call_seconds, p.estimate.replicas, p.replicas,
                                            p.keda_replicas));
      for (const CapacityEstimate::Agent& a : p.estimate.agents) {
        if (a.pending_call_seconds <= 0) continue;
        absl::StrAppend(&out, absl::StrFormat("    %-24s %10.1f call-s pending, %6.1f useful in flight (%s)\n",
                                              a.agent, a.pending_call_seconds, a.useful_concurrency, a.limited_by));
      }
    }
  }
  return out;
}

std::string LagJson(const std::vector<GroupTopicLag>& lags, const KedaTrigger& t,
                    const std::vector<PoolCapacity>& capacity) {
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
  nlohmann::json pools = nlohmann::json::array();
  for (const PoolCapacity& p : capacity) {
    nlohmann::json agents = nlohmann::json::array();
    for (const CapacityEstimate::Agent& a : p.estimate.agents) {
      agents.push_back({{"agent", a.agent},
                        {"pending_call_seconds", a.pending_call_seconds},
                        {"useful_concurrency", a.useful_concurrency},
                        {"limited_by", a.limited_by}});
    }
    pools.push_back({{"pool", p.pool},
                     {"pending_call_seconds", p.estimate.pending_call_seconds},
                     {"useful_replicas", p.estimate.replicas},
                     {"replicas", p.replicas},
                     {"keda_replicas", p.keda_replicas},
                     {"agents", std::move(agents)}});
  }
  j["capacity"] = std::move(pools);
  return j.dump();
}

}  // namespace agentfleet
