// The semantic cache: a hit needs a similar enough embedding in the same
// scope (agent, model, template version, tenant unless shared, the rest of
// the input); entries expire, are bounded, shared between replicas, and a
// stale schema never serves. In the engine: an embedding request before the
// first call, a hit completes the step with no call (marked with its
// similarity), a miss caches the call's output, a failed or timed-out
// embedding lets the call go ahead, and a takeover mid-lookup loses nothing.
#include "coordinator/semantic_cache.h"

#include "codec/json_value.h"
#include "common/clock.h"
#include "coordinator/task_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine_test_util.h"
#include "worker/execution.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;

constexpr char kConfig[] = R"(
providers: {sim: {type: simulated}, emb: {type: openai, base_url: "http://127.0.0.1:9"}}
pricing:
  m: {input_per_mtok: 1000000, output_per_mtok: 1000000}
  e: {input_per_mtok: 1000, output_per_mtok: 0}
agents:
  answer:
    provider: sim
    models: {default: m}
    output_schema: {type: object, properties: {a: {type: string}}, required: [a]}
    semantic_cache: {embedding: {provider: emb, model: e}, field: question, threshold: 0.9, ttl: 1h, max_entries: 3}
  shared:
    provider: sim
    models: {default: m}
    semantic_cache: {embedding: {provider: sim, model: e}, scope: shared}
  plain: {provider: sim, models: {default: m}}
workflows:
  w:
    steps:
      - {id: ask, agent: answer, input: {question: $task.q, product: $task.p}}
      - {id: say, agent: plain, input: {a: $steps.ask}}
)";

