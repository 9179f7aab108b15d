#include "common/scheduler.h"

#include <atomic>
#include <memory>
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

// Stopping does not wait for callbacks that are not due: the destructor
// returns at once (a worker's shutdown with simulated calls still running),
// none of them runs, and what they hold is released. Were they waited for,
// the destructor would take the hour and ctest's 60 s limit would fail it.
TEST(ThreadSchedulerTest, StoppingDropsCallbacksNotYetDueAndReleasesWhatTheyHold) {
  auto held = std::make_shared<int>(0);
  std::atomic<int> ran{0};
  {
    ThreadScheduler scheduler;
    scheduler.RunAfter(absl::Hours(1), [held, &ran] { ++ran; });
    std::vector<Scheduler::Timed> batch;
    batch.push_back({absl::Minutes(30), [held, &ran] { ++ran; }});
    scheduler.RunAfterAll(std::move(batch));
    EXPECT_EQ(held.use_count(), 3);
  }
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(held.use_count(), 1);
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
