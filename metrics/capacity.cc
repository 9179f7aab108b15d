#include "metrics/capacity.h"

#include <algorithm>

#include "kafka/topics.h"

namespace agentfleet {

CapacityEstimate EstimateCapacity(const std::vector<AgentLoad>& loads, int max_in_flight, absl::Duration drain_time) {
  CapacityEstimate e;
  const double drain_s = std::max(1.0, absl::ToDoubleSeconds(drain_time));
  for (const AgentLoad& l : loads) {
    CapacityEstimate::Agent a;
    a.agent = l.agent;
    a.pending_call_seconds = static_cast<double>(std::max<int64_t>(l.lag, 0)) * std::max(0.0, l.mean_call_s);
    a.useful_concurrency = a.pending_call_seconds / drain_s;
    if (l.quota_rps > 0) {
      const double quota_concurrency = l.quota_rps * std::max(0.0, l.mean_call_s);
      if (quota_concurrency < a.useful_concurrency) {
        a.useful_concurrency = quota_concurrency;
        a.limited_by = "quota";
      }
    }
    if (l.breaker_open) {
      a.useful_concurrency = 0;
      a.limited_by = "breaker";
    }
    e.pending_call_seconds += a.pending_call_seconds;
    e.useful_concurrency += a.useful_concurrency;
    e.agents.push_back(std::move(a));
  }
  e.replicas = e.useful_concurrency / std::max(1, max_in_flight);
  return e;
}

std::vector<AgentLoad> PoolLoads(const FleetConfig& config, const std::string& pool, const FleetLoad& load) {
  Topics topics(config.kafka.topic_prefix);
  const std::string group = WorkerGroup(config, pool);
  std::vector<AgentLoad> loads;
  for (const auto& [name, agent] : config.agents) {
    AgentLoad l;
    l.agent = name;
    if (!load.lag || !load.lag(group, topics.Work(name), &l.lag)) continue;
    // Attempts the coordinator holds for room in the agent's max_in_flight
    // wait for this pool's workers as the lag does.
    if (load.window_waiting) l.lag += load.window_waiting(name);
    double mean = 0;
    l.mean_call_s = load.mean_call && load.mean_call(name, &mean) ? mean : 1.0;
    const std::string& model = agent.models.at("default");  // validated: every agent has one
    if (load.breaker_open) {
      l.breaker_open = load.breaker_open("agent:" + name) || load.breaker_open("model:" + agent.provider + "/" + model);
    }
    if (auto p = config.providers.find(agent.provider); p != config.providers.end()) {
      if (auto q = p->second.rate_limits.find(model); q != p->second.rate_limits.end() && q->second.requests_per_minute > 0) {
        l.quota_rps = static_cast<double>(q->second.requests_per_minute) / 60.0;
      }
    }
    loads.push_back(std::move(l));
  }
  return loads;
}

std::vector<std::pair<std::string, CapacityEstimate>> FleetCapacity(const FleetConfig& config, const FleetLoad& load) {
  std::vector<std::pair<std::string, CapacityEstimate>> out;
  for (const std::string& pool : config.worker.pools) {
    out.emplace_back(pool, EstimateCapacity(PoolLoads(config, pool, load), config.worker.max_in_flight,
                                            config.coordinator.capacity_drain_time));
  }
  return out;
}

}  // namespace agentfleet
