// `agentfleet cost`'s flags: whole UTC days, --to included, the defaults,
// and what is refused, saying which flag.
#include "cli/cost.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet {
namespace {

using ::testing::HasSubstr;

const absl::TimeZone kUtc = absl::UTCTimeZone();

TEST(CostQueryTest, DaysAreWholeUtcDaysAndTheLastIsIncluded) {
  const absl::Time now = absl::FromCivil(absl::CivilSecond(2026, 12, 1, 15, 30, 0), kUtc);
  auto defaults = CostQueryOf("", "", "", now);
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->to, absl::FromCivil(absl::CivilDay(2026, 12, 2), kUtc)) << "today included";
  EXPECT_EQ(defaults->from, absl::FromCivil(absl::CivilDay(2026, 11, 2), kUtc)) << "30 days";
  EXPECT_TRUE(defaults->by.empty());

  auto range = CostQueryOf("2026-11-01T13:00:00Z", "2026-11-07", "tenant,model", now);
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_EQ(range->from, absl::FromCivil(absl::CivilDay(2026, 11, 1), kUtc)) << "the start of its day";
  EXPECT_EQ(range->to, absl::FromCivil(absl::CivilDay(2026, 11, 8), kUtc)) << "the whole of the 7th";
  EXPECT_EQ(range->by, (std::vector<std::string>{"tenant", "model"}));
}

TEST(CostQueryTest, BadFlagsAreRefusedNamingTheFlag) {
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  EXPECT_THAT(CostQueryOf("yesterday", "", "", now).status().message(), HasSubstr("--from: 'yesterday'"));
  EXPECT_THAT(CostQueryOf("", "2026-13-40", "", now).status().message(), HasSubstr("--to"));
  EXPECT_THAT(CostQueryOf("2026-11-08", "2026-11-07", "", now).status().message(),
              HasSubstr("--from must be before --to"));
  EXPECT_THAT(CostQueryOf("", "", "region", now).status().message(), HasSubstr("--by: unknown dimension 'region'"));
}

}  // namespace
}  // namespace agentfleet
