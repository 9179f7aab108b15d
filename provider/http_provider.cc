#include "provider/http_provider.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/log.h"
#include "common/error_codes.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;
using Type = ProviderConfig::Type;

// The tool an Anthropic model is made to call; its input is the output.
constexpr char kAnthropicTool[] = "respond";

std::string Redact(std::string text, const std::string& secret) {
  if (!secret.empty()) absl::StrReplaceAll({{secret, "[redacted]"}}, &text);
  return text;
}

// A short, printable excerpt of a body for an error message.
std::string Excerpt(const std::string& body) {
  std::string s = body.substr(0, 200);
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return body.size() > 200 ? s + "..." : s;
}

// The provider's own error message from an error body ({"error": {"message": ...}}).
std::string ErrorMessage(const std::string& body) {
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("error")) {
    const Json& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"];
    if (e.is_string()) return e;
  }
  return Excerpt(body);
}

int64_t TokenCount(const Json& usage, const char* key) {
  if (!usage.is_object() || !usage.contains(key) || !usage[key].is_number_integer()) return 0;
  return std::max<int64_t>(0, usage[key].get<int64_t>());
}

// Models sometimes wrap JSON in a Markdown fence although asked not to.
std::string StripFence(const std::string& text) {
  absl::string_view s = absl::StripAsciiWhitespace(text);
  if (!absl::StartsWith(s, "```") || !absl::EndsWith(s, "```") || s.size() < 6) return std::string(s);
  s.remove_suffix(3);
  s.remove_prefix(s.find('\n') == absl::string_view::npos ? 3 : s.find('\n') + 1);
  return std::string(absl::StripAsciiWhitespace(s));
}

ModelResponse Failure(const char* code, std::string message, bool retryable, int http_status = 0) {
  ModelResponse r;
  r.error = {code, std::move(message), retryable, absl::ZeroDuration(), http_status};
  return r;
}

// The model's text turned into the output object.
void SetOutput(const ModelRequest& request, const std::string& text, ModelResponse* r) {
  if (request.output_schema_json == nullptr) {
    r->ok = true;
    r->output = Json{{"text", text}};
    return;
  }
  Json out = Json::parse(StripFence(text), nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded()) {
    r->error = {kSchemaViolation, "the model's answer is not JSON: " + Excerpt(text), true};
    return;
  }
  r->ok = true;
  r->output = std::move(out);
}

void ParseOpenAi(const ModelRequest& request, const Json& body, ModelResponse* r) {
  r->input_tokens = TokenCount(body.value("usage", Json()), "prompt_tokens");
  r->output_tokens = TokenCount(body.value("usage", Json()), "completion_tokens");
  const Json* choices = body.contains("choices") ? &body["choices"] : nullptr;
  if (!choices || !choices->is_array() || choices->empty() || !(*choices)[0].is_object() ||
      !(*choices)[0].contains("message") || !(*choices)[0]["message"].is_object()) {
    r->error = {kInvalidResponse, "the response has no choices[0].message", true};
    return;
  }
  const Json& choice = (*choices)[0];
  const Json& message = choice["message"];
  if (choice.value("finish_reason", Json()) == "length") {
    r->error = {kMaxTokensExceeded, absl::StrCat("the answer was cut at max_tokens=", request.max_tokens), false};
    return;
  }
  if (message.contains("refusal") && message["refusal"].is_string()) {
    r->error = {kProviderRejected, "the model refused: " + Excerpt(message["refusal"]), false};
    return;
  }
  if (!message.contains("content") || !message["content"].is_string()) {
    r->error = {kInvalidResponse, "choices[0].message.content is not a string", true};
    return;
  }
  SetOutput(request, message["content"], r);
}

void ParseAnthropic(const ModelRequest& request, const Json& body, ModelResponse* r) {
  r->input_tokens = TokenCount(body.value("usage", Json()), "input_tokens");
  r->output_tokens = TokenCount(body.value("usage", Json()), "output_tokens");
  if (body.value("stop_reason", Json()) == "max_tokens") {
    r->error = {kMaxTokensExceeded, absl::StrCat("the answer was cut at max_tokens=", request.max_tokens), false};
    return;
  }
  if (!body.contains("content") || !body["content"].is_array()) {
    r->error = {kInvalidResponse, "the response has no content array", true};
    return;
  }
  std::string text;
  for (const Json& block : body["content"]) {
    if (!block.is_object()) continue;
    std::string type = block.value("type", "");
    if (request.output_schema_json != nullptr && type == "tool_use" && block.value("name", "") == kAnthropicTool) {
      if (!block.contains("input") || !block["input"].is_object()) {
        r->error = {kSchemaViolation, "the model's tool call has no input object", true};
        return;
      }
      r->ok = true;
      r->output = block["input"];
      return;
    }
    if (type == "text" && block.contains("text") && block["text"].is_string()) text += block["text"].get<std::string>();
  }
  SetOutput(request, text, r);
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpProvider>> HttpProvider::Create(const ProviderConfig& config, HttpClient* client) {
  std::string key;
  if (!config.api_key_env.empty()) {
    const char* v = std::getenv(config.api_key_env.c_str());
    if (v == nullptr || *v == '\0') {
      return absl::FailedPreconditionError(absl::StrCat("provider '", config.name, "': environment variable ",
                                                        config.api_key_env, " (api_key_env) is not set"));
    }
    key = v;
  } else if (!config.api_key_file.empty()) {
    std::ifstream in(config.api_key_file);
    if (!in) {
      return absl::FailedPreconditionError(absl::StrCat("provider '", config.name, "': cannot read api_key_file ",
                                                        config.api_key_file));
    }
    std::stringstream buf;
    buf << in.rdbuf();
    key = std::string(absl::StripAsciiWhitespace(buf.str()));
    if (key.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("provider '", config.name, "': api_key_file ",
                                                        config.api_key_file, " is empty"));
    }
  }
  RedactInLogs(key);
  return std::unique_ptr<HttpProvider>(new HttpProvider(config, std::move(key), client));
}

