// The bench report: verdicts on the targets from the measured
// figures, ratios against the raw round trip, and the generated section
// replacing only itself in docs/benchmarks.md.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bench/report.h"
#include "bench/suite.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

BrokerResults Broker(double raw_p50, double step_p50, double raw_p99, double step_p99, double alo, double eos) {
  BrokerResults r;
  r.broker = "Kafka";
  r.raw_round_trip = {raw_p50, raw_p99, 100};
  r.raw.messages_per_s = 100000;
  r.steps = {{"at_least_once", {step_p50, step_p99, 100}, {2 * step_p50, 2 * step_p99, 100}},
             {"exactly_once", {100, 120, 100}, {200, 240, 100}}};
  r.throughput = {{"at_least_once", 1000, 4000, 1, alo, 0.5, 0.5, 0.9}, {"exactly_once", 1000, 4000, 1, eos, 0.5, 0.5, 0.9}};
  return r;
}

TEST(BenchReportTest, JudgesEachTargetFromTheFigures) {
  std::string all_met = BenchMarkdown({Broker(10, 15, 20, 60, 25000, 12500)}, {});
  EXPECT_THAT(all_met, HasSubstr("step p50 1.50× of raw (**met**), p99 3.00× (**met**); at_least_once 25,000 steps/s (**met**); "
                                 "exactly_once 50% of it (**met**)"));
  std::string none_met = BenchMarkdown({Broker(10, 15.1, 20, 60.1, 24999, 12000)}, {});
  EXPECT_THAT(none_met, HasSubstr("step p50 1.51× of raw (**not met**), p99 3.00× (**not met**); at_least_once 24,999 "
                                  "steps/s (**not met**); exactly_once 48% of it (**not met**)"));
}

TEST(BenchReportTest, EveryFleetFigureSitsBesideItsRawFigureAndTheRatio) {
  std::string md = BenchMarkdown({Broker(8, 12, 20, 30, 17000, 19000)}, {});
  EXPECT_THAT(md, HasSubstr("| step latency p50, at_least_once (round trip p50) | ≤ 1.5× | 8.00 ms | 12.0 ms | 1.50× |"));
  EXPECT_THAT(md, HasSubstr("| steps/s, at_least_once (pipelined msg/s) | ≥ 25,000/s | 100,000/s | 17,000/s | 0.17× |"));
  EXPECT_THAT(md, Not(HasSubstr("Quick mode")));
  ReportContext quick;
  quick.quick = true;
  EXPECT_THAT(BenchMarkdown({Broker(8, 12, 20, 30, 17000, 19000)}, quick), HasSubstr("Quick mode"));
}

TEST(BenchReportTest, TheSectionReplacesOnlyItselfInTheFile) {
  std::string path = (std::filesystem::temp_directory_path() / "agentfleet-bench-report-test.md").string();
  std::ofstream(path) << "# Benchmarks\n\nhand-written\n";
  ASSERT_TRUE(WriteBenchSection(path, "first run\n").ok());
  ASSERT_TRUE(WriteBenchSection(path, "second run\n").ok());
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("# Benchmarks\n\nhand-written\n"));
  EXPECT_THAT(text.str(), HasSubstr("second run"));
  EXPECT_THAT(text.str(), Not(HasSubstr("first run")));
  std::remove(path.c_str());
}

TEST(BenchReportTest, PercentilesAreNearestRank) {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  Percentiles p = PercentilesOf(v);
  EXPECT_EQ(p.p50, 50);
  EXPECT_EQ(p.p99, 99);
  EXPECT_EQ(p.n, 100u);
  EXPECT_EQ(PercentilesOf({7}).p99, 7);
}

}  // namespace
}  // namespace agentfleet
