// What every agentfleet service process (coordinator, worker) does before its
// own work: the shared flags (--config, --bootstrap, --dev_broker,
// --http_address), shutdown handlers, the validated config, and the HTTP
// endpoint (health probes, metrics). Keeps each main() to its own wiring.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "config/config.h"
#include "http/http_server.h"
#include "prometheus/registry.h"
#include "service/loop_watch.h"

namespace agentfleet {

// Parses the command line (the service's own flags too), installs the SIGTERM
// and SIGINT handlers, and loads the config named by --config with
// --bootstrap and --dev_broker applied. On a bad config it prints every
// problem (FILE:LINE:COL: field: message) and exits with status 2.
// `default_http_address` is --http_address's value when the flag is not given.
FleetConfig StartService(int argc, char** argv, const char* usage, const std::string& default_http_address);

// A config reload, if one was asked for (SIGHUP; InstallReloadHandler):
// re-reads --config with --bootstrap and --dev_broker applied as at start
// and copies its live sections (tenants, spend_limit) into *live, logging
// the other sections that changed (they take a restart). A config that does
// not load is refused, its problems logged (FILE:LINE:COL: field: message),
// and *live stays as it was. Returns "applied", "refused", or "" when no
// reload was asked for. Call on the thread that reads those sections.
std::string ReloadConfigIfAsked(FleetConfig* live);

// The watch on the process's main loop, bounded by --liveness_timeout, its
// metric in `registry`.
std::unique_ptr<LoopWatch> WatchMainLoop(const std::string& component, prometheus::Registry& registry);

// Serves /healthz (503 once `loop` finds the main loop stuck), /readyz and
// /metrics (the text exposition of `registry`) on --http_address (off when
// it is empty); `ready` runs on the server's threads. `loop` must outlive
// the server. Exits with status 2 if it cannot listen.
std::unique_ptr<HttpServer> ServeHttp(const std::string& component, std::function<absl::Status()> ready,
                                      std::shared_ptr<prometheus::Registry> registry, const LoopWatch* loop);

}  // namespace agentfleet