void HttpProvider::Call(ModelRequest request, std::function<void(ModelResponse)> done) {
  HttpRequest http = BuildHttpRequest(config_, api_key_, request);
  client_->Send(std::move(http), [this, request = std::move(request), done = std::move(done)](HttpResponse response) {
    done(ParseHttpResponse(config_, api_key_, request, response));
  });
}

HttpRequest BuildHttpRequest(const ProviderConfig& config, const std::string& api_key, const ModelRequest& request) {
  HttpRequest http;
  http.timeout = request.timeout;
  http.connect_timeout = std::min(config.connect_timeout, request.timeout);
  http.headers.push_back("Content-Type: application/json");
  for (const auto& [name, value] : config.headers) http.headers.push_back(absl::StrCat(name, ": ", value));
  std::string user = request.user_prompt.empty() ? request.input.dump() : request.user_prompt;
  Json body = {{"model", request.model}, {"max_tokens", request.max_tokens}};
  if (request.temperature) body["temperature"] = *request.temperature;
  if (config.type == Type::kAnthropic) {
    http.url = config.base_url + "/v1/messages";
    if (!api_key.empty()) http.headers.push_back("x-api-key: " + api_key);
    http.headers.push_back("anthropic-version: " + config.anthropic_version);
    if (!request.system_prompt.empty()) body["system"] = request.system_prompt;
    body["messages"] = Json::array({{{"role", "user"}, {"content", user}}});
    if (request.output_schema_json != nullptr) {
      body["tools"] = Json::array({{{"name", kAnthropicTool},
                                    {"description", "Give your answer by calling this tool."},
                                    {"input_schema", *request.output_schema_json}}});
      body["tool_choice"] = {{"type", "tool"}, {"name", kAnthropicTool}};
    }
  } else {
    http.url = config.base_url + "/chat/completions";
    if (!api_key.empty()) http.headers.push_back("Authorization: Bearer " + api_key);
    Json messages = Json::array();
    if (!request.system_prompt.empty()) messages.push_back({{"role", "system"}, {"content", request.system_prompt}});
    messages.push_back({{"role", "user"}, {"content", user}});
    body["messages"] = std::move(messages);
    if (request.output_schema_json != nullptr && config.json_mode == "json_schema") {
      body["response_format"] = {{"type", "json_schema"},
                                 {"json_schema", {{"name", request.agent}, {"schema", *request.output_schema_json}}}};
    } else if (request.output_schema_json != nullptr && config.json_mode == "json_object") {
      body["response_format"] = {{"type", "json_object"}};
    }
  }
  http.body = body.dump();
  return http;
}

ModelResponse ParseHttpResponse(const ProviderConfig& config, const std::string& api_key,
                                const ModelRequest& request, const HttpResponse& http) {
  ModelResponse r;
  using T = HttpResponse::Transport;
  switch (http.transport) {
    case T::kOk:
      break;
    case T::kTimeout:
      r = Failure(kTimeout, "no answer within " + absl::FormatDuration(request.timeout) + ": " + http.transport_error, true);
      break;
    case T::kConnectionFailed:
      r = Failure(kConnectionFailed, http.transport_error, true);
      break;
    case T::kTruncated:
      r = Failure(kTruncatedResponse, http.transport_error, true);
      break;
    case T::kTooLarge:
      r = Failure(kInvalidResponse, http.transport_error, true);
      break;
    case T::kOther:
      r = Failure(kConnectionFailed, http.transport_error, true);
      break;
  }
  if (http.transport == T::kOk) {
    int status = static_cast<int>(http.status);
    if (status == 429) {
      r = Failure(kRateLimited, absl::StrCat("HTTP 429: ", ErrorMessage(http.body)), true, status);
      r.error.retry_after = http.retry_after;
    } else if (status >= 500) {
      r = Failure(kProviderUnavailable, absl::StrCat("HTTP ", status, ": ", ErrorMessage(http.body)), true, status);
      r.error.retry_after = http.retry_after;
    } else if (status < 200 || status >= 300) {
      r = Failure(kProviderRejected, absl::StrCat("HTTP ", status, ": ", ErrorMessage(http.body)), false, status);
    } else {
      Json body = Json::parse(http.body, nullptr, /*allow_exceptions=*/false);
      if (!body.is_object()) {
        r = Failure(kInvalidResponse, "the response body is not a JSON object: " + Excerpt(http.body), true, status);
      } else if (config.type == Type::kAnthropic) {
        ParseAnthropic(request, body, &r);
      } else {
        ParseOpenAi(request, body, &r);
      }
      r.error.http_status = r.ok ? 0 : status;
    }
  }
  r.model = request.model;
  r.latency = http.elapsed;
  if (!r.ok) {
    r.output = nullptr;
    r.error.message = Redact(r.error.message, api_key);
  }
  return r;
}

}  // namespace agentfleet
