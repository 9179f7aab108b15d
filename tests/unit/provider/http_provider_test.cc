// The HTTP providers' wire formats, as pure functions. The same code is
// exercised against a real local server in tests/integration/provider_test.cc.
#include "provider/http_provider.h"

#include "common/error_codes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

ProviderConfig Provider(ProviderConfig::Type type) {
  ProviderConfig p;
  p.name = "p";
  p.type = type;
  p.base_url = "http://127.0.0.1:1/v1";
  p.headers = {{"X-Team", "support"}};
  return p;
}

const Json kSchema = {{"type", "object"}, {"required", {"x"}}, {"properties", {{"x", {{"type", "integer"}}}}}};

ModelRequest Request() {
  ModelRequest r;
  r.agent = "classifier";
  r.model = "m-large";
  r.input = {{"q", "why"}};
  r.max_tokens = 123;
  r.timeout = absl::Seconds(7);
  r.output_schema_json = &kSchema;
  r.system_prompt = "be brief";
  r.user_prompt = "Q: why";
  r.temperature = 0.0;
  return r;
}

TEST(HttpProviderTest, OpenAiRequestCarriesPromptsCapSchemaAndKey) {
  HttpRequest http = BuildHttpRequest(Provider(ProviderConfig::Type::kOpenAi), "sk-1", Request());
  EXPECT_EQ(http.url, "http://127.0.0.1:1/v1/chat/completions");
  EXPECT_THAT(http.headers, Contains("Authorization: Bearer sk-1"));
  EXPECT_THAT(http.headers, Contains("X-Team: support"));
  EXPECT_EQ(http.timeout, absl::Seconds(7));
  Json body = Json::parse(http.body);
  EXPECT_EQ(body["model"], "m-large");
  EXPECT_EQ(body["max_tokens"], 123);
  EXPECT_EQ(body["temperature"], 0.0);
  EXPECT_EQ(body["messages"], Json::parse(R"([{"role":"system","content":"be brief"},{"role":"user","content":"Q: why"}])"));
  EXPECT_EQ(body["response_format"]["type"], "json_schema");
  EXPECT_EQ(body["response_format"]["json_schema"]["schema"], kSchema);
}

TEST(HttpProviderTest, AnthropicRequestForcesTheResponseTool) {
  HttpRequest http = BuildHttpRequest(Provider(ProviderConfig::Type::kAnthropic), "sk-2", Request());
  EXPECT_EQ(http.url, "http://127.0.0.1:1/v1/v1/messages");
  EXPECT_THAT(http.headers, Contains("x-api-key: sk-2"));
  EXPECT_THAT(http.headers, Contains("anthropic-version: 2023-06-01"));
  Json body = Json::parse(http.body);
  EXPECT_EQ(body["system"], "be brief");
  EXPECT_EQ(body["messages"][0]["content"], "Q: why");
  EXPECT_EQ(body["tools"][0]["input_schema"], kSchema);
  EXPECT_EQ(body["tool_choice"]["name"], body["tools"][0]["name"]);
}

TEST(HttpProviderTest, WithoutAUserPromptTheInputIsSentAsJsonAndNoKeyMeansNoHeader) {
  ModelRequest r = Request();
  r.user_prompt.clear();
  HttpRequest http = BuildHttpRequest(Provider(ProviderConfig::Type::kOpenAi), "", r);
  EXPECT_EQ(Json::parse(http.body)["messages"][1]["content"], R"({"q":"why"})");
  for (const auto& h : http.headers) EXPECT_THAT(h, Not(HasSubstr("Authorization")));
}

TEST(HttpProviderTest, TheKeyIsRedactedFromErrors) {
  HttpResponse http;
  http.transport = HttpResponse::Transport::kOk;
  http.status = 401;
  http.body = R"({"error": {"message": "Incorrect API key provided: sk-secret-123"}})";
  ModelResponse r = ParseHttpResponse(Provider(ProviderConfig::Type::kOpenAi), "sk-secret-123", Request(), http);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.code, kProviderRejected);
  EXPECT_FALSE(r.error.retryable);
  EXPECT_EQ(r.error.http_status, 401);
  EXPECT_THAT(r.error.message, HasSubstr("[redacted]"));
  EXPECT_THAT(r.error.message, Not(HasSubstr("sk-secret-123")));
}

