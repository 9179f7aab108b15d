// LoopWatch: /healthz fails when a service's main loop stops turning, and
// passes again once it turns; the metric says when it last turned.
#include "service/loop_watch.h"

#include <memory>

#include "absl/time/time.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/http_server.h"
#include "metrics/metrics.h"

namespace agentfleet {
namespace {

using ::testing::HasSubstr;

class LoopWatchTest : public ::testing::Test {
 protected:
  HttpReply Probe(const std::string& path) {
    auto routes = HealthRoutes([] { return absl::OkStatus(); }, [this] { return watch_.Alive(); });
    return routes.at(path)(HttpServerRequest{.method = "GET", .path = path});
  }

  FakeClock clock_;
  std::shared_ptr<prometheus::Registry> registry_ = NewRegistry("coordinator");
  LoopWatch watch_{*registry_, "coordinator", absl::Minutes(10), &clock_};
};

TEST_F(LoopWatchTest, ALoopThatKeepsTurningPassesTheLivenessProbe) {
  for (int i = 0; i < 30; ++i) {
    clock_.Advance(absl::Minutes(1));
    watch_.Turned();
    EXPECT_EQ(Probe("/healthz").status, 200) << "after " << i + 1 << " minutes";
  }
}

TEST_F(LoopWatchTest, AStuckLoopFailsTheLivenessProbeUntilItTurnsAgain) {
  clock_.Advance(absl::Minutes(10));
  EXPECT_EQ(Probe("/healthz").status, 200) << "the bound itself is not a stall";
  clock_.Advance(absl::Seconds(61));
  HttpReply stuck = Probe("/healthz");
  EXPECT_EQ(stuck.status, 503);
  EXPECT_THAT(stuck.body, HasSubstr("the main loop has not turned for 11m1s (--liveness_timeout 10m)"));
  EXPECT_EQ(Probe("/healthz").status, 503) << "asked again, still stuck";
  EXPECT_EQ(Probe("/readyz").status, 200) << "readiness is its own question";

  watch_.Turned();
  EXPECT_EQ(Probe("/healthz").status, 200);
}

TEST(LoopWatch, AZeroBoundNeverFailsTheProbe) {
  FakeClock clock;
  auto registry = NewRegistry("worker");
  LoopWatch watch(*registry, "worker", absl::ZeroDuration(), &clock);
  clock.Advance(absl::Hours(24 * 365));
  EXPECT_TRUE(watch.Alive().ok());
}

TEST_F(LoopWatchTest, TheMetricSaysWhenTheLoopLastTurned) {
  EXPECT_THAT(Exposition(*registry_),
              HasSubstr("agentfleet_main_loop_last_turn_timestamp_seconds{component=\"coordinator\"} 1800000000"));
  clock_.Advance(absl::Seconds(42));
  watch_.Turned();
  clock_.Advance(absl::Seconds(7));  // no turn: the metric keeps the last one
  EXPECT_THAT(Exposition(*registry_),
              HasSubstr("agentfleet_main_loop_last_turn_timestamp_seconds{component=\"coordinator\"} 1800000042"));
}

}  // namespace
}  // namespace agentfleet
