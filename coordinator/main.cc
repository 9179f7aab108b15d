// agentfleet-coordinator: parse flags, wire metrics, tracing, lag and HTTP
// around a Replica (coordinator/replica.h), run it.
#include <unistd.h>

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/signals.h"
#include "config/config.h"
#include "coordinator/replica.h"
#include "metrics/capacity.h"
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
  std::vector<LagTarget> lag_targets = {{cc.group_id, {topics.tasks, topics.events, topics.signals}}};
  for (const std::string& pool : config.worker.pools) {
    LagTarget target{WorkerGroup(config, pool), {}, /*only_consumed=*/config.worker.pools.size() > 1};
    for (const auto& [name, agent] : config.agents) target.topics.push_back(topics.Work(name));
    lag_targets.push_back(std::move(target));
  }
  LagMonitor lag(*registry, ProducerProperties(config.kafka), std::move(lag_targets));
  // The capacity signal, from each lag read (metrics/capacity.h).
  lag.OnRefreshed([&config, &lag, &metrics] {
    FleetLoad load{[&lag](const std::string& g, const std::string& t, int64_t* n) { return lag.Latest(g, t, n); },
                   [&metrics](const std::string& a, double* s) { return metrics.MeanCallSeconds(a, s); },
                   [&metrics](const std::string& b) { return metrics.BreakerOpen(b); },
                   [&metrics](const std::string& a) { return metrics.WindowWaiting(a); }};
    for (const auto& [pool, estimate] : FleetCapacity(config, load)) metrics.Capacity(pool, estimate);
  });
  lag.Start(cc.lag_interval);
  // The last commit takes at most the Kafka timeout (30 s) when the broker
  // answers; past a minute it does not, and the transaction is left to abort.
  StartShutdownWatchdog(absl::Seconds(60));
  Log(LogLevel::kInfo, "coordinator", "started",
      {{"pid", std::to_string(getpid())},
       {"instance", instance},
       {"processing", exactly_once ? "exactly_once" : "at_least_once"}});
  Replica replica(&config, instance, KafkaReplicaClients(&config, instance));
  replica.SetMetrics(&metrics);
  replica.SetTracer(tracer.get());
  // SIGHUP: the spending limits and weights are read again (service.h).
  InstallReloadHandler();
  replica.SetReloader([&config] { return ReloadConfigIfAsked(&config); });
  std::unique_ptr<LoopWatch> loop = WatchMainLoop("coordinator", *registry);
  auto http = ServeHttp(
      "coordinator",
      [&]() -> absl::Status {
        if (ShutdownRequested()) return absl::UnavailableError("shutting down");
        return replica.Ready();
      },
      registry, loop.get());
  // The replica asks whether to stop once per turn of its loop, and every
  // 100 ms of a backoff between incarnations.
  int code = replica.Run([&loop] {
    loop->Turned();
    return ShutdownRequested();
  });
  if (code == 0) Log(LogLevel::kInfo, "coordinator", "stopped");
  return code;
}
