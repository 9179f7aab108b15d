// Replica: one coordinator replica's life in its process. It runs the
// Coordinator in incarnations, each with fresh Kafka clients. An incarnation
// ends on shutdown or on an error the Coordinator cannot go back from in
// place — a fenced producer (a zombie), a producer left fatal by a broker
// restart, a delivery that finally failed. The state is in Kafka, so the
// replica restarts in-process, as a pod restart would, minus the pod: after
// a delay that doubles from 1 s to 30 s while incarnations keep failing
// within a minute (RestartBackoff). It never exits on such an error; it
// stops only on shutdown, or when its clients cannot be made (bad settings).
//
// Threading: Run() on one thread; Ready() from any (the readiness probe).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "config/config.h"
#include "coordinator/coordinator.h"
#include "kafka/kafka.h"
#include "tracing/otlp_exporter.h"

namespace agentfleet {

// The delay before the next incarnation. Thread-compatible.
class RestartBackoff {
 public:
  RestartBackoff(absl::Duration first = absl::Seconds(1), absl::Duration max = absl::Seconds(30),
                 absl::Duration healthy_after = absl::Minutes(1))
      : first_(first), max_(max), healthy_after_(healthy_after), next_(first) {}
  // An incarnation that began at `began` failed at `now`: the delay before
  // the next one. It doubles, up to `max`, while incarnations fail quickly;
  // one that ran longer than `healthy_after` starts it over at `first`.
  absl::Duration AfterFailure(absl::Time began, absl::Time now);

 private:
  absl::Duration first_, max_, healthy_after_, next_;
};

// What one incarnation talks to Kafka with.
struct ReplicaClients {
  std::unique_ptr<Producer> producer;    // transactional in exactly_once mode
  std::unique_ptr<Consumer> consumer;    // the group's, with the given listener
  std::unique_ptr<Consumer> shared_feed; // breakers and cache topics, never committed
  StateReader state_reader;
  AuditReader audit_reader;  // may be empty
};
// Makes an incarnation's clients; `listener` receives the consumer's rebalances.
using ReplicaClientFactory = std::function<absl::StatusOr<ReplicaClients>(RebalanceListener* listener)>;

// librdkafka clients for the replica named `instance`: in exactly_once mode
// its transactional.id is <group_id>-<instance> (a restart under the same
// name fences its predecessor), offsets go only through transactions, and
// every consumer reads committed data only.
ReplicaClientFactory KafkaReplicaClients(const FleetConfig* config, std::string instance);

struct ReplicaOptions {
  CoordinatorOptions coordinator;
  RestartBackoff backoff;
  const Clock* clock = SystemClock::Get();
  // How the replica waits out a backoff, in steps of at most 100 ms between
  // which it checks stop() (tests advance a FakeClock instead of sleeping).
  std::function<void(absl::Duration)> sleep = [](absl::Duration d) { absl::SleepFor(d); };
};

class Replica {
 public:
  // `config`, and the metrics and tracer if set, must outlive the replica.
  Replica(const FleetConfig* config, std::string instance, ReplicaClientFactory clients,
          ReplicaOptions options = {});

  void SetMetrics(CoordinatorMetrics* metrics) { metrics_ = metrics; }
  // Passed to every incarnation's Coordinator (Coordinator::SetReloader).
  void SetReloader(std::function<std::string()> reload) { reload_ = std::move(reload); }
  void SetTracer(OtlpExporter* tracer) { tracer_ = tracer; }

  // Runs incarnations until stop(); returns the process's exit code: 0 after
  // stop(), 1 when the incarnation that was stopping failed (its last commit,
  // say), 2 when clients cannot be made.
  int Run(const std::function<bool()>& stop);
  // Ok while an incarnation is in its consumer group and its consumer
  // reaches the cluster.
  [[nodiscard]] absl::Status Ready();
  // Incarnations started so far.
  int incarnations() const { return incarnations_; }

 private:
  // One incarnation; its status, and whether its clients could be made.
  [[nodiscard]] absl::Status RunOnce(const std::function<bool()>& stop, bool* bad_clients);

  const FleetConfig* config_;
  std::string instance_;
  ReplicaClientFactory clients_;
  ReplicaOptions options_;
  CoordinatorMetrics* metrics_ = nullptr;
  std::function<std::string()> reload_;
  OtlpExporter* tracer_ = nullptr;
  int incarnations_ = 0;
  absl::Mutex live_mu_;
  // The current incarnation, for Ready() (none between incarnations).
  Coordinator* live_ ABSL_GUARDED_BY(live_mu_) = nullptr;
  Consumer* live_consumer_ ABSL_GUARDED_BY(live_mu_) = nullptr;
};

}  // namespace agentfleet
