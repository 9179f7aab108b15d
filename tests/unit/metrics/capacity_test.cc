// The capacity signal (issue 20, item 6): the replicas that would help a
// pool — lag × mean call time drained within the drain time, capped by the
// quota's concurrency, nothing for an agent whose breaker is open — where
// KEDA's lag trigger asks for more.
#include "metrics/capacity.h"

#include "gtest/gtest.h"

namespace agentfleet {
namespace {

constexpr char kConfig[] = R"(
providers:
  sim:
    type: simulated
    rate_limits:
      slow: {requests_per_minute: 600}
pricing: {slow: {input_per_mtok: 1, output_per_mtok: 1}, fast: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  limited: {provider: sim, models: {default: slow}}
  free: {provider: sim, models: {default: fast}}
worker: {max_in_flight: 8}
coordinator: {capacity_drain_time: 30s}
workflows:
  w: {output: b, steps: [{id: a, agent: limited, input: {q: $task.q}}, {id: b, agent: free, input: {q: $task.q}}]}
)";

TEST(CapacityTest, LagDrainedInTheDrainTimeWithinTheQuotaOverAReplicasConcurrency) {
  // 3,000 queued calls of 2 s: 6,000 call-seconds; drained in 30 s that is
  // 200 calls at once, but a quota of 10 a second keeps 20 in flight at most.
  CapacityEstimate quota = EstimateCapacity({{"limited", 3000, 2.0, false, 10.0}}, 8, absl::Seconds(30));
  EXPECT_DOUBLE_EQ(quota.pending_call_seconds, 6000);
  EXPECT_DOUBLE_EQ(quota.useful_concurrency, 20);
  EXPECT_DOUBLE_EQ(quota.replicas, 2.5);
  EXPECT_STREQ(quota.agents[0].limited_by, "quota");
  // Without a quota the lag decides: 200 in flight, 25 replicas.
  CapacityEstimate lag = EstimateCapacity({{"free", 3000, 2.0, false, 0}}, 8, absl::Seconds(30));
  EXPECT_DOUBLE_EQ(lag.replicas, 25);
  EXPECT_STREQ(lag.agents[0].limited_by, "lag");
  // A small lag under the quota is the lag's.
  CapacityEstimate small = EstimateCapacity({{"limited", 60, 2.0, false, 10.0}}, 8, absl::Seconds(30));
  EXPECT_DOUBLE_EQ(small.useful_concurrency, 4);
  // An open breaker: more replicas would only fail faster.
  CapacityEstimate open = EstimateCapacity({{"free", 3000, 2.0, true, 0}, {"limited", 60, 2.0, false, 10.0}}, 8,
                                           absl::Seconds(30));
  EXPECT_DOUBLE_EQ(open.pending_call_seconds, 6120);
  EXPECT_DOUBLE_EQ(open.useful_concurrency, 4);
  EXPECT_STREQ(open.agents[0].limited_by, "breaker");
}

TEST(CapacityTest, APoolsLoadsComeFromTheConfigItsLagTheCallTimesAndTheBreakers) {
  auto c = LoadConfigString(kConfig, "capacity.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  FleetLoad load;
  load.lag = [](const std::string& group, const std::string& topic, int64_t* lag) {
    *lag = topic.find("limited") != std::string::npos ? 3000 : 100;
    return true;
  };
  load.mean_call = [](const std::string& agent, double* s) {
    if (agent != "limited") return false;  // free's calls not seen yet: 1 s each
    *s = 2.0;
    return true;
  };
  bool free_open = false;
  load.breaker_open = [&](const std::string& name) { return free_open && name == "model:sim/fast"; };
  auto pools = FleetCapacity(*c, load);
  ASSERT_EQ(pools.size(), 1u);
  EXPECT_EQ(pools[0].first, "default");
  const CapacityEstimate& e = pools[0].second;
  ASSERT_EQ(e.agents.size(), 2u);
  // limited: min(6000 / 30, 10/s × 2 s) = 20; free: 100 × 1 s / 30.
  EXPECT_NEAR(e.useful_concurrency, 20 + 100.0 / 30, 1e-9);
  EXPECT_NEAR(e.replicas, (20 + 100.0 / 30) / 8, 1e-9);
  free_open = true;
  EXPECT_NEAR(FleetCapacity(*c, load)[0].second.useful_concurrency, 20, 1e-9) << "the model's breaker is open";
}

}  // namespace
}  // namespace agentfleet
