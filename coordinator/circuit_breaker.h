// Circuit breakers with resilience4j's semantics, as pure logic on a Clock's
// time. A breaker watches the outcomes of calls in a sliding window (the last
// N calls, or the calls of the last T); once it has seen minimum_calls and
// the failure rate or the slow-call rate reaches its threshold it OPENs:
// calls are refused for wait_in_open. Then it is HALF_OPEN: half_open_calls
// probe calls are let through; if their failure (or slow) rate is below the
// thresholds it CLOSEs, otherwise it OPENs again. A breaker that stays
// HALF_OPEN longer than max_half_open_wait (probes that never answer) OPENs
// again, so stuck probes cannot pin it.
//
// Breakers (the set) is what the TaskEngine uses: one breaker per agent and
// one per provider/model, for those the config gives a `breaker`. Their
// transitions go to the compacted breakers topic and come back from the
// other replicas through Apply().
#pragma once

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "agentfleet/v1/state.pb.h"
#include "config/config.h"

namespace agentfleet {

// Not thread-safe: the coordinator's loop thread drives it, through TaskEngine.
class CircuitBreaker {
 public:
  CircuitBreaker(std::string name, BreakerConfig config);

  // Whether a call may go now; in HALF_OPEN, takes one probe permit.
  bool TryAcquire(absl::Time now);
  // The outcome of a permitted call.
  void Record(absl::Time now, bool failure, absl::Duration duration);
  // The status at `now` (applying the time-driven transitions).
  v1::BreakerStatus Status(absl::Time now);
  // A transition decided elsewhere; applied if it is newer than ours.
  void Apply(const v1::BreakerState& state);

  // The last transition, and whether it happened since the last call.
  bool TakeTransition(v1::BreakerState* out);

  const std::string& name() const { return name_; }
  const BreakerConfig& config() const { return config_; }

 private:
  struct Outcome {
    absl::Time at;
    bool failure;
    bool slow;
  };
  void Transition(absl::Time now, v1::BreakerStatus status, std::string reason);
  // The failure and slow rates over `outcomes` if there are enough of them.
  bool Tripped(const std::deque<Outcome>& outcomes, size_t minimum, std::string* reason) const;

  std::string name_;
  BreakerConfig config_;
  v1::BreakerStatus status_ = v1::BREAKER_STATUS_CLOSED;
  absl::Time since_ = absl::InfinitePast();
  std::deque<Outcome> window_;  // CLOSED: the sliding window
  std::deque<Outcome> probes_;  // HALF_OPEN: the probes' outcomes
  int permits_ = 0;             // HALF_OPEN: probe calls still allowed
  std::string reason_;
  bool changed_ = false;
};

// Not thread-safe: the coordinator's loop thread drives it, through TaskEngine.
class Breakers {
 public:
  // `replica` names this coordinator in the transitions it publishes.
  Breakers(const FleetConfig* config, std::string replica);
  void set_replica(std::string replica) { replica_ = std::move(replica); }

  // The breakers that apply to a call of `agent` on `model`.
  static std::string AgentKey(const AgentConfig& agent) { return "agent:" + agent.name; }
  static std::string ModelKey(const AgentConfig& agent, const std::string& model) {
    return "model:" + agent.provider + "/" + model;
  }
  // OK to call `agent` on `model` now? Otherwise the open breaker's name.
  bool Allow(const AgentConfig& agent, const std::string& model, absl::Time now, std::string* open);
  // The outcome of a call that was allowed.
  void Record(const AgentConfig& agent, const std::string& model, absl::Time now, bool failure,
              absl::Duration duration);
  void Apply(const v1::BreakerState& state);
  // Transitions since the last call, stamped with this replica.
  std::vector<v1::BreakerState> TakeTransitions();
  // Status of a breaker by name (CLOSED if it has no breaker).
  v1::BreakerStatus Status(const std::string& name, absl::Time now);

 private:
  CircuitBreaker* Find(const std::string& name, const BreakerConfig* config);
  const FleetConfig* config_;
  std::string replica_;
  std::map<std::string, CircuitBreaker> breakers_;
};

// Whether an error counts against a breaker: trouble with the agent or its
// provider, not the input's fault, a budget's, or a worker's shutdown.
bool CountsAsBreakerFailure(const std::string& error_code);

}  // namespace agentfleet
