#include "coordinator/replica.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "kafka/topics.h"

namespace agentfleet {
namespace {
constexpr char kComponent[] = "coordinator";
}  // namespace

absl::Duration RestartBackoff::AfterFailure(absl::Time began, absl::Time now) {
  if (now - began > healthy_after_) next_ = first_;
  absl::Duration delay = next_;
  next_ = std::min(2 * next_, max_);
  return delay;
}

ReplicaClientFactory KafkaReplicaClients(const FleetConfig* config, std::string instance) {
  return [config, instance = std::move(instance)](RebalanceListener* listener) -> absl::StatusOr<ReplicaClients> {
    const CoordinatorConfig& cc = config->coordinator;
    bool exactly_once = cc.processing == CoordinatorConfig::Processing::kExactlyOnce;
    Properties producer_props = ProducerProperties(config->kafka);
    Properties consumer_props = CoordinatorConsumerProperties(config->kafka, cc.group_id);
    // Static membership (KIP-345): a replica restarted under the same name
    // within the session timeout takes its partitions back with no rebalance.
    if (cc.static_membership) consumer_props["group.instance.id"] = absl::StrCat(cc.group_id, "-", instance);
    if (exactly_once) {
      producer_props["transactional.id"] = absl::StrCat(cc.group_id, "-", instance);
      producer_props["transaction.timeout.ms"] = absl::StrCat(absl::ToInt64Milliseconds(cc.transaction_timeout));
      // A transaction begun right after the previous one committed can find
      // the broker still writing that one's markers: AddPartitionsToTxn
      // answers CONCURRENT_TRANSACTIONS and librdkafka retries after
      // retry.backoff.ms, 100 ms by default — a step's p99 on Kafka 4.4.0
      // with adaptive commits was 109 ms. The Java client retries this case
      // after 20 ms (KAFKA-5477); so does this producer, unless configured.
      if (config->kafka.producer.count("retry.backoff.ms") == 0 &&
          config->kafka.properties.count("retry.backoff.ms") == 0) {
        producer_props["retry.backoff.ms"] = "20";
      }
      // Offsets are committed inside the transactions.
      consumer_props["enable.auto.commit"] = "false";
      consumer_props["isolation.level"] = "read_committed";
    }
    // Every replica reads the whole breakers and cache topics (assigned, never committed).
    Properties feed_props = ConsumerProperties(config->kafka, cc.group_id + "-shared");
    feed_props["enable.auto.commit"] = "false";
    if (exactly_once) feed_props["isolation.level"] = "read_committed";
    ReplicaClients clients;
    auto producer = NewProducer(producer_props);
    if (!producer.ok()) return producer.status();
    clients.producer = std::move(*producer);
    auto consumer = NewConsumer(consumer_props, listener);
    if (!consumer.ok()) return consumer.status();
    clients.consumer = std::move(*consumer);
    auto feed = NewConsumer(feed_props);
    if (!feed.ok()) return feed.status();
    clients.shared_feed = std::move(*feed);
    Properties reader_props = ConsumerProperties(config->kafka, cc.group_id + "-restore");
    clients.state_reader = [reader_props, topic = Topics(config->kafka.topic_prefix).state](
                               const std::vector<int32_t>& partitions) {
      return ReadPartitionsToEnd(reader_props, topic, partitions, absl::Minutes(2));
    };
    clients.audit_reader = [reader_props, topic = Topics(config->kafka.topic_prefix).audit](
                               const std::vector<int32_t>& partitions, int64_t tail) {
      return tail > 0 ? ReadPartitionTails(reader_props, topic, partitions, tail, absl::Minutes(2))
                      : ReadPartitionsToEnd(reader_props, topic, partitions, absl::Minutes(2));
    };
    return clients;
  };
}

Replica::Replica(const FleetConfig* config, std::string instance, ReplicaClientFactory clients,
                 ReplicaOptions options)
    : config_(config), instance_(std::move(instance)), clients_(std::move(clients)), options_(std::move(options)) {}

absl::Status Replica::Ready() {
  absl::MutexLock lock(&live_mu_);
  if (live_ == nullptr || !live_->joined()) return absl::UnavailableError("not in the consumer group yet");
  return live_consumer_->Ping(absl::Seconds(2));
}

absl::Status Replica::RunOnce(const std::function<bool()>& stop, bool* bad_clients) {
  ++incarnations_;
  RebalanceRelay relay;
  auto clients = clients_(&relay);
  if (!clients.ok()) {
    *bad_clients = true;
    return clients.status();
  }
  Coordinator coordinator(config_, clients->consumer.get(), clients->producer.get(), options_.clock,
                          clients->state_reader, options_.coordinator);
  coordinator.ShareFleetState(clients->shared_feed.get(), instance_);
  coordinator.SetAuditReader(clients->audit_reader);
  coordinator.SetMetrics(metrics_);
  coordinator.SetTracer(tracer_);
  coordinator.SetReloader(reload_);
  relay.set_target(&coordinator);
  {
    absl::MutexLock lock(&live_mu_);
    live_ = &coordinator;
    live_consumer_ = clients->consumer.get();
  }
  absl::Status status = coordinator.Start();
  if (status.ok()) status = coordinator.Run(stop);
  {
    absl::MutexLock lock(&live_mu_);
    live_ = nullptr;
    live_consumer_ = nullptr;
  }
  clients->consumer->Close();
  clients->shared_feed->Close();
  relay.set_target(nullptr);
  return status;
}

int Replica::Run(const std::function<bool()>& stop) {
  while (true) {
    absl::Time began = options_.clock->Now();
    bool bad_clients = false;
    absl::Status status = RunOnce(stop, &bad_clients);
    if (status.ok() || bad_clients || stop()) {
      if (status.ok()) return 0;
      Log(LogLevel::kError, kComponent, "stopped on error", {{"error", status.message()}});
      return bad_clients ? 2 : 1;
    }
    absl::Duration backoff = options_.backoff.AfterFailure(began, options_.clock->Now());
    Log(LogLevel::kError, kComponent, "restarting in-process after an error",
        {{"error", status.message()}, {"in_ms", absl::StrCat(absl::ToInt64Milliseconds(backoff))}});
    for (absl::Time until = options_.clock->Now() + backoff; options_.clock->Now() < until && !stop();) {
      options_.sleep(std::min(absl::Milliseconds(100), until - options_.clock->Now()));
    }
    if (stop()) return 0;
  }
}

}  // namespace agentfleet
