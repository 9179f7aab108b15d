// An absl::Time in 8 bytes where many are held at once: the deadlines of
// every step instance in flight in a coordinator. absl::Time takes 16.
#pragma once

#include <cstdint>
#include <limits>

#include "absl/time/time.h"

namespace agentfleet {

// Nanoseconds since the Unix epoch (about ±292 years around it; times
// beyond are clamped), with the infinite past and future kept as such.
// Converts to and from absl::Time implicitly, as the fields it replaces.
class CompactTime {
 public:
  CompactTime() = default;  // the infinite past
  CompactTime(absl::Time t)  // NOLINT(google-explicit-constructor)
      : ns_(t == absl::InfiniteFuture() ? kFuture
            : t == absl::InfinitePast() ? kPast
                                        : Clamp(absl::ToUnixNanos(t))) {}
  operator absl::Time() const {  // NOLINT(google-explicit-constructor)
    return ns_ == kFuture ? absl::InfiniteFuture() : ns_ == kPast ? absl::InfinitePast() : absl::FromUnixNanos(ns_);
  }
  absl::Time time() const { return *this; }

 private:
  static constexpr int64_t kFuture = std::numeric_limits<int64_t>::max();
  static constexpr int64_t kPast = std::numeric_limits<int64_t>::min();
  static int64_t Clamp(int64_t ns) { return ns == kFuture ? kFuture - 1 : ns == kPast ? kPast + 1 : ns; }
  int64_t ns_ = kPast;
};

}  // namespace agentfleet
