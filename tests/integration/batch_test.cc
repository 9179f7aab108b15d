// The HTTP providers' batches against the local server's batch APIs
// (OpenAI's files and batches, Anthropic's Message Batches): requests fill a
// batch up to max_items or max_wait, each answer goes back to its own
// request, marked batch; a request the batch fails, and every request of an
// expired batch, is answered online instead — never twice, never lost.
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/scheduler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "provider/http_provider.h"
#include "tests/integration/fake_llm.h"

namespace agentfleet::testing {
namespace {

using Json = nlohmann::json;
using Type = ProviderConfig::Type;

const Json kSchema = Json::parse(R"({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}})");

class BatchTest : public ::testing::TestWithParam<Type> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("agentfleet-batch-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    auto fake = FakeLlm::Start(dir_);
    ASSERT_TRUE(fake.ok()) << fake.status();
    fake_ = std::move(*fake);
    ProviderConfig config;
    config.name = "p";
    config.type = GetParam();
    config.base_url = GetParam() == Type::kOpenAi ? fake_->base_url() + "/v1" : fake_->base_url();
    auto provider = HttpProvider::Create(config, &client_, &scheduler_);
    ASSERT_TRUE(provider.ok()) << provider.status();
    provider_ = std::move(*provider);
  }

  // Sends `prompts` as batched requests and waits for every answer.
  std::vector<ModelResponse> Run(const std::vector<std::string>& prompts) {
    absl::Mutex mu;
    std::vector<ModelResponse> out(prompts.size());
    size_t answered = 0;
    std::vector<int> answers_per_request(prompts.size(), 0);
    for (size_t i = 0; i < prompts.size(); ++i) {
      ModelRequest r;
      r.agent = "bulk";
      r.model = "model-batch";
      r.max_tokens = 64;
      r.timeout = absl::Seconds(10);
      r.output_schema_json = &kSchema;
      r.user_prompt = prompts[i];
      r.batch = &batch_;
      provider_->Call(std::move(r), [&, i](ModelResponse response) {
        absl::MutexLock lock(&mu);
        out[i] = std::move(response);
        ++answers_per_request[i];
        ++answered;
      });
    }
    absl::MutexLock lock(&mu);
    auto all = [&] { return answered >= prompts.size(); };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all), absl::Seconds(60))) << answered << " of " << prompts.size();
    for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(answers_per_request[i], 1) << "request " << i;
    return out;
  }

  Json Batches() const { return Json::parse(HttpGet(fake_->base_url() + "/_batches").second); }

  std::filesystem::path dir_;
  std::unique_ptr<FakeLlm> fake_;
  HttpClient client_;
  ThreadScheduler scheduler_;
  BatchConfig batch_{/*max_items=*/10, /*max_wait=*/absl::Milliseconds(300), /*poll_interval=*/absl::Milliseconds(100)};
  std::unique_ptr<HttpProvider> provider_;
};

TEST_P(BatchTest, EachAnswerGoesBackToItsOwnRequest) {
  std::vector<std::string> prompts;
  for (int i = 0; i < 25; ++i) prompts.push_back(absl::StrCat("Item ", i, ". ANSWER:{\"n\": ", i, "}"));
  std::vector<ModelResponse> out = Run(prompts);
  for (int i = 0; i < 25; ++i) {
    ASSERT_TRUE(out[i].ok) << i << ": " << out[i].error.code << " " << out[i].error.message;
    EXPECT_EQ(out[i].output, (Json{{"n", i}})) << "request " << i;
    EXPECT_TRUE(out[i].batch);
    EXPECT_GT(out[i].input_tokens, 0);
    EXPECT_EQ(out[i].model, "model-batch");
  }
  // Two full batches of 10, and the last 5 sent after max_wait.
  Json stats = Batches();
  EXPECT_EQ(stats["batches"], 3);
  EXPECT_EQ(stats["items"], 25);
  EXPECT_EQ(fake_->Stats()["requests"], 0) << "no online call";
}

TEST_P(BatchTest, WhatABatchDoesNotAnswerIsCalledOnline) {
  // One request of a batch fails there; every request of another batch expires.
  std::vector<std::string> failing = {"ANSWER:{\"n\": 1}", "fake:batch_error ANSWER:{\"n\": 2}", "ANSWER:{\"n\": 3}"};
  std::vector<ModelResponse> out = Run(failing);
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_TRUE(out[i].ok) << i << ": " << out[i].error.message;
    EXPECT_EQ(out[i].output["n"], static_cast<int>(i) + 1);
  }
  EXPECT_TRUE(out[0].batch);
  EXPECT_FALSE(out[1].batch) << "answered online";
  EXPECT_TRUE(out[2].batch);
  EXPECT_EQ(fake_->Stats()["requests"], 1);
  std::vector<ModelResponse> expired = Run({"fake:batch_expire ANSWER:{\"n\": 7}", "ANSWER:{\"n\": 8}"});
  ASSERT_TRUE(expired[0].ok && expired[1].ok);
  EXPECT_FALSE(expired[0].batch);
  EXPECT_FALSE(expired[1].batch);
  EXPECT_EQ(expired[1].output["n"], 8);
  Json stats = Batches();
  EXPECT_EQ(stats["batches"], 2);
  EXPECT_EQ(stats["errored"], 1);
  EXPECT_EQ(stats["expired"], 2);
  EXPECT_EQ(fake_->Stats()["requests"], 3) << "1 failed in its batch + 2 expired";
}

INSTANTIATE_TEST_SUITE_P(WireFormats, BatchTest, ::testing::Values(Type::kOpenAi, Type::kAnthropic),
                         [](const auto& info) { return info.param == Type::kOpenAi ? "OpenAi" : "Anthropic"; });

}  // namespace
}  // namespace agentfleet::testing
