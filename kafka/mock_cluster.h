// The development broker: librdkafka's mock cluster hosted in this process.
// Clients in other processes reach it over TCP at bootstrap(). It is not a
// faithful broker (see docs/brokers.md): use it for the demo and quick
// tests, never to prove delivery guarantees.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kafka/kafka.h"

namespace agentfleet {

// Thread-compatible; Bootstrap() and the fault injection are safe from any thread.
class MockCluster {
 public:
  // Starts `brokers` mock brokers and creates `topics` (the mock cluster has
  // no working Admin API, so topics must exist before clients start).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<MockCluster>> Start(
      int brokers, const std::vector<TopicSpec>& topics);
  ~MockCluster();
  // "127.0.0.1:port,..." — listen ports are random.
  std::string bootstrap() const { return bootstrap_; }

  // Injects a fault, described by one line (librdkafka's mock fault API);
  // returns what was done, or why the line is not understood:
  //   errors API ERROR [COUNT]       the next COUNT requests of API (Produce,
  //                                  Fetch, OffsetCommit, JoinGroup, ... or a
  //                                  number) fail with ERROR (a Kafka error
  //                                  name such as NOT_LEADER_FOR_PARTITION)
  //   clear API                      drop API's pending errors
  //   rtt BROKER MS                  add MS ms to BROKER's round trips (-1: all)
  //   down BROKER | up BROKER        close / reopen BROKER's connections
  //   leader TOPIC PARTITION BROKER  move the partition's leader
  // Safe to call from any thread.
  [[nodiscard]] absl::StatusOr<std::string> Inject(const std::string& command);
  // The fault commands, for usage messages.
  static const char* FaultHelp();

 private:
  struct Impl;
  explicit MockCluster(std::unique_ptr<Impl> impl, std::string bootstrap);
  std::unique_ptr<Impl> impl_;
  std::string bootstrap_;
};

}  // namespace agentfleet
