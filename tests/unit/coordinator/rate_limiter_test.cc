// Provider quotas (coordinator/rate_limiter.h): token buckets split by the
// replica's share of partitions.
#include "coordinator/rate_limiter.h"

#include "gtest/gtest.h"
#include "tests/unit/engine_test_util.h"

namespace agentfleet {
namespace {

using engine_test::RatesConfig;

TEST(RateLimiterTest, BucketsStartEmptyAndRefillAtTheReplicasShareOfTheQuota) {
  FleetConfig c = RatesConfig();
  RateLimiter r(&c);
  absl::Time t = absl::FromUnixSeconds(1000);
  r.SetShare(1.0, t);
  std::string key = r.Key("sim", "m");
  EXPECT_EQ(key, "sim/m");
  EXPECT_EQ(r.Key("sim", "free"), "") << "no quota for that model";
  EXPECT_FALSE(r.TryTake(key, 10, t)) << "a restarted replica does not burst";
  EXPECT_LE(r.ReadyAt(key, 10, t), t + absl::Milliseconds(1002));
  EXPECT_TRUE(r.TryTake(key, 10, t + absl::Seconds(1)));   // 60 per minute: one a second
  EXPECT_FALSE(r.TryTake(key, 10, t + absl::Seconds(1)));
  // Owning half the partitions, the replica gets half the quota: one request per 2 s.
  r.SetShare(0.5, t + absl::Seconds(1));
  EXPECT_FALSE(r.TryTake(key, 10, t + absl::Milliseconds(2500)));
  EXPECT_TRUE(r.TryTake(key, 10, t + absl::Seconds(3)));
  // Tokens count too: about 10,000 came in the first second, 5,000 a second
  // since (half of 600,000 per minute).
  EXPECT_FALSE(r.TryTake(key, 40000, t + absl::Seconds(5)));
  EXPECT_TRUE(r.TryTake(key, 40000, t + absl::Seconds(8)));
  // No share, no calls.
  r.SetShare(0, t + absl::Seconds(8));
  EXPECT_FALSE(r.TryTake(key, 1, t + absl::Seconds(100)));
  EXPECT_EQ(r.ReadyAt(key, 1, t + absl::Seconds(100)), absl::InfiniteFuture());
}

}  // namespace
}  // namespace agentfleet
