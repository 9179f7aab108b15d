// What a model may answer in a tool loop (issue 19), in both wire formats
// (OpenAI tool_calls, Anthropic tool_use): any body. ParseModelTurn must give
// an output, an error or tool calls — never crash — and the conversation it
// extends with the calls' answers must stay valid JSON; the API key never
// appears in an error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "provider/http_provider.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  using namespace agentfleet;
  static const char kKey[] = "sk-fuzz-0123456789";
  static const nlohmann::json kSchema = {{"type", "object"}};
  static const std::vector<ToolConfig> kTools = [] {
    ToolConfig t;
    t.name = "lookup";
    t.description = "d";
    t.parameters = {{"type", "object"}};
    t.url = "http://127.0.0.1:1/tool/{id}";
    return std::vector<ToolConfig>{t};
  }();
  ProviderConfig config;
  config.name = "fuzz";
  config.type = data[0] & 1 ? ProviderConfig::Type::kAnthropic : ProviderConfig::Type::kOpenAi;
  config.base_url = "http://127.0.0.1:1/v1";
  ModelRequest request;
  request.agent = "a";
  request.model = "m";
  request.max_tokens = 100;
  request.tools = &kTools;
  request.max_tool_turns = 4;
  if (data[0] & 2) request.output_schema_json = &kSchema;
  HttpResponse http;
  http.transport = HttpResponse::Transport::kOk;
  http.status = 200;
  http.body.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
  ModelTurn turn = ParseModelTurn(config, kKey, request, http);
  if (turn.calls.empty()) {
    if (!turn.response.ok && turn.response.error.message.find(kKey) != std::string::npos) __builtin_trap();
    return 0;
  }
  if (turn.response.ok) __builtin_trap();  // tool calls are not an answer
  nlohmann::json messages = InitialMessages(config, request);
  std::vector<std::string> results(turn.calls.size(), "{\"ok\":true}");
  AppendToolTurn(config, turn, results, &messages);
  // The next turn's request must serialize (no invalid UTF-8 thrown at dump()).
  HttpRequest next = BuildHttpRequest(config, kKey, request, &messages);
  if (next.body.empty()) __builtin_trap();
  return 0;
}
