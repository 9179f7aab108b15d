// agentfleet-coordinator: parse flags, wire the real Kafka clients, run.
#include <unistd.h>

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/signals.h"
#include "config/config.h"
#include "coordinator/coordinator.h"
#include "http/http_server.h"
#include "kafka/topics.h"

ABSL_FLAG(std::string, config, "", "Fleet config YAML file (required)");
ABSL_FLAG(std::string, bootstrap, "", "Kafka bootstrap servers; overrides kafka.properties");
ABSL_FLAG(bool, dev_broker, false, "The bootstrap is the development broker (agentfleet broker)");
ABSL_FLAG(std::string, http_address, "0.0.0.0:9091",
          "HOST:PORT of /healthz and /readyz (port 0: any free port; empty: off)");
ABSL_FLAG(std::string, instance, "",
          "Stable name of this replica (default: the hostname). A restart with the same name fences "
          "and aborts its predecessor's open transaction at once.");

int main(int argc, char** argv) {
  using namespace agentfleet;
  absl::SetProgramUsageMessage("Runs a coordinator replica: agentfleet-coordinator --config FILE");
  absl::ParseCommandLine(argc, argv);
  InstallShutdownHandlers();
  auto config = LoadProcessConfig(absl::GetFlag(FLAGS_config), absl::GetFlag(FLAGS_bootstrap),
                                  absl::GetFlag(FLAGS_dev_broker));
  if (!config.ok()) {
    std::cerr << config.status().message() << "\n";
    return 2;
  }
  std::string instance = absl::GetFlag(FLAGS_instance);
  if (instance.empty()) {
    char host[256] = "coordinator";
    gethostname(host, sizeof host - 1);
    instance = host;
  }
  if (config->kafka.create_topics) {
    absl::Status created = CreateTopics(ProducerProperties(config->kafka), FleetTopics(*config), absl::Seconds(30));
    if (!created.ok()) {
      Log(LogLevel::kError, "coordinator", "cannot create topics", {{"error", created.message()}});
      return 1;
    }
  }
  const CoordinatorConfig& cc = config->coordinator;
  bool exactly_once = cc.processing == CoordinatorConfig::Processing::kExactlyOnce;
  Properties producer_props = ProducerProperties(config->kafka);
  Properties consumer_props = ConsumerProperties(config->kafka, cc.group_id);
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
  Topics topics(config->kafka.topic_prefix);
  Properties reader_props = ConsumerProperties(config->kafka, cc.group_id + "-restore");
  StateReader state_reader = [reader_props, topic = topics.state](const std::vector<int32_t>& partitions) {
    return ReadPartitionsToEnd(reader_props, topic, partitions, absl::Minutes(2));
  };
  Coordinator coordinator(&*config, consumer->get(), producer->get(), SystemClock::Get(), state_reader);
  relay.set_target(&coordinator);
  absl::Status status = coordinator.Start();
  Log(LogLevel::kInfo, "coordinator", "started",
      {{"pid", std::to_string(getpid())},
       {"instance", instance},
       {"processing", exactly_once ? "exactly_once" : "at_least_once"}});
  auto http = StartHealthServer(absl::GetFlag(FLAGS_http_address), "coordinator", [&]() -> absl::Status {
    if (ShutdownRequested()) return absl::UnavailableError("shutting down");
    if (!coordinator.joined()) return absl::UnavailableError("not in the consumer group yet");
    return (*consumer)->Ping(absl::Seconds(2));
  });
  if (!http.ok()) status = http.status();
  if (status.ok()) status = coordinator.Run([] { return ShutdownRequested(); });
  (*consumer)->Close();
  relay.set_target(nullptr);
  if (!status.ok()) {
    Log(LogLevel::kError, "coordinator", "stopped on error", {{"error", status.message()}});
    return 1;
  }
  Log(LogLevel::kInfo, "coordinator", "stopped");
  return 0;
}
