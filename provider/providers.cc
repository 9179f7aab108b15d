#include "provider/providers.h"

#include "absl/strings/str_cat.h"
#include "provider/action_provider.h"
#include "common/log.h"
#include "provider/http_provider.h"
#include "provider/http_template.h"
#include "provider/simulated_provider.h"

namespace agentfleet {
namespace {

// One client for every HTTP provider and action of the worker.
HttpClient::Options HttpOptions(const FleetConfig& config) {
  HttpClient::Options options;
  for (const auto& [_, other] : config.providers) {
    if (other.is_http() && other.max_connections > 0) {
      options.max_host_connections = std::max(options.max_host_connections, other.max_connections);
    }
  }
  return options;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ProviderSet>> ProviderSet::Create(const FleetConfig& config,
                                                                 const std::vector<std::string>& agents) {
  std::unique_ptr<ProviderSet> set(new ProviderSet());
  for (const std::string& name : agents) {
    const AgentConfig* agent = config.FindAgent(name);
    if (agent == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown agent '", name, "'"));
    // A tool's secret headers must resolve here, at start, not at its first call.
    for (const ToolConfig& tool : agent->tools) {
      for (const auto& [header, value] : tool.secret_headers) {
        auto resolved = ResolveEnvRefs(value, absl::StrCat("agents.", name, ".tools.", tool.name, ".secret_headers.", header));
        if (!resolved.ok()) return resolved.status();
        RedactInLogs(*resolved);
      }
    }
    // The semantic cache's embedding provider, beside the agent's own.
    if (agent->semantic_cache && set->providers_.count(agent->semantic_cache->provider) == 0) {
      absl::Status s = set->Add(config, config.providers.at(agent->semantic_cache->provider));
      if (!s.ok()) return s;
    }
    if (set->providers_.count(agent->provider)) continue;
    if (agent->action) {
      if (!set->http_) set->http_ = std::make_unique<HttpClient>(HttpOptions(config));
      auto actions = ActionProvider::Create(&config, set->http_.get());
      if (!actions.ok()) return actions.status();
      set->providers_[kActionProvider] = std::move(*actions);
      continue;
    }
    absl::Status s = set->Add(config, config.providers.at(agent->provider));
    if (!s.ok()) return s;
  }
  return set;
}

absl::Status ProviderSet::Add(const FleetConfig& config, const ProviderConfig& p) {
  if (!p.is_http()) {
    if (!scheduler_) scheduler_ = std::make_unique<ThreadScheduler>();
    providers_[p.name] = std::make_unique<SimulatedProvider>(p, scheduler_.get());
    return absl::OkStatus();
  }
  if (!http_) http_ = std::make_unique<HttpClient>(HttpOptions(config));
  // Batches are timed on the scheduler (filling, polling).
  if (!scheduler_) scheduler_ = std::make_unique<ThreadScheduler>();
  auto provider = HttpProvider::Create(p, http_.get(), scheduler_.get());
  if (!provider.ok()) return provider.status();
  providers_[p.name] = std::move(*provider);
  return absl::OkStatus();
}

ProviderSet::~ProviderSet() {
  // Stop the drivers first, so no callback runs into a destroyed provider.
  http_.reset();
  scheduler_.reset();
  providers_.clear();
}

std::map<std::string, ModelProvider*> ProviderSet::providers() const {
  std::map<std::string, ModelProvider*> out;
  for (const auto& [name, p] : providers_) out[name] = p.get();
  return out;
}

}  // namespace agentfleet
