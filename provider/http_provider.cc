#include "provider/http_provider.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/digest.h"
#include "common/error_codes.h"
#include "provider/http_template.h"
#include "safety/injection.h"

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

void ParseOpenAi(const ModelRequest& request, const Json& body, ModelTurn* turn) {
  ModelResponse* r = &turn->response;
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
  if (request.tools != nullptr && message.contains("tool_calls") && message["tool_calls"].is_array() &&
      !message["tool_calls"].empty()) {
    turn->assistant = {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", Json::array()}};
    for (const Json& c : message["tool_calls"]) {
      if (!c.is_object() || !c.contains("function") || !c["function"].is_object()) continue;
      const Json& fn = c["function"];
      PendingToolCall call;
      call.id = c.contains("id") && c["id"].is_string() ? c["id"].get<std::string>() : "";
      call.name = fn.contains("name") && fn["name"].is_string() ? fn["name"].get<std::string>() : "";
      call.arguments_text = fn.contains("arguments") && fn["arguments"].is_string() ? fn["arguments"].get<std::string>() : "";
      call.arguments = Json::parse(call.arguments_text, nullptr, /*allow_exceptions=*/false);
      turn->assistant["tool_calls"].push_back(
          {{"id", call.id}, {"type", "function"}, {"function", {{"name", call.name}, {"arguments", call.arguments_text}}}});
      turn->calls.push_back(std::move(call));
    }
    if (!turn->calls.empty()) return;
    r->error = {kInvalidResponse, "choices[0].message.tool_calls holds no function call", true};
    return;
  }
  if (!message.contains("content") || !message["content"].is_string()) {
    r->error = {kInvalidResponse, "choices[0].message.content is not a string", true};
    return;
  }
  SetOutput(request, message["content"], r);
}

void ParseAnthropic(const ModelRequest& request, const Json& body, ModelTurn* turn) {
  ModelResponse* r = &turn->response;
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
    // value(key, "") would throw on a member that is not a string: a hostile answer must not.
    std::string type = block.contains("type") && block["type"].is_string() ? block["type"].get<std::string>() : "";
    bool answer = block.contains("name") && block["name"].is_string() && block["name"] == kAnthropicTool;
    if (request.output_schema_json != nullptr && type == "tool_use" && answer) {
      if (!block.contains("input") || !block["input"].is_object()) {
        r->error = {kSchemaViolation, "the model's tool call has no input object", true};
        return;
      }
      r->ok = true;
      r->output = block["input"];
      return;
    }
    if (request.tools != nullptr && type == "tool_use") {
      PendingToolCall call;
      call.id = block.contains("id") && block["id"].is_string() ? block["id"].get<std::string>() : "";
      call.name = block.contains("name") && block["name"].is_string() ? block["name"].get<std::string>() : "";
      call.arguments = block.contains("input") ? block["input"] : Json();
      call.arguments_text = call.arguments.dump();
      turn->calls.push_back(std::move(call));
      continue;
    }
    if (type == "text" && block.contains("text") && block["text"].is_string()) text += block["text"].get<std::string>();
  }
  if (!turn->calls.empty()) {
    turn->assistant = {{"role", "assistant"}, {"content", body["content"]}};
    return;
  }
  SetOutput(request, text, r);
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpProvider>> HttpProvider::Create(const ProviderConfig& config, HttpClient* client,
                                                                   Scheduler* scheduler) {
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
  return std::unique_ptr<HttpProvider>(new HttpProvider(config, std::move(key), client, scheduler));
}

struct HttpProvider::ToolLoop {
  ModelRequest request;
  std::function<void(ModelResponse)> done;
  Json messages;
  int turn = 0;
  int64_t input_tokens = 0, output_tokens = 0;
  absl::Time started, deadline;
  std::vector<ToolCallRecord> records;
  // The turn whose tool calls run, and their answers as they come.
  ModelTurn pending;
  std::vector<std::string> results;
  size_t outstanding = 0;
};

void HttpProvider::Call(ModelRequest request, std::function<void(ModelResponse)> done) {
  if (!request.embed_text.empty()) {
    HttpRequest http = BuildEmbeddingRequest(config_, api_key_, request);
    client_->Send(std::move(http), [this, request = std::move(request), done = std::move(done)](HttpResponse response) {
      done(ParseEmbeddingResponse(api_key_, request, response));
    });
    return;
  }
  if (request.batch != nullptr && scheduler_ != nullptr && (request.tools == nullptr || request.tools->empty())) {
    Enqueue(std::move(request), std::move(done));
    return;
  }
  if (request.tools == nullptr || request.tools->empty()) {
    HttpRequest http = BuildHttpRequest(config_, api_key_, request);
    client_->Send(std::move(http), [this, request = std::move(request), done = std::move(done)](HttpResponse response) {
      done(ParseHttpResponse(config_, api_key_, request, response));
    });
    return;
  }
  auto loop = std::make_shared<ToolLoop>();
  loop->started = absl::Now();
  loop->deadline = loop->started + request.timeout;
  loop->messages = InitialMessages(config_, request);
  loop->request = std::move(request);
  loop->done = std::move(done);
  Turn(loop);
}

void HttpProvider::Turn(std::shared_ptr<ToolLoop> loop) {
  ModelRequest& request = loop->request;
  HttpRequest http = BuildHttpRequest(config_, api_key_, request, &loop->messages);
  absl::Duration left = loop->deadline - absl::Now();
  if (left <= absl::ZeroDuration()) {
    return Finish(loop, Failure(kTimeout, absl::StrCat("the tool loop ran out of its ", absl::FormatDuration(request.timeout),
                                                       " after ", loop->turn, " turn(s)"), true));
  }
  // The next turn's worst case: every byte of the request a token, plus the
  // whole max_tokens. A turn that could pass the attempt's tokens is not made.
  int64_t worst = static_cast<int64_t>(http.body.size()) + request.max_tokens;
  int64_t spent = loop->input_tokens + loop->output_tokens;
  if (loop->turn > 0 && request.max_total_tokens > 0 && spent + worst > request.max_total_tokens) {
    return Finish(loop, Failure(kToolBudgetExceeded,
                                absl::StrCat("turn ", loop->turn + 1, " could take the attempt to ", spent + worst,
                                             " tokens, past its ", request.max_total_tokens, " (", spent, " spent in ",
                                             loop->turn, " turn(s))"),
                                false));
  }
  http.timeout = std::min(http.timeout, left);
  ++loop->turn;
  client_->Send(std::move(http), [this, loop](HttpResponse response) {
    ModelTurn turn = ParseModelTurn(config_, api_key_, loop->request, response);
    loop->input_tokens += turn.response.input_tokens;
    loop->output_tokens += turn.response.output_tokens;
    if (turn.calls.empty()) return Finish(loop, std::move(turn.response));
    if (loop->turn > loop->request.max_tool_turns) {
      return Finish(loop, Failure(kToolTurnsExceeded,
                                  absl::StrCat("the model still called tools after ", loop->request.max_tool_turns,
                                               " turn(s) (max_tool_turns)"),
                                  false));
    }
    RunTools(loop, std::move(turn));
  });
}

void HttpProvider::RunTools(std::shared_ptr<ToolLoop> loop, ModelTurn turn) {
  loop->pending = std::move(turn);
  loop->results.assign(loop->pending.calls.size(), "");
  loop->outstanding = loop->pending.calls.size();
  const int turn_number = loop->turn;
  for (size_t i = 0; i < loop->pending.calls.size(); ++i) {
    const PendingToolCall& call = loop->pending.calls[i];
    auto record = std::make_shared<ToolCallRecord>();
    record->name = call.name;
    record->arguments_sha256 = Sha256Hex(call.arguments_text);
    record->turn = turn_number;
    absl::Time started = absl::Now();
    auto answer = [this, loop, i, record, started](std::string status, std::string text) {
      // A tool's answer is untrusted: screened (a flagged one is withheld)
      // and delimited like any untrusted text of the call.
      if (status == "ok" && loop->request.screen_tool_results && DetectInjection(text).flagged) {
        status = "withheld";
        text = Json{{"error", "withheld: the tool's answer reads like instructions to the model"}}.dump();
      }
      if (!loop->request.untrusted_nonce.empty()) {
        text = DelimitUntrusted(loop->request.untrusted_nonce, "tool " + record->name, text);
      }
      record->status = std::move(status);
      record->latency = absl::Now() - started;
      record->bytes = static_cast<int64_t>(text.size());
      loop->results[i] = std::move(text);
      loop->records.push_back(*record);
      if (--loop->outstanding > 0) return;
      AppendToolTurn(config_, loop->pending, loop->results, &loop->messages);
      Turn(loop);
    };
    const ToolConfig* tool = nullptr;
    for (const ToolConfig& t : *loop->request.tools) {
      if (t.name == call.name) tool = &t;
    }
    if (tool == nullptr) {
      answer("unknown_tool", Json{{"error", absl::StrCat("there is no tool '", call.name, "'")}}.dump());
      continue;
    }
    absl::Status valid = call.arguments.is_object()
                             ? (tool->parameters_schema ? ValidateJson(*tool->parameters_schema, call.arguments)
                                                        : absl::OkStatus())
                             : absl::InvalidArgumentError("the arguments are not a JSON object");
    auto url = valid.ok() ? FillUrl(tool->url, call.arguments) : absl::StatusOr<std::string>(valid);
    if (!url.ok()) {
      answer("invalid_arguments", Json{{"error", absl::StrCat("invalid arguments: ", url.status().message())}}.dump());
      continue;
    }
    HttpRequest req;
    req.url = *url;
    req.method = tool->method;
    if (tool->method == "POST") {
      req.body = call.arguments.dump();
      req.headers.push_back("Content-Type: application/json");
    }
    for (const auto& [name, value] : tool->headers) req.headers.push_back(absl::StrCat(name, ": ", value));
    bool headers_ok = true;
    for (const auto& [name, value] : tool->secret_headers) {
      auto resolved = ResolveEnvRefs(value, absl::StrCat("tool ", tool->name, " header ", name));
      if (!resolved.ok()) {
        headers_ok = false;
        answer("misconfigured", Json{{"error", "the tool is not configured on this worker"}}.dump());
        break;
      }
      req.headers.push_back(absl::StrCat(name, ": ", *resolved));
    }
    if (!headers_ok) continue;
    req.timeout = std::max(absl::Milliseconds(1), std::min(tool->timeout, loop->deadline - absl::Now()));
    req.connect_timeout = std::min(req.connect_timeout, req.timeout);
    req.max_response_bytes = tool->max_response_bytes;
    client_->Send(std::move(req), [answer](HttpResponse resp) {
      using T = HttpResponse::Transport;
      switch (resp.transport) {
        case T::kOk:
          if (resp.status >= 200 && resp.status < 300) return answer("ok", std::move(resp.body));
          return answer(absl::StrCat("http_", resp.status),
                        Json{{"error", absl::StrCat("HTTP ", resp.status)}, {"body", Excerpt(resp.body)}}.dump());
        case T::kTimeout:
          return answer("timeout", Json{{"error", "the tool did not answer in time"}}.dump());
        case T::kTooLarge:
          return answer("too_large", Json{{"error", "the tool's answer was too large"}}.dump());
        default:
          return answer("connection_failed", Json{{"error", "the tool could not be reached"}}.dump());
      }
    });
  }
}

void HttpProvider::Finish(std::shared_ptr<ToolLoop> loop, ModelResponse response) {
  response.input_tokens = loop->input_tokens;
  response.output_tokens = loop->output_tokens;
  response.latency = absl::Now() - loop->started;
  response.model = loop->request.model;
  response.turns = loop->turn;
  response.tool_calls = std::move(loop->records);
  if (!response.ok) {
    response.output = nullptr;
    response.error.message = Redact(response.error.message, api_key_);
  }
  auto done = std::move(loop->done);
  done(std::move(response));
}

Json InitialMessages(const ProviderConfig& config, const ModelRequest& request) {
  std::string user = request.user_prompt.empty() ? request.input.dump() : request.user_prompt;
  Json messages = Json::array();
  if (config.type != Type::kAnthropic && !request.system_prompt.empty()) {
    messages.push_back({{"role", "system"}, {"content", request.system_prompt}});
  }
  messages.push_back({{"role", "user"}, {"content", user}});
  return messages;
}

HttpRequest BuildHttpRequest(const ProviderConfig& config, const std::string& api_key, const ModelRequest& request,
                             const Json* messages) {
  HttpRequest http;
  http.timeout = request.timeout;
  http.connect_timeout = std::min(config.connect_timeout, request.timeout);
  http.headers = ProviderHeaders(config, api_key);
  http.headers.push_back("Content-Type: application/json");
  Json body = {{"model", request.model}, {"max_tokens", request.max_tokens}};
  if (request.temperature) body["temperature"] = *request.temperature;
  body["messages"] = messages != nullptr ? *messages : InitialMessages(config, request);
  const bool tools = request.tools != nullptr && !request.tools->empty();
  if (config.type == Type::kAnthropic) {
    http.url = config.base_url + "/v1/messages";
    if (!request.system_prompt.empty()) body["system"] = request.system_prompt;
    Json wire_tools = Json::array();
    if (tools) {
      for (const ToolConfig& t : *request.tools) {
        wire_tools.push_back({{"name", t.name}, {"description", t.description}, {"input_schema", t.parameters}});
      }
    }
    if (request.output_schema_json != nullptr) {
      wire_tools.push_back({{"name", kAnthropicTool},
                            {"description", "Give your answer by calling this tool."},
                            {"input_schema", *request.output_schema_json}});
      // With tools of its own the model picks (one of them, or the answer).
      body["tool_choice"] = tools ? Json{{"type", "any"}} : Json{{"type", "tool"}, {"name", kAnthropicTool}};
    }
    if (!wire_tools.empty()) body["tools"] = std::move(wire_tools);
  } else {
    http.url = config.base_url + "/chat/completions";
    if (tools) {
      Json wire_tools = Json::array();
      for (const ToolConfig& t : *request.tools) {
        wire_tools.push_back({{"type", "function"},
                              {"function", {{"name", t.name}, {"description", t.description}, {"parameters", t.parameters}}}});
      }
      body["tools"] = std::move(wire_tools);
    }
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
  ModelTurn turn = ParseModelTurn(config, api_key, request, http);
  if (!turn.calls.empty()) {
    turn.response = Failure(kInvalidResponse, "the model called tools the request did not offer", true);
    turn.response.model = request.model;
  }
  return turn.response;
}

// The failure an HTTP answer is before its body is read: the transport's,
// or an error status. False for a 2xx answer.
static bool HttpFailure(const ModelRequest& request, const HttpResponse& http, ModelResponse* out) {
  ModelResponse& r = *out;
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
  if (http.transport != T::kOk) return true;
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
    return false;
  }
  return true;
}

std::vector<std::string> ProviderHeaders(const ProviderConfig& config, const std::string& api_key) {
  std::vector<std::string> headers;
  for (const auto& [name, value] : config.headers) headers.push_back(absl::StrCat(name, ": ", value));
  if (config.type == Type::kAnthropic) {
    if (!api_key.empty()) headers.push_back("x-api-key: " + api_key);
    headers.push_back("anthropic-version: " + config.anthropic_version);
  } else if (!api_key.empty()) {
    headers.push_back("Authorization: Bearer " + api_key);
  }
  return headers;
}

HttpRequest BuildEmbeddingRequest(const ProviderConfig& config, const std::string& api_key,
                                  const ModelRequest& request) {
  HttpRequest http;
  http.timeout = request.timeout;
  http.connect_timeout = std::min(config.connect_timeout, request.timeout);
  http.headers = ProviderHeaders(config, api_key);
  http.headers.push_back("Content-Type: application/json");
  http.url = config.base_url + "/embeddings";
  http.body = Json{{"model", request.model}, {"input", request.embed_text}, {"encoding_format", "float"}}.dump();
  return http;
}

ModelResponse ParseEmbeddingResponse(const std::string& api_key, const ModelRequest& request, const HttpResponse& http) {
  ModelResponse r;
  if (!HttpFailure(request, http, &r)) {
    Json body = Json::parse(http.body, nullptr, /*allow_exceptions=*/false);
    const Json* vector = nullptr;
    if (body.is_object() && body.contains("data") && body["data"].is_array() && !body["data"].empty() &&
        body["data"][0].is_object() && body["data"][0].contains("embedding")) {
      vector = &body["data"][0]["embedding"];
    }
    if (vector == nullptr || !vector->is_array() || vector->empty() || vector->size() > 65536) {
      r = Failure(kInvalidResponse, "the response has no data[0].embedding: " + Excerpt(http.body), true,
                  static_cast<int>(http.status));
    } else {
      r.ok = true;
      r.embedding.reserve(vector->size());
      for (const Json& x : *vector) {
        if (!x.is_number() || !std::isfinite(x.get<double>())) {
          r = Failure(kInvalidResponse, "data[0].embedding holds something other than finite numbers", true,
                      static_cast<int>(http.status));
          break;
        }
        r.embedding.push_back(x.get<float>());
      }
      r.input_tokens = TokenCount(body.value("usage", Json()), "prompt_tokens");
    }
  }
  r.model = request.model;
  r.latency = http.elapsed;
  if (!r.ok) {
    r.embedding.clear();
    r.error.message = Redact(r.error.message, api_key);
  }
  return r;
}

ModelTurn ParseModelTurn(const ProviderConfig& config, const std::string& api_key, const ModelRequest& request,
                         const HttpResponse& http) {
  ModelTurn turn;
  ModelResponse& r = turn.response;
  if (!HttpFailure(request, http, &r)) {
    int status = static_cast<int>(http.status);
    Json body = Json::parse(http.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object()) {
      r = Failure(kInvalidResponse, "the response body is not a JSON object: " + Excerpt(http.body), true, status);
    } else if (config.type == Type::kAnthropic) {
      ParseAnthropic(request, body, &turn);
    } else {
      ParseOpenAi(request, body, &turn);
    }
    r.error.http_status = r.ok ? 0 : status;
  }
  r.model = request.model;
  r.latency = http.elapsed;
  if (!turn.calls.empty()) {
    r.ok = false;
    r.error = ProviderError();
  }
  if (!r.ok) {
    r.output = nullptr;
    r.error.message = Redact(r.error.message, api_key);
  }
  return turn;
}

void AppendToolTurn(const ProviderConfig& config, const ModelTurn& turn, const std::vector<std::string>& results,
                    Json* messages) {
  messages->push_back(turn.assistant);
  if (config.type == Type::kAnthropic) {
    Json blocks = Json::array();
    for (size_t i = 0; i < turn.calls.size(); ++i) {
      blocks.push_back({{"type", "tool_result"}, {"tool_use_id", turn.calls[i].id}, {"content", results[i]}});
    }
    messages->push_back({{"role", "user"}, {"content", std::move(blocks)}});
    return;
  }
  for (size_t i = 0; i < turn.calls.size(); ++i) {
    messages->push_back({{"role", "tool"}, {"tool_call_id", turn.calls[i].id}, {"content", results[i]}});
  }
}

}  // namespace agentfleet
