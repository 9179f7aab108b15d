// The HTTP providers against a real local server that speaks the OpenAI and
// Anthropic wire formats (tests/fake_llm/fake_llm.py): the requests they send,
// usage accounting, every kind of provider misbehaviour, and thousands of
// concurrent calls on one client thread.
#include <cstdlib>
#include <filesystem>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/error_codes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "provider/http_provider.h"
#include "tests/integration/fake_llm.h"
#include "worker/execution.h"

namespace agentfleet::testing {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
using Type = ProviderConfig::Type;

const Json kSchema = Json::parse(R"({"type": "object", "required": ["category", "urgency"],
  "properties": {"category": {"type": "string", "enum": ["billing", "other"]},
                 "urgency": {"type": "integer", "minimum": 1, "maximum": 5}}})");

class ProviderTest : public ::testing::TestWithParam<Type> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("agentfleet-provider-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    auto fake = FakeLlm::Start(dir_);
    ASSERT_TRUE(fake.ok()) << fake.status();
    fake_ = std::move(*fake);
    setenv("AGENTFLEET_TEST_PROVIDER_KEY", "sk-test-4242", 1);
    config_.name = "p";
    config_.type = GetParam();
    config_.base_url = GetParam() == Type::kOpenAi ? fake_->base_url() + "/v1" : fake_->base_url();
    config_.api_key_env = "AGENTFLEET_TEST_PROVIDER_KEY";
    config_.headers = {{"X-Team", "support"}};
    auto provider = HttpProvider::Create(config_, &client_);
    ASSERT_TRUE(provider.ok()) << provider.status();
    provider_ = std::move(*provider);
  }

  ModelRequest Request(const std::string& prompt) const {
    ModelRequest r;
    r.agent = "classifier";
    r.model = "model-small";
    r.input = {{"subject", "refund"}};
    r.max_tokens = 64;
    r.timeout = absl::Seconds(5);
    r.output_schema_json = &kSchema;
    r.system_prompt = "You triage tickets.";
    r.user_prompt = prompt;
    return r;
  }

  ModelResponse Call(ModelRequest r) { return CallAndWait(*provider_, std::move(r), absl::Seconds(30)); }

  std::filesystem::path dir_;
  std::unique_ptr<FakeLlm> fake_;
  ProviderConfig config_;
  HttpClient client_;
  std::unique_ptr<HttpProvider> provider_;
};

TEST_P(ProviderTest, SendsTheWireFormatAndReadsOutputAndUsage) {
  ModelResponse r = Call(Request("Subject: refund"));
  ASSERT_TRUE(r.ok) << r.error.code << ": " << r.error.message;
  EXPECT_EQ(r.output, Json({{"category", "billing"}, {"urgency", 1}}));
  EXPECT_EQ(r.model, "model-small");
  // The server bills a token per four characters of its answer, as Python prints it.
  EXPECT_GT(r.input_tokens, 0);
  EXPECT_EQ(r.output_tokens, static_cast<int64_t>(std::string(R"({"category": "billing", "urgency": 1})").size() / 4));

  Json seen = fake_->Requests();
  ASSERT_EQ(seen.size(), 1u);
  const Json& req = seen[0];
  Json body = Json::parse(req["body"].get<std::string>());
  EXPECT_EQ(body["model"], "model-small");
  EXPECT_EQ(body["max_tokens"], 64);
  EXPECT_EQ(req["headers"]["X-Team"], "support");
  EXPECT_EQ(req["headers"]["Content-Type"], "application/json");
  if (GetParam() == Type::kOpenAi) {
    EXPECT_EQ(req["path"], "/v1/chat/completions");
    EXPECT_EQ(req["headers"]["Authorization"], "Bearer sk-test-4242");
    EXPECT_EQ(body["messages"][0], Json({{"role", "system"}, {"content", "You triage tickets."}}));
    EXPECT_EQ(body["messages"][1], Json({{"role", "user"}, {"content", "Subject: refund"}}));
    EXPECT_EQ(body["response_format"]["json_schema"]["schema"], kSchema);
  } else {
    EXPECT_EQ(req["path"], "/v1/messages");
    EXPECT_EQ(req["headers"]["x-api-key"], "sk-test-4242");
    EXPECT_EQ(req["headers"]["anthropic-version"], "2023-06-01");
    EXPECT_EQ(body["system"], "You triage tickets.");
    EXPECT_EQ(body["messages"][0]["content"], "Subject: refund");
    EXPECT_EQ(body["tools"][0]["input_schema"], kSchema);
  }
}

struct Misbehaviour {
  std::string directive;
  std::string code;
  bool retryable;
  int http_status;
};

