// Actions (issue 19) against a real local external system
// (tests/fake_llm/fake_llm.py's /ext, which honours Idempotency-Key as
// payment APIs do): the request the ActionProvider makes, the effect id as
// its key, sanitization before anything leaves, and the reconciliation of
// every kind of outcome (applied, failed, rejected, unknown, not sent).
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "common/error_codes.h"
#include "config/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "provider/action_provider.h"
#include "tests/integration/fake_llm.h"
#include "worker/execution.h"

namespace agentfleet::testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

constexpr char kSecret[] = "pay-live-7f3a9c2e51d84b06";

std::string ConfigText(const std::string& base, const std::string& on_unknown) {
  return absl::StrCat(R"(providers:
  sim: {type: simulated}
pricing:
  m: {input_per_mtok: 1, output_per_mtok: 1}
agents:
  writer: {provider: sim, models: {default: m}}
actions:
  refund:
    url: ")", base, R"(/ext/v1/orders/{order_id}/refunds"
    secret_headers: {Authorization: "Bearer ${AGENTFLEET_TEST_PAY_TOKEN}"}
    headers: {X-Team: support}
    schema:
      type: object
      required: [order_id, amount, note]
      properties:
        order_id: {type: string}
        amount: {type: number, minimum: 0}
        note: {type: string}
    policy:
      allowed_hosts: [docs.example.com]
      max_bytes: 2048
      redact_pii: true
      strip_markup: true
    timeout: 1s
)",
                      on_unknown == "status" ? absl::StrCat("    on_unknown: status\n    status_url: \"", base,
                                                            "/ext/_status/{effect_id}\"\n")
                                             : absl::StrCat("    on_unknown: ", on_unknown, "\n"),
                      R"(workflows:
  w:
    steps:
      - {id: pay, action: refund, input: {order_id: $task.order, amount: 5, note: $task.note}}
)");
}

class ActionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("agentfleet-action-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    auto fake = FakeLlm::Start(dir_);
    ASSERT_TRUE(fake.ok()) << fake.status();
    fake_ = std::move(*fake);
    setenv("AGENTFLEET_TEST_PAY_TOKEN", kSecret, 1);
  }

  // A provider for the config with this on_unknown rule, on a client of its
  // own: no connection is reused. (libcurl resends a request once, itself,
  // when a reused connection turns out dead before any answer — with the
  // same Idempotency-Key; a fresh connection shows the reset as it is.)
  ActionProvider& Provider(const std::string& on_unknown, const std::string& base = "") {
    auto config = LoadConfigString(ConfigText(base.empty() ? fake_->base_url() : base, on_unknown), "fleet.yaml");
    EXPECT_TRUE(config.ok()) << config.status();
    config_ = std::make_unique<FleetConfig>(*std::move(config));
    provider_.reset();
    client_ = std::make_unique<HttpClient>();
    auto provider = ActionProvider::Create(config_.get(), client_.get());
    EXPECT_TRUE(provider.ok()) << provider.status();
    provider_ = std::move(*provider);
    return *provider_;
  }

  // What the worker would ask for: the work item of this task's action step.
  ModelRequest Request(const std::string& task, const Json& input, int attempt = 1) {
    v1::WorkItem item;
    item.set_task_id(task);
    item.set_step("pay");
    item.set_fan_index(-1);
    item.set_attempt(attempt);
    item.set_agent("refund");
    item.set_model_tier("default");
    *item.mutable_input() = ToStruct(input);
    item.set_effect_id(EffectId(task, "pay", -1));
    auto r = MakeRequest(*config_, item);
    EXPECT_TRUE(r.ok()) << r.status();
    return *r;
  }

  ModelResponse Call(ModelRequest r) { return CallAndWait(*provider_, std::move(r), absl::Seconds(30)); }

  Json Effects() { return Json::parse(HttpGet(fake_->base_url() + "/_effects").second); }

  static Json Input(const std::string& note, const std::string& order = "o-17") {
    return {{"order_id", order}, {"amount", 5}, {"note", note}};
  }

  std::filesystem::path dir_;
  std::unique_ptr<FakeLlm> fake_;
  std::unique_ptr<FleetConfig> config_;
  std::unique_ptr<HttpClient> client_;
  std::unique_ptr<ActionProvider> provider_;
};

