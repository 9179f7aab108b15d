// What a model provider (OpenAI-compatible or Anthropic) may answer: any
// status and body. The worker must turn it into an output or an error; the
// API key never appears in an error message. The same body as an embeddings
// answer (a vector or an error) and as a batch's results file (answers by
// custom id, never a crash).
#include <cstddef>
#include <cstdint>
#include <string>

#include "provider/http_provider.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  using namespace agentfleet;
  static const char kKey[] = "sk-fuzz-0123456789";
  ProviderConfig config;
  config.name = "fuzz";
  config.type = data[0] & 1 ? ProviderConfig::Type::kAnthropic : ProviderConfig::Type::kOpenAi;
  config.base_url = "http://127.0.0.1:1/v1";
  ModelRequest request;
  request.agent = "a";
  request.model = "m";
  request.max_tokens = 100;
  HttpResponse http;
  http.transport = HttpResponse::Transport::kOk;
  static const long kStatuses[] = {200, 200, 200, 400, 401, 408, 429, 500, 503, 529};
  http.status = kStatuses[data[1] % 10];
  http.body.assign(reinterpret_cast<const char*>(data) + 2, size - 2);
  ModelResponse r = ParseHttpResponse(config, kKey, request, http);
  if (!r.ok && r.error.message.find(kKey) != std::string::npos) __builtin_trap();
  // The same body as an embeddings answer, and as a batch's results file.
  request.embed_text = "text";
  ModelResponse e = ParseEmbeddingResponse(kKey, request, http);
  if (e.ok == e.embedding.empty()) __builtin_trap();  // a vector exactly when ok
  if (!e.ok && e.error.message.find(kKey) != std::string::npos) __builtin_trap();
  for (const auto& [id, answer] : ParseBatchResults(config.type, http.body)) {
    if (id.empty() || !answer.is_object()) __builtin_trap();
  }
  return 0;
}
