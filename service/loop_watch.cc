#include "service/loop_watch.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace agentfleet {

LoopWatch::LoopWatch(prometheus::Registry& registry, const std::string& component, absl::Duration bound,
                     const Clock* clock)
    : clock_(clock),
      bound_(bound),
      component_(component),
      last_turn_(&prometheus::BuildGauge()
                      .Name("agentfleet_main_loop_last_turn_timestamp_seconds")
                      .Help("When the process's main loop last turned (Unix seconds); /healthz fails once it "
                            "has not turned for --liveness_timeout.")
                      .Register(registry)
                      .Add({{"component", component}})) {
  Turned();
}

void LoopWatch::Turned() { last_turn_->Set(absl::ToDoubleSeconds(clock_->Now() - absl::UnixEpoch())); }

absl::Status LoopWatch::Alive() const {
  if (bound_ <= absl::ZeroDuration()) return absl::OkStatus();
  double turn = last_turn_->Value();  // the gauge is the record (an atomic double)
  absl::Duration since = clock_->Now() - (absl::UnixEpoch() + absl::Seconds(turn));
  if (since <= bound_) return absl::OkStatus();
  std::string message =
      absl::StrCat("the main loop has not turned for ",
                   absl::FormatDuration(absl::Trunc(since, absl::Seconds(1))),
                   " (--liveness_timeout ", absl::FormatDuration(bound_), ")");
  if (reported_.exchange(turn) != turn) {
    Log(LogLevel::kError, component_, "main loop stuck", {{"error", message}});
  }
  return absl::UnavailableError(message);
}

}  // namespace agentfleet
