// What the TaskEngine tests share: a submission, a worker's answer or
// failure, the item an outbox holds for a step, and a snapshot taken through
// the wire format as the state topic carries it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "codec/json_value.h"
#include "common/clock.h"
#include "coordinator/task_engine.h"
#include "gtest/gtest.h"
#include "worker/execution.h"

namespace agentfleet::engine_test {

// When the events these helpers make say they were made: the engine never
// reads it (it goes by its own clock), so a fixed time keeps tests off the wall clock.
inline constexpr absl::Time kEventTime = absl::FromUnixSeconds(1'800'000'000);

inline v1::TaskSubmission Submission(const std::string& id, const std::string& workflow, const nlohmann::json& input) {
  v1::TaskSubmission s;
  s.set_task_id(id);
  s.set_workflow(workflow);
  *s.mutable_input() = ToStruct(input);
  return s;
}

// The worker's OK result for `item`: this output and these tokens, on the
// model of the item's agent and tier.
inline Outbox Answer(TaskEngine& engine, const FleetConfig& config, const v1::WorkItem& item, nlohmann::json output,
                     int64_t input_tokens = 1, int64_t output_tokens = 1) {
  ModelResponse r;
  r.ok = true;
  r.output = std::move(output);
  const AgentConfig* agent = config.FindAgent(item.agent());
  std::string tier = item.model_tier().empty() ? "default" : item.model_tier();
  r.model = agent && agent->models.count(tier) ? agent->models.at(tier) : "m";
  r.input_tokens = input_tokens;
  r.output_tokens = output_tokens;
  Outbox out;
  engine.OnEvent(MakeResult(config, item, r, "w1", kEventTime), &out);
  return out;
}

inline Outbox Fail(TaskEngine& engine, const v1::WorkItem& item, const std::string& code, bool retryable) {
  Outbox out;
  engine.OnEvent(MakeFailure(item, code, "it broke", retryable, "w1", kEventTime), &out);
  return out;
}

// The work item `out` dispatched for `step` (the first, for a fan-out).
inline v1::WorkItem ItemFor(const Outbox& out, const std::string& step) {
  for (const auto& w : out.work) {
    if (w.item.step() == step) return w.item;
  }
  ADD_FAILURE() << "no work item for step " << step;
  return v1::WorkItem();
}

// The summary of `step` (its first instance) in a result; null if absent.
inline const v1::StepSummary* StepOf(const v1::TaskResult& r, const std::string& step) {
  for (const auto& s : r.steps()) {
    if (s.step() == step) return &s;
  }
  return nullptr;
}

// The state of `step`'s instance `fan` in a snapshot (fan -1: a step that
// is not fanned out; 0 also finds it); an empty StepState if absent.
inline v1::StepState StepStateOf(const v1::TaskState& state, const std::string& step, int fan = 0) {
  for (const v1::StepState& s : state.steps()) {
    if (s.step() == step && (s.fan_index() == fan || (fan == 0 && s.fan_index() == -1))) return s;
  }
  return v1::StepState();
}

// A state change's snapshot read back as a restoring replica reads it;
// nullopt for a tombstone or a ledger.
inline std::optional<v1::TaskState> Decoded(const StateChange& change) {
  if (!change.state) return std::nullopt;
  v1::TaskState state;
  EXPECT_TRUE(state.ParseFromString(*change.state)) << change.task_id;
  return state;
}

// The engine's latest snapshot of its one changed task, through the bytes.
inline v1::TaskState SnapshotOverTheWire(TaskEngine& engine) {
  std::vector<StateChange> changes;
  engine.TakeStateChanges(&changes);
  EXPECT_EQ(changes.size(), 1u);
  if (changes.empty() || !changes[0].state) return v1::TaskState();
  return *Decoded(changes[0]);
}

// A fixture with a TaskEngine over the config `yaml`, on a fake clock
// starting at `start`.
// One provider quota (sim/m: 60 requests and 600,000 tokens a minute) on
// agent a; agent b's model has none.
inline constexpr char kRatesConfig[] = R"(
providers:
  sim:
    type: simulated
    rate_limits:
      m: {requests_per_minute: 60, tokens_per_minute: 600000}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}, free: {input_per_mtok: 0, output_per_mtok: 0}}
agents:
  a: {provider: sim, models: {default: m}, max_tokens: 100}
  b: {provider: sim, models: {default: free}}
workflows:
  w: {steps: [{id: s, agent: a, input: {q: $task.q}}]}
)";

inline FleetConfig RatesConfig() {
  auto c = LoadConfigString(kRatesConfig, "rates.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

class EngineTest : public ::testing::Test {
 protected:
  explicit EngineTest(const char* yaml, absl::Time start = absl::FromUnixSeconds(1'800'000'000))
      : yaml_(yaml), clock_(start) {}
  void SetUp() override {
    auto c = LoadConfigString(yaml_, "test.yaml");
    ASSERT_TRUE(c.ok()) << c.status();
    config_ = *c;
    engine_ = std::make_unique<TaskEngine>(&config_, &clock_);
  }

  const char* yaml_;
  FleetConfig config_;
  FakeClock clock_;
  std::unique_ptr<TaskEngine> engine_;
};

}  // namespace agentfleet::engine_test
