#include "kafka/topics.h"

#include <algorithm>
#include <cstdlib>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace agentfleet {
namespace {

const char* const kProducerOnly[] = {"enable.idempotence", "linger.ms", "partitioner", "acks",
                                     "compression.type", "batch.num.messages",
                                     "queue.buffering.max.messages", "queue.buffering.max.ms",
                                     "message.send.max.retries", "retries", "transactional.id"};
const char* const kConsumerOnly[] = {"enable.auto.commit", "enable.auto.offset.store",
                                     "auto.offset.reset", "partition.assignment.strategy",
                                     "session.timeout.ms", "heartbeat.interval.ms",
                                     "fetch.wait.max.ms", "isolation.level", "max.poll.interval.ms",
                                     "auto.commit.interval.ms", "group.instance.id",
                                     "fetch.min.bytes", "enable.partition.eof"};

Properties Merge(Properties base, const std::map<std::string, std::string>& over) {
  for (const auto& [k, v] : over) base[k] = v;
  return base;
}

}  // namespace

std::vector<std::string> EmitTopics(const FleetConfig& config) {
  std::set<std::string> topics;
  for (const auto& [name, w] : config.workflows) {
    if (!w.emit.empty()) topics.insert(w.emit);
    for (const StepConfig& s : w.steps) {
      if (!s.emit.empty()) topics.insert(s.emit);
      if (s.signals.needs_info && !s.signals.needs_info->emit.empty()) topics.insert(s.signals.needs_info->emit);
    }
  }
  return {topics.begin(), topics.end()};
}

std::vector<TopicSpec> FleetTopics(const FleetConfig& config) {
  const KafkaConfig& k = config.kafka;
  Topics t(k.topic_prefix);
  // A task's history (what trace and replay read) is kept for kafka.retention.
  const std::map<std::string, std::string> history = {
      {"retention.ms", absl::StrCat(absl::ToInt64Milliseconds(k.retention))}};
  std::vector<TopicSpec> specs = {
      {t.tasks, k.partitions, k.replication_factor, history},
      {t.events, k.partitions, k.replication_factor, history},
      {t.results, k.partitions, k.replication_factor, history},
      {t.state, k.partitions, k.replication_factor, {{"cleanup.policy", "compact"}}},
      {t.dlq, k.partitions, k.replication_factor, history},
      // Operators' replays and discards of dead letters (agentfleet console).
      {t.dlq_actions, 1, k.replication_factor, history},
      // Cancellations and signals for running tasks, co-partitioned with tasks.
      {t.signals, k.partitions, k.replication_factor, history},
      // Circuit breaker states, shared by the coordinator replicas.
      {t.breakers, 1, k.replication_factor, {{"cleanup.policy", "compact"}}},
      // The result cache, shared by the coordinator replicas; no entry lives past 7 days.
      {t.cache, 1, k.replication_factor, {{"cleanup.policy", "compact,delete"}, {"retention.ms", "604800000"}}},
  };
  for (const auto& [name, agent] : config.agents) {
    specs.push_back({t.Work(name), k.work_partitions, k.replication_factor, history});
  }
  // The cost ledger: one entry per finished task, for cost reports.
  specs.push_back({t.costs, k.partitions, k.replication_factor,
                   {{"retention.ms", absl::StrCat(absl::ToInt64Milliseconds(k.cost_retention))}}});
  // The audit log of actions, co-partitioned with events (one chain per
  // partition), kept for kafka.audit_retention.
  if (config.HasActions()) {
    specs.push_back({t.audit, k.partitions, k.replication_factor,
                     {{"retention.ms", absl::StrCat(absl::ToInt64Milliseconds(k.audit_retention))}}});
  }
  // Topics the user's own systems read (emit:) and write (triggers:): made
  // when missing (an existing topic is left as it is).
  for (const std::string& topic : EmitTopics(config)) specs.push_back({topic, k.partitions, k.replication_factor, {}});
  for (const auto& [name, trigger] : config.triggers) {
    specs.push_back({trigger.topic, k.partitions, k.replication_factor, {}});
  }
  // Every message the fleet produces fits (record batch framing included),
  // and never below Kafka's default of 1,048,588 bytes.
  std::string max_message = absl::StrCat(std::max<size_t>(1048588, k.max_message_bytes + 65536));
  for (TopicSpec& spec : specs) spec.configs["max.message.bytes"] = max_message;
  return specs;
}

Properties ProducerProperties(const KafkaConfig& kafka) {
  Properties p = {
      {"enable.idempotence", "true"},
      // Same partitioner as the Java client: tasks produced from any language
      // land on the partition the events for that task_id will use.
      {"partitioner", "murmur2_random"},
      {"linger.ms", "2"},
      // Small requests must not wait for Nagle's algorithm (~40 ms per ack).
      {"socket.nagle.disable", "true"},
      {"log.connection.close", "false"},
  };
  p["message.max.bytes"] = absl::StrCat(kafka.max_message_bytes);
  p = Merge(p, kafka.properties);
  // Shared properties meant for consumers do not belong in a producer.
  for (const char* name : kConsumerOnly) p.erase(name);
  return Merge(p, kafka.producer);
}