TEST_P(ProviderTest, EveryMisbehaviourBecomesAStructuredError) {
  const std::vector<Misbehaviour> cases = {
      {"fake:delay=3", kTimeout, true, 0},
      {"fake:status=429 fake:retry_after=7", kRateLimited, true, 429},
      {"fake:status=500", kProviderUnavailable, true, 500},
      {"fake:status=529 fake:retry_after=2", kProviderUnavailable, true, 529},
      {"fake:status=400", kProviderRejected, false, 400},
      {"fake:status=401", kProviderRejected, false, 401},
      {"fake:reset", kConnectionFailed, true, 0},
      {"fake:truncate", kTruncatedResponse, true, 0},
      {"fake:invalid_json", kInvalidResponse, true, 200},
      {"fake:not_json", kSchemaViolation, true, 200},
      {"fake:length", kMaxTokensExceeded, false, 200},
  };
  for (const Misbehaviour& m : cases) {
    SCOPED_TRACE(m.directive);
    ModelRequest request = Request("Subject: refund " + m.directive);
    request.timeout = absl::Seconds(1);
    ModelResponse r = Call(request);
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(r.output.is_null()) << "no best-effort output on an error";
    EXPECT_EQ(r.error.code, m.code) << r.error.message;
    EXPECT_EQ(r.error.retryable, m.retryable);
    EXPECT_EQ(r.error.http_status, m.http_status);
    EXPECT_THAT(r.error.message, ::testing::Not(HasSubstr("sk-test-4242")));
    if (m.directive.find("retry_after=7") != std::string::npos) {
      EXPECT_EQ(r.error.retry_after, absl::Seconds(7));
    }
    if (m.directive.find("retry_after=2") != std::string::npos) {
      EXPECT_EQ(r.error.retry_after, absl::Seconds(2));
    }
    if (m.code == kMaxTokensExceeded) {
      EXPECT_EQ(r.output_tokens, 64) << "tokens of a cut answer are still billed";
    }
  }
}

TEST_P(ProviderTest, AnOutputThatFailsTheAgentSchemaNeverLeavesTheWorker) {
  ModelResponse r = Call(Request("fake:bad_output"));
  ASSERT_TRUE(r.ok) << "the provider returned a JSON object";
  // The worker validates it against the agent's schema before reporting.
  FleetConfig config;
  AgentConfig agent;
  agent.name = "classifier";
  agent.output_schema = JsonSchema{};
  agent.output_schema->type = JsonSchema::Type::kObject;
  agent.output_schema->required = {"category"};
  agent.output_schema->properties["category"].type = JsonSchema::Type::kString;
  config.agents["classifier"] = agent;
  v1::WorkItem item;
  item.set_agent("classifier");
  item.set_task_id("t1");
  v1::WorkEvent event = MakeResult(config, item, r, "w1", absl::Now());
  EXPECT_EQ(event.result().status(), v1::RESULT_STATUS_ERROR);
  EXPECT_EQ(event.result().error().code(), kSchemaViolation);
  EXPECT_TRUE(event.result().error().retryable());
  EXPECT_FALSE(event.result().has_output());
  EXPECT_GT(event.result().usage().output_tokens(), 0) << "the failed call's tokens still count";
}

TEST_P(ProviderTest, NothingListeningIsAConnectionFailure) {
  ProviderConfig dead = config_;
  dead.base_url = "http://127.0.0.1:1";
  auto provider = HttpProvider::Create(dead, &client_);
  ASSERT_TRUE(provider.ok());
  provider_ = std::move(*provider);
  ModelResponse r = Call(Request("hello"));
  EXPECT_EQ(r.error.code, kConnectionFailed);
  EXPECT_TRUE(r.error.retryable);
}

INSTANTIATE_TEST_SUITE_P(WireFormats, ProviderTest, ::testing::Values(Type::kOpenAi, Type::kAnthropic),
                         [](const auto& info) { return info.param == Type::kOpenAi ? "OpenAi" : "Anthropic"; });

// One client thread holds two thousand calls at once: the server sees them
// concurrently (each takes 2 s), and every one completes.
TEST(HttpClientTest, TwoThousandConcurrentCallsOnOneThread) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("agentfleet-http-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto fake = FakeLlm::Start(dir, /*delay_s=*/2.0);
  ASSERT_TRUE(fake.ok()) << fake.status();
  ProviderConfig config;
  config.name = "local";
  config.type = Type::kOpenAi;
  config.base_url = (*fake)->base_url() + "/v1";
  HttpClient client;
  auto provider = HttpProvider::Create(config, &client);
  ASSERT_TRUE(provider.ok());
  constexpr int kCalls = 2000;
  absl::Mutex mu;
  int ok = 0, failed = 0;
  std::string first_error;
  for (int i = 0; i < kCalls; ++i) {
    ModelRequest r;
    r.agent = "a";
    r.model = "m";
    r.input = {{"i", i}};
    r.max_tokens = 16;
    r.timeout = absl::Seconds(60);
    r.output_schema_json = &kSchema;
    (*provider)->Call(std::move(r), [&](ModelResponse response) {
      absl::MutexLock lock(&mu);
      (response.ok ? ok : failed)++;
      if (!response.ok && first_error.empty()) first_error = response.error.code + ": " + response.error.message;
    });
  }
  absl::MutexLock lock(&mu);
  auto all_done = [&] { return ok + failed == kCalls; };
  ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all_done), absl::Seconds(90))) << ok << " ok, " << failed << " failed";
  EXPECT_EQ(ok, kCalls) << first_error;
  EXPECT_EQ(client.in_flight(), 0u);
  Json stats = (*fake)->Stats();
  EXPECT_EQ(stats["requests"], kCalls);
  EXPECT_GE(stats["max_in_flight"].get<int>(), kCalls * 9 / 10) << stats.dump();
}

}  // namespace
}  // namespace agentfleet::testing