FleetConfig Config() {
  auto c = LoadConfigString(kConfig, "semantic.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

std::vector<float> Vec(std::initializer_list<float> v) { return std::vector<float>(v); }

TEST(SemanticCacheTest, HitsOnlyASimilarEnoughTextInTheSameScope) {
  FleetConfig c = Config();
  const AgentConfig& a = c.agents.at("answer");
  SemanticCache cache(&c);
  absl::Time t = absl::FromUnixSeconds(1000);
  Json in = {{"question", "how do I get a refund?"}, {"product", "shoes"}};
  EXPECT_EQ(*SemanticCache::Text(*a.semantic_cache, in), "how do I get a refund?");
  EXPECT_FALSE(SemanticCache::Text(*a.semantic_cache, Json{{"question", 3}}).has_value()) << "not a string";
  EXPECT_FALSE(SemanticCache::Text(*a.semantic_cache, Json{{"product", "shoes"}}).has_value()) << "missing";
  std::string scope = SemanticCache::Scope(a, "m", "acme", in);
  cache.Insert(a, "m", scope, "how do I get a refund?", Vec({1, 0, 0}), {{"a", "refund policy"}}, t, 0.5);
  // cos = 0.95 (>= 0.9) hits, with its similarity and what the entry cost.
  auto hit = cache.Find(a, scope, Vec({0.95f, 0.3122f, 0}), t);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(*hit->output, (Json{{"a", "refund policy"}}));
  EXPECT_NEAR(hit->similarity, 0.95, 1e-3);
  EXPECT_DOUBLE_EQ(hit->cost_usd, 0.5);
  EXPECT_FALSE(cache.Find(a, scope, Vec({0.85f, 0.5268f, 0}), t).has_value()) << "cos 0.85 < 0.9";
  EXPECT_FALSE(cache.Find(a, scope, Vec({1, 0}), t).has_value()) << "another dimension";
  EXPECT_FALSE(cache.Find(a, scope, Vec({1, 0, 0}), t + absl::Hours(1)).has_value()) << "expired";
  // Another tenant, another product (the rest of the input), another model: other scopes.
  EXPECT_NE(SemanticCache::Scope(a, "m", "other", in), scope);
  EXPECT_NE(SemanticCache::Scope(a, "m", "acme", Json{{"question", "x"}, {"product", "hats"}}), scope);
  EXPECT_EQ(SemanticCache::Scope(a, "m", "acme", Json{{"question", "other words"}, {"product", "shoes"}}), scope)
      << "the compared field is not part of the scope";
  EXPECT_NE(SemanticCache::Scope(a, "n", "acme", in), scope);
  // A shared cache ignores the tenant.
  const AgentConfig& s = c.agents.at("shared");
  EXPECT_EQ(SemanticCache::Scope(s, "m", "acme", in), SemanticCache::Scope(s, "m", "other", in));
  // A new prompt is a new template version: old entries never serve it.
  AgentConfig changed = a;
  changed.template_version = "another";
  EXPECT_NE(SemanticCache::Scope(changed, "m", "acme", in), scope);
}

TEST(SemanticCacheTest, TheBestFreshValidEntryServesAndEntriesAreBoundedPerAgent) {
  FleetConfig c = Config();
  const AgentConfig& a = c.agents.at("answer");
  SemanticCache cache(&c);
  absl::Time t = absl::FromUnixSeconds(1000);
  cache.Insert(a, "m", "s", "one", Vec({1, 0, 0}), {{"a", "one"}}, t, 0);
  cache.Insert(a, "m", "s", "two", Vec({0.96f, 0.28f, 0}), {{"a", "two"}}, t, 0);
  // An entry whose output no longer fits the agent's schema never serves.
  cache.Insert(a, "m", "s", "bad", Vec({0.97f, 0.2431f, 0}), {{"b", 1}}, t, 0);
  auto hit = cache.Find(a, "s", Vec({0.97f, 0.2431f, 0}), t);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ((*hit->output)["a"], "two") << "the closest valid one";
  // max_entries 3: a fourth pushes out the oldest ("one").
  cache.Insert(a, "m", "s", "four", Vec({0, 1, 0}), {{"a", "four"}}, t, 0);
  EXPECT_EQ(cache.size(), 3u);
  hit = cache.Find(a, "s", Vec({1, 0, 0}), t);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ((*hit->output)["a"], "two");
  EXPECT_EQ((*cache.Find(a, "s", Vec({0, 1, 0}), t)->output)["a"], "four");
}

TEST(SemanticCacheTest, ReplicasShareEntriesThroughTheCacheTopic) {
  FleetConfig c = Config();
  const AgentConfig& a = c.agents.at("answer");
  SemanticCache mine(&c), theirs(&c);
  absl::Time t = absl::FromUnixSeconds(1000);
  mine.Insert(a, "m", "s", "text", Vec({3, 4, 0}), {{"a", "x"}}, t, 0.25);
  auto inserts = mine.TakeInserts();
  ASSERT_EQ(inserts.size(), 1u);
  EXPECT_EQ(inserts[0].first, SemanticCache::Key("answer", "m", "s", "text"));
  EXPECT_EQ(inserts[0].first[0], '\x1e') << "never an exact-cache key";
  EXPECT_EQ(inserts[0].second.embedding_size(), 3);
  theirs.Apply(inserts[0].second);
  auto hit = theirs.Find(a, "s", Vec({0.6f, 0.8f, 0}), t);
  ASSERT_TRUE(hit.has_value());
  EXPECT_NEAR(hit->similarity, 1.0, 1e-6);
  EXPECT_DOUBLE_EQ(hit->cost_usd, 0.25);
}

// The engine, with the worker's side played by hand.
class SemanticEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = Config();
    engine_ = std::make_unique<TaskEngine>(&config_, &clock_);
  }
  Outbox Submit(TaskEngine& e, const std::string& id, const std::string& q, const std::string& tenant = "acme") {
    v1::TaskSubmission s = engine_test::Submission(id, "w", {{"q", q}, {"p", "shoes"}});
    s.set_tenant(tenant);
    Outbox out;
    EXPECT_TRUE(e.Submit(s, "", 0, &out).ok());
    return out;
  }
  Outbox Embedded(TaskEngine& e, const v1::WorkItem& item, std::vector<float> v) {
    ModelResponse r;
    r.ok = true;
    r.model = "e";
    r.input_tokens = 8;
    r.embedding = std::move(v);
    Outbox out;
    e.OnEvent(MakeResult(config_, item, r, "w1", clock_.Now()), &out);
    return out;
  }
  FleetConfig config_;
  FakeClock clock_;
  std::unique_ptr<TaskEngine> engine_;
};

