// The exact result cache: hits only for the same agent, model and input,
// within the ttl, bounded per agent; shared between replicas; a hit completes
// a step with no model call and no cost.
#include "coordinator/result_cache.h"

#include "codec/json_value.h"
#include "common/clock.h"
#include "coordinator/task_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine_test_util.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;

constexpr char kConfig[] = R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}, n: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  lookup: {provider: sim, models: {default: m, other: n}, cache: {ttl: 10m, max_entries: 2}}
  plain: {provider: sim, models: {default: m}}
workflows:
  w:
    steps:
      - {id: find, agent: lookup, input: {q: $task.q}}
      - {id: say, agent: plain, input: {found: $steps.find}}
)";

FleetConfig Config() {
  auto c = LoadConfigString(kConfig, "cache.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

TEST(ResultCacheTest, HitsOnlyTheSameAgentModelAndInputWithinTheTtl) {
  FleetConfig c = Config();
  const AgentConfig& a = c.agents.at("lookup");
  ResultCache cache(&c);
  absl::Time t = absl::FromUnixSeconds(1000);
  cache.Insert(a, "m", R"({"q":"x"})", {{"r", 1}}, t);
  ASSERT_NE(cache.Find(a, "m", R"({"q":"x"})", t + absl::Minutes(9)), nullptr);
  EXPECT_EQ(*cache.Find(a, "m", R"({"q":"x"})", t), (Json{{"r", 1}}));
  EXPECT_EQ(cache.Find(a, "m", R"({"q":"y"})", t), nullptr);
  EXPECT_EQ(cache.Find(a, "n", R"({"q":"x"})", t), nullptr);
  EXPECT_EQ(cache.Find(a, "m", R"({"q":"x"})", t + absl::Minutes(10)), nullptr) << "expired";
  EXPECT_EQ(cache.Find(c.agents.at("plain"), "m", R"({"q":"x"})", t), nullptr) << "plain does not cache";
  // At most two entries for the agent: the oldest goes.
  cache.Insert(a, "m", R"({"q":"2"})", {{"r", 2}}, t);
  cache.Insert(a, "m", R"({"q":"3"})", {{"r", 3}}, t);
  EXPECT_EQ(cache.Find(a, "m", R"({"q":"x"})", t), nullptr);
  EXPECT_NE(cache.Find(a, "m", R"({"q":"3"})", t), nullptr);
  EXPECT_EQ(cache.size(), 2u);
}

TEST(ResultCacheTest, ReplicasShareEntriesAndAnOlderCopyDoesNotReplaceANewerOne) {
  FleetConfig c = Config();
  const AgentConfig& a = c.agents.at("lookup");
  ResultCache mine(&c), theirs(&c);
  absl::Time t = absl::FromUnixSeconds(1000);
  mine.Insert(a, "m", "in", {{"v", "old"}}, t);
  mine.Insert(a, "m", "in", {{"v", "new"}}, t + absl::Minutes(1));
  auto inserts = mine.TakeInserts();
  ASSERT_EQ(inserts.size(), 2u);
  EXPECT_EQ(inserts[0].first, ResultCache::Key("lookup", "m", "in"));
  theirs.Apply(inserts[1].second);
  theirs.Apply(inserts[0].second);  // replayed out of order
  EXPECT_EQ(*theirs.Find(a, "m", "in", t + absl::Minutes(2)), (Json{{"v", "new"}}));
}

TEST(ResultCacheTest, AHitCompletesTheStepWithoutACallOnAnyReplica) {
  FleetConfig c = Config();
  FakeClock clock;
  TaskEngine engine(&c, &clock);
  auto submit = [&](TaskEngine& e, const std::string& id) {
    Outbox out;
    EXPECT_TRUE(e.Submit(engine_test::Submission(id, "w", {{"q", "same question"}}), "", 0, &out).ok());
    return out;
  };
  auto answer = [&](TaskEngine& e, const v1::WorkItem& item, Json output) {
    return engine_test::Answer(e, c, item, std::move(output), 10, 10);
  };
  Outbox first = submit(engine, "t1");
  ASSERT_EQ(first.work.size(), 1u);
  Outbox say = answer(engine, first.work[0].item, {{"r", "cached answer"}});
  answer(engine, say.work[0].item, {{"s", 1}});
  // The same input again: "find" is served from the cache, "say" runs.
  Outbox second = submit(engine, "t2");
  ASSERT_EQ(second.work.size(), 1u);
  EXPECT_EQ(second.work[0].item.step(), "say");
  EXPECT_EQ(FromStruct(second.work[0].item.input()), (Json{{"found", {{"r", "cached answer"}}}}));
  Outbox done = answer(engine, second.work[0].item, {{"s", 2}});
  ASSERT_EQ(done.results.size(), 1u);
  const v1::TaskResult& r = done.results[0].result;
  EXPECT_EQ(r.status(), v1::TASK_STATUS_COMPLETED);
  EXPECT_TRUE(r.steps(0).cached());
  EXPECT_EQ(r.steps(0).status(), v1::STEP_STATUS_SUCCEEDED);
  EXPECT_EQ(r.steps(0).usage().calls(), 0);
  EXPECT_EQ(r.usage().calls(), 1) << "only 'say' was called";
  EXPECT_EQ(engine.stats().cache_hits, 1);
  // Another replica that applied the published entries hits too.
  TaskEngine other(&c, &clock);
  for (auto& [key, entry] : engine.TakeCacheInserts()) other.ApplyCacheEntry(entry);
  EXPECT_EQ(submit(other, "t3").work[0].item.step(), "say");
}

}  // namespace
}  // namespace agentfleet
