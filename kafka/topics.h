// Names and shapes of the fleet's topics, and the client properties every
// agentfleet process starts from.
#pragma once

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "config/config.h"
#include "kafka/kafka.h"

namespace agentfleet {

struct Topics {
  explicit Topics(const std::string& prefix)
      : tasks(prefix + "tasks"),
        events(prefix + "events"),
        results(prefix + "results"),
        state(prefix + "state"),
        dlq(prefix + "dlq"),
        dlq_actions(prefix + "dlq.actions"),
        breakers(prefix + "breakers"),
        cache(prefix + "cache"),
        signals(prefix + "signals"),
        audit(prefix + "audit"),
        costs(prefix + "costs"),
        work_prefix(prefix + "work.") {}
  std::string tasks, events, results, state, dlq, dlq_actions, breakers, cache, signals, audit, costs, work_prefix;
  std::string Work(absl::string_view agent) const { return work_prefix + std::string(agent); }
};

// The topics workflows `emit:` to (steps', results' and needs_info questions'), each once.
std::vector<std::string> EmitTopics(const FleetConfig& config);

// Every topic the fleet configured in `config` uses, with partitions and
// configs (state is compacted).
std::vector<TopicSpec> FleetTopics(const FleetConfig& config);

// Defaults, then kafka.properties, then kafka.producer.
Properties ProducerProperties(const KafkaConfig& kafka);
// Defaults, then kafka.properties, then kafka.consumer, then group.id.
Properties ConsumerProperties(const KafkaConfig& kafka, const std::string& group_id);
// A coordinator replica's group consumer: ConsumerProperties on the classic
// protocol, with the range assignor whatever the config says.
Properties CoordinatorConsumerProperties(const KafkaConfig& kafka, const std::string& group_id);
// A worker's, consuming `work_topics` work topics: ConsumerProperties, with
// the cooperative-sticky assignor for a single topic unless kafka.properties
// or kafka.consumer name one.
Properties WorkerConsumerProperties(const KafkaConfig& kafka, const std::string& group_id, size_t work_topics);

// Client settings for the development broker (librdkafka's mock cluster):
// its empty fetches always wait fetch.wait.max.ms, group changes wait about
// session.timeout.ms, and its Admin API does not answer, so topics are
// created by the broker process, not by the coordinator.
void ApplyDevBrokerSettings(KafkaConfig* kafka);

// Loads the config for a fleet process and applies the command line's
// overrides: `bootstrap` (if non-empty) replaces bootstrap.servers, and
// `dev_broker` applies ApplyDevBrokerSettings().
[[nodiscard]] absl::StatusOr<FleetConfig> LoadProcessConfig(const std::string& path,
                                                            const std::string& bootstrap,
                                                            bool dev_broker);

// Consumer group of the workers serving `pool`.
std::string WorkerGroup(const FleetConfig& config, const std::string& pool);

}  // namespace agentfleet
