#include "worker/offset_tracker.h"

#include "gtest/gtest.h"

namespace agentfleet {
namespace {

const OffsetTracker::Partition kP{"work.a", 0};

TEST(OffsetTrackerTest, CommitsOnlyBelowTheLowestUnfinishedItem) {
  OffsetTracker t;
  uint64_t g = 0;
  for (int64_t o = 10; o <= 14; ++o) g = t.Begin(kP, o);
  EXPECT_EQ(t.in_flight(), 5u);
  // 12 and 13 finish first: nothing is committable while 10 runs.
  EXPECT_EQ(t.Finish(kP, 12, g), std::nullopt);
  EXPECT_EQ(t.Finish(kP, 13, g), std::nullopt);
  EXPECT_EQ(t.Committable(kP), 10);
  // 10 finishes: everything below 11 is done.
  EXPECT_EQ(t.Finish(kP, 10, g), 11);
  // 11 finishes: 12 and 13 were done already, 14 still runs.
  EXPECT_EQ(t.Finish(kP, 11, g), 14);
  EXPECT_EQ(t.Finish(kP, 14, g), 15);
  EXPECT_EQ(t.in_flight(), 0u);
}

// A revoked partition's items commit nothing when they finish, but they are
// still running here: they count in flight until then (once each).
TEST(OffsetTrackerTest, RevokedPartitionIgnoresLateCompletionsButCountsThemUntilTheyFinish) {
  OffsetTracker t;
  uint64_t old_gen = t.Begin(kP, 5);
  t.Revoke({kP});
  EXPECT_EQ(t.in_flight(), 1u);
  uint64_t new_gen = t.Begin(kP, 5);  // reassigned, redelivered
  EXPECT_NE(old_gen, new_gen);
  EXPECT_EQ(t.in_flight(), 2u);
  EXPECT_EQ(t.Finish(kP, 5, old_gen), std::nullopt);  // the old run must not commit
  EXPECT_EQ(t.in_flight(), 1u);
  EXPECT_EQ(t.Finish(kP, 5, old_gen), std::nullopt);  // twice is a no-op
  EXPECT_EQ(t.in_flight(), 1u);
  EXPECT_EQ(t.Finish(kP, 5, new_gen), 6);
  EXPECT_EQ(t.in_flight(), 0u);
}

TEST(OffsetTrackerTest, PartitionsAreIndependent) {
  OffsetTracker t;
  OffsetTracker::Partition p1{"work.a", 1};
  uint64_t g0 = t.Begin(kP, 0);
  uint64_t g1 = t.Begin(p1, 100);
  EXPECT_EQ(t.Finish(p1, 100, g1), 101);
  EXPECT_EQ(t.Committable(kP), 0);
  EXPECT_EQ(t.Finish(kP, 0, g0), 1);
  EXPECT_EQ(t.Finish(kP, 0, g0), std::nullopt);  // twice is a no-op
}

}  // namespace
}  // namespace agentfleet