Properties ConsumerProperties(const KafkaConfig& kafka, const std::string& group_id) {
  Properties p = {
      // Offsets are stored by agentfleet code only after the work is done, and
      // committed in the background: at-least-once.
      {"enable.auto.commit", "true"},
      {"enable.auto.offset.store", "false"},
      {"auto.commit.interval.ms", "500"},
      {"auto.offset.reset", "earliest"},
      // Co-partitioned topics need the same partition numbers per member
      // (the coordinators); worker pools choose their own (WorkerConsumerProperties).
      {"partition.assignment.strategy", "range"},
      // Failover in seconds: a member that stops heartbeating (SIGKILL, a
      // frozen host, a cut network) loses its partitions after 10 s instead
      // of librdkafka's 45 s; a heartbeat every second leaves nine to miss
      // before a live member is evicted (docs/brokers.md#failover).
      {"session.timeout.ms", "10000"},
      {"heartbeat.interval.ms", "1000"},
      {"fetch.wait.max.ms", "50"},
      {"socket.nagle.disable", "true"},
      {"log.connection.close", "false"},
  };
  p = Merge(p, kafka.properties);
  for (const char* name : kProducerOnly) p.erase(name);
  p = Merge(p, kafka.consumer);
  p["group.id"] = group_id;
  // KIP-848's protocol (librdkafka 2.12+, Kafka 4) sets these on the broker
  // (group.consumer.session.timeout.ms, ...) and the client refuses them.
  if (auto it = p.find("group.protocol"); it != p.end() && it->second == "consumer") {
    for (const char* name : {"session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy"}) {
      p.erase(name);
    }
  }
  return p;
}

Properties CoordinatorConsumerProperties(const KafkaConfig& kafka, const std::string& group_id) {
  // Coordinators stay on the classic group protocol, with its session and
  // heartbeat, even where worker pools use KIP-848's (group.protocol:
  // consumer): the tasks and events topics are co-partitioned, and only the
  // classic range assignor guarantees a replica the same partition numbers
  // of both.
  KafkaConfig classic = kafka;
  classic.properties.erase("group.protocol");
  classic.consumer.erase("group.protocol");
  Properties p = ConsumerProperties(classic, group_id);
  p["partition.assignment.strategy"] = "range";
  return p;
}

Properties WorkerConsumerProperties(const KafkaConfig& kafka, const std::string& group_id, size_t work_topics) {
  Properties p = ConsumerProperties(kafka, group_id);
  // A worker that consumes one work topic uses incremental cooperative
  // rebalancing: a scale event moves only the partitions that change owner,
  // and every other partition keeps being consumed, its calls in flight left
  // alone. With several topics it keeps range: the sticky assignor balances
  // the count of partitions over all topics, not each topic, and was
  // measured handing one worker all of an agent's partitions
  // (docs/brokers.md#failover-and-rebalancing). An explicit setting wins.
  if (work_topics == 1 && p.count("partition.assignment.strategy") > 0 &&
      kafka.consumer.count("partition.assignment.strategy") == 0 &&
      kafka.properties.count("partition.assignment.strategy") == 0) {
    p["partition.assignment.strategy"] = "cooperative-sticky";
  }
  return p;
}

void ApplyDevBrokerSettings(KafkaConfig* kafka) {
  kafka->create_topics = false;
  kafka->consumer["fetch.wait.max.ms"] = "5";
  kafka->consumer["session.timeout.ms"] = "6000";
  kafka->consumer["heartbeat.interval.ms"] = "500";
  // The mock checks sequence numbers for transactional producers only, so a
  // request behind a failed one is appended where Kafka would refuse it, and
  // librdkafka then reports the failed one's messages delivered (an
  // "implicit ack") though they are not in the log. One request in flight
  // per connection leaves nothing behind a failure.
  // DevBrokerTest.EveryAcknowledgedMessageIsInTheLogThroughProduceErrors.
  kafka->producer["max.in.flight.requests.per.connection"] = "1";
}

absl::StatusOr<FleetConfig> LoadProcessConfig(const std::string& path, const std::string& bootstrap,
                                              bool dev_broker) {
  auto config = LoadConfigFile(path);
  if (!config.ok()) return config.status();
  if (!bootstrap.empty()) config->kafka.properties["bootstrap.servers"] = bootstrap;
  for (const auto& [property, variable] : config->kafka.properties_env) {
    const char* value = std::getenv(variable.c_str());
    if (value == nullptr || *value == '\0') {
      return absl::FailedPreconditionError(absl::StrCat(path, ": kafka.properties_env.", property, ": environment variable ",
                                                        variable, " is not set"));
    }
    config->kafka.properties[property] = value;
    RedactInLogs(value);
  }
  if (dev_broker) {
    ApplyDevBrokerSettings(&config->kafka);
    // The mock cluster accepts transactions but guarantees nothing with them
    // (docs/brokers.md): run the mode it supports honestly.
    config->coordinator.processing = CoordinatorConfig::Processing::kAtLeastOnce;
  }
  return config;
}

std::string WorkerGroup(const FleetConfig& config, const std::string& pool) {
  return config.worker.group_prefix + "." + pool;
}

}  // namespace agentfleet
