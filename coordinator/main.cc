// agentfleet-coordinator: parse flags, wire the real Kafka clients, run.
#include <unistd.h>

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
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
  Topics topics(config.kafka.topic_prefix);
  // What outlives an in-process restart: metrics, tracing, lag, HTTP.
  auto registry = NewRegistry("coordinator");
  CoordinatorMetrics metrics(*registry);
  auto tracer = OtlpExporter::Start(config.tracing, "agentfleet-coordinator");
  // Lag of this group on its inputs and of every worker pool on the work topics.
  std::vector<LagTarget> lag_targets = {{cc.group_id, {topics.tasks, topics.events}}};
  for (const std::string& pool : config.worker.pools) {
    LagTarget target{WorkerGroup(config, pool), {}, /*only_consumed=*/config.worker.pools.size() > 1};
    for (const auto& [name, agent] : config.agents) target.topics.push_back(topics.Work(name));
    lag_targets.push_back(std::move(target));
  }
  LagMonitor lag(*registry, ProducerProperties(config.kafka), std::move(lag_targets));
  lag.Start(cc.lag_interval);
  // The last commit takes at most the Kafka timeout (30 s) when the broker
  // answers; past a minute it does not, and the transaction is left to abort.
  StartShutdownWatchdog(absl::Seconds(60));
  Log(LogLevel::kInfo, "coordinator", "started",
      {{"pid", std::to_string(getpid())},
       {"instance", instance},
       {"processing", exactly_once ? "exactly_once" : "at_least_once"}});
  // The current incarnation, for the readiness probe (none between them).
  absl::Mutex live_mu;
  Coordinator* live = nullptr;
  Consumer* live_consumer = nullptr;
  auto http = ServeHttp(
      "coordinator",
      [&]() -> absl::Status {
        if (ShutdownRequested()) return absl::UnavailableError("shutting down");
        absl::MutexLock lock(&live_mu);
        if (live == nullptr || !live->joined()) return absl::UnavailableError("not in the consumer group yet");
        return live_consumer->Ping(absl::Seconds(2));
      },
      registry);

  // One incarnation: fresh Kafka clients and a fresh coordinator, run until
  // shutdown or an error. Exit code 2 for bad client settings.
  auto run = [&]() -> std::pair<absl::Status, int> {
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
    // Every replica reads the whole breakers and cache topics (assigned, never committed).
    Properties feed_props = ConsumerProperties(config.kafka, cc.group_id + "-shared");
    feed_props["enable.auto.commit"] = "false";
    if (exactly_once) feed_props["isolation.level"] = "read_committed";
    auto shared_feed = NewConsumer(feed_props);
    for (const absl::Status& s : {producer.status(), consumer.status(), shared_feed.status()}) {
      if (!s.ok()) return {s, 2};
    }
    Properties reader_props = ConsumerProperties(config.kafka, cc.group_id + "-restore");
    StateReader state_reader = [reader_props, topic = topics.state](const std::vector<int32_t>& partitions) {
      return ReadPartitionsToEnd(reader_props, topic, partitions, absl::Minutes(2));
    };
    Coordinator coordinator(&config, consumer->get(), producer->get(), SystemClock::Get(), state_reader);
    coordinator.ShareFleetState(shared_feed->get(), instance);
    coordinator.SetMetrics(&metrics);
    coordinator.SetTracer(tracer.get());
    relay.set_target(&coordinator);
    {
      absl::MutexLock lock(&live_mu);
      live = &coordinator;
      live_consumer = consumer->get();
    }
    absl::Status status = coordinator.Start();
    if (status.ok()) status = coordinator.Run([] { return ShutdownRequested(); });
    {
      absl::MutexLock lock(&live_mu);
      live = nullptr;
      live_consumer = nullptr;
    }
    (*consumer)->Close();
    (*shared_feed)->Close();
    relay.set_target(nullptr);
    return {status, 1};
  };

  // A failure the coordinator cannot go back from in-process (a fatal
  // producer error after a broker restart, a fenced transaction, a failed
  // delivery) restarts it here with fresh clients: the state is in Kafka, so
  // this is what a pod restart would do, minus the pod's backoff. Delays
  // double from 1 s to 30 s while incarnations keep failing quickly.
  absl::Duration backoff = absl::Seconds(1);
  while (true) {
    absl::Time began = absl::Now();
    auto [status, code] = run();
    if (status.ok() || ShutdownRequested() || code == 2) {
      if (!status.ok()) {
        Log(LogLevel::kError, "coordinator", "stopped on error", {{"error", status.message()}});
        return code;
      }
      break;
    }
    if (absl::Now() - began > absl::Minutes(1)) backoff = absl::Seconds(1);
    Log(LogLevel::kError, "coordinator", "restarting in-process after an error",
        {{"error", status.message()}, {"in_ms", absl::StrCat(absl::ToInt64Milliseconds(backoff))}});
    for (absl::Time until = absl::Now() + backoff; absl::Now() < until && !ShutdownRequested();) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    if (ShutdownRequested()) break;
    backoff = std::min(2 * backoff, absl::Seconds(30));
  }
  Log(LogLevel::kInfo, "coordinator", "stopped");
  return 0;
}
