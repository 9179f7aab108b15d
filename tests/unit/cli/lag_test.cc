// `agentfleet lag`'s estimate of what KEDA's Kafka scaler asks for, case by
// case against the scaler's rules (cli/lag.h).
#include "cli/lag.h"

#include "gtest/gtest.h"

namespace agentfleet {
namespace {

// Four partitions: 20 behind, never committed (7 written), caught up, caught up.
TopicLag Backlog() {
  TopicLag t;
  t.topic = "work.triage";
  t.partitions = {{0, 10, 0, 30}, {1, -1, 0, 7}, {2, 5, 0, 5}, {3, 20, 0, 20}};
  return t;
}

TEST(KedaLagTest, LatestCountsAnUncommittedPartitionAsOneAndCapsOnlyByWholeThresholds) {
  KedaTrigger t;
  t.lag_threshold = 5;
  t.offset_reset = KedaTrigger::OffsetReset::kLatest;
  KedaEstimate e = EstimateKeda(Backlog(), t);
  EXPECT_EQ(e.lag, 21);
  EXPECT_EQ(e.partitions, 4);
  EXPECT_EQ(e.partitions_with_lag, 2);
  // 21 / 5 = 4 (integer) is not above 4 partitions, so no cap: ceil(21 / 5) = 5 replicas.
  EXPECT_EQ(e.metric, 21);
  EXPECT_TRUE(e.active);
  EXPECT_EQ(e.replicas, 5);
}

TEST(KedaLagTest, EarliestCountsTheWholePartitionAndIsCappedAtThePartitionCount) {
  KedaTrigger t;
  t.lag_threshold = 5;
  t.offset_reset = KedaTrigger::OffsetReset::kEarliest;
  KedaEstimate e = EstimateKeda(Backlog(), t);
  EXPECT_EQ(e.lag, 27);
  EXPECT_EQ(e.metric, 20);  // 4 partitions × 5
  EXPECT_EQ(e.replicas, 4);
  t.allow_idle_consumers = true;
  e = EstimateKeda(Backlog(), t);
  EXPECT_EQ(e.metric, 27);
  EXPECT_EQ(e.replicas, 6);
  t.max_replicas = 3;
  EXPECT_EQ(EstimateKeda(Backlog(), t).replicas, 3);
}

TEST(KedaLagTest, LimitToPartitionsWithLagCapsAtThePartitionsThatHaveLag) {
  KedaTrigger t;
  t.lag_threshold = 5;
  t.offset_reset = KedaTrigger::OffsetReset::kLatest;
  t.limit_to_partitions_with_lag = true;
  KedaEstimate e = EstimateKeda(Backlog(), t);
  EXPECT_EQ(e.metric, 10);  // 2 partitions with lag × 5
  EXPECT_EQ(e.replicas, 2);
}

TEST(KedaLagTest, BelowTheActivationThresholdItScalesToMinReplicas) {
  KedaTrigger t;
  t.lag_threshold = 5;
  t.offset_reset = KedaTrigger::OffsetReset::kLatest;
  t.activation_lag_threshold = 25;
  KedaEstimate e = EstimateKeda(Backlog(), t);
  EXPECT_FALSE(e.active);
  EXPECT_EQ(e.replicas, 0);
  t.min_replicas = 2;
  EXPECT_EQ(EstimateKeda(Backlog(), t).replicas, 2);
  t.scale_to_zero_on_invalid_offset = true;
  t.activation_lag_threshold = 0;
  t.min_replicas = 0;
  e = EstimateKeda(Backlog(), t);
  EXPECT_EQ(e.lag, 20);
  EXPECT_EQ(e.replicas, 4);
  TopicLag idle = Backlog();
  idle.partitions = {{0, 30, 0, 30}, {1, 7, 0, 7}};
  EXPECT_EQ(EstimateKeda(idle, t).replicas, 0);
}

}  // namespace
}  // namespace agentfleet
