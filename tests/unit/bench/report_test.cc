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

BrokerResults Broker(double raw_p50, double step_p50, double raw_p99, double step_p99, double alo, double eos,
                     double eos_p50 = 100) {
  BrokerResults r;
  r.broker = "Kafka";
  r.raw_round_trip = {raw_p50, raw_p99, 100};
  r.raw.messages_per_s = 100000;
  r.steps = {{"at_least_once", {step_p50, step_p99, 100}, {2 * step_p50, 2 * step_p99, 100}},
             {"exactly_once", {eos_p50, 120, 100}, {200, 240, 100}}};
  r.throughput = {{"at_least_once", 1000, 4000, 1, alo, 0.5, 0.5, 0.9}, {"exactly_once", 1000, 4000, 1, eos, 0.5, 0.5, 0.9}};
  return r;
}

TEST(BenchReportTest, JudgesEachTargetFromTheFigures) {
  std::string all_met = BenchMarkdown({Broker(10, 15, 20, 60, 25000, 22500, 20)}, {});
  EXPECT_THAT(all_met, HasSubstr("step p50 1.50× of raw (**met**), p99 3.00× (**met**); exactly_once step p50 2.00× "
                                 "(**met**); at_least_once 25,000 steps/s, 0.25× of raw (**met**); exactly_once 0.23× "
                                 "(**met**), 90% of at_least_once (**met**)"));
  std::string none_met = BenchMarkdown({Broker(10, 15.1, 20, 60.1, 14000, 12000, 20.1)}, {});
  EXPECT_THAT(none_met, HasSubstr("step p50 1.51× of raw (**not met**), p99 3.00× (**not met**); exactly_once step "
                                  "p50 2.01× (**not met**); at_least_once 14,000 steps/s, 0.14× of raw (**not met**); "
                                  "exactly_once 0.12× (**not met**), 86% of at_least_once (**not met**)"));
}

TEST(BenchReportTest, EveryFleetFigureSitsBesideItsRawFigureAndTheRatio) {
  std::string md = BenchMarkdown({Broker(8, 12, 20, 30, 17000, 19000)}, {});
  EXPECT_THAT(md, HasSubstr("| step latency p50, at_least_once (round trip p50) | ≤ 1.5× | 8.00 ms | 12.0 ms | 1.50× |"));
  EXPECT_THAT(md, HasSubstr("| steps/s, at_least_once (pipelined msg/s beside it) | ≥ 0.15× | 100,000/s | 17,000/s | "
                            "0.17× |"));
  EXPECT_THAT(md, Not(HasSubstr("Latency against throughput"))) << "no profiles measured";
  EXPECT_THAT(md, Not(HasSubstr("Quick mode")));
  ReportContext quick;
  quick.quick = true;
  EXPECT_THAT(BenchMarkdown({Broker(8, 12, 20, 30, 17000, 19000)}, quick), HasSubstr("Quick mode"));
}

TEST(BenchReportTest, EachProfilesModesAreSetAgainstTheRawFiguresOfThatProfile) {
  BrokerResults r = Broker(8, 8, 20, 30, 17000, 19000, 12);
  r.profiles = {{"default", "linger.ms 2", {8, 20, 100}, 100000}, {"low_latency", "linger.ms 0", {1.5, 4, 100}, 50000}};
  r.steps.push_back({"at_least_once", {1.8, 5, 100}, {3, 8, 100}, "low_latency"});
  r.throughput.push_back({"at_least_once", 1000, 4000, 1, 10000, 0.5, 0.5, 0.9, "low_latency"});
  std::string md = BenchMarkdown({r}, {});
  EXPECT_THAT(md, HasSubstr("| Kafka | default (linger.ms 2) | exactly_once | 8.00 ms | 12.0 ms | 1.50× | 120.0 ms | "
                            "200.0 ms | 19,000 | 0.19× | 125.0 µs |"));
  EXPECT_THAT(md, HasSubstr("| Kafka | low_latency (linger.ms 0) | at_least_once | 1.50 ms | 1.80 ms | 1.20× | 5.00 ms "
                            "| 3.00 ms | 10,000 | 0.20× | 125.0 µs |"));
  EXPECT_THAT(md, HasSubstr("; exactly_once step p50 1.50× (**met**)")) << "the targets go by the default profile";
}

// A throughput run measured with the raw pipelined rate beside it is set
// against that rate, not the one measured minutes before the modes.
TEST(BenchReportTest, ThroughputIsSetAgainstTheRawRateMeasuredBesideIt) {
  BrokerResults r = Broker(8, 12, 20, 30, 17000, 19000);  // the suite's raw: 100,000 msg/s
  r.throughput[0].raw_messages_per_s = 200000;
  r.throughput[0].raw_min_per_s = 150000;
  r.throughput[0].raw_max_per_s = 260000;
  std::string md = BenchMarkdown({r}, {});
  EXPECT_THAT(md, HasSubstr("| steps/s, at_least_once (pipelined msg/s beside it) | ≥ 0.15× | 200,000/s | 17,000/s | "
                            "0.09× |"));
  EXPECT_THAT(md, HasSubstr("| steps/s, exactly_once (pipelined msg/s beside it) | ≥ 0.15×, ≥ 90% of at_least_once | "
                            "100,000/s | 19,000/s | 0.19× |"))
      << "a run measured without one keeps the suite's";
  EXPECT_THAT(md, HasSubstr("at_least_once 17,000 steps/s, 0.09× of raw (**not met**); exactly_once 0.19× (**met**)"));
  EXPECT_THAT(md, HasSubstr("| 90% | 200,000 msg/s (150,000–260,000) |"));
}

// Each exactly_once run is set against the at_least_once run of its own
// round (the machine drifts between rounds), and the median is of those
// ratios, per mode.
TEST(BenchReportTest, SteadyRunsAreSetAgainstTheirOwnRoundsAtLeastOnce) {
  BrokerResults r;
  r.broker = "Kafka";
  r.steady = {{1, "at_least_once", 200000, 20000, 30, 0, 0, 0},
              {1, "exactly_once", 200000, 19000, 32, 50, 4000, 0.12, 0.03},
              {2, "exactly_once", 200000, 15000, 33, 50, 4000, 0.15},
              {2, "at_least_once", 200000, 16000, 31, 0, 0, 0},
              {3, "at_least_once", 200000, 25000, 29, 0, 0, 0},
              {3, "exactly_once", 200000, 20000, 31, 51, 3922, 0.1}};
  std::string md = BenchMarkdown({r}, {});
  EXPECT_THAT(md, HasSubstr("| Kafka | 1 | exactly_once | 200,000 | 19,000 | 95% | 32.0 µs | 50 (4,000) | 12% | 3% |"));
  EXPECT_THAT(md, HasSubstr("| Kafka | 2 | exactly_once | 200,000 | 15,000 | 94% |"));
  EXPECT_THAT(md, HasSubstr("| Kafka | 3 | at_least_once | 200,000 | 25,000 |  | 29.0 µs |  |  |  |"));
  EXPECT_THAT(md, HasSubstr("| Kafka | **median** | exactly_once | | | **94%** |")) << "of 95%, 94% and 80%";
  r.steady.resize(4);  // rounds 1 and 2: 95% and 93.75%
  EXPECT_THAT(BenchMarkdown({r}, {}), HasSubstr("| Kafka | **median** | exactly_once | | | **94%** |"))
      << "of two, their mean (94.4%), not the larger";
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