TEST_F(SemanticEngineTest, AMissCachesTheCallsOutputAndASimilarQuestionIsServedWithoutACall) {
  Outbox first = Submit(*engine_, "t1", "how do I get a refund?");
  ASSERT_EQ(first.work.size(), 1u);
  const v1::WorkItem embed = first.work[0].item;
  EXPECT_EQ(embed.embed_text(), "how do I get a refund?") << "the compared field, nothing else";
  EXPECT_EQ(embed.input().fields_size(), 0);
  // A miss: the call goes out as the instance's next attempt.
  Outbox call = Embedded(*engine_, embed, Vec({1, 0, 0}));
  ASSERT_EQ(call.work.size(), 1u);
  EXPECT_TRUE(call.work[0].item.embed_text().empty());
  EXPECT_EQ(call.work[0].item.attempt(), 2);
  EXPECT_EQ(engine_->stats().retries, 0) << "the call after a lookup is no retry";
  Outbox say = engine_test::Answer(*engine_, config_, call.work[0].item, {{"a", "30 days"}}, 10, 10);
  engine_test::Answer(*engine_, config_, engine_test::ItemFor(say, "say"), {{"ok", 1}});
  // A paraphrase (cos 0.95): served, no call of 'answer'.
  Outbox second = Submit(*engine_, "t2", "can I have my money back?");
  Outbox served = Embedded(*engine_, second.work[0].item, Vec({0.95f, 0.3122f, 0}));
  ASSERT_EQ(served.work.size(), 1u);
  EXPECT_EQ(served.work[0].item.step(), "say");
  EXPECT_EQ(FromStruct(served.work[0].item.input()), (Json{{"a", {{"a", "30 days"}}}}));
  Outbox done = engine_test::Answer(*engine_, config_, served.work[0].item, {{"ok", 2}});
  ASSERT_EQ(done.results.size(), 1u);
  const v1::StepSummary* ask = engine_test::StepOf(done.results[0].result, "ask");
  ASSERT_NE(ask, nullptr);
  EXPECT_TRUE(ask->cached());
  EXPECT_NEAR(ask->semantic_similarity(), 0.95, 1e-3);
  EXPECT_EQ(ask->attempts(), 0) << "the embedding request is no attempt";
  EXPECT_EQ(ask->usage().calls(), 1) << "the embedding request only";
  EXPECT_NEAR(ask->usage().cost_usd(), 8 * 1000 / 1e6, 1e-12) << "the embedding is charged, the answer is not";
  EXPECT_NEAR(ask->saved_cost_usd(), 20 + 8 * 1000 / 1e6, 1e-9) << "what the call that made the entry cost";
  EXPECT_EQ(engine_->stats().semantic_hits, 1);
  // Another tenant's similar question is not served from acme's entry.
  Outbox other = Submit(*engine_, "t3", "can I have my money back?", "globex");
  Outbox goes = Embedded(*engine_, other.work[0].item, Vec({0.95f, 0.3122f, 0}));
  ASSERT_EQ(goes.work.size(), 1u);
  EXPECT_EQ(goes.work[0].item.step(), "ask");
  // Nor a different question (cos 0.6).
  Outbox far = Submit(*engine_, "t4", "where is my parcel?");
  EXPECT_EQ(Embedded(*engine_, far.work[0].item, Vec({0.6f, 0.8f, 0})).work[0].item.step(), "ask");
  // Another replica applying the published entry serves the paraphrase too.
  TaskEngine replica(&config_, &clock_);
  for (auto& [key, entry] : engine_->TakeCacheInserts()) replica.ApplyCacheEntry(entry);
  Outbox there = Submit(replica, "t5", "refund please");
  EXPECT_EQ(Embedded(replica, there.work[0].item, Vec({0.99f, 0.141f, 0})).work[0].item.step(), "say");
}

