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
//
// Tools (an agent's `tools:`, issue 19): the model may answer with tool calls
// (OpenAI `tool_calls`, Anthropic `tool_use` blocks) instead of its output.
// The provider runs each call as the tool's HTTP request on the same client
// (arguments checked against the tool's parameters first), gives the answers
// back (`tool` messages, `tool_result` blocks) and asks the model again, up
// to the agent's max_tool_turns, within the attempt's timeout, and never
// starting a turn whose worst case (its whole request, in bytes, as tokens,
// plus max_tokens) would take the attempt past max_total_tokens. Every call
// is recorded (name, arguments hash, status, latency, bytes).
//
// Batches (an agent's `batch:`, issue 20): a request with `batch` set waits
// with the other requests for its model until max_items are waiting or the
// first has waited max_wait, then they go together through the provider's
// batch API — OpenAI: the requests as a JSONL file (POST {base_url}/files,
// purpose batch), POST {base_url}/batches, polled at GET
// {base_url}/batches/ID, answers from the output file; Anthropic: POST
// {base_url}/v1/messages/batches, polled, answers from its results_url.
// Each answer is read as the online one would be, marked `batch` (priced at
// the batch discount). A request the batch does not answer (an error line,
// an expired or failed batch, a submission refused, polls failing past the
// provider's window) is called online, so every request is answered once.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/scheduler.h"
#include "config/config.h"
#include "provider/http_client.h"
#include "provider/model_provider.h"

namespace agentfleet {

// A tool call the model asked for.
struct PendingToolCall {
  std::string id;
  std::string name;
  std::string arguments_text;  // as the model wrote them (hashed for the record)
  nlohmann::json arguments;    // parsed; not an object when they do not parse as one
};

// One model turn: the answer (an output or an error) when `calls` is empty;
// otherwise the tools it asked for, and its message to send back with their
// answers.
struct ModelTurn {
  ModelResponse response;
  std::vector<PendingToolCall> calls;
  nlohmann::json assistant;
};

// Thread-safe, as every ModelProvider.
class HttpProvider : public ModelProvider {
 public:
  // Reads the API key; FailedPrecondition names the provider and the missing
  // variable or file. `client` (and `scheduler`, which times batches; null:
  // batched requests are called online) must outlive the provider.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<HttpProvider>> Create(
      const ProviderConfig& config, HttpClient* client, Scheduler* scheduler = nullptr);

  void Call(ModelRequest request, std::function<void(ModelResponse)> done) override;

  struct ToolLoop;  // one call's tool loop (internal)
  struct Batch;     // a batch being filled, sent or polled (internal)

 private:
  void Enqueue(ModelRequest request, std::function<void(ModelResponse)> done);
  void Flush(const std::shared_ptr<Batch>& batch);
  void Submit(std::shared_ptr<Batch> batch);
  void Created(std::shared_ptr<Batch> batch, const HttpResponse& response);
  void Poll(std::shared_ptr<Batch> batch);
  void Fetch(std::shared_ptr<Batch> batch, std::vector<std::string> urls, std::map<std::string, nlohmann::json> answers);
  // Answers every request of `batch`: from `answers` (by custom id), the rest online.
  void Settle(const std::shared_ptr<Batch>& batch, const std::map<std::string, nlohmann::json>& answers,
              const std::string& why);
  void SchedulePoll(std::shared_ptr<Batch> batch);
  HttpRequest Get(const std::string& url) const;
  void Turn(std::shared_ptr<ToolLoop> loop);
  void RunTools(std::shared_ptr<ToolLoop> loop, ModelTurn turn);
  void Finish(std::shared_ptr<ToolLoop> loop, ModelResponse response);
  HttpProvider(ProviderConfig config, std::string api_key, HttpClient* client, Scheduler* scheduler)
      : config_(std::move(config)), api_key_(std::move(api_key)), client_(client), scheduler_(scheduler) {}
  ProviderConfig config_;
  std::string api_key_;
  HttpClient* client_;
  Scheduler* scheduler_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Batch>> filling_ ABSL_GUARDED_BY(mu_);  // by model
};

// The wire request for `request` (pure; exposed for tests): its first turn,
// or, given `messages`, a later turn of its tool loop.
HttpRequest BuildHttpRequest(const ProviderConfig& config, const std::string& api_key,
                             const ModelRequest& request, const nlohmann::json* messages = nullptr);

// The conversation of the first turn, in the provider's wire format.
nlohmann::json InitialMessages(const ProviderConfig& config, const ModelRequest& request);

// The model turn for an HTTP outcome (pure; exposed for tests and the
// fuzzer). Tool calls are read only when `request` offers tools. `api_key`
// is removed from any message.
ModelTurn ParseModelTurn(const ProviderConfig& config, const std::string& api_key, const ModelRequest& request,
                         const HttpResponse& http);

// The provider's own headers: its configured ones and its API key (OpenAI:
// Authorization: Bearer; Anthropic: x-api-key and anthropic-version).
std::vector<std::string> ProviderHeaders(const ProviderConfig& config, const std::string& api_key);

// An embedding request (ModelRequest::embed_text), OpenAI-compatible:
// POST <base_url>/embeddings {model, input}; and its answer, data[0].embedding
// (finite numbers) with usage.prompt_tokens. Pure; exposed for tests.
HttpRequest BuildEmbeddingRequest(const ProviderConfig& config, const std::string& api_key,
                                  const ModelRequest& request);
ModelResponse ParseEmbeddingResponse(const std::string& api_key, const ModelRequest& request, const HttpResponse& http);

// The answers in a batch's results file (JSONL), by custom id: OpenAI's
// output lines with status 200, Anthropic's "succeeded" results; errors,
// expired and malformed lines give none (their requests go online). Pure.
std::map<std::string, nlohmann::json> ParseBatchResults(ProviderConfig::Type type, absl::string_view body);

// ParseModelTurn's answer, for a request without tools.
ModelResponse ParseHttpResponse(const ProviderConfig& config, const std::string& api_key,
                                const ModelRequest& request, const HttpResponse& http);

// Appends the model's tool-calling message and the tools' answers
// (`results[i]` for `turn.calls[i]`) to `messages`.
void AppendToolTurn(const ProviderConfig& config, const ModelTurn& turn, const std::vector<std::string>& results,
                    nlohmann::json* messages);

}  // namespace agentfleet
