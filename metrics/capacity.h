// The capacity-aware scaling signal (issue 20): how many replicas of a
// worker pool would actually help, where the work topics' lag alone (KEDA's
// Kafka scaler) asks for more than can be used. Per agent the pool serves:
// its pending work in call-seconds (lag × recent mean call time), the
// concurrency that would drain it within `drain_time`, capped by what the
// agent's provider quota lets through at once (requests per second × mean
// call time), and nothing while its circuit breaker is open (its calls fail
// fast or go to a fallback). Work the coordinator holds — waiting for a
// quota, a budget or a breaker — is not on the work topics, so it is not in
// the lag; work it holds because the agent's max_in_flight is out (the
// workers are busy) is added to it. Pure.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "config/config.h"

namespace agentfleet {

struct AgentLoad {
  std::string agent;
  int64_t lag = 0;           // the pool's lag on the agent's work topic
  double mean_call_s = 1;    // recent mean call time
  bool breaker_open = false; // the agent's or its model's breaker
  double quota_rps = 0;      // the fleet's quota of the agent's model, requests a second (0: none)
};

struct CapacityEstimate {
  double pending_call_seconds = 0;  // Σ lag × mean call time
  double useful_concurrency = 0;    // Σ per agent: min(drain concurrency, quota concurrency), 0 if its breaker is open
  double replicas = 0;              // useful_concurrency ÷ a replica's max_in_flight
  struct Agent {
    std::string agent;
    double pending_call_seconds = 0;
    double useful_concurrency = 0;
    const char* limited_by = "lag";  // "lag", "quota", "breaker"
  };
  std::vector<Agent> agents;
};

CapacityEstimate EstimateCapacity(const std::vector<AgentLoad>& loads, int max_in_flight, absl::Duration drain_time);

// What the estimate needs to know about the fleet now.
struct FleetLoad {
  // The lag of `group` on `topic`; false when the group has not consumed it
  // (another pool serves that agent).
  std::function<bool(const std::string& group, const std::string& topic, int64_t* lag)> lag;
  // An agent's recent mean call time in seconds; false when none was seen.
  std::function<bool(const std::string& agent, double* seconds)> mean_call;
  // Whether the breaker `name` ("agent:<a>", "model:<provider>/<model>") is open.
  std::function<bool(const std::string& name)> breaker_open;
  // Attempts of an agent held in the coordinator for room in its
  // max_in_flight (optional): pending work that is not in the lag.
  std::function<int64_t(const std::string& agent)> window_waiting;
};

// The loads of the agents worker pool `pool` serves (its default model's
// quota); an agent not seen yet counts 1 s a call.
std::vector<AgentLoad> PoolLoads(const FleetConfig& config, const std::string& pool, const FleetLoad& load);

// The estimate for every pool of the fleet (worker.pools), in their order.
std::vector<std::pair<std::string, CapacityEstimate>> FleetCapacity(const FleetConfig& config, const FleetLoad& load);

}  // namespace agentfleet
