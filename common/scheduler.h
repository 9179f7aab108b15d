// Scheduler: runs callbacks after a delay. The simulated model provider and
// timers use it; tests inject ManualScheduler and fire callbacks explicitly.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <queue>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace agentfleet {

// Thread-safe: RunAfter may be called from any thread.
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // Runs `fn` once, on the scheduler's thread, no earlier than `delay` from now.
  virtual void RunAfter(absl::Duration delay, std::function<void()> fn) = 0;
  struct Timed {
    absl::Duration delay;
    std::function<void()> fn;
  };
  // RunAfter for each, in order; a scheduler with a thread hands them over at
  // once (one wake-up instead of one per callback).
  virtual void RunAfterAll(std::vector<Timed> callbacks) {
    for (Timed& t : callbacks) RunAfter(t.delay, std::move(t.fn));
  }
};

// One background thread that fires callbacks in due order. Callbacks must be
// short: they delay every later one. The destructor drops callbacks not yet due.
class ThreadScheduler : public Scheduler {
 public:
  ThreadScheduler();
  ~ThreadScheduler() override;
  void RunAfter(absl::Duration delay, std::function<void()> fn) override;
  void RunAfterAll(std::vector<Timed> callbacks) override;

 private:
  struct Entry {
    absl::Time due;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Entry& o) const { return due != o.due ? due > o.due : seq > o.seq; }
  };
  void Loop();

  absl::Mutex mu_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> stopping_{false};  // stop_, read between the callbacks of one wake-up
  std::thread thread_;
};

// For tests: callbacks wait until RunDue() or RunAll() is called on the test's
// thread. Thread-safe.
class ManualScheduler : public Scheduler {
 public:
  void RunAfter(absl::Duration delay, std::function<void()> fn) override;
  // Runs every pending callback (including ones they schedule); returns how many ran.
  int RunAll();
  // The delays callbacks were scheduled with, in order.
  std::vector<absl::Duration> delays() const;

 private:
  mutable absl::Mutex mu_;
  std::vector<std::function<void()>> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Duration> delays_ ABSL_GUARDED_BY(mu_);
};

}  // namespace agentfleet
