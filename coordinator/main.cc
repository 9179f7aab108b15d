// agentfleet-coordinator: parse flags, wire the real Kafka clients, run.
#include <unistd.h>

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/signals.h"
#include "config/config.h"
#include "coordinator/coordinator.h"
#include "kafka/topics.h"

ABSL_FLAG(std::string, config, "", "Fleet config YAML file (required)");
ABSL_FLAG(std::string, bootstrap, "", "Kafka bootstrap servers; overrides kafka.properties");
ABSL_FLAG(bool, dev_broker, false, "The bootstrap is the development broker (agentfleet broker)");

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
  if (config->kafka.create_topics) {
    absl::Status created = CreateTopics(ProducerProperties(config->kafka), FleetTopics(*config), absl::Seconds(30));
    if (!created.ok()) {
      Log(LogLevel::kError, "coordinator", "cannot create topics", {{"error", created.message()}});
      return 1;
    }
  }
  auto producer = NewProducer(ProducerProperties(config->kafka));
  auto consumer = NewConsumer(ConsumerProperties(config->kafka, config->coordinator.group_id));
  if (!producer.ok() || !consumer.ok()) {
    std::cerr << (producer.ok() ? consumer.status() : producer.status()).message() << "\n";
    return 2;
  }
  Coordinator coordinator(&*config, consumer->get(), producer->get(), SystemClock::Get());
  absl::Status status = coordinator.Start();
  Log(LogLevel::kInfo, "coordinator", "started", {{"pid", std::to_string(getpid())}});
  if (status.ok()) status = coordinator.Run([] { return ShutdownRequested(); });
  (*producer)->Flush(absl::Seconds(10)).IgnoreError();
  (*consumer)->Close();
  if (!status.ok()) {
    Log(LogLevel::kError, "coordinator", "stopped on error", {{"error", status.message()}});
    return 1;
  }
  Log(LogLevel::kInfo, "coordinator", "stopped");
  return 0;
}
