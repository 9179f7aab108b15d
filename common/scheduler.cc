#include "common/scheduler.h"

#include "absl/time/clock.h"

namespace agentfleet {

ThreadScheduler::ThreadScheduler() : thread_([this] { Loop(); }) {}

ThreadScheduler::~ThreadScheduler() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    stopping_.store(true);
  }
  thread_.join();
}

void ThreadScheduler::RunAfter(absl::Duration delay, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  queue_.push(Entry{absl::Now() + delay, next_seq_++, std::move(fn)});
}

void ThreadScheduler::RunAfterAll(std::vector<Timed> callbacks) {
  if (callbacks.empty()) return;
  absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  for (Timed& t : callbacks) queue_.push(Entry{now + t.delay, next_seq_++, std::move(t.fn)});
}

void ThreadScheduler::Loop() {
  struct Watch {
    ThreadScheduler* self;
    size_t size;
    absl::Time head;
  };
  std::vector<std::function<void()>> due;
  while (true) {
    due.clear();
    {
      absl::MutexLock lock(&mu_);
      while (!stop_ && (queue_.empty() || queue_.top().due > absl::Now())) {
        // Sleep until the head is due, or until something is added or stop is set.
        absl::Duration wait =
            queue_.empty() ? absl::Milliseconds(100) : queue_.top().due - absl::Now();
        Watch watch{this, queue_.size(), queue_.empty() ? absl::InfiniteFuture() : queue_.top().due};
        mu_.AwaitWithTimeout(absl::Condition(
                                 +[](Watch* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                   return w->self->stop_ || w->self->queue_.size() != w->size;
                                 },
                                 &watch),
                             std::max(wait, absl::ZeroDuration()));
      }
      if (stop_) return;
      // Every callback due now, under one lock.
      absl::Time now = absl::Now();
      while (!queue_.empty() && queue_.top().due <= now) {
        due.push_back(std::move(const_cast<Entry&>(queue_.top()).fn));
        queue_.pop();
      }
    }
    for (auto& fn : due) {
      if (stopping_.load()) return;  // the rest are dropped, as if not yet due
      fn();
    }
  }
}

void ManualScheduler::RunAfter(absl::Duration delay, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  pending_.push_back(std::move(fn));
  delays_.push_back(delay);
}

int ManualScheduler::RunAll() {
  int ran = 0;
  while (true) {
    std::vector<std::function<void()>> batch;
    {
      absl::MutexLock lock(&mu_);
      batch.swap(pending_);
    }
    if (batch.empty()) return ran;
    for (auto& fn : batch) {
      fn();
      ++ran;
    }
  }
}

std::vector<absl::Duration> ManualScheduler::delays() const {
  absl::MutexLock lock(&mu_);
  return delays_;
}

}  // namespace agentfleet
