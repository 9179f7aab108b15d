#include "coordinator/circuit_breaker.h"

#include "absl/strings/str_format.h"
#include "codec/codec.h"
#include "common/error_codes.h"

namespace agentfleet {
namespace {


}  // namespace

CircuitBreaker::CircuitBreaker(std::string name, BreakerConfig config)
    : name_(std::move(name)), config_(config) {}

void CircuitBreaker::Transition(absl::Time now, v1::BreakerStatus status, std::string reason) {
  status_ = status;
  since_ = now;
  reason_ = std::move(reason);
  window_.clear();
  probes_.clear();
  permits_ = status == v1::BREAKER_STATUS_HALF_OPEN ? config_.half_open_calls : 0;
  changed_ = true;
}

v1::BreakerStatus CircuitBreaker::Status(absl::Time now) {
  if (status_ == v1::BREAKER_STATUS_OPEN && now >= since_ + config_.wait_in_open) {
    Transition(since_ + config_.wait_in_open, v1::BREAKER_STATUS_HALF_OPEN, "");
  }
  if (status_ == v1::BREAKER_STATUS_HALF_OPEN && config_.max_half_open_wait > absl::ZeroDuration() &&
      now >= since_ + config_.max_half_open_wait) {
    Transition(now, v1::BREAKER_STATUS_OPEN,
               absl::StrFormat("%d probe calls did not all answer within %s", config_.half_open_calls,
                               absl::FormatDuration(config_.max_half_open_wait)));
  }
  return status_;
}

bool CircuitBreaker::TryAcquire(absl::Time now) {
  switch (Status(now)) {
    case v1::BREAKER_STATUS_OPEN:
      return false;
    case v1::BREAKER_STATUS_HALF_OPEN:
      if (permits_ <= 0) return false;
      --permits_;
      return true;
    default:
      return true;
  }
}

bool CircuitBreaker::Tripped(const std::deque<Outcome>& outcomes, size_t minimum, std::string* reason) const {
  if (outcomes.size() < minimum || outcomes.empty()) return false;
  size_t failed = 0, slow = 0;
  for (const Outcome& o : outcomes) {
    failed += o.failure;
    slow += o.slow;
  }
  double failure_rate = static_cast<double>(failed) / outcomes.size();
  double slow_rate = static_cast<double>(slow) / outcomes.size();
  if (failure_rate >= config_.failure_rate) {
    *reason = absl::StrFormat("%d of %d calls failed (threshold %.0f%%)", failed, outcomes.size(),
                              config_.failure_rate * 100);
    return true;
  }
  if (slow_rate >= config_.slow_call_rate) {
    *reason = absl::StrFormat("%d of %d calls took %s or longer (threshold %.0f%%)", slow, outcomes.size(),
                              absl::FormatDuration(config_.slow_call_duration), config_.slow_call_rate * 100);
    return true;
  }
  return false;
}

void CircuitBreaker::Record(absl::Time now, bool failure, absl::Duration duration) {
  Outcome o{now, failure, duration >= config_.slow_call_duration};
  std::string reason;
  switch (Status(now)) {
    case v1::BREAKER_STATUS_CLOSED:
      window_.push_back(o);
      if (config_.window == BreakerConfig::Window::kCount) {
        while (window_.size() > static_cast<size_t>(config_.window_calls)) window_.pop_front();
      } else {
        while (!window_.empty() && window_.front().at <= now - config_.window_time) window_.pop_front();
      }
      if (Tripped(window_, config_.minimum_calls, &reason)) Transition(now, v1::BREAKER_STATUS_OPEN, reason);
      return;
    case v1::BREAKER_STATUS_HALF_OPEN:
      probes_.push_back(o);
      if (probes_.size() < static_cast<size_t>(config_.half_open_calls)) return;
      if (Tripped(probes_, probes_.size(), &reason)) {
        Transition(now, v1::BREAKER_STATUS_OPEN, "probes: " + reason);
      } else {
        Transition(now, v1::BREAKER_STATUS_CLOSED, "");
      }
      return;
    default:
      return;  // a call that started before the breaker opened
  }
}

void CircuitBreaker::Apply(const v1::BreakerState& state) {
  absl::Time since = FromTimestamp(state.since());
  if (since <= since_ || state.status() == v1::BREAKER_STATUS_UNSPECIFIED) return;
  status_ = state.status();
  since_ = since;
  reason_ = state.reason();
  window_.clear();
  probes_.clear();
  permits_ = status_ == v1::BREAKER_STATUS_HALF_OPEN ? config_.half_open_calls : 0;
}

bool CircuitBreaker::TakeTransition(v1::BreakerState* out) {
  if (!changed_) return false;
  changed_ = false;
  out->set_name(name_);
  out->set_status(status_);
  *out->mutable_since() = ToTimestamp(since_);
  out->set_reason(reason_);
  return true;
}

Breakers::Breakers(const FleetConfig* config, std::string replica) : config_(config), replica_(std::move(replica)) {}

CircuitBreaker* Breakers::Find(const std::string& name, const BreakerConfig* config) {
  auto it = breakers_.find(name);
  if (it != breakers_.end()) return &it->second;
  if (config == nullptr) return nullptr;
  return &breakers_.emplace(name, CircuitBreaker(name, *config)).first->second;
}

bool Breakers::Allow(const AgentConfig& agent, const std::string& model, absl::Time now, std::string* open) {
  auto provider = config_->providers.find(agent.provider);
  const BreakerConfig* model_config =
      provider != config_->providers.end() && provider->second.breaker ? &*provider->second.breaker : nullptr;
  const BreakerConfig* agent_config = agent.breaker ? &*agent.breaker : nullptr;
  if (agent_config == nullptr && model_config == nullptr) return true;  // no breaker guards this call
  CircuitBreaker* a = Find(AgentKey(agent), agent_config);
  CircuitBreaker* m = Find(ModelKey(agent, model), model_config);
  // Look at both before taking a probe permit from either.
  for (CircuitBreaker* b : {a, m}) {
    if (b && b->Status(now) == v1::BREAKER_STATUS_OPEN) {
      *open = b->name();
      return false;
    }
  }
  for (CircuitBreaker* b : {a, m}) {
    if (b && !b->TryAcquire(now)) {
      *open = b->name();
      return false;
    }
  }
  return true;
}

void Breakers::Record(const AgentConfig& agent, const std::string& model, absl::Time now, bool failure,
                      absl::Duration duration) {
  if (breakers_.empty()) return;
  for (const std::string& name : {AgentKey(agent), ModelKey(agent, model)}) {
    auto it = breakers_.find(name);
    if (it != breakers_.end()) it->second.Record(now, failure, duration);
  }
}

void Breakers::Apply(const v1::BreakerState& state) {
  if (state.replica() == replica_) return;  // our own, already applied
  auto it = breakers_.find(state.name());
  if (it != breakers_.end()) {
    it->second.Apply(state);
    return;
  }
  // A breaker this replica has not used yet: create it from the config.
  const BreakerConfig* config = nullptr;
  const std::string& name = state.name();
  if (name.rfind("agent:", 0) == 0) {
    const AgentConfig* agent = config_->FindAgent(name.substr(6));
    if (agent && agent->breaker) config = &*agent->breaker;
  } else if (name.rfind("model:", 0) == 0) {
    std::string provider = name.substr(6, name.find('/') - 6);
    auto p = config_->providers.find(provider);
    if (p != config_->providers.end() && p->second.breaker) config = &*p->second.breaker;
  }
  if (CircuitBreaker* b = Find(name, config)) b->Apply(state);
}

std::vector<v1::BreakerState> Breakers::TakeTransitions() {
  std::vector<v1::BreakerState> out;
  for (auto& [name, b] : breakers_) {
    v1::BreakerState s;
    if (b.TakeTransition(&s)) {
      s.set_replica(replica_);
      out.push_back(std::move(s));
    }
  }
  return out;
}

v1::BreakerStatus Breakers::Status(const std::string& name, absl::Time now) {
  auto it = breakers_.find(name);
  return it == breakers_.end() ? v1::BREAKER_STATUS_CLOSED : it->second.Status(now);
}

bool CountsAsBreakerFailure(const std::string& code) {
  return code != kWorkerShutdown && code != kInvalidInput && code != kInvalidWorkItem && code != kMaxTokensExceeded;
}

}  // namespace agentfleet