TEST_F(SemanticEngineTest, AFailedOrLateEmbeddingLetsTheCallGoAheadWithItsAttemptsIntact) {
  Outbox first = Submit(*engine_, "t1", "refund?");
  // The embedding provider is down: a miss, and the call goes out.
  Outbox call = engine_test::Fail(*engine_, first.work[0].item, "provider_unavailable", true);
  ASSERT_EQ(call.work.size(), 1u);
  EXPECT_TRUE(call.work[0].item.embed_text().empty());
  // The call's own retries count from there: max_attempts 3 (default) calls.
  Outbox retry = engine_test::Fail(*engine_, call.work[0].item, "provider_unavailable", true);
  EXPECT_TRUE(retry.results.empty());
  // An embedding request nobody answers times out into a miss as well.
  Outbox second = Submit(*engine_, "t2", "refund?");
  ASSERT_EQ(second.work.size(), 1u);
  std::optional<v1::WorkItem> t2_call;
  absl::Time asked = clock_.Now();
  for (int i = 0; i < 200 && !t2_call; ++i) {
    clock_.Advance(absl::Seconds(1));
    Outbox timers;
    engine_->Tick(&timers);
    for (const auto& w : timers.work) {
      if (w.item.task_id() == "t2") t2_call = w.item;
    }
  }
  ASSERT_TRUE(t2_call.has_value()) << "the call went out after the lookup timed out";
  EXPECT_TRUE(t2_call->embed_text().empty());
  EXPECT_GE(clock_.Now() - asked, absl::Seconds(10)) << "semantic_cache.timeout (default 10s)";
  EXPECT_LE(clock_.Now() - asked, absl::Seconds(11));
  // Its late embedding changes nothing.
  Outbox late = Embedded(*engine_, second.work[0].item, Vec({1, 0, 0}));
  EXPECT_TRUE(late.work.empty()) << (late.work.empty() ? "" : late.work[0].item.ShortDebugString());
  EXPECT_TRUE(late.results.empty());
}

TEST_F(SemanticEngineTest, ATakeoverDuringTheLookupDispatchesTheCallOnTheNewReplica) {
  Outbox first = Submit(*engine_, "t1", "refund?");
  v1::TaskState state = engine_test::SnapshotOverTheWire(*engine_);
  EXPECT_EQ(state.steps(0).embed_attempt(), 1);
  TaskEngine next(&config_, &clock_);
  next.Restore("t1", state, 0);
  Outbox kicked;
  next.Tick(&kicked);
  // The embedding comes back to the new replica: a miss there (the lookup's
  // scope stayed behind), and the call goes out once.
  Outbox call = Embedded(next, first.work[0].item, Vec({1, 0, 0}));
  ASSERT_EQ(call.work.size() + kicked.work.size(), 1u);
  const v1::WorkItem item = call.work.empty() ? kicked.work[0].item : call.work[0].item;
  EXPECT_EQ(item.step(), "ask");
  EXPECT_TRUE(item.embed_text().empty());
  Outbox say = engine_test::Answer(next, config_, item, {{"a", "x"}});
  EXPECT_EQ(engine_test::ItemFor(say, "say").step(), "say");
}

