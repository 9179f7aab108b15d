// Takeovers at any moment (issue 18's research workflow, and the CI run
// where one such task never ended): a seeded simulation of a coordinator
// that commits in transactions and is killed at random between commits. What
// a replica that takes over has is what was committed: the state topic's
// snapshots, the work items workers could see, and the events from the last
// committed offset on (read again). Work items and results of the aborted
// transaction are gone. Workers answer visible work in any order, with a plan,
// a rescope, a retryable failure, or never (a worker killed). Every task must
// end exactly once, within its timeouts.
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "codec/json_value.h"
#include "common/clock.h"
#include "coordinator/task_engine.h"
#include "gtest/gtest.h"
#include "tests/unit/engine_test_util.h"
#include "worker/execution.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;

constexpr char kConfig[] = R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  planner: {provider: sim, models: {default: m}, max_tokens: 100, timeout: 10s}
  researcher: {provider: sim, models: {default: m}, max_tokens: 100, timeout: 30s}
  reviewer: {provider: sim, models: {default: m}, max_tokens: 100, timeout: 10s}
workflows:
  research:
    max_replans: 2
    steps:
      - {id: plan, agent: planner, input: {question: $task.q}}
      - id: lookup
        agent: researcher
        for_each: $steps.plan.lookups
        input: {lookup: $item}
        signals: {rescope: {planner: plan}}
      - {id: answer, agent: reviewer, input: {draft: $steps.lookup}}
)";

class Simulation {
 public:
  explicit Simulation(uint32_t seed) : rng_(seed) {
    auto c = LoadConfigString(kConfig, "takeover.yaml");
    EXPECT_TRUE(c.ok()) << c.status();
    config_ = *c;
    engine_ = std::make_unique<TaskEngine>(&config_, &clock_);
  }

  void Submit(int tasks) {
    for (int i = 0; i < tasks; ++i) {
      std::string id = "t" + std::to_string(i);
      ids_.push_back(id);
      Outbox out;
      ASSERT_TRUE(engine_->Submit(engine_test::Submission(id, "research", {{"q", id}}), "", i % 8, &out).ok());
      Take(out);
    }
    Commit();
  }

  // Runs until every task has a committed result or `max_steps` moves.
  void Run(int max_steps) {
    for (int step = 0; step < max_steps && results_.size() < ids_.size(); ++step) {
      int move = Uniform(100);
      if (move < 45 && !visible_.empty()) {
        WorkerAnswers();
      } else if (move < 80 && consumed_ < events_.size()) {
        Outbox out;
        engine_->OnEvent(events_[consumed_++], &out);
        Take(out);
      } else if (move < 95) {
        Commit();
      } else if (move < 97) {
        Takeover();
      } else {
        Idle();
      }
      if (visible_.empty() && consumed_ == events_.size()) Idle();
    }
  }

  void Check() const {
    for (const std::string& id : ids_) {
      auto it = results_.find(id);
      EXPECT_NE(it, results_.end()) << id << " never ended (" << takeovers_ << " takeovers)";
      if (it == results_.end()) continue;
      EXPECT_EQ(it->second.size(), 1u) << id << " ended more than once";
    }
  }

  int takeovers() const { return takeovers_; }
  int rescopes() const { return rescopes_; }

