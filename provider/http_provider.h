// HttpProvider: calls a model over HTTP, many calls at once through one
// HttpClient. Two wire formats:
//
// - openai: OpenAI-compatible chat completions (POST {base_url}/chat/completions),
//   which also covers vLLM, Ollama, llama.cpp's server and a LiteLLM proxy.
//   The output schema is asked for with response_format (json_mode).
// - anthropic: the Messages API (POST {base_url}/v1/messages). The output
//   schema is asked for as a forced tool call whose input is the output.
//
// Either way: the system and user prompts come from the agent's templates,
// max_tokens from the item's cap, usage from the response. Misbehaviour
// becomes a structured ProviderError (common/error_codes.h), never an output:
// 429 rate_limited and 5xx provider_unavailable are retryable and carry the
// Retry-After; other 4xx are provider_rejected (not retryable); timeouts,
// resets, truncated or non-JSON bodies are retryable; an answer cut at
// max_tokens is max_tokens_exceeded. An agent without an output schema gets
// {"text": "..."}.
//
// The API key is read once at start from an environment variable or a
// mounted file; it is sent only in its header and removed from every error
// message.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "config/config.h"
#include "provider/http_client.h"
#include "provider/model_provider.h"

namespace agentfleet {

// Thread-safe, as every ModelProvider.
class HttpProvider : public ModelProvider {
 public:
  // Reads the API key; FailedPrecondition names the provider and the missing
  // variable or file. `client` must outlive the provider.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<HttpProvider>> Create(
      const ProviderConfig& config, HttpClient* client);

  void Call(ModelRequest request, std::function<void(ModelResponse)> done) override;

 private:
  HttpProvider(ProviderConfig config, std::string api_key, HttpClient* client)
      : config_(std::move(config)), api_key_(std::move(api_key)), client_(client) {}
  ProviderConfig config_;
  std::string api_key_;
  HttpClient* client_;
};

// The wire request for `request` (pure; exposed for tests).
HttpRequest BuildHttpRequest(const ProviderConfig& config, const std::string& api_key,
                             const ModelRequest& request);

// The model response for an HTTP outcome (pure; exposed for tests). `api_key`
// is removed from any message.
ModelResponse ParseHttpResponse(const ProviderConfig& config, const std::string& api_key,
                                const ModelRequest& request, const HttpResponse& http);

}  // namespace agentfleet
