// agentfleet-worker: parse flags, wire Kafka clients and model providers, run.
#include <unistd.h>

#include <iostream>
#include <memory>
#include <set>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/signals.h"
#include "config/config.h"
#include "kafka/topics.h"
#include "metrics/fleet_metrics.h"
#include "tracing/otlp_exporter.h"
#include "provider/providers.h"
#include "service/service.h"
#include "worker/worker.h"

ABSL_FLAG(std::string, agents, "", "Comma-separated agents to serve (default: all in the config)");
ABSL_FLAG(std::string, pool, "default", "Worker pool name; the consumer group is <group_prefix>.<pool>");
ABSL_FLAG(int, max_in_flight, 0, "Items run at once (default: worker.max_in_flight from the config)");
ABSL_FLAG(std::string, id, "", "Worker id reported in events (default: hostname-pid)");

int main(int argc, char** argv) {
  using namespace agentfleet;
  FleetConfig config =
      StartService(argc, argv, "Runs a worker: agentfleet-worker --config FILE [--agents a,b]", "0.0.0.0:9090");
  WorkerOptions options;
  char host[256] = "worker";
  gethostname(host, sizeof host - 1);
  options.worker_id = absl::GetFlag(FLAGS_id).empty() ? absl::StrCat(host, "-", getpid()) : absl::GetFlag(FLAGS_id);
  options.heartbeat_interval = config.worker.heartbeat_interval;
  options.shutdown_grace = config.worker.shutdown_grace;
  options.receipt_delay = config.worker.receipt_delay;
  options.stall_after = config.worker.stall_after;
  options.max_in_flight = absl::GetFlag(FLAGS_max_in_flight) > 0 ? absl::GetFlag(FLAGS_max_in_flight)
                                                                  : config.worker.max_in_flight;
  if (absl::GetFlag(FLAGS_agents).empty()) {
    for (const auto& [name, agent] : config.agents) options.agents.push_back(name);
  } else {
    options.agents = absl::StrSplit(absl::GetFlag(FLAGS_agents), ',', absl::SkipEmpty());
  }
  auto providers = ProviderSet::Create(config, options.agents);
  if (!providers.ok()) {
    std::cerr << providers.status().message() << "\n";
    return 2;
  }
  RaiseOpenFileLimit();  // one socket per HTTP call in flight
  auto producer = NewProducer(ProducerProperties(config.kafka));
  if (!producer.ok()) {
    std::cerr << producer.status().message() << "\n";
    return 2;
  }
  RebalanceRelay relay;
  // One work topic per agent.
  size_t work_topics = std::set<std::string>(options.agents.begin(), options.agents.end()).size();
  auto made = NewConsumer(
      WorkerConsumerProperties(config.kafka, WorkerGroup(config, absl::GetFlag(FLAGS_pool)), work_topics), &relay);
  if (!made.ok()) {
    std::cerr << made.status().message() << "\n";
    return 2;
  }
  std::unique_ptr<Consumer> consumer = std::move(*made);
  auto worker = std::make_unique<Worker>(&config, consumer.get(), producer->get(), (*providers)->providers(), options);
  relay.set_target(worker.get());
  absl::Status status = worker->Start();
  if (!status.ok()) {
    std::cerr << status.message() << "\n";
    return 2;
  }
  auto registry = NewRegistry("worker");
  WorkerMetrics metrics(*registry);
  worker->SetMetrics(&metrics);
  auto tracer = OtlpExporter::Start(config.tracing, "agentfleet-worker");
  worker->SetTracer(tracer.get());
  std::unique_ptr<LoopWatch> loop = WatchMainLoop("worker", *registry);
  auto http = ServeHttp(
      "worker",
      [&]() -> absl::Status {
        if (!worker->ready()) return absl::UnavailableError("not in the consumer group yet, or draining");
        return consumer->Ping(absl::Seconds(2));
      },
      registry, loop.get());
  // The drain takes the grace period, then up to 30 s for the last
  // acknowledgements and 10 s to flush; past that the broker is not answering.
  StartShutdownWatchdog(options.shutdown_grace + absl::Seconds(45));
  Log(LogLevel::kInfo, "worker", "started", {{"worker", options.worker_id}});
  // The worker asks whether to stop once per turn of its loop.
  status = worker->Run([&loop] {
    loop->Turned();
    return ShutdownRequested();
  });
  providers->reset();  // calls still running are abandoned (already reported)
  worker->SetMetrics(nullptr);
  worker->SetTracer(nullptr);
  consumer->Close();   // leaves the group
  http.reset();
  relay.set_target(nullptr);
  if (!status.ok()) {
    Log(LogLevel::kError, "worker", "stopped on error", {{"error", status.message()}});
    return 1;
  }
  const WorkerStats& stats = worker->stats();
  Log(LogLevel::kInfo, "worker", "stopped",
      {{"started", absl::StrCat(stats.started.load())},
       {"succeeded", absl::StrCat(stats.succeeded.load())},
       {"failed", absl::StrCat(stats.failed.load())},
       {"abandoned", absl::StrCat(stats.abandoned.load())}});
  return 0;
}