TEST_F(ActionTest, AppliesOnceUnderTheEffectIdWithTheSanitizedPayload) {
  Provider("retry");
  std::string effect = EffectId("t1", "pay", -1);
  ModelResponse r = Call(Request("t1", Input("<b>Refund</b> for ann@example.com, card 4111 1111 1111 1111")));
  ASSERT_TRUE(r.ok) << r.error.code << ": " << r.error.message;
  EXPECT_EQ(r.output["status"], 201);
  EXPECT_EQ(r.output["body"]["key"], effect);
  ASSERT_TRUE(r.action.has_value());
  EXPECT_EQ(r.action->outcome, "applied");
  EXPECT_EQ(r.action->method, "POST");
  EXPECT_EQ(r.action->path, "/ext/v1/orders/o-17/refunds");
  EXPECT_EQ(r.action->payload_sha256.size(), 64u);
  EXPECT_EQ(r.input_tokens + r.output_tokens, 0);
  Json effects = Effects();
  EXPECT_EQ(effects["applied"], 1);
  // PII redacted and markup stripped before it left.
  EXPECT_EQ(effects["bodies"][effect]["note"], "Refund for [email], card [card]");
  // A retry of the same step instance (another attempt, another worker)
  // repeats the key: the system answers from its record, no second effect.
  ModelResponse again = Call(Request("t1", Input("<b>Refund</b> for ann@example.com, card 4111 1111 1111 1111"), 2));
  ASSERT_TRUE(again.ok);
  EXPECT_EQ(again.output["body"]["replayed"], true);
  EXPECT_EQ(Effects()["applied"], 1);
  EXPECT_EQ(Effects()["keys"][effect], 2);
  // Another step instance is another effect.
  ASSERT_TRUE(Call(Request("t2", Input("second"))).ok);
  EXPECT_EQ(Effects()["applied"], 2);
}

