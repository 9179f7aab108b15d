// TaskEngine's quota queues (coordinator/rate_queues.cc): dispatches that
// wait for a provider's quota, interactive before batch, first come first
// served, moving with their task to another replica, and leaving the queue
// when something else serves them.
#include "coordinator/task_engine.h"

#include "codec/json_value.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine_test_util.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;

using engine_test::RatesConfig;


TEST(RateQueuesTest, InteractiveWorkIsDispatchedBeforeBatchWorkWhenTheQuotaBinds) {
  FleetConfig c = RatesConfig();
  FakeClock clock;
  TaskEngine engine(&c, &clock);
  auto submit = [&](const std::string& id, v1::Priority priority) {
    v1::TaskSubmission s = engine_test::Submission(id, "w", {{"q", id}});
    s.set_priority(priority);
    Outbox out;
    EXPECT_TRUE(engine.Submit(s, "", 0, &out).ok());
    return out;
  };
  // The bucket starts empty: everything waits.
  for (const char* id : {"batch-1", "batch-2", "batch-3"}) EXPECT_TRUE(submit(id, v1::PRIORITY_BATCH).work.empty());
  EXPECT_TRUE(submit("interactive-1", v1::PRIORITY_INTERACTIVE).work.empty());
  EXPECT_EQ(engine.rate_waiting(), 4u);
  EXPECT_EQ(engine.stats().rate_waits, 4);
  EXPECT_LE(engine.NextTimer(), clock.Now() + absl::Milliseconds(1002));
  std::vector<std::string> order;
  for (int second = 1; second <= 4; ++second) {
    clock.Advance(absl::Seconds(1));
    Outbox out;
    engine.Tick(&out);
    ASSERT_EQ(out.work.size(), 1u) << "one request a second, at second " << second;
    order.push_back(out.work[0].item.task_id());
  }
  EXPECT_THAT(order, ::testing::ElementsAre("interactive-1", "batch-1", "batch-2", "batch-3"));
  EXPECT_EQ(engine.rate_waiting(), 0u);
}

TEST(RateQueuesTest, AWaitingTaskMovesWithItsStateToAnotherReplica) {
  FleetConfig c = RatesConfig();
  FakeClock clock;
  TaskEngine engine(&c, &clock);
  Outbox out;
  ASSERT_TRUE(engine.Submit(engine_test::Submission("t1", "w", {{"q", "x"}}), "", 0, &out).ok());
  ASSERT_TRUE(out.work.empty());
  v1::TaskState wire = engine_test::SnapshotOverTheWire(engine);
  TaskEngine other(&c, &clock);
  other.Restore("t1", wire, 0);
  Outbox none;
  other.Tick(&none);
  EXPECT_TRUE(none.work.empty());
  EXPECT_EQ(other.rate_waiting(), 1u);
  clock.Advance(absl::Seconds(1));
  Outbox later;
  other.Tick(&later);
  ASSERT_EQ(later.work.size(), 1u);
  EXPECT_EQ(later.work[0].item.task_id(), "t1");
}

TEST(RateQueuesTest, TasksThatLeaveAndComeBackToTheSameReplicaAreServedAgain) {
  // A replica's partition is revoked while its tasks wait for the quota, and
  // assigned back: the waits from before the move must not hold the queue.
  FleetConfig c = RatesConfig();
  FakeClock clock;
  TaskEngine engine(&c, &clock);
  std::vector<v1::TaskState> snapshots;
  for (const char* id : {"t1", "t2", "t3"}) {
    Outbox out;
    ASSERT_TRUE(engine.Submit(engine_test::Submission(id, "w", {{"q", id}}), "", 0, &out).ok());
    ASSERT_TRUE(out.work.empty());
    snapshots.push_back(engine_test::SnapshotOverTheWire(engine));
  }
  ASSERT_EQ(engine.rate_waiting(), 3u);
  engine.SetQuotaShare(0);
  engine.DropPartitions({0});
  for (const v1::TaskState& s : snapshots) engine.Restore(s.submission().task_id(), s, 0);
  engine.SetQuotaShare(1);
  std::vector<std::string> dispatched;
  for (int second = 1; second <= 5 && dispatched.size() < 3; ++second) {
    clock.Advance(absl::Seconds(1));
    Outbox out;
    engine.Tick(&out);
    for (const auto& w : out.work) dispatched.push_back(w.item.task_id());
  }
  EXPECT_THAT(dispatched, ::testing::UnorderedElementsAre("t1", "t2", "t3"));
  EXPECT_EQ(engine.rate_waiting(), 0u);
}

// An instance waiting in a quota's queue that the result cache serves when
// its turn comes waits for nothing any more: the next in the queue is served
// in the same tick. (Before the explicit wait states its queue entry stayed
// live at the head, so the queue stopped until its task finished, and each
// tick served the same instance from the cache again.)
TEST(RateQueuesTest, AQueuedInstanceTheCacheServesLeavesTheQueueAndTheNextIsServed) {
  auto c = LoadConfigString(R"(
providers:
  sim:
    type: simulated
    rate_limits:
      m: {requests_per_minute: 60}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}, free: {input_per_mtok: 0, output_per_mtok: 0}}
agents:
  a: {provider: sim, models: {default: m}, cache: {ttl: 1h}}
  b: {provider: sim, models: {default: free}}
workflows:
  w: {steps: [{id: s, agent: a, input: {q: $task.q}}, {id: t, agent: b, input: {prev: $steps.s}}]}
)", "cached.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  FakeClock clock;
  TaskEngine engine(&*c, &clock);
  for (auto [id, q] : {std::pair{"A", "x"}, {"B", "x"}, {"C", "y"}}) {
    Outbox out;
    ASSERT_TRUE(engine.Submit(engine_test::Submission(id, "w", {{"q", q}}), "", 0, &out).ok());
    ASSERT_TRUE(out.work.empty()) << "the bucket starts empty";
  }
  auto steps = [](const Outbox& out) {
    std::vector<std::string> v;
    for (const auto& w : out.work) v.push_back(w.item.task_id() + "." + w.item.step());
    return v;
  };
  clock.Advance(absl::Seconds(1));
  Outbox first;
  engine.Tick(&first);
  ASSERT_THAT(steps(first), ::testing::ElementsAre("A.s"));
  Outbox answered = engine_test::Answer(engine, *c, first.work[0].item, {{"answer", 42}});  // cached for q=x
  ASSERT_THAT(steps(answered), ::testing::ElementsAre("A.t"));
  clock.Advance(absl::Seconds(1));
  Outbox second;
  engine.Tick(&second);
  EXPECT_THAT(steps(second), ::testing::UnorderedElementsAre("B.t", "C.s"))
      << "B served from the cache, and C, next in the queue, in the same tick";
  EXPECT_EQ(engine.stats().cache_hits, 1);
  EXPECT_EQ(engine.rate_waiting(), 0u);
  for (int i = 0; i < 3; ++i) {
    clock.Advance(absl::Seconds(1));
    Outbox later;
    engine.Tick(&later);
    EXPECT_TRUE(later.work.empty());
  }
  EXPECT_EQ(engine.stats().cache_hits, 1) << "B's step was served once";
}

}  // namespace
}  // namespace agentfleet
