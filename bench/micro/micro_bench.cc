// In-process micro-benchmarks (Google Benchmark) of what one workflow step
// costs in CPU outside Kafka: the coordinator's engine, the wire format, and
// the worker's side of a call. `bench/micro/README` in bench/README.md.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/suite.h"
#include "codec/codec.h"
#include "codec/trace.h"
#include "common/clock.h"
#include "common/scheduler.h"
#include "config/config.h"
#include "coordinator/semantic_cache.h"
#include "coordinator/task_engine.h"
#include "kafka/kafka.h"
#include "kafka/mock_cluster.h"
#include "provider/simulated_provider.h"
#include "worker/execution.h"

namespace agentfleet {
namespace {

struct Fixture {
  Fixture() : clock(absl::FromUnixSeconds(1'800'000'000)) {
    auto c = LoadConfigString(BenchConfig("bench.", "at_least_once", ""), "bench.yaml");
    if (!c.ok()) std::abort();
    config = *c;
    engine = std::make_unique<TaskEngine>(&config, &clock);
    provider = std::make_unique<SimulatedProvider>(config.providers.at("instant"), &scheduler);
  }
  v1::TaskSubmission Submission(const std::string& workflow) {
    v1::TaskSubmission s;
    s.set_task_id(absl::StrCat("task-", next++));
    s.set_workflow(workflow);
    (*s.mutable_input()->mutable_fields())["text"].set_string_value(s.task_id());
    return s;
  }
  // The worker's whole answer to an encoded work item: decode, request,
  // simulated response, result event, encode.
  Encoded Work(const Encoded& item) {
    auto decoded = Decode<v1::WorkItem>(item.payload, item.headers, 1 << 20);
    auto request = MakeRequest(config, *decoded);
    ModelResponse response = provider->Respond(*request);
    return Encode(MakeResult(config, *decoded, response, "w1", clock.Now()), traceparent);
  }
  FleetConfig config;
  FakeClock clock;
  ManualScheduler scheduler;
  std::unique_ptr<TaskEngine> engine;
  std::unique_ptr<SimulatedProvider> provider;
  std::string traceparent = NewTraceparent();
  int64_t next = 0;
};

// Everything a task of `workflow` costs outside Kafka, through the bytes:
// the submission decoded, each step dispatched and encoded, the worker's
// part, the result decoded and applied, state snapshots and the result encoded.
// Without `snapshots` the state records are neither taken nor encoded: what
// they cost is the difference (the engine keeps them pending; a measurement
// only).
void RunTask(Fixture& f, const std::string& workflow, int64_t* steps, bool snapshots) {
  Encoded submission = Encode(f.Submission(workflow), f.traceparent);
  auto decoded = Decode<v1::TaskSubmission>(submission.payload, submission.headers, 1 << 20);
  Outbox out;
  if (!f.engine->Submit(*decoded, f.traceparent, 0, &out).ok()) std::abort();
  std::vector<StateChange> changes;
  while (!out.work.empty()) {
    Outbox next;
    for (const auto& w : out.work) {
      Encoded item = Encode(w.item, w.traceparent);
      Encoded event = f.Work(item);
      auto e = Decode<v1::WorkEvent>(event.payload, event.headers, 1 << 20);
      f.engine->OnEvent(*e, &next);
      ++*steps;
    }
    for (const auto& r : next.results) benchmark::DoNotOptimize(Encode(r.result, r.traceparent));
    if (snapshots) f.engine->TakeStateChanges(&changes);
    for (auto& c : changes) {
      if (c.state) benchmark::DoNotOptimize(EncodeSerialized(std::move(*c.state), *v1::TaskState::descriptor(), ""));
    }
    changes.clear();
    out = std::move(next);
  }
}

void BM_TaskThroughCodecEngineAndWorker(benchmark::State& state, const char* workflow, bool snapshots) {
  Fixture f;
  int64_t steps = 0;
  for (auto _ : state) RunTask(f, workflow, &steps, snapshots);
  state.counters["steps/s"] = benchmark::Counter(static_cast<double>(steps), benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_TaskThroughCodecEngineAndWorker, one, "one", true);
BENCHMARK_CAPTURE(BM_TaskThroughCodecEngineAndWorker, chain4, "chain4", true);
BENCHMARK_CAPTURE(BM_TaskThroughCodecEngineAndWorker, chain4_without_state_records, "chain4", false);

// The worker's part alone.
void BM_WorkerCall(benchmark::State& state) {
  Fixture f;
  Outbox out;
  if (!f.engine->Submit(f.Submission("one"), f.traceparent, 0, &out).ok()) std::abort();
  Encoded item = Encode(out.work.at(0).item, f.traceparent);
  for (auto _ : state) benchmark::DoNotOptimize(f.Work(item));
  state.counters["calls/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_WorkerCall);

// The engine alone (no wire format): submit, answer, snapshots.
void BM_EngineStep(benchmark::State& state) {
  Fixture f;
  ModelResponse response;
  response.ok = true;
  response.output = {{"ok", true}};
  response.model = "sim";
  std::vector<StateChange> changes;
  for (auto _ : state) {
    Outbox out, done;
    f.engine->Submit(f.Submission("one"), f.traceparent, 0, &out).IgnoreError();
    f.engine->OnEvent(MakeResult(f.config, out.work.at(0).item, response, "w1", f.clock.Now()), &done);
    f.engine->TakeStateChanges(&changes);
    changes.clear();
  }
  state.counters["steps/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_EngineStep);

// jemalloc's control interface, when the binary links it (a sanitizer build
// does not: ASan brings its own malloc).
extern "C" int mallctl(const char* name, void* oldp, size_t* oldlenp, void* newp, size_t newlen)
    __attribute__((weak));

int64_t HeapAllocated() {
  uint64_t epoch = 1;
  size_t size = sizeof(epoch);
  mallctl("epoch", &epoch, &size, &epoch, size);  // refreshes the statistics
  size_t allocated = 0;
  size = sizeof(allocated);
  return mallctl("stats.allocated", &allocated, &size, nullptr, 0) == 0 ? static_cast<int64_t>(allocated) : -1;
}

// The engine's heap per task in flight: 100,000 one-step tasks submitted
// through the wire format (the bench's input: {text: task id}), each with its
// call dispatched to an agent that does not answer, state snapshots taken.
// What `agentfleet bench --only inflight` measures as the coordinator's RSS,
// without the clients' buffers, the allocator's slack or the broker.
void BM_EngineMemoryPerParkedTask(benchmark::State& state) {
  if (mallctl == nullptr) {
    state.SkipWithError("needs jemalloc (not linked in sanitizer builds)");
    return;
  }
  const int n = static_cast<int>(state.range(0));
  for (auto _ : state) {
    Fixture f;
    std::vector<StateChange> changes;
    int64_t before = HeapAllocated();
    for (int i = 0; i < n; ++i) {
      Encoded submission = Encode(f.Submission("parked_one"), f.traceparent);
      auto decoded = Decode<v1::TaskSubmission>(submission.payload, submission.headers, 1 << 20);
      Outbox out;
      if (!f.engine->Submit(*decoded, f.traceparent, i % 12, &out).ok() || out.work.size() != 1) std::abort();
      benchmark::DoNotOptimize(Encode(out.work[0].item, out.work[0].traceparent));
      f.engine->TakeStateChanges(&changes);
      for (auto& c : changes) {
        if (c.state) benchmark::DoNotOptimize(EncodeSerialized(std::move(*c.state), *v1::TaskState::descriptor(), ""));
      }
      changes.clear();
    }
    int64_t after = HeapAllocated();
    if (f.engine->active_tasks() != static_cast<size_t>(n)) std::abort();
    state.counters["bytes/task"] = static_cast<double>(after - before) / n;
  }
}
BENCHMARK(BM_EngineMemoryPerParkedTask)->Arg(100000)->Iterations(1)->Unit(benchmark::kMillisecond);

// Bytes the calling thread has allocated so far (jemalloc's counter; -1
// without jemalloc).
int64_t ThreadAllocated() {
  if (mallctl == nullptr) return -1;
  uint64_t allocated = 0;
  size_t size = sizeof(allocated);
  return mallctl("thread.allocated", &allocated, &size, nullptr, 0) == 0 ? static_cast<int64_t>(allocated) : -1;
}

// A consumed message through the Kafka seam (Consumer::PollInto): what the
// polling thread spends to take a fetched message out of librdkafka as a
// Message, with a key, a 200-byte payload and the three headers every
// message of the fleet carries. 1,000 messages per iteration, produced to
// the development broker before the timing starts; the broker's and
// librdkafka's own threads are not counted (CPU time is this thread's).
void BM_ConsumeMessages(benchmark::State& state) {
  constexpr int kPerIteration = 1000;
  // The development broker stops serving fetches of a partition past ~13,000
  // such messages (seen with librdkafka 2.0.2's mock cluster): 10,000 here.
  const int iterations = 10;
  auto cluster = MockCluster::Start(1, {{"bench.consume", 1, 1, {}}});
  if (!cluster.ok()) std::abort();
  Properties props{{"bootstrap.servers", (*cluster)->bootstrap()}};
  auto producer = NewProducer(props);
  if (!producer.ok()) std::abort();
  const Headers headers = {{"schema", "agentfleet.v1.WorkItem"}, {"schema-version", "1"},
                           {"traceparent", NewTraceparent()}};
  for (int i = 0; i < kPerIteration * iterations; ++i) {
    if (!(*producer)->Produce({"bench.consume", absl::StrCat("task-", i), std::string(200, 'x'), headers}).ok()) {
      std::abort();
    }
  }
  if (!(*producer)->Flush(absl::Seconds(30)).ok()) std::abort();
  Properties consumer_props = props;
  consumer_props["group.id"] = "bench-consume";
  consumer_props["auto.offset.reset"] = "earliest";
  auto consumer = NewConsumer(consumer_props);
  if (!consumer.ok() || !(*consumer)->Assign({{"bench.consume", 0, 0}}).ok()) std::abort();
  std::vector<Message> batch;
  // The first fetch (connection, offsets) outside the timing.
  while (batch.empty()) (*consumer)->PollInto(absl::Seconds(1), 1, &batch);
  batch.clear();
  int64_t messages = 0;
  const int64_t allocated_before = ThreadAllocated();
  for (auto _ : state) {
    batch.clear();
    while (batch.size() < kPerIteration) {
      (*consumer)->PollInto(absl::Seconds(1), kPerIteration - batch.size(), &batch);
    }
    messages += static_cast<int64_t>(batch.size());
  }
  state.SetItemsProcessed(messages);
  if (allocated_before >= 0) {
    state.counters["heap bytes/msg"] = static_cast<double>(ThreadAllocated() - allocated_before) / static_cast<double>(messages);
  }
}
BENCHMARK(BM_ConsumeMessages)->Iterations(9);

// A produced message through the Kafka seam (Producer::Produce): what the
// producing thread spends to hand librdkafka a message like those above
// (1,000 per iteration, to the development broker; delivery is not waited
// for inside the timing).
void BM_ProduceMessages(benchmark::State& state) {
  constexpr int kPerIteration = 1000;
  auto cluster = MockCluster::Start(1, {{"bench.produce", 1, 1, {}}});
  if (!cluster.ok()) std::abort();
  auto producer = NewProducer({{"bootstrap.servers", (*cluster)->bootstrap()}});
  if (!producer.ok() || !(*producer)->Warm("bench.produce", absl::Seconds(10)).ok()) std::abort();
  const Headers headers = {{"schema", "agentfleet.v1.WorkItem"}, {"schema-version", "1"},
                           {"traceparent", NewTraceparent()}};
  const std::string payload(200, 'x');
  int64_t messages = 0;
  int64_t allocated = 0;
  for (auto _ : state) {
    const int64_t before = ThreadAllocated();
    for (int i = 0; i < kPerIteration; ++i) {
      OutboundMessage m{"bench.produce", absl::StrCat("task-", messages + i), payload, headers};
      if (!(*producer)->Produce(std::move(m)).ok()) std::abort();
    }
    allocated += ThreadAllocated() - before;
    messages += kPerIteration;
    state.PauseTiming();
    if (!(*producer)->Flush(absl::Seconds(30)).ok()) std::abort();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(messages);
  if (mallctl != nullptr) state.counters["heap bytes/msg"] = static_cast<double>(allocated) / static_cast<double>(messages);
}
BENCHMARK(BM_ProduceMessages)->Iterations(10);

void BM_EncodeWorkItem(benchmark::State& state) {
  Fixture f;
  Outbox out;
  if (!f.engine->Submit(f.Submission("one"), f.traceparent, 0, &out).ok()) std::abort();
  for (auto _ : state) benchmark::DoNotOptimize(Encode(out.work.at(0).item, f.traceparent));
}
BENCHMARK(BM_EncodeWorkItem);

void BM_DecodeWorkItem(benchmark::State& state) {
  Fixture f;
  Outbox out;
  if (!f.engine->Submit(f.Submission("one"), f.traceparent, 0, &out).ok()) std::abort();
  Encoded item = Encode(out.work.at(0).item, f.traceparent);
  for (auto _ : state) benchmark::DoNotOptimize(Decode<v1::WorkItem>(item.payload, item.headers, 1 << 20));
}
BENCHMARK(BM_DecodeWorkItem);

// A semantic-cache lookup that misses (the worst case: every entry of the
// scope is compared) among N entries of 384 dimensions (all-MiniLM-L6-v2's).
void BM_SemanticLookup(benchmark::State& state) {
  auto c = LoadConfigString(R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a: {provider: sim, models: {default: m}, semantic_cache: {embedding: {provider: sim, model: m}, max_entries: 1000000}}
workflows: {w: {steps: [{id: s, agent: a, input: {q: $task.q}}]}}
)",
                            "semantic.yaml");
  if (!c.ok()) std::abort();
  const AgentConfig& agent = c->agents.at("a");
  SemanticCache cache(&*c);
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  const int64_t n = state.range(0);
  uint64_t x = 42;
  auto random_vector = [&x]() {
    std::vector<float> v(384);
    for (float& f : v) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      f = static_cast<float>(static_cast<int64_t>(x >> 33) % 2001 - 1000) / 1000.0f;
    }
    return v;
  };
  for (int64_t i = 0; i < n; ++i) {
    cache.Insert(agent, "m", "scope", absl::StrCat("q", i), random_vector(), {{"a", 1}}, now, 0);
  }
  std::vector<float> query = random_vector();
  for (auto _ : state) benchmark::DoNotOptimize(cache.Find(agent, "scope", query, now));
  state.SetLabel(absl::StrCat(n, " entries"));
}
BENCHMARK(BM_SemanticLookup)->Arg(1000)->Arg(10000)->Arg(100000);

}  // namespace
}  // namespace agentfleet

BENCHMARK_MAIN();
