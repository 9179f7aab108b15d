#include "common/scheduler.h"

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet {
namespace {

// Callbacks handed over together (a worker's poll of calls) run each once, in
// the order they fall due (ties in the order given), not the order they were
// given in.
TEST(ThreadSchedulerTest, CallbacksHandedOverTogetherRunOnceEachInDueOrder) {
  absl::Mutex mu;
  std::vector<std::string> ran;
  auto record = [&](std::string name) {
    return [&, name] {
      absl::MutexLock lock(&mu);
      ran.push_back(name);
    };
  };
  {
    ThreadScheduler scheduler;
    std::vector<Scheduler::Timed> batch;
    batch.push_back({absl::Milliseconds(300), record("late")});
    batch.push_back({absl::ZeroDuration(), record("now")});
    batch.push_back({absl::Milliseconds(150), record("soon")});
    batch.push_back({absl::ZeroDuration(), record("now, second")});
    scheduler.RunAfterAll(std::move(batch));
    absl::MutexLock lock(&mu);
    // A bound, not a pace: the last one is due after 300 ms.
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(
                                        +[](std::vector<std::string>* r) { return r->size() == 4; }, &ran),
                                    absl::Seconds(10)));
  }
  EXPECT_THAT(ran, testing::ElementsAre("now", "now, second", "soon", "late"));
}

// The base class's RunAfterAll gives each callback to RunAfter, with its delay.
TEST(ManualSchedulerTest, RunAfterAllSchedulesEachWithItsDelay) {
  ManualScheduler scheduler;
  int ran = 0;
  std::vector<Scheduler::Timed> batch;
  batch.push_back({absl::Milliseconds(5), [&] { ++ran; }});
  batch.push_back({absl::Milliseconds(7), [&] { ++ran; }});
  scheduler.RunAfterAll(std::move(batch));
  EXPECT_THAT(scheduler.delays(), testing::ElementsAre(absl::Milliseconds(5), absl::Milliseconds(7)));
  EXPECT_EQ(scheduler.RunAll(), 2);
  EXPECT_EQ(ran, 2);
}

}  // namespace
}  // namespace agentfleet
