#include "service/service.h"

#include <cstdlib>
#include <iostream>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/synchronization/mutex.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/signals.h"
#include "kafka/topics.h"
#include "metrics/metrics.h"

ABSL_FLAG(std::string, config, "", "Fleet config YAML file (required)");
ABSL_FLAG(std::string, bootstrap, "", "Kafka bootstrap servers; overrides kafka.properties");
ABSL_FLAG(bool, dev_broker, false, "The bootstrap is the development broker (agentfleet broker)");
ABSL_FLAG(std::string, http_address, "",
          "HOST:PORT of /healthz, /readyz and /metrics (workers 0.0.0.0:9090, coordinators 0.0.0.0:9091; "
          "port 0: any free port; empty: off)");
ABSL_FLAG(absl::Duration, liveness_timeout, absl::Minutes(10),
          "/healthz fails once the main loop has not turned for this long (0: never; negative: refused); longer than the "
          "longest bounded wait a turn can hold: a restore's three reads of the state and audit logs, "
          "up to 2 min each");

namespace agentfleet {

FleetConfig StartService(int argc, char** argv, const char* usage, const std::string& default_http_address) {
  absl::SetProgramUsageMessage(usage);
  // Debian's Abseil is built with absl::Mutex deadlock detection on, which
  // records every lock in a graph: measurable on the hot paths (perf), no use
  // in production. The tests keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetFlag(&FLAGS_http_address, default_http_address);  // the command line overrides it
  absl::ParseCommandLine(argc, argv);
  if (absl::Duration bound = absl::GetFlag(FLAGS_liveness_timeout); bound < absl::ZeroDuration()) {
    std::cerr << "--liveness_timeout " << absl::FormatDuration(bound) << ": must be 0 (off) or positive\n";
    std::exit(2);
  }
  InstallShutdownHandlers();
  auto config = LoadProcessConfig(absl::GetFlag(FLAGS_config), absl::GetFlag(FLAGS_bootstrap),
                                  absl::GetFlag(FLAGS_dev_broker));
  if (!config.ok()) {
    std::cerr << config.status().message() << "\n";
    std::exit(2);
  }
  return *std::move(config);
}

std::string ReloadConfigIfAsked(FleetConfig* live) {
  if (!TakeReloadRequest()) return "";
  auto fresh = LoadProcessConfig(absl::GetFlag(FLAGS_config), absl::GetFlag(FLAGS_bootstrap),
                                 absl::GetFlag(FLAGS_dev_broker));
  if (!fresh.ok()) {
    Log(LogLevel::kError, "config", "reload refused; the running config stays",
        {{"file", absl::GetFlag(FLAGS_config)}, {"error", std::string(fresh.status().message())}});
    return "refused";
  }
  std::vector<std::string> later = ApplyLiveSections(*fresh, live);
  Log(LogLevel::kInfo, "config", "reloaded",
      {{"file", absl::GetFlag(FLAGS_config)},
       {"applied", "tenants, spend_limit"},
       {"restart_needed", later.empty() ? std::string("none") : absl::StrJoin(later, ", ")}});
  return "applied";
}

std::unique_ptr<LoopWatch> WatchMainLoop(const std::string& component, prometheus::Registry& registry) {
  return std::make_unique<LoopWatch>(registry, component, absl::GetFlag(FLAGS_liveness_timeout));
}

std::unique_ptr<HttpServer> ServeHttp(const std::string& component, std::function<absl::Status()> ready,
                                      std::shared_ptr<prometheus::Registry> registry, const LoopWatch* loop) {
  auto server = StartHealthServer(absl::GetFlag(FLAGS_http_address), component, std::move(ready),
                                  MetricsRoutes(std::move(registry)), [loop] { return loop->Alive(); });
  if (!server.ok()) {
    std::cerr << server.status().message() << "\n";
    std::exit(2);
  }
  return *std::move(server);
}

}  // namespace agentfleet
