// The worker's Kafka loop (worker/worker.h) on the in-memory Kafka fakes:
// pause and resume across rebalances, dead letters that cannot be delivered.
#include <atomic>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "common/error_codes.h"
#include "google/protobuf/util/time_util.h"
#include "config/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kafka/topics.h"
#include "tests/unit/fake_kafka.h"
#include "worker/worker.h"

namespace agentfleet {
namespace {

using testing::FakeConsumer;
using testing::FakeProducer;

FleetConfig Config() {
  auto c = LoadConfigString(R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a: {provider: sim, models: {default: m}}
workflows: {w: {steps: [{id: s, agent: a}]}}
)", "w.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

// Holds every call until the test answers it.
class HeldProvider : public ModelProvider {
 public:
  void Call(ModelRequest request, std::function<void(ModelResponse)> done) override {
    absl::MutexLock lock(&mu_);
    seen_.push_back(request.idempotency_key);
    held_.push_back(std::move(done));
  }
  void CallAll(std::vector<Pending> calls) override {
    {
      absl::MutexLock lock(&mu_);
      handovers_.push_back(calls.size());
    }
    ModelProvider::CallAll(std::move(calls));
  }
  // How many calls each CallAll() handed over, in order.
  std::vector<size_t> handovers() {
    absl::MutexLock lock(&mu_);
    return handovers_;
  }
  // Answers every held call OK.
  void ReleaseAll() {
    std::vector<std::function<void(ModelResponse)>> calls;
    {
      absl::MutexLock lock(&mu_);
      calls.swap(held_);
    }
    for (auto& done : calls) done(ModelResponse::Ok(nlohmann::json{{"ok", true}}, 1, 1, "m", absl::Milliseconds(1)));
  }
  size_t held() {
    absl::MutexLock lock(&mu_);
    return held_.size();
  }
  bool Saw(const std::string& key) {
    absl::MutexLock lock(&mu_);
    return std::find(seen_.begin(), seen_.end(), key) != seen_.end();
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> seen_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void(ModelResponse)>> held_ ABSL_GUARDED_BY(mu_);
  std::vector<size_t> handovers_ ABSL_GUARDED_BY(mu_);
};

// Polls `done` every millisecond for up to 10 s (a bound, not a pace).
bool Eventually(const std::function<bool()>& done) {
  for (absl::Time until = absl::Now() + absl::Seconds(10); absl::Now() < until;) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return done();
}

class WorkerLoopTest : public ::testing::Test {
 protected:
  // Advances time a second at a time, the loop going round in between, until
  // the worker restarts a fetch: that second, or -1 if 60 s passed without.
  int SecondsUntilRestart() {
    for (int second = 1; second <= 60; ++second) {
      clock_.Advance(absl::Seconds(1));
      if (!LoopRuns(2)) {
        ADD_FAILURE() << "the loop stopped running";
        return -1;
      }
      if (consumer_.restarts() > 0) return second;
    }
    return -1;
  }

  void StartWorker(int max_in_flight, absl::Duration stall_after = absl::Hours(1)) {
    WorkerOptions options = options_;
    options.worker_id = "w1";
    options.agents = {"a"};
    options.max_in_flight = max_in_flight;
    options.poll_timeout = absl::Milliseconds(1);
    options.pause_after = absl::ZeroDuration();  // pause as soon as full

    options.stall_after = stall_after;
    options.clock = &clock_;
    worker_ = std::make_unique<Worker>(&config_, &consumer_, &producer_,
                                       std::map<std::string, ModelProvider*>{{"sim", &provider_}}, options);
    consumer_.set_listener(worker_.get());
    ASSERT_TRUE(worker_->Start().ok());
    consumer_.ScheduleRebalance({{topic_, 0}});
    thread_ = std::thread([this] {
      (void)worker_->Run([this] {
        ++asks_;
        return stop_.load();
      });
    });
  }
  // Lets the worker's loop go round `n` more times (each polls once).
  bool LoopRuns(int n) {
    int64_t until = consumer_.polls() + n;
    return Eventually([&] { return consumer_.polls() >= until; });
  }
  void TearDown() override {
    stop_.store(true);
    provider_.ReleaseAll();
    if (thread_.joinable()) thread_.join();
  }
  void AppendItem(const std::string& task_id) {
    v1::WorkItem w;
    w.set_task_id(task_id);
    w.set_step("s");
    w.set_fan_index(-1);
    w.set_attempt(1);
    w.set_agent("a");
    w.set_idempotency_key(task_id);
    *w.mutable_input() = ToStruct(nlohmann::json{{"q", task_id}});
    Encoded e = Encode(w, "");
    consumer_.Append(topic_, 0, task_id, e.payload, e.headers);
  }

  // The events the worker published so far, decoded.
  std::vector<v1::WorkEvent> Events() {
    std::vector<v1::WorkEvent> out;
    for (const auto& m : producer_.To(topics_.events)) {
      auto e = Decode<v1::WorkEvent>(m.payload, m.headers);
      EXPECT_TRUE(e.ok()) << e.status();
      if (e.ok()) out.push_back(*e);
    }
    return out;
  }
  static int Count(const std::vector<v1::WorkEvent>& events, v1::WorkEvent::KindCase kind) {
    return static_cast<int>(std::count_if(events.begin(), events.end(),
                                          [kind](const v1::WorkEvent& e) { return e.kind_case() == kind; }));
  }

  FleetConfig config_ = Config();
  Topics topics_{config_.kafka.topic_prefix};
  std::string topic_ = topics_.Work("a");
  // What StartWorker() starts with besides its arguments; tests may change it first.
  WorkerOptions options_ = [] {
    WorkerOptions o;
    o.receipt_delay = absl::Hours(1);
    o.heartbeat_interval = absl::Hours(1);
    o.shutdown_grace = absl::ZeroDuration();
    return o;
  }();
  // Receipts, heartbeats and stall checks fall due by this clock alone.
  FakeClock clock_;
  FakeConsumer consumer_;
  FakeProducer producer_;
  HeldProvider provider_;
  std::unique_ptr<Worker> worker_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> asks_{0};  // how often the loop asked whether to stop
  std::thread thread_;
};

// H1 of issue 15: the worker pauses its assignment when full; a session
// timeout revokes the partitions as lost and assigns them again; librdkafka
// keeps the application's pause, so unless the worker resumes what it is
// assigned, the partition is never fetched again.
TEST_F(WorkerLoopTest, APartitionPausedWhileFullIsFetchedAgainAfterARebalance) {
  for (int i = 0; i < 4; ++i) AppendItem("t" + std::to_string(i));
  StartWorker(/*max_in_flight=*/2);
  ASSERT_TRUE(Eventually([&] { return provider_.held() == 2 && consumer_.IsPaused(topic_, 0); }))
      << "two calls run and the full worker paused its partition";
  consumer_.ScheduleRebalance({{topic_, 0}});
  ASSERT_TRUE(Eventually([&] { return consumer_.rebalances() == 2; }));
  // Slots free up: every item, the two never started included, must run.
  bool all = Eventually([&] {
    provider_.ReleaseAll();
    return provider_.Saw("t2") && provider_.Saw("t3");
  });
  EXPECT_TRUE(all) << "after the rebalance the partition stayed paused: items t2 and t3 never ran";
}

// Issue 17, item 3: under cooperative rebalancing an assignment reports only
// the partitions added. A worker full and paused on partition 0 is assigned
// partition 1 just after its calls finished: unless it resumes everything it
// owns, partition 0 stays paused with room to spare, and t2 and t3 never run.
TEST_F(WorkerLoopTest, AnIncrementalAssignmentResumesThePartitionsKeptPaused) {
  for (int i = 0; i < 4; ++i) AppendItem("t" + std::to_string(i));
  StartWorker(/*max_in_flight=*/2);
  ASSERT_TRUE(Eventually([&] { return provider_.held() == 2 && consumer_.IsPaused(topic_, 0); }))
      << "two calls run and the full worker paused its partition";
  consumer_.ScheduleIncrementalAssign({{topic_, 1}}, [&] { provider_.ReleaseAll(); });
  ASSERT_TRUE(Eventually([&] { return consumer_.rebalances() == 2; }));
  bool all = Eventually([&] {
    provider_.ReleaseAll();
    return provider_.Saw("t2") && provider_.Saw("t3");
  });
  EXPECT_TRUE(all) << "partition 0 stayed paused after partition 1 was added: items t2 and t3 never ran";
}

// Issue 23: the calls of one poll reach their provider in one handover (one
// wake-up of the provider's thread, not one per call), and each runs once.
TEST_F(WorkerLoopTest, TheCallsOfOnePollAreHandedToTheProviderAtOnce) {
  for (int i = 0; i < 3; ++i) AppendItem("t" + std::to_string(i));
  StartWorker(/*max_in_flight=*/8);
  ASSERT_TRUE(Eventually([&] { return provider_.held() == 3; }));
  EXPECT_THAT(provider_.handovers(), ::testing::ElementsAre(3u));
  AppendItem("t3");
  ASSERT_TRUE(Eventually([&] { return provider_.held() == 4; }));
  EXPECT_THAT(provider_.handovers(), ::testing::ElementsAre(3u, 1u));
  provider_.ReleaseAll();
  ASSERT_TRUE(Eventually([&] { return worker_->in_flight() == 0; }));
  EXPECT_EQ(worker_->stats().succeeded.load(), 4);
}

// Issue 15, item 7: an unreadable item whose dead letter cannot be delivered
// must not stay in flight forever: the partition's offsets move past it, and
// the failure is counted and logged with the record's coordinates.
TEST_F(WorkerLoopTest, AnUnreadableItemThatCannotBeDeadLetteredDoesNotHoldThePartition) {
  producer_.FailTopic(topics_.dlq);
  consumer_.Append(topic_, 0, "garbage", "\x08\x96\x01 not a work item");
  AppendItem("t1");
  StartWorker(/*max_in_flight=*/4);
  ASSERT_TRUE(Eventually([&] { return provider_.Saw("t1"); }));
  provider_.ReleaseAll();
  EXPECT_TRUE(Eventually([&] {
    (void)consumer_.CommitStored();
    return consumer_.Committed(topic_, 0) == 2;
  })) << "committed offset " << consumer_.Committed(topic_, 0);
  EXPECT_EQ(producer_.failed(), 1);
  EXPECT_EQ(worker_->stats().dead_letter_failures.load(), 1);
  EXPECT_EQ(worker_->in_flight(), 0u);
}

// Issue 15, H3 and the backstop: a partition that stays assigned but whose
// fetcher never starts (librdkafka 2.0.2 after a failed committed-offset
// fetch) is noticed once it has not moved for stall_after while the worker
// had room, and its fetch restarted; its items then run.
TEST_F(WorkerLoopTest, APartitionAssignedButNotFetchingIsRestartedAndItsItemsRun) {
  AppendItem("t0");
  AppendItem("t1");
  consumer_.StallFetch(topic_, 0);
  StartWorker(/*max_in_flight=*/4, /*stall_after=*/absl::Seconds(30));
  // Time passes a second at a time, the loop going round in between: the
  // restart comes once the partition has been stuck stall_after, not
  // before, and within two checks (every stall_after / 3) after that.
  int restarted_at = SecondsUntilRestart();
  EXPECT_GE(restarted_at, 30) << "restarted before stall_after";
  EXPECT_LE(restarted_at, 50) << "never restarted, or late";
  EXPECT_TRUE(Eventually([&] {
    provider_.ReleaseAll();
    return provider_.Saw("t0") && provider_.Saw("t1");
  })) << "the stalled partition was never restarted";
  EXPECT_EQ(consumer_.restarts(), 1);
  EXPECT_EQ(worker_->stats().stalls_recovered.load(), 1);
}

// The same when the stopped fetcher had fetched before: its cached high
// watermark stays at the position and looks caught up (the client tests on
// Kafka 3.7.2 once had five items sit unfetched for three minutes so); the
// broker, asked, says there is more.
TEST_F(WorkerLoopTest, AFetcherThatStoppedLookingCaughtUpIsFoundByAskingTheBroker) {
  AppendItem("t0");
  AppendItem("t1");
  consumer_.FreezeFetch(topic_, 0);
  StartWorker(/*max_in_flight=*/4, /*stall_after=*/absl::Seconds(30));
  int restarted_at = SecondsUntilRestart();
  EXPECT_GE(restarted_at, 30) << "restarted before stall_after";
  EXPECT_LE(restarted_at, 50) << "never restarted, or late";
  EXPECT_GE(consumer_.end_queries(), 1);
  EXPECT_TRUE(Eventually([&] {
    provider_.ReleaseAll();
    return provider_.Saw("t0") && provider_.Saw("t1");
  }));
  EXPECT_EQ(worker_->stats().stalls_recovered.load(), 1);
}

// The backstop leaves alone a partition that is quiet because it has
// nothing to fetch, and one the worker paused because it is full.
TEST_F(WorkerLoopTest, AQuietOrDeliberatelyPausedPartitionIsNotRestarted) {
  for (int i = 0; i < 3; ++i) AppendItem("t" + std::to_string(i));
  StartWorker(/*max_in_flight=*/2, /*stall_after=*/absl::Seconds(30));
  ASSERT_TRUE(Eventually([&] { return provider_.held() == 2 && consumer_.IsPaused(topic_, 0); }));
  for (int i = 0; i < 10; ++i) {  // ten stall periods while full and paused
    clock_.Advance(absl::Seconds(31));
    ASSERT_TRUE(LoopRuns(3));
  }
  EXPECT_EQ(consumer_.restarts(), 0);
  ASSERT_TRUE(Eventually([&] {
    provider_.ReleaseAll();
    return provider_.Saw("t2") && worker_->in_flight() == 0;
  }));
  int queries_before = consumer_.end_queries();
  for (int i = 0; i < 10; ++i) {  // ten stall periods with nothing to fetch
    clock_.Advance(absl::Seconds(31));
    ASSERT_TRUE(LoopRuns(3));
  }
  EXPECT_EQ(consumer_.restarts(), 0);
  EXPECT_LE(consumer_.end_queries() - queries_before, 10) << "at most one broker query per quiet stall period";
  EXPECT_EQ(worker_->stats().stalls_recovered.load(), 0);
}

// A running call is acknowledged once receipt_delay has passed by the
// worker's clock (a fast one never is), and beats every heartbeat_interval
// from its start;
// each event is stamped with the clock's time, not the wall clock's.
TEST_F(WorkerLoopTest, ReceiptsAndHeartbeatsFallDueByTheWorkersClockAndCarryItsTime) {
  options_.receipt_delay = absl::Seconds(2);
  options_.heartbeat_interval = absl::Seconds(8);
  AppendItem("t1");
  StartWorker(/*max_in_flight=*/4);
  ASSERT_TRUE(Eventually([&] { return provider_.held() == 1; }));
  ASSERT_TRUE(LoopRuns(3));
  EXPECT_EQ(Count(Events(), v1::WorkEvent::kReceipt), 0) << "a receipt before receipt_delay";
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(Eventually([&] { return Count(Events(), v1::WorkEvent::kReceipt) == 1; }));
  for (const v1::WorkEvent& e : Events()) {
    EXPECT_EQ(absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(e.at())), clock_.Now());
  }
  clock_.Advance(absl::Seconds(5));  // 7 s since the call started
  ASSERT_TRUE(LoopRuns(3));
  EXPECT_EQ(Count(Events(), v1::WorkEvent::kHeartbeat), 0) << "a heartbeat before heartbeat_interval";
  clock_.Advance(absl::Seconds(3));  // due at 8 s, seen by the scan every heartbeat_interval / 4
  ASSERT_TRUE(Eventually([&] { return Count(Events(), v1::WorkEvent::kHeartbeat) == 1; }));
  EXPECT_EQ(absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(Events().back().at())),
            clock_.Now());
}

// On shutdown the worker waits shutdown_grace for its calls, then reports
// each one still running as a retryable worker_shutdown failure, so the
// coordinator retries it at once instead of waiting for a timeout.
TEST_F(WorkerLoopTest, ADrainReportsCallsStillRunningAsRetryableShutdownFailures) {
  AppendItem("t1");
  AppendItem("t2");
  StartWorker(/*max_in_flight=*/4);
  ASSERT_TRUE(Eventually([&] { return provider_.held() == 2; }));
  stop_.store(true);
  thread_.join();
  std::vector<v1::WorkEvent> events = Events();
  ASSERT_EQ(Count(events, v1::WorkEvent::kResult), 2);
  for (const v1::WorkEvent& e : events) {
    if (!e.has_result()) continue;
    EXPECT_EQ(e.result().error().code(), kWorkerShutdown) << e.task_id();
    EXPECT_TRUE(e.result().error().retryable()) << e.task_id();
  }
  EXPECT_EQ(worker_->stats().abandoned.load(), 2);
  EXPECT_EQ(worker_->in_flight(), 0u);
}

// A drain within the grace period keeps asking the stop predicate once per
// pass, as the loop does: the process's liveness watch (/healthz) counts
// those asks as turns, so a drain longer than --liveness_timeout is not
// taken for a stuck loop. The call it waits for then ends normally.
TEST_F(WorkerLoopTest, ADrainKeepsAskingTheStopPredicateWhileItWaits) {
  options_.shutdown_grace = absl::Hours(1);
  AppendItem("t1");
  StartWorker(/*max_in_flight=*/4);
  ASSERT_TRUE(Eventually([&] { return provider_.held() == 1; }));
  stop_.store(true);
  int64_t at_stop = asks_.load();
  ASSERT_TRUE(Eventually([&] { return asks_.load() >= at_stop + 5; })) << "the drain stopped asking";
  EXPECT_EQ(worker_->in_flight(), 1u) << "still draining: the call is held";
  provider_.ReleaseAll();
  thread_.join();
  std::vector<v1::WorkEvent> events = Events();
  ASSERT_EQ(Count(events, v1::WorkEvent::kResult), 1);
  for (const v1::WorkEvent& e : events) {
    if (e.has_result()) EXPECT_EQ(e.result().status(), v1::RESULT_STATUS_OK) << "the call ended within the grace";
  }
  EXPECT_EQ(worker_->stats().abandoned.load(), 0);
}

// Seen in CI (HttpWorkerTest.SigtermUnderLoad..., Kafka 4.4.0): a rebalance
// took the worker's partitions while its calls ran, and then a SIGTERM. The
// calls were still running here, but the drain counted only items on
// partitions it held: it ended at once, reported nothing, and the coordinator
// waited for its attempt timeouts. The drain waits for and hands back every
// call it runs, whoever owns the partition now; and the worker's limit holds
// them too.
TEST_F(WorkerLoopTest, ADrainHandsBackCallsWhosePartitionWasRevokedWhileTheyRan) {
  AppendItem("t1");
  AppendItem("t2");
  AppendItem("t3");
  StartWorker(/*max_in_flight=*/2);
  ASSERT_TRUE(Eventually([&] { return provider_.held() == 2; }));
  consumer_.ScheduleRebalance({});  // the partition moved to another worker
  ASSERT_TRUE(Eventually([&] { return consumer_.rebalances() == 2; }));
  ASSERT_TRUE(LoopRuns(3));
  EXPECT_EQ(worker_->in_flight(), 2u) << "the revoked partition's calls still run here";
  stop_.store(true);
  thread_.join();
  std::vector<v1::WorkEvent> events = Events();
  EXPECT_EQ(Count(events, v1::WorkEvent::kResult), 2) << "the calls running at the SIGTERM were not handed back";
  for (const v1::WorkEvent& e : events) {
    if (e.has_result()) {
      EXPECT_EQ(e.result().error().code(), kWorkerShutdown) << e.task_id();
    }
  }
  EXPECT_EQ(worker_->stats().abandoned.load(), 2);
  EXPECT_EQ(worker_->in_flight(), 0u);
}

// The same rebalance, the partition assigned back at once: the two calls
// still running count against the worker's limit, so the items redelivered
// from the committed offset wait for a slot instead of running beside them.
TEST_F(WorkerLoopTest, CallsOfARevokedPartitionStillCountAgainstTheLimit) {
  AppendItem("t1");
  AppendItem("t2");
  StartWorker(/*max_in_flight=*/2);
  ASSERT_TRUE(Eventually([&] { return provider_.held() == 2; }));
  consumer_.ScheduleRebalance({{topic_, 0}});  // revoked, then assigned again
  ASSERT_TRUE(Eventually([&] { return consumer_.rebalances() == 2; }));
  ASSERT_TRUE(LoopRuns(5));
  EXPECT_EQ(provider_.held(), 2u) << "a rebalance let the worker past its limit of 2 calls";
  EXPECT_EQ(worker_->in_flight(), 2u);
}

}  // namespace
}  // namespace agentfleet