TEST_F(ActionTest, APayloadThatBreaksThePolicyNeverLeaves) {
  Provider("retry");
  struct Case {
    Json input;
    std::string code, detail;
  };
  std::vector<Case> cases = {
      {Input(absl::StrCat("use token ", kSecret)), kActionPolicyViolation, "secret"},
      {Input("my key is AKIAIOSFODNN7EXAMPLE"), kActionPolicyViolation, "secret"},
      {Input("see https://evil.example.net/steal?x=1"), kActionPolicyViolation, "url_not_allowed"},
      {Input(std::string(4000, 'x')), kActionPolicyViolation, "too_large"},
      {Input("fine", "../../admin"), "", ""},  // escaped into the path, not a traversal
      {Json{{"order_id", "o-1"}, {"amount", -3}, {"note", "x"}}, kActionInvalidPayload, "amount"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    int before = Effects()["requests"];
    ModelResponse r = Call(Request(absl::StrCat("p", i), c.input));
    if (c.code.empty()) {
      ASSERT_TRUE(r.ok) << r.error.message;
      EXPECT_EQ(r.action->path, "/ext/v1/orders/..%2F..%2Fadmin/refunds");
      continue;
    }
    EXPECT_FALSE(r.ok) << i;
    EXPECT_EQ(r.error.code, c.code) << i;
    EXPECT_FALSE(r.error.retryable) << i;
    EXPECT_THAT(r.error.message, HasSubstr(c.detail)) << i;
    EXPECT_THAT(r.error.message, Not(HasSubstr(kSecret))) << i;
    EXPECT_EQ(r.action->outcome, "refused") << i;
    EXPECT_EQ(Effects()["requests"], before) << i << ": nothing may be sent";
  }
  EXPECT_EQ(Effects()["applied"], 1);
}

TEST_F(ActionTest, FailedAndRejectedRequestsAreToldApart) {
  Provider("retry");
  ModelResponse busy = Call(Request("f1", Input("fake:ext_fail=1")));
  EXPECT_EQ(busy.error.code, kActionFailed);
  EXPECT_TRUE(busy.error.retryable);
  EXPECT_EQ(busy.action->http_status, 503);
  EXPECT_TRUE(Call(Request("f1", Input("fake:ext_fail=1"), 2)).ok);  // the retry, same key
  ModelResponse rejected = Call(Request("f2", Input("fake:ext_status=422")));
  EXPECT_EQ(rejected.error.code, kActionRejected);
  EXPECT_FALSE(rejected.error.retryable);
  EXPECT_EQ(rejected.action->outcome, "rejected");
  EXPECT_EQ(Effects()["applied"], 1);
}

TEST_F(ActionTest, AnUnknownOutcomeIsReconciledByTheActionsRule) {
  // Applied, then no answer within the action's 1 s timeout.
  {
    Provider("retry");
    ModelResponse r = Call(Request("u1", Input("fake:ext_hang=3")));
    EXPECT_EQ(r.error.code, kOutcomeUnknown);
    EXPECT_TRUE(r.error.retryable);
    EXPECT_EQ(r.action->outcome, "unknown");
    ModelResponse retry = Call(Request("u1", Input("fake:ext_hang=3"), 2));
    ASSERT_TRUE(retry.ok);
    EXPECT_EQ(retry.output["body"]["replayed"], true);
  }
  {
    Provider("stop");
    ModelResponse r = Call(Request("u2", Input("fake:ext_reset")));
    EXPECT_EQ(r.error.code, kOutcomeUnknown);
    EXPECT_FALSE(r.error.retryable) << "on_unknown: stop leaves it to a human";
  }
  {
    Provider("status");
    // The status endpoint says it was applied: a success, no second request.
    ModelResponse r = Call(Request("u3", Input("fake:ext_reset")));
    ASSERT_TRUE(r.ok) << r.error.message;
    EXPECT_EQ(r.action->outcome, "confirmed");
    EXPECT_EQ(Effects()["keys"][EffectId("u3", "pay", -1)], 1);
    // A later attempt (its predecessor's worker died) asks first, and does
    // not send what was applied.
    Provider("status");
    ModelResponse later = Call(Request("u3", Input("fake:ext_reset"), 2));
    ASSERT_TRUE(later.ok);
    EXPECT_EQ(later.action->outcome, "confirmed");
    EXPECT_EQ(Effects()["keys"][EffectId("u3", "pay", -1)], 1);
    // Not applied yet: the later attempt sends it.
    Provider("status");
    ModelResponse fresh = Call(Request("u4", Input("plain"), 2));
    ASSERT_TRUE(fresh.ok);
    EXPECT_EQ(fresh.action->outcome, "applied");
  }
  EXPECT_EQ(Effects()["applied"], 4);
}

TEST_F(ActionTest, NothingListeningMeansNothingWasSent) {
  Provider("stop", "http://127.0.0.1:1");
  ModelResponse r = Call(Request("n1", Input("x")));
  EXPECT_EQ(r.error.code, kActionUnreachable);
  EXPECT_TRUE(r.error.retryable) << "known not sent: safe to retry even under on_unknown: stop";
  EXPECT_EQ(r.action->outcome, "not_sent");
}

TEST_F(ActionTest, AMissingSecretFailsAtStartNamingIt) {
  auto config = LoadConfigString(ConfigText(fake_->base_url(), "retry"), "fleet.yaml");
  ASSERT_TRUE(config.ok());
  HttpClient client;
  auto provider = ActionProvider::Create(&*config, &client, [](const char*) -> const char* { return nullptr; });
  ASSERT_FALSE(provider.ok());
  EXPECT_THAT(provider.status().message(),
              HasSubstr("actions.refund.secret_headers.Authorization: environment variable AGENTFLEET_TEST_PAY_TOKEN"));
}

}  // namespace
}  // namespace agentfleet::testing
