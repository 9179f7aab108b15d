// The TaskEngine fixture shared by task_engine_test.cc and
// task_engine_state_test.cc: a four-step workflow with a fan-out, two agents
// with different retry and timeout policies, a fake clock.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "codec/json_value.h"
#include "common/clock.h"
#include "config/config.h"
#include "coordinator/task_engine.h"
#include "gtest/gtest.h"
#include "tests/unit/engine_test_util.h"
#include "worker/execution.h"

namespace agentfleet::engine_test {

using Json = nlohmann::json;

// A submission's traceparent (a valid one: the engine keeps only those).
inline constexpr char kTp[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

inline constexpr char kConfig[] = R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1000000, output_per_mtok: 2000000}}
agents:
  a: {provider: sim, models: {default: m}, max_attempts: 2}
  b:
    provider: sim
    models: {default: m}
    max_attempts: 4
    timeout: 60s
    schedule_to_start_timeout: 20s
    heartbeat_timeout: 10s
    retry: {initial_backoff: 1s, max_backoff: 3s, multiplier: 2, jitter: 0.2}
coordinator: {finished_retention: 1h}
workflows:
  w:
    deadline: 5m
    steps:
      - {id: classify, agent: a, input: {q: $task.q}}
      - {id: research, agent: b, for_each: $task.sources, input: {src: $item, cat: $steps.classify.cat}}
      - {id: other, agent: b, input: {q: $task.q}}
      - {id: respond, agent: a, input: {found: $steps.research, cat: $steps.classify.cat, o: $steps.other}}
)";

class TaskEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = LoadConfigString(kConfig, "engine.yaml");
    ASSERT_TRUE(c.ok()) << c.status();
    config_ = *c;
    engine_ = std::make_unique<TaskEngine>(&config_, &clock_);
  }

  v1::TaskSubmission Task(const std::string& id, Json sources = {"s1", "s2", "s3"}) {
    v1::TaskSubmission s;
    s.set_task_id(id);
    s.set_workflow("w");
    *s.mutable_input() = ToStruct(Json{{"q", "why"}, {"sources", sources}});
    return s;
  }

  // Answers `item` with `output` (OK) and returns what the engine emitted.
  Outbox Answer(const v1::WorkItem& item, Json output, int input_tokens = 10, int output_tokens = 5) {
    ModelResponse r;
    r.ok = true;
    r.output = std::move(output);
    r.model = "m";
    r.input_tokens = input_tokens;
    r.output_tokens = output_tokens;
    Outbox out;
    engine_->OnEvent(MakeResult(config_, item, r, "w1", clock_.Now()), &out);
    return out;
  }

  Outbox Fail(const v1::WorkItem& item, bool retryable) {
    Outbox out;
    engine_->OnEvent(MakeFailure(item, "provider_unavailable", "boom", retryable, "w1", clock_.Now()), &out);
    return out;
  }

  // The work item `out` dispatched for `step` (the first, for a fan-out).
  static v1::WorkItem ItemFor(const Outbox& out, const std::string& step) { return engine_test::ItemFor(out, step); }

  static std::vector<std::string> Steps(const Outbox& out) {
    std::vector<std::string> steps;
    for (const auto& w : out.work) steps.push_back(w.item.step() + (w.item.fan_index() >= 0 ? "[" + std::to_string(w.item.fan_index()) + "]" : ""));
    return steps;
  }

  FleetConfig config_;
  FakeClock clock_;
  std::unique_ptr<TaskEngine> engine_;
};

}  // namespace agentfleet::engine_test
