#include "metrics/metrics.h"

#include <sstream>

#include "prometheus/text_serializer.h"

namespace agentfleet {

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
}

std::shared_ptr<prometheus::Registry> NewRegistry(absl::string_view component) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildGauge()
      .Name("agentfleet_build_info")
      .Help("Always 1; the labels say which agentfleet build and component this is.")
      .Register(*registry)
      .Add({{"version", AGENTFLEET_VERSION}, {"component", std::string(component)}})
      .Set(1);
  return registry;
}

std::string Exposition(prometheus::Registry& registry) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  return out.str();
}

std::map<std::string, HttpHandler> MetricsRoutes(std::shared_ptr<prometheus::Registry> registry) {
  return {{"/metrics", [registry](const HttpServerRequest&) {
             return HttpReply{200, "text/plain; version=0.0.4; charset=utf-8", Exposition(*registry)};
           }}};
}

}  // namespace agentfleet
