// Clock: the one seam through which agentfleet reads time, so logic that
// depends on time (latency, deadlines, timeouts) is tested with FakeClock and
// never sleeps.
#pragma once

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace agentfleet {

// Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// Wall-clock time. Thread-safe; stateless.
class SystemClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  // A process-wide instance; SystemClock has no state, so sharing is safe.
  static SystemClock* Get();
};

// A clock that moves only when told. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'800'000'000)) : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace agentfleet