 private:
  int Uniform(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  void Take(const Outbox& out) {
    for (const auto& w : out.work) pending_work_.push_back(w.item);
    for (const auto& r : out.results) pending_results_.push_back(r.result);
  }

  // The transaction: state, work, results and the consumed offset together.
  void Commit() {
    std::vector<StateChange> changes;
    engine_->TakeStateChanges(&changes);
    for (const StateChange& c : changes) {
      if (c.ledger) continue;
      state_[c.task_id] = c.state;
    }
    for (auto& w : pending_work_) visible_.push_back(std::move(w));
    pending_work_.clear();
    for (auto& r : pending_results_) results_[r.task_id()].push_back(r);
    pending_results_.clear();
    committed_ = consumed_;
  }

  // The replica dies before it commits; another restores the state topic.
  void Takeover() {
    ++takeovers_;
    pending_work_.clear();
    pending_results_.clear();
    engine_ = std::make_unique<TaskEngine>(&config_, &clock_);
    for (const auto& [id, bytes] : state_) {
      if (!bytes) continue;
      v1::TaskState st;
      ASSERT_TRUE(st.ParseFromString(*bytes));
      engine_->Restore(id, st, 0);
    }
    consumed_ = committed_;
    Outbox out;
    engine_->Tick(&out);
    Take(out);
  }

  // Nothing to do: time passes to the engine's next timer.
  void Idle() {
    absl::Time next = engine_->NextTimer();
    if (next == absl::InfiniteFuture() || next <= clock_.Now()) {
      clock_.Advance(absl::Seconds(1));
    } else {
      clock_.Advance(next - clock_.Now() + absl::Milliseconds(1));
    }
    Outbox out;
    engine_->Tick(&out);
    Take(out);
    Commit();
  }

  void WorkerAnswers() {
    size_t k = static_cast<size_t>(Uniform(static_cast<int>(visible_.size())));
    v1::WorkItem item = visible_[k];
    // Now and then a worker dies after its answer, before its offset
    // commit: the item is delivered again and answered again, maybe
    // differently (a model is not deterministic).
    if (Uniform(100) >= 10) visible_.erase(visible_.begin() + static_cast<long>(k));
    int what = Uniform(100);
    if (what < 5) return;  // the worker died with it
    if (what < 12) {
      events_.push_back(MakeFailure(item, "provider_unavailable", "boom", true, "w1", engine_test::kEventTime));
      return;
    }
    Json output;
    if (item.step() == "plan") {
      Json lookups = Json::array();
      for (int i = 0, n = 1 + Uniform(3); i < n; ++i) lookups.push_back("l" + std::to_string(i));
      output = {{"lookups", lookups}};
    } else if (item.step() == "lookup" && what < 30) {
      ++rescopes_;
      output = {{"_signal", {{"type", "rescope"}, {"reason", "the plan does not fit"}}}};
    } else {
      output = {{"ok", true}};
    }
    ModelResponse r = ModelResponse::Ok(output, 1, 1, "m");
    events_.push_back(MakeResult(config_, item, r, "w1", engine_test::kEventTime));
  }

  std::mt19937 rng_;
  FleetConfig config_;
  FakeClock clock_{absl::FromUnixSeconds(1'800'000'000)};
  std::unique_ptr<TaskEngine> engine_;
  std::vector<std::string> ids_;
  std::map<std::string, std::optional<std::string>> state_;  // the state topic, compacted
  std::vector<v1::WorkItem> visible_;                        // committed work no worker took yet
  std::vector<v1::WorkItem> pending_work_;                   // in the open transaction
  std::vector<v1::TaskResult> pending_results_;
  std::map<std::string, std::vector<v1::TaskResult>> results_;  // committed
  std::vector<v1::WorkEvent> events_;                          // the events topic
  size_t consumed_ = 0, committed_ = 0;
  int takeovers_ = 0, rescopes_ = 0;
};

TEST(TakeoverSimulationTest, EveryTaskOfAReplanningWorkflowEndsOnceThroughRandomTakeovers) {
  int takeovers = 0, rescopes = 0;
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Simulation sim(seed);
    sim.Submit(12);
    sim.Run(20000);
    sim.Check();
    takeovers += sim.takeovers();
    rescopes += sim.rescopes();
    if (::testing::Test::HasFailure()) break;
  }
  EXPECT_GT(takeovers, 100) << "the simulation killed replicas";
  EXPECT_GT(rescopes, 100) << "and agents asked for re-plans";
}

}  // namespace
}  // namespace agentfleet
