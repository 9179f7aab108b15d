// agentfleet-coordinator: parse flags, wire the real Kafka clients, run.
#include <unistd.h>

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/signals.h"
#include "config/config.h"
#include "coordinator/coordinator.h"
#include "metrics/fleet_metrics.h"
#include "metrics/lag_monitor.h"
#include "tracing/otlp_exporter.h"
#include "service/service.h"
#include "kafka/topics.h"

ABSL_FLAG(std::string, instance, "",
          "Stable name of this replica (default: the hostname). A restart with the same name fences "
          "and aborts its predecessor's open transaction at once.");

int main(int argc, char** argv) {
  using namespace agentfleet;
  FleetConfig config = StartService(argc, argv, "Runs a coordinator replica: agentfleet-coordinator --config FILE",
                                    "0.0.0.0:9091");
  std::string instance = absl::GetFlag(FLAGS_instance);
  if (instance.empty()) {
    char host[256] = "coordinator";
    gethostname(host, sizeof host - 1);
    instance = host;
  }
  if (config.kafka.create_topics) {
    absl::Status created = CreateTopics(ProducerProperties(config.kafka), FleetTopics(config), absl::Seconds(30));
    if (!created.ok()) {
      Log(LogLevel::kError, "coordinator", "cannot create topics", {{"error", created.message()}});
      return 1;
    }
  }
  const CoordinatorConfig& cc = config.coordinator;
  bool exactly_once = cc.processing == CoordinatorConfig::Processing::kExactlyOnce;
  Properties producer_props = ProducerProperties(config.kafka);
  Properties consumer_props = ConsumerProperties(config.kafka, cc.group_id);
  if (exactly_once) {
    producer_props["transactional.id"] = absl::StrCat(cc.group_id, "-", instance);
    producer_props["transaction.timeout.ms"] = absl::StrCat(absl::ToInt64Milliseconds(cc.transaction_timeout));
    // Offsets are committed inside the transactions.
    consumer_props["enable.auto.commit"] = "false";
    consumer_props["isolation.level"] = "read_committed";
  }
  auto producer = NewProducer(producer_props);
  RebalanceRelay relay;
  auto consumer = NewConsumer(consumer_props, &relay);
  if (!producer.ok() || !consumer.ok()) {
    std::cerr << (producer.ok() ? consumer.status() : producer.status()).message() << "\n";
    return 2;
  }
  Topics topics(config.kafka.topic_prefix);
  Properties reader_props = ConsumerProperties(config.kafka, cc.group_id + "-restore");
  StateReader state_reader = [reader_props, topic = topics.state](const std::vector<int32_t>& partitions) {
    return ReadPartitionsToEnd(reader_props, topic, partitions, absl::Minutes(2));
  };
  Coordinator coordinator(&config, consumer->get(), producer->get(), SystemClock::Get(), state_reader);
  // Every replica reads the whole breakers and cache topics (assigned, never committed).
  Properties feed_props = ConsumerProperties(config.kafka, cc.group_id + "-shared");
  feed_props["enable.auto.commit"] = "false";
  if (exactly_once) feed_props["isolation.level"] = "read_committed";
  auto shared_feed = NewConsumer(feed_props);
  if (!shared_feed.ok()) {
    std::cerr << shared_feed.status().message() << "\n";
    return 2;
  }
  coordinator.ShareFleetState(shared_feed->get(), instance);
  auto registry = NewRegistry("coordinator");
  CoordinatorMetrics metrics(*registry);
  coordinator.SetMetrics(&metrics);
  auto tracer = OtlpExporter::Start(config.tracing, "agentfleet-coordinator");
  coordinator.SetTracer(tracer.get());
  // Lag of this group on its inputs and of every worker pool on the work topics.
  std::vector<LagTarget> lag_targets = {{cc.group_id, {topics.tasks, topics.events}}};
  for (const std::string& pool : config.worker.pools) {
    LagTarget target{WorkerGroup(config, pool), {}, /*only_consumed=*/config.worker.pools.size() > 1};
    for (const auto& [name, agent] : config.agents) target.topics.push_back(topics.Work(name));
    lag_targets.push_back(std::move(target));
  }
  LagMonitor lag(*registry, ProducerProperties(config.kafka), std::move(lag_targets));
  lag.Start(cc.lag_interval);
  relay.set_target(&coordinator);
  absl::Status status = coordinator.Start();
  Log(LogLevel::kInfo, "coordinator", "started",
      {{"pid", std::to_string(getpid())},
       {"instance", instance},
       {"processing", exactly_once ? "exactly_once" : "at_least_once"}});
  auto http = ServeHttp(
      "coordinator",
      [&]() -> absl::Status {
        if (ShutdownRequested()) return absl::UnavailableError("shutting down");
        if (!coordinator.joined()) return absl::UnavailableError("not in the consumer group yet");
        return (*consumer)->Ping(absl::Seconds(2));
      },
      registry);
  if (status.ok()) status = coordinator.Run([] { return ShutdownRequested(); });
  (*consumer)->Close();
  (*shared_feed)->Close();
  relay.set_target(nullptr);
  if (!status.ok()) {
    Log(LogLevel::kError, "coordinator", "stopped on error", {{"error", status.message()}});
    return 1;
  }
  Log(LogLevel::kInfo, "coordinator", "stopped");
  return 0;
}
