#include "common/compact_time.h"

#include <gtest/gtest.h>

#include "absl/time/time.h"

namespace agentfleet {
namespace {

TEST(CompactTimeTest, HoldsTimesToTheNanosecondAndTheInfinitiesAsSuch) {
  static_assert(sizeof(CompactTime) == 8);
  const absl::Time t = absl::FromUnixNanos(1'800'000'000'123'456'789);
  EXPECT_EQ(CompactTime(t).time(), t);
  EXPECT_EQ(CompactTime(absl::UnixEpoch()).time(), absl::UnixEpoch());
  EXPECT_EQ(CompactTime(absl::FromUnixSeconds(-86400)).time(), absl::FromUnixSeconds(-86400));
  EXPECT_EQ(CompactTime(absl::InfiniteFuture()).time(), absl::InfiniteFuture());
  EXPECT_EQ(CompactTime(absl::InfinitePast()).time(), absl::InfinitePast());
  EXPECT_EQ(CompactTime().time(), absl::InfinitePast());
  // Beyond its range (year 2262): the latest finite time it holds, not infinity.
  CompactTime far = absl::FromUnixSeconds(int64_t{1} << 40);
  EXPECT_LT(far.time(), absl::InfiniteFuture());
  EXPECT_GT(far.time(), absl::FromUnixSeconds(9'000'000'000));
  // Used where an absl::Time was: compared, subtracted, assigned.
  CompactTime deadline = t + absl::Seconds(5);
  EXPECT_TRUE(deadline > t);
  EXPECT_EQ(deadline - t, absl::Seconds(5));
  deadline = absl::InfiniteFuture();
  EXPECT_TRUE(deadline == absl::InfiniteFuture());
}

}  // namespace
}  // namespace agentfleet
