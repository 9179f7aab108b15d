// The stall watch against librdkafka itself, on the in-process mock cluster:
// a partition whose committed-offset lookup failed is left assigned and never
// fetched by librdkafka ("until the application unassigns it and possibly
// re-assigns it", rdkafka_assignment.c); a seek cannot start it (the fetcher
// is not started: Local: Erroneous state). The watch must get it fetched
// again, under both rebalance protocols the fleet uses. Found by CI: a
// worker's work partition sat like this for two minutes with 8 tasks in it.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "kafka/kafka.h"
#include "kafka/mock_cluster.h"
#include "kafka/stall_watch.h"

namespace agentfleet {
namespace {

class StallWatchTest : public ::testing::TestWithParam<const char*> {};

TEST_P(StallWatchTest, APartitionWhoseCommittedOffsetLookupFailedIsFetchedAgain) {
  auto cluster = MockCluster::Start(1, {TopicSpec{"t", 2, 1, {}}});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  Properties common = {{"bootstrap.servers", (*cluster)->bootstrap()}};
  auto producer = NewProducer(common);
  ASSERT_TRUE(producer.ok()) << producer.status();
  for (int32_t p = 0; p < 2; ++p) {
    ASSERT_TRUE((*producer)->Produce({"t", absl::StrCat("k", p), "v", {}, p}).ok());
  }
  ASSERT_TRUE((*producer)->Flush(absl::Seconds(10)).ok());

  // The group's first committed-offset lookup fails with an error librdkafka
  // does not retry.
  ASSERT_TRUE((*cluster)->Inject("errors OffsetFetch GROUP_AUTHORIZATION_FAILED 1").ok());
  Properties props = common;
  props["group.id"] = "g";
  props["auto.offset.reset"] = "earliest";
  props["partition.assignment.strategy"] = GetParam();
  props["session.timeout.ms"] = "6000";
  props["heartbeat.interval.ms"] = "500";
  props["fetch.wait.max.ms"] = "5";
  auto consumer = NewConsumer(props);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  ASSERT_TRUE((*consumer)->Subscribe({"t"}).ok());

  std::set<int32_t> seen;
  auto poll_until = [&](absl::Time until, StallWatch* watch, int* restarted) {
    while (seen.size() < 2 && absl::Now() < until) {
      for (const Message& m : (*consumer)->Poll(absl::Milliseconds(50), 100)) seen.insert(m.partition);
      if (watch) *restarted += watch->Check(**consumer, absl::Now(), /*had_room=*/true, "test");
    }
  };
  // Without the watch the partitions stay idle: what the watch is for.
  for (absl::Time until = absl::Now() + absl::Seconds(20); (*consumer)->Assignment().size() < 2 && absl::Now() < until;) {
    poll_until(absl::Now() + absl::Milliseconds(100), nullptr, nullptr);
  }
  ASSERT_EQ((*consumer)->Assignment().size(), 2u) << "the group did not assign the partitions";
  poll_until(absl::Now() + absl::Seconds(1), nullptr, nullptr);
  ASSERT_LT(seen.size(), 2u) << "the injected OffsetFetch error left nothing idle: the test proves nothing";

  StallWatch watch(absl::Milliseconds(300));
  int restarted = 0;
  poll_until(absl::Now() + absl::Seconds(20), &watch, &restarted);
  EXPECT_EQ(seen.size(), 2u) << "a partition stayed assigned and idle";
  EXPECT_GE(restarted, 1);
  (*consumer)->Close();
}

INSTANTIATE_TEST_SUITE_P(Protocols, StallWatchTest, ::testing::Values("range", "cooperative-sticky"),
                         [](const auto& info) { return std::string(info.param[0] == 'r' ? "Eager" : "Cooperative"); });

}  // namespace
}  // namespace agentfleet
