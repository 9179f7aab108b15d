// RateLimiter: the providers' quotas (requests and tokens per minute, per
// model), enforced at dispatch. Pure token buckets on the caller's clock.
//
// Shared by the replicas without talking to each other: each replica gets
// the share of every quota that matches the share of task partitions it
// owns (SetShare), and tasks spread over partitions by the hash of their id,
// so the replicas' shares add up to at most the whole quota at any moment —
// not N times it. A bucket holds at most one minute of its share and starts
// empty when the replica starts, so a restarted replica does not burst.
#pragma once

#include <map>
#include <string>

#include "absl/time/time.h"
#include "config/config.h"

namespace agentfleet {

// Not thread-safe: the coordinator's loop thread drives it, through TaskEngine.
class RateLimiter {
 public:
  explicit RateLimiter(const FleetConfig* config) : config_(config) {}

  // This replica's share of every quota, 0..1.
  void SetShare(double share, absl::Time now);
  double share() const { return share_; }

  // The key of the quota that applies to `model` of `provider`; empty if none.
  std::string Key(const std::string& provider, const std::string& model) const;
  // Takes one request and `tokens` from the bucket if it has them.
  bool TryTake(const std::string& key, int64_t tokens, absl::Time now);
  // When TryTake(key, tokens) could succeed (InfiniteFuture with no share).
  absl::Time ReadyAt(const std::string& key, int64_t tokens, absl::Time now);

 private:
  struct Bucket {
    double requests = 0;
    double tokens = 0;
    absl::Time at = absl::InfinitePast();
  };
  Bucket& Refill(const std::string& key, absl::Time now);
  const RateLimit& Limit(const std::string& key) const;

  const FleetConfig* config_;
  double share_ = 0;
  std::map<std::string, Bucket> buckets_;
};

}  // namespace agentfleet
