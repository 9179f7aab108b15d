#include "coordinator/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace agentfleet {

void RateLimiter::SetShare(double share, absl::Time now) {
  // Every quota's bucket exists from the moment the replica has a share:
  // it fills from then on, not from its first use.
  for (const auto& [name, provider] : config_->providers) {
    for (const auto& [model, limit] : provider.rate_limits) buckets_.try_emplace(name + "/" + model);
  }
  for (auto& [key, b] : buckets_) Refill(key, now);  // account the time so far at the old rate
  share_ = std::clamp(share, 0.0, 1.0);
  for (auto& [key, b] : buckets_) {
    const RateLimit& l = Limit(key);
    b.requests = std::min(b.requests, l.requests_per_minute * share_);
    b.tokens = std::min(b.tokens, l.tokens_per_minute * share_);
  }
}

std::string RateLimiter::Key(const std::string& provider, const std::string& model) const {
  auto p = config_->providers.find(provider);
  if (p == config_->providers.end() || p->second.rate_limits.count(model) == 0) return "";
  return provider + "/" + model;
}

const RateLimit& RateLimiter::Limit(const std::string& key) const {
  size_t slash = key.find('/');
  return config_->providers.at(key.substr(0, slash)).rate_limits.at(key.substr(slash + 1));
}

RateLimiter::Bucket& RateLimiter::Refill(const std::string& key, absl::Time now) {
  Bucket& b = buckets_[key];
  if (b.at == absl::InfinitePast()) b.at = now;  // starts empty
  double minutes = absl::ToDoubleSeconds(now - b.at) / 60.0;
  if (minutes > 0) {
    const RateLimit& l = Limit(key);
    b.requests = std::min(l.requests_per_minute * share_, b.requests + minutes * l.requests_per_minute * share_);
    b.tokens = std::min(l.tokens_per_minute * share_, b.tokens + minutes * l.tokens_per_minute * share_);
    b.at = now;
  }
  return b;
}

bool RateLimiter::TryTake(const std::string& key, int64_t tokens, absl::Time now) {
  if (key.empty()) return true;
  Bucket& b = Refill(key, now);
  const RateLimit& l = Limit(key);
  // A call larger than a whole minute's share could never go: let it go
  // when the bucket is full rather than never.
  double need_tokens = std::min<double>(static_cast<double>(tokens), l.tokens_per_minute * share_);
  bool requests_ok = l.requests_per_minute <= 0 || b.requests >= 1 - 1e-9;
  bool tokens_ok = l.tokens_per_minute <= 0 || b.tokens >= need_tokens - 1e-9;
  if (share_ <= 0 || !requests_ok || !tokens_ok) return false;
  if (l.requests_per_minute > 0) b.requests -= 1;
  if (l.tokens_per_minute > 0) b.tokens -= need_tokens;
  return true;
}

absl::Time RateLimiter::ReadyAt(const std::string& key, int64_t tokens, absl::Time now) {
  if (key.empty()) return now;
  if (share_ <= 0) return absl::InfiniteFuture();
  Bucket& b = Refill(key, now);
  const RateLimit& l = Limit(key);
  double wait_min = 0;
  if (l.requests_per_minute > 0 && b.requests < 1) {
    wait_min = std::max(wait_min, (1 - b.requests) / (l.requests_per_minute * share_));
  }
  double need_tokens = std::min<double>(static_cast<double>(tokens), l.tokens_per_minute * share_);
  if (l.tokens_per_minute > 0 && b.tokens < need_tokens) {
    wait_min = std::max(wait_min, (need_tokens - b.tokens) / (l.tokens_per_minute * share_));
  }
  // Round up to the millisecond so the bucket has it by then.
  return now + absl::Milliseconds(std::ceil(wait_min * 60000.0) + 1);
}

}  // namespace agentfleet
