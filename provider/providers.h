// ProviderSet: the providers a process needs, built from the config and
// owned together with what drives them (one HttpClient shared by every HTTP
// provider, one scheduler for the simulated ones).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/scheduler.h"
#include "config/config.h"
#include "provider/http_client.h"
#include "provider/model_provider.h"

namespace agentfleet {

// Thread-compatible: made and destroyed on one thread; its providers are
// thread-safe (ModelProvider).
class ProviderSet {
 public:
  // The providers `agents` use (each must exist in `config`). Fails, naming
  // the provider, when an API key is missing.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ProviderSet>> Create(
      const FleetConfig& config, const std::vector<std::string>& agents);
  // Abandons calls still in flight: their callbacks do not run.
  ~ProviderSet();

  // Provider name -> provider; valid while this set lives.
  std::map<std::string, ModelProvider*> providers() const;
  // HTTP calls in flight.
  size_t http_in_flight() const { return http_ ? http_->in_flight() : 0; }

 private:
  ProviderSet() = default;
  // Makes provider `p` (simulated or HTTP).
  absl::Status Add(const FleetConfig& config, const ProviderConfig& p);
  std::unique_ptr<ThreadScheduler> scheduler_;
  std::unique_ptr<HttpClient> http_;
  std::map<std::string, std::unique_ptr<ModelProvider>> providers_;
};

}  // namespace agentfleet
