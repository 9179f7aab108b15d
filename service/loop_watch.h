// LoopWatch: when a service's main loop last turned, for its liveness probe
// (/healthz) and its metric. A loop stuck inside a call that never returns
// is otherwise invisible: the process still answers HTTP, so Kubernetes
// never restarts it (seen: librdkafka's query_watermark_offsets() waiting
// for a dead broker to come back, docs/robustness.md).
//
// Threading: Turned() on the loop's thread; Alive() from any (the probe's).
#pragma once

#include <atomic>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace agentfleet {

class LoopWatch {
 public:
  // Registers agentfleet_main_loop_last_turn_timestamp_seconds{component}
  // in `registry`. A loop that has not turned for longer than `bound` is
  // stuck; a zero bound turns the check off (the metric stays). Counts the
  // construction as the first turn. `clock` must outlive the watch.
  LoopWatch(prometheus::Registry& registry, const std::string& component, absl::Duration bound,
            const Clock* clock = SystemClock::Get());
  LoopWatch(const LoopWatch&) = delete;
  LoopWatch& operator=(const LoopWatch&) = delete;

  // The loop turned: call once per pass, between its bounded waits.
  void Turned();
  // Ok unless the loop has not turned for longer than the bound: then
  // Unavailable, naming for how long. Logs an error the first time it finds
  // a stall (and again after the loop has turned since).
  [[nodiscard]] absl::Status Alive() const;

 private:
  const Clock* clock_;
  absl::Duration bound_;
  std::string component_;
  prometheus::Gauge* last_turn_;  // when the loop last turned, Unix seconds
  mutable std::atomic<double> reported_{-1};  // the turn whose stall was logged
};

}  // namespace agentfleet
