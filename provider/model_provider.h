// The model-provider seam: how a worker calls a model. Implementations:
// SimulatedProvider (development, tests, benchmarks) and HttpProvider
// (OpenAI-compatible chat completions, Anthropic Messages).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "config/json_schema.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

struct ModelRequest {
  std::string agent;
  std::string model;
  nlohmann::json input;
  int max_tokens = 0;
  absl::Duration timeout = absl::Seconds(60);
  // Unique per attempt; providers that support it pass it on.
  std::string idempotency_key;
  // The agent's declared output schema, or null; and as written, for
  // providers that take a schema (null when there is none).
  const JsonSchema* output_schema = nullptr;
  const nlohmann::json* output_schema_json = nullptr;
  // The prompts, rendered from the agent's templates and the input.
  std::string system_prompt;
  std::string user_prompt;
  std::optional<double> temperature;
  // For an action: its effect id (the Idempotency-Key) and the attempt
  // number (from 1; a later attempt of a status-checked action asks first).
  std::string effect_id;
  int attempt = 1;
};

struct ProviderError {
  // "timeout", "provider_unavailable", "rate_limited", "max_tokens_exceeded",
  // "invalid_response", "schema_violation", ...
  std::string code;
  std::string message;
  bool retryable = false;
  absl::Duration retry_after = absl::ZeroDuration();  // the provider's ask
  int http_status = 0;
};

// What an action's attempt did (ActionProvider), for the result and the
// audit log: the request it made, or why it made none.
struct ActionOutcome {
  std::string method, host, path;
  std::string payload_sha256;  // of the body as sent; empty if none was sent
  std::string effect_id;
  // "applied", "rejected", "failed", "unknown", "refused", "not_sent", "confirmed".
  std::string outcome;
  int http_status = 0;
  int64_t bytes_sent = 0;
  std::string payload;  // recorded only when the action records payloads
  std::vector<std::string> violations;
};

struct ModelResponse {
  bool ok = false;
  nlohmann::json output;  // when ok
  ProviderError error;    // when !ok
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  std::string model;
  absl::Duration latency;
  std::optional<ActionOutcome> action;  // set by actions
};

// Thread-safe. Call() never blocks on the model: `done` runs later on a
// provider-owned thread, exactly once per call.
class ModelProvider {
 public:
  virtual ~ModelProvider() = default;
  virtual void Call(ModelRequest request, std::function<void(ModelResponse)> done) = 0;
};

}  // namespace agentfleet