TEST(HttpProviderTest, FencedJsonIsAcceptedAndAgentsWithoutSchemaGetText) {
  HttpResponse http;
  http.transport = HttpResponse::Transport::kOk;
  http.status = 200;
  http.body = R"({"choices":[{"message":{"content":"```json\n{\"x\": 4}\n```"},"finish_reason":"stop"}],
                  "usage":{"prompt_tokens":11,"completion_tokens":5}})";
  ModelResponse r = ParseHttpResponse(Provider(ProviderConfig::Type::kOpenAi), "", Request(), http);
  ASSERT_TRUE(r.ok) << r.error.message;
  EXPECT_EQ(r.output, Json({{"x", 4}}));
  EXPECT_EQ(r.input_tokens, 11);
  EXPECT_EQ(r.output_tokens, 5);
  EXPECT_EQ(r.model, "m-large");
  ModelRequest plain = Request();
  plain.output_schema_json = nullptr;
  r = ParseHttpResponse(Provider(ProviderConfig::Type::kOpenAi), "", plain, http);
  ASSERT_TRUE(r.ok);
  EXPECT_TRUE(r.output["text"].is_string());
}

TEST(HttpProviderTest, MissingApiKeyVariableFailsAtStartNamingIt) {
  ProviderConfig p = Provider(ProviderConfig::Type::kAnthropic);
  p.api_key_env = "AGENTFLEET_TEST_SURELY_UNSET_KEY";
  HttpClient client;
  auto provider = HttpProvider::Create(p, &client);
  ASSERT_FALSE(provider.ok());
  EXPECT_THAT(provider.status().message(), HasSubstr("AGENTFLEET_TEST_SURELY_UNSET_KEY"));
  p.api_key_env.clear();
  p.api_key_file = "/nonexistent/key";
  EXPECT_THAT(HttpProvider::Create(p, &client).status().message(), HasSubstr("cannot read api_key_file /nonexistent/key"));
}


TEST(HttpProviderTest, ToolCallsOfBothWireFormatsAreReadOnlyWhenToolsWereOffered) {
  ToolConfig t;
  t.name = "lookup";
  t.description = "Looks it up.";
  t.parameters = {{"type", "object"}};
  std::vector<ToolConfig> tools = {t};
  ModelRequest r = Request();
  r.tools = &tools;
  HttpResponse http;
  http.transport = HttpResponse::Transport::kOk;
  http.status = 200;
  http.body = R"({"choices": [{"finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
    "tool_calls": [7, {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\": 3}"}},
                   {"id": "c2", "type": "function", "function": {"name": "lookup", "arguments": "not json"}}]}}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 4}})";
  ModelTurn openai = ParseModelTurn(Provider(ProviderConfig::Type::kOpenAi), "", r, http);
  ASSERT_EQ(openai.calls.size(), 2u) << "the entry that is not a call is skipped; " << openai.response.error.message;
  EXPECT_EQ(openai.calls[0].arguments, Json({{"id", 3}}));
  EXPECT_TRUE(openai.calls[1].arguments.is_discarded());
  EXPECT_EQ(openai.calls[1].arguments_text, "not json");
  EXPECT_FALSE(openai.response.ok) << "tool calls are not an answer";
  EXPECT_EQ(openai.response.input_tokens, 9);
  Json messages = InitialMessages(Provider(ProviderConfig::Type::kOpenAi), r);
  AppendToolTurn(Provider(ProviderConfig::Type::kOpenAi), openai, {"a", "b"}, &messages);
  ASSERT_EQ(messages.size(), 5u);  // system, user, assistant, two tool answers
  EXPECT_EQ(messages[4], Json({{"role", "tool"}, {"tool_call_id", "c2"}, {"content", "b"}}));
  // Without tools offered, the same answer is no tool loop: an error.
  EXPECT_EQ(ParseHttpResponse(Provider(ProviderConfig::Type::kOpenAi), "", Request(), http).error.code,
            kInvalidResponse);

  http.body = R"({"content": [{"type": "text", "text": "checking"}, {"type": "tool_use", "id": "t1", "name": "lookup",
    "input": {"id": 3}}], "stop_reason": "tool_use", "usage": {"input_tokens": 9, "output_tokens": 4}})";
  ModelTurn anthropic = ParseModelTurn(Provider(ProviderConfig::Type::kAnthropic), "", r, http);
  ASSERT_EQ(anthropic.calls.size(), 1u);
  EXPECT_EQ(anthropic.calls[0].id, "t1");
  HttpRequest next = BuildHttpRequest(Provider(ProviderConfig::Type::kAnthropic), "k", r, nullptr);
  Json body = Json::parse(next.body);
  EXPECT_EQ(body["tools"][0]["name"], "lookup");
  EXPECT_EQ(body["tools"][1]["name"], "respond");
  EXPECT_EQ(body["tool_choice"]["type"], "any") << "the model may call a tool or answer";
}

}  // namespace
}  // namespace agentfleet
