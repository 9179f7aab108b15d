// Cost reports: spend per UTC day and group, the day-over-day change, the
// trailing 7-day average and the 2σ flag, tasks counted once, grouping by
// line (agent, model), and the three output formats.
#include "cost/report.h"

#include "absl/strings/str_split.h"
#include "codec/codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace agentfleet {
namespace {

using ::testing::HasSubstr;

const absl::Time kDay0 = absl::FromCivil(absl::CivilDay(2026, 11, 1), absl::UTCTimeZone());

v1::CostEntry Entry(const std::string& id, const std::string& tenant, int day, double usd,
                    const std::string& model = "m", double cache_saved = 0) {
  v1::CostEntry e;
  e.set_task_id(id);
  e.set_tenant(tenant);
  e.set_workflow("w");
  *e.mutable_finished_at() = ToTimestamp(kDay0 + absl::Hours(24 * day) + absl::Hours(12));
  e.mutable_usage()->set_cost_usd(usd);
  e.mutable_usage()->set_input_tokens(100);
  e.mutable_usage()->set_output_tokens(10);
  e.mutable_usage()->set_calls(1);
  e.set_cache_saved_usd(cache_saved);
  v1::CostLine* l = e.add_lines();
  l->set_agent("a");
  l->set_model(model);
  *l->mutable_usage() = e.usage();
  l->set_cache_saved_usd(cache_saved);
  return e;
}

CostQuery Days(int from, int to, std::vector<std::string> by = {}) {
  return {kDay0 + absl::Hours(24 * from), kDay0 + absl::Hours(24 * to), std::move(by)};
}

TEST(CostReportTest, DayByDayWithTheChangeTheTrailingAverageAndTheTwoSigmaFlag) {
  CostReportBuilder b;
  // Ten quiet days of $9.50 and $10.50 (two tasks each), then a $40 day, then $11.
  int n = 0;
  for (int d = 0; d < 10; ++d) {
    b.Add(Entry("t" + std::to_string(n++), "acme", d, 5));
    b.Add(Entry("t" + std::to_string(n++), "acme", d, d % 2 ? 5.5 : 4.5));
  }
  b.Add(Entry("t" + std::to_string(n++), "acme", 10, 40));
  b.Add(Entry("t" + std::to_string(n++), "acme", 11, 11));
  CostReport r = b.Build(Days(7, 12));
  ASSERT_EQ(r.rows.size(), 5u);
  EXPECT_EQ(r.rows[0].day, absl::CivilDay(2026, 11, 8));
  EXPECT_DOUBLE_EQ(r.rows[0].cost_usd, 10.5);
  EXPECT_EQ(r.rows[0].tasks, 2);
  ASSERT_TRUE(r.rows[0].trailing_avg.has_value()) << "the days before the range give the first days a trend";
  EXPECT_DOUBLE_EQ(*r.rows[0].trailing_avg, (4 * 9.5 + 3 * 10.5) / 7);
  EXPECT_NEAR(*r.rows[0].trailing_sd, 0.4949, 1e-4);
  const CostRow& spike = r.rows[3];
  EXPECT_EQ(spike.day, absl::CivilDay(2026, 11, 11));
  EXPECT_DOUBLE_EQ(spike.cost_usd, 40);
  ASSERT_TRUE(spike.change.has_value());
  EXPECT_DOUBLE_EQ(*spike.change, (40 - 10.5) / 10.5) << "+281% on the day before";
  EXPECT_TRUE(spike.anomaly);
  EXPECT_FALSE(r.rows[0].anomaly);
  EXPECT_FALSE(r.rows[4].anomaly) << "$11 after a $40 day: within 2σ of a window that holds the spike";
  EXPECT_DOUBLE_EQ(r.total.cost_usd, 10.5 + 9.5 + 10.5 + 40 + 11);
  EXPECT_EQ(r.total.tasks, 2 * 3 + 2);
  EXPECT_EQ(r.entries, 8);
}

TEST(CostReportTest, AGroupGetsATrendOnlyFromItsFirstDayAndDaysWithoutSpendAreZeros) {
  CostReportBuilder b;
  b.Add(Entry("old", "acme", 0, 1));
  b.Add(Entry("x1", "newco", 5, 2));
  b.Add(Entry("x2", "newco", 6, 2));
  CostReport r = b.Build(Days(5, 9, {"tenant"}));
  std::map<std::string, std::vector<const CostRow*>> of;
  for (const CostRow& row : r.rows) of[row.key[0]].push_back(&row);
  ASSERT_EQ(of["newco"].size(), 4u);
  EXPECT_FALSE(of["newco"][0]->trailing_avg.has_value()) << "newco did not exist before day 5";
  EXPECT_FALSE(of["newco"][2]->trailing_avg.has_value()) << "two days of history are too few";
  EXPECT_DOUBLE_EQ(of["newco"][2]->cost_usd, 0);
  ASSERT_TRUE(of["newco"][3]->trailing_avg.has_value());
  EXPECT_NEAR(*of["newco"][3]->trailing_avg, 4.0 / 3, 1e-12);
  ASSERT_EQ(of["acme"].size(), 4u) << "acme's entry is history only, but its group reports its days";
  EXPECT_EQ(r.total.tasks, 2);
}

TEST(CostReportTest, ATaskCountsOnceAndByModelGoesByLine) {
  CostReportBuilder b;
  v1::CostEntry two_models = Entry("t1", "acme", 0, 3, "large", 0.5);
  v1::CostLine* small = two_models.add_lines();
  small->set_agent("b");
  small->set_model("small");
  small->mutable_usage()->set_cost_usd(1);
  two_models.mutable_usage()->set_cost_usd(4);
  b.Add(two_models);
  b.Add(two_models);  // an at_least_once fleet wrote it twice
  b.Add(Entry("t2", "acme", 0, 2, "small"));
  CostReport r = b.Build(Days(0, 1, {"model"}));
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0].key, std::vector<std::string>{"large"});
  EXPECT_DOUBLE_EQ(r.rows[0].cost_usd, 3);
  EXPECT_DOUBLE_EQ(r.rows[0].cache_saved_usd, 0.5);
  EXPECT_EQ(r.rows[0].tasks, 1);
  EXPECT_EQ(r.rows[1].key, std::vector<std::string>{"small"});
  EXPECT_DOUBLE_EQ(r.rows[1].cost_usd, 3);
  EXPECT_EQ(r.rows[1].tasks, 2);
  EXPECT_DOUBLE_EQ(r.total.cost_usd, 6);
  EXPECT_EQ(r.total.tasks, 2);
  EXPECT_EQ(r.duplicates, 1);
}