TEST(SemanticEngineQuotaTest, ARedeliveredEmbeddingIsNoOutputWhileTheCallWaitsForItsQuota) {
  auto c = LoadConfigString(R"(
providers: {sim: {type: simulated, rate_limits: {m: {requests_per_minute: 1}}}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a: {provider: sim, models: {default: m}, semantic_cache: {embedding: {provider: sim, model: m}, field: q}}
workflows: {w: {steps: [{id: s, agent: a, input: {q: $task.q}}]}}
)",
                            "quota.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  FakeClock clock;
  TaskEngine engine(&*c, &clock);
  Outbox first;
  ASSERT_TRUE(engine.Submit(engine_test::Submission("t1", "w", {{"q", "refund?"}}), "", 0, &first).ok());
  ASSERT_EQ(first.work.size(), 1u);
  const v1::WorkItem embed = first.work[0].item;
  ModelResponse r;
  r.ok = true;
  r.model = "m";
  r.embedding = {1, 0, 0};
  // A miss: the call waits for the quota (its bucket starts empty) under
  // the lookup's attempt number.
  Outbox miss;
  engine.OnEvent(MakeResult(*c, embed, r, "w1", clock.Now()), &miss);
  EXPECT_TRUE(miss.work.empty());
  EXPECT_EQ(engine.rate_waiting(), 1u);
  // The embedding request redelivered to another worker answers again: no
  // output of the step, nothing dispatched, the call still waits.
  for (const auto& event : {MakeReceipt(embed, "w2", clock.Now()), MakeResult(*c, embed, r, "w2", clock.Now())}) {
    Outbox again;
    engine.OnEvent(event, &again);
    EXPECT_TRUE(again.results.empty());
    EXPECT_TRUE(again.work.empty());
  }
  EXPECT_EQ(engine.rate_waiting(), 1u);
  // Across a takeover too: the restored call waits, and the lookup is not out.
  v1::TaskState state = engine_test::SnapshotOverTheWire(engine);
  TaskEngine next(&*c, &clock);
  next.Restore("t1", state, 0);
  Outbox late;
  next.OnEvent(MakeResult(*c, embed, r, "w2", clock.Now()), &late);
  EXPECT_TRUE(late.results.empty());
  EXPECT_TRUE(late.work.empty());
  // The quota refills: the call goes out once, as the next attempt.
  Outbox call;
  for (int i = 0; i < 120 && call.work.empty(); ++i) {
    clock.Advance(absl::Seconds(1));
    next.Tick(&call);
  }
  ASSERT_EQ(call.work.size(), 1u);
  EXPECT_EQ(call.work[0].item.attempt(), 2);
  EXPECT_TRUE(call.work[0].item.embed_text().empty());
}

TEST(SemanticCacheConfigTest, MistakesNameTheirField) {
  auto load = [](const std::string& cache) {
    return LoadConfigString(absl::StrCat(R"(
providers: {sim: {type: simulated}, claude: {type: anthropic, base_url: "http://x"}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a:
    provider: sim
    models: {default: m}
    semantic_cache: )", cache, R"(
workflows: {w: {steps: [{id: s, agent: a, input: {q: $task.q}}]}}
)"),
                            "bad.yaml");
  };
  auto error = [&](const std::string& cache) {
    auto c = load(cache);
    return c.ok() ? std::string("loaded") : std::string(c.status().message());
  };
  EXPECT_TRUE(load("{embedding: {provider: sim, model: m}, field: q, threshold: 0.92, scope: shared}").ok());
  EXPECT_THAT(error("{field: q}"), ::testing::HasSubstr("bad.yaml:8:21: agents.a.semantic_cache.embedding: is required"));
  EXPECT_THAT(error("{embedding: {provider: claude, model: m}}"),
              ::testing::HasSubstr("agents.a.semantic_cache.embedding.provider: provider 'claude' is an Anthropic one"));
  EXPECT_THAT(error("{embedding: {provider: sim, model: nope}}"),
              ::testing::HasSubstr("agents.a.semantic_cache.embedding.model: model 'nope' has no entry in pricing"));
  EXPECT_THAT(error("{embedding: {provider: sim, model: m}, threshold: 0.2}"),
              ::testing::HasSubstr("agents.a.semantic_cache.threshold: must be >= 0.5 and <= 1"));
  EXPECT_THAT(error("{embedding: {provider: sim, model: m}, scope: everyone}"),
              ::testing::HasSubstr("agents.a.semantic_cache.scope: expected tenant or shared, got 'everyone'"));
  EXPECT_THAT(error("{embedding: {provider: sim, model: m}, ttl: 30d}"),
              ::testing::HasSubstr("agents.a.semantic_cache.ttl"));
  EXPECT_THAT(error("{embedding: {provider: sim, model: m}, fields: q}"),
              ::testing::HasSubstr("agents.a.semantic_cache.fields: unknown key (expected one of: embedding, field,"));
}

}  // namespace
}  // namespace agentfleet
