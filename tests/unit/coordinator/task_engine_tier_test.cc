// A step's model tier chosen from task data (issue 18): within the agent's
// declared tiers; anything else runs the default tier and says so.
#include "absl/strings/str_cat.h"
#include "codec/json_value.h"
#include "common/clock.h"
#include "coordinator/task_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine_test_util.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;
using engine_test::ItemFor;

constexpr char kConfig[] = R"(
providers: {sim: {type: simulated}}
pricing:
  m: {input_per_mtok: 1, output_per_mtok: 1}
  big: {input_per_mtok: 10, output_per_mtok: 10}
agents:
  classifier: {provider: sim, models: {default: m}}
  solver: {provider: sim, models: {default: m, large: big}}
workflows:
  w:
    steps:
      - {id: classify, agent: classifier}
      - {id: solve, agent: solver, model_tier: $steps.classify.complexity}
)";

class TierTest : public engine_test::EngineTest {
 protected:
  TierTest() : EngineTest(kConfig) {}
  // The solve step's work item after the classifier said `classified`.
  v1::WorkItem Solve(const std::string& id, Json classified) {
    Outbox out;
    EXPECT_TRUE(engine_->Submit(engine_test::Submission(id, "w", {}), "", 0, &out).ok());
    Outbox next = engine_test::Answer(*engine_, config_, ItemFor(out, "classify"), std::move(classified));
    return ItemFor(next, "solve");
  }
};

TEST_F(TierTest, TheTierComesFromTheClassifiersOutput) {
  v1::WorkItem large = Solve("t1", {{"complexity", "large"}});
  EXPECT_EQ(large.model_tier(), "large");
  v1::WorkItem plain = Solve("t2", {{"complexity", "default"}});
  EXPECT_EQ(plain.model_tier(), "default");
}

TEST_F(TierTest, AValueThatIsNotOneOfTheAgentsTiersRunsTheDefaultAndSaysSo) {
  v1::WorkItem item = Solve("t1", {{"complexity", "enormous"}});
  EXPECT_EQ(item.model_tier(), "default");
  Outbox end = engine_test::Answer(*engine_, config_, item, {{"x", 1}});
  ASSERT_EQ(end.results.size(), 1u);
  const v1::TaskResult& r = end.results[0].result;
  EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED);
  std::string why;
  for (const auto& s : r.steps()) why += s.step() == "solve" ? s.explanation() : "";
  EXPECT_THAT(why, HasSubstr("model tier from data: \"enormous\" is not one of agent 'solver''s tiers; default used"));
  EXPECT_EQ(Solve("t2", Json::object()).model_tier(), "default");  // missing: default too
}

}  // namespace
}  // namespace agentfleet
