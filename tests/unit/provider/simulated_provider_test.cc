#include "provider/simulated_provider.h"

#include <algorithm>
#include <cmath>

#include "config/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;

FleetConfig Config(const std::string& provider_yaml) {
  std::string text = "providers: {sim: " + provider_yaml +
                     "}\npricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}\nagents:\n  a:\n"
                     "    provider: sim\n    models: {default: m}\n    max_tokens: 400\n    output_schema:\n"
                     "      {type: object, required: [label, score, tags], properties: {label: {type: string, enum: [x, y, z]},"
                     " score: {type: integer, minimum: 1, maximum: 5}, tags: {type: array, items: {type: string}, minItems: 1, maxItems: 2},"
                     " ok: {type: boolean}}}\nworkflows: {w: {steps: [{id: s, agent: a}]}}\n";
  auto c = LoadConfigString(text, "sim.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

ModelRequest Request(const FleetConfig& c, Json input, const std::string& key = "t/s/-1/1") {
  ModelRequest r;
  r.agent = "a";
  r.model = "m";
  r.input = std::move(input);
  r.max_tokens = 400;
  r.idempotency_key = key;
  r.output_schema = &*c.agents.at("a").output_schema;
  return r;
}

TEST(SimulatedProviderTest, OutputIsDeterministicSchemaShapedAndInputDependent) {
  FleetConfig c = Config("{type: simulated, seed: 3}");
  SimulatedProvider p(c.providers.at("sim"), nullptr);
  ModelResponse a1 = p.Respond(Request(c, {{"q", 1}}));
  ModelResponse a2 = p.Respond(Request(c, {{"q", 1}}, "other/key/-1/1"));
  ModelResponse b = p.Respond(Request(c, {{"q", 2}}));
  ASSERT_TRUE(a1.ok);
  EXPECT_EQ(a1.output, a2.output);  // same input, same output, whatever the attempt
  EXPECT_NE(a1.output, b.output);
  EXPECT_TRUE(ValidateJson(*c.agents.at("a").output_schema, a1.output).ok()) << a1.output.dump();
  EXPECT_TRUE(ValidateJson(*c.agents.at("a").output_schema, b.output).ok()) << b.output.dump();
  EXPECT_EQ(a1.input_tokens, 2);  // {"q":1} is 7 bytes -> ceil(7/4)
  EXPECT_GT(a1.output_tokens, 0);
  // A different seed gives a different output.
  FleetConfig c2 = Config("{type: simulated, seed: 4}");
  EXPECT_NE(SimulatedProvider(c2.providers.at("sim"), nullptr).Respond(Request(c2, {{"q", 1}})).output, a1.output);
}

TEST(SimulatedProviderTest, FailureRateIsHonouredPerAttempt) {
  FleetConfig c = Config("{type: simulated, failure_rate: 0.3, seed: 9}");
  SimulatedProvider p(c.providers.at("sim"), nullptr);
  int failures = 0;
  for (int i = 0; i < 2000; ++i) {
    ModelResponse r = p.Respond(Request(c, {{"q", 1}}, "t" + std::to_string(i) + "/s/-1/1"));
    if (!r.ok) {
      ++failures;
      EXPECT_EQ(r.error.code, "provider_unavailable");
      EXPECT_TRUE(r.error.retryable);
    }
  }
  EXPECT_NEAR(failures / 2000.0, 0.3, 0.04);
}

TEST(SimulatedProviderTest, LatencyFollowsTheConfiguredDistribution) {
  FleetConfig c = Config("{type: simulated, latency: {distribution: lognormal, p50_ms: 100, p99_ms: 400}}");
  SimulatedProvider p(c.providers.at("sim"), nullptr);
  std::vector<double> ms;
  for (int i = 0; i < 4000; ++i) {
    ms.push_back(absl::ToDoubleMilliseconds(p.Respond(Request(c, {{"q", 1}}, "k" + std::to_string(i))).latency));
  }
  std::sort(ms.begin(), ms.end());
  EXPECT_NEAR(ms[2000], 100, 10);
  EXPECT_NEAR(ms[3960], 400, 80);
}

TEST(SimulatedProviderTest, OutputLongerThanMaxTokensFails) {
  FleetConfig c = Config("{type: simulated}");
  SimulatedProvider p(c.providers.at("sim"), nullptr);
  ModelRequest r = Request(c, {{"q", 1}});
  r.max_tokens = 2;
  ModelResponse resp = p.Respond(r);
  EXPECT_FALSE(resp.ok);
  EXPECT_EQ(resp.error.code, "max_tokens_exceeded");
  EXPECT_EQ(resp.output_tokens, 2);  // the cap is spent
}

TEST(SimulatedProviderTest, CallDeliversAfterTheLatencyThroughTheScheduler) {
  FleetConfig c = Config("{type: simulated, latency: {distribution: fixed, mean_ms: 250}}");
  ManualScheduler scheduler;
  SimulatedProvider p(c.providers.at("sim"), &scheduler);
  int calls = 0;
  p.Call(Request(c, {{"q", 1}}), [&](ModelResponse r) {
    EXPECT_TRUE(r.ok);
    ++calls;
  });
  EXPECT_EQ(calls, 0);
  ASSERT_EQ(scheduler.delays().size(), 1u);
  EXPECT_EQ(scheduler.delays()[0], absl::Milliseconds(250));
  scheduler.RunAll();
  EXPECT_EQ(calls, 1);
}

// A worker's poll of calls: one handover to the scheduler, each call answered
// once, with its own response after its own latency.
TEST(SimulatedProviderTest, CallAllHandsTheAnswersToTheSchedulerAtOnce) {
  FleetConfig c = Config("{type: simulated, latency: {distribution: uniform, min_ms: 10, max_ms: 500}}");
  class CountingScheduler : public ManualScheduler {
   public:
    void RunAfterAll(std::vector<Timed> callbacks) override {
      handovers.push_back(callbacks.size());
      Scheduler::RunAfterAll(std::move(callbacks));
    }
    std::vector<size_t> handovers;
  } scheduler;
  SimulatedProvider p(c.providers.at("sim"), &scheduler);
  std::vector<ModelProvider::Pending> calls;
  std::vector<ModelResponse> expected;
  std::vector<Json> got(3);
  for (int i = 0; i < 3; ++i) {
    ModelRequest r = Request(c, {{"q", i}}, "t" + std::to_string(i) + "/s/-1/1");
    expected.push_back(p.Respond(r));
    calls.push_back({std::move(r), [&got, i](ModelResponse response) { got[i] = response.output; }});
  }
  p.CallAll(std::move(calls));
  EXPECT_THAT(scheduler.handovers, testing::ElementsAre(3u));
  ASSERT_EQ(scheduler.delays().size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(scheduler.delays()[i], expected[i].latency) << i;
  EXPECT_EQ(scheduler.RunAll(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(got[i], expected[i].output) << i;
}

TEST(SimulatedProviderTest, SignalRatesAnswerSomeInputsWithAQuestionOrARescopeButNotOnesThatCarryTheAnswer) {
  FleetConfig c = Config("{type: simulated, seed: 5, signals: {needs_info: 0.3, rescope: 0.2}}");
  SimulatedProvider p(c.providers.at("sim"), nullptr);
  int questions = 0, rescopes = 0;
  for (int i = 0; i < 2000; ++i) {
    ModelResponse r = p.Respond(Request(c, {{"q", i}}));
    ASSERT_TRUE(r.ok);
    if (!r.output.contains("_signal")) continue;
    std::string type = r.output["_signal"]["type"];
    questions += type == "needs_info";
    rescopes += type == "rescope";
    if (type == "needs_info") {
      ModelResponse answered = p.Respond(Request(c, {{"q", i}, {"_info", Json::array({{{"answer", 1}}})}}));
      EXPECT_FALSE(answered.output.contains("_signal") && answered.output["_signal"]["type"] == "needs_info")
          << "an input with its answers gets an output";
    }
  }
  EXPECT_NEAR(questions / 2000.0, 0.3, 0.04);
  EXPECT_NEAR(rescopes / 2000.0, 0.2, 0.04);
}

}  // namespace
}  // namespace agentfleet