TEST(CostReportTest, DimensionsAreCheckedAndTheFormatsSayTheSame) {
  EXPECT_EQ(*ParseCostDimensions("tenant, model"), (std::vector<std::string>{"tenant", "model"}));
  EXPECT_THAT(ParseCostDimensions("tenant,region").status().message(), HasSubstr("unknown dimension 'region'"));
  EXPECT_THAT(ParseCostDimensions("model,model").status().message(), HasSubstr("given twice"));

  CostReportBuilder b;
  for (int d = 0; d < 5; ++d) b.Add(Entry("t" + std::to_string(d), "a,b", d, 1.25));
  CostReport r = b.Build(Days(3, 5, {"tenant"}));
  std::string text = FormatCostText(r);
  EXPECT_THAT(text, HasSubstr("2026-11-04  a,b"));
  EXPECT_THAT(text, HasSubstr("total 2026-11-04 .. 2026-11-05: $2.5000 over 2 tasks"));
  auto json = nlohmann::json::parse(FormatCostJson(r));
  ASSERT_EQ(json["rows"].size(), 2u);
  EXPECT_EQ(json["rows"][0]["key"]["tenant"], "a,b");
  EXPECT_DOUBLE_EQ(json["rows"][0]["cost_usd"].get<double>(), 1.25);
  EXPECT_DOUBLE_EQ(json["rows"][0]["change"].get<double>(), 0);
  EXPECT_DOUBLE_EQ(json["total"]["cost_usd"].get<double>(), 2.5);
  std::vector<std::string> csv = absl::StrSplit(FormatCostCsv(r), '\n', absl::SkipEmpty());
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_THAT(csv[0], HasSubstr("day,tenant,cost_usd,"));
  EXPECT_THAT(csv[1], HasSubstr("2026-11-04,\"a,b\",1.250000,"));
}

}  // namespace
}  // namespace agentfleet
