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
#include "config/config.h"
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
  // For an agent with tools (HTTP providers): the tools, the model turns
  // that may call them, and the tokens every turn together may spend (0:
  // only max_tokens of one turn).
  const std::vector<ToolConfig>* tools = nullptr;
  int max_tool_turns = 0;
  int64_t max_total_tokens = 0;
  // Prompt-injection containment (set by the worker for a call that reads
  // untrusted text or has tools): the per-call random boundary untrusted
  // text is delimited with (tool answers too), and whether tool answers
  // pass the built-in detector first (a flagged one is withheld).
  std::string untrusted_nonce;
  bool screen_tool_results = false;
  // A random token in the system prompt that no output may contain.
  std::string canary;
  // Set: an embedding request (the semantic cache) for this text with
  // `model`, instead of a model call; the answer is ModelResponse::embedding.
  std::string embed_text;
  // Set: send it through the provider's batch API with these bounds (an
  // agent's `batch:`); providers without one call online.
  const BatchConfig* batch = nullptr;
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

// One tool call of a model's tool loop, as recorded in the result.
struct ToolCallRecord {
  std::string name;
  std::string arguments_sha256;
  std::string status;  // "ok", "http_404", "invalid_arguments", "unknown_tool", "timeout", ...
  absl::Duration latency;
  int64_t bytes = 0;
  int turn = 0;
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
  std::vector<ToolCallRecord> tool_calls;
  int turns = 1;  // model turns (a tool loop takes several)
  std::vector<float> embedding;  // an embedding request's answer
  bool batch = false;            // answered by a provider batch (the batch price)

  // A successful answer (tests, the simulated provider).
  static ModelResponse Ok(nlohmann::json output, int64_t input_tokens, int64_t output_tokens, std::string model,
                          absl::Duration latency = absl::ZeroDuration()) {
    ModelResponse r;
    r.ok = true;
    r.output = std::move(output);
    r.input_tokens = input_tokens;
    r.output_tokens = output_tokens;
    r.model = std::move(model);
    r.latency = latency;
    return r;
  }
};

// Thread-safe. Call() never blocks on the model: `done` runs later on a
// provider-owned thread, exactly once per call.
class ModelProvider {
 public:
  virtual ~ModelProvider() = default;
  virtual void Call(ModelRequest request, std::function<void(ModelResponse)> done) = 0;
  struct Pending {
    ModelRequest request;
    std::function<void(ModelResponse)> done;
  };
  // Call() for each, in order. A provider whose answers come from another
  // thread overrides it to hand the calls over at once: a worker starts a
  // poll's worth of calls with one wake-up of that thread, not one per call.
  virtual void CallAll(std::vector<Pending> calls) {
    for (Pending& c : calls) Call(std::move(c.request), std::move(c.done));
  }
};

}  // namespace agentfleet
