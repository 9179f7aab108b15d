// The coordinator's Kafka loop (coordinator/coordinator.h) on the in-memory
// Kafka fakes: what it does with messages too large to publish, bad
// submissions without a key, and garbage on the state topic; ownership moving
// (revoke, restore); a failed commit (abort, rewind, redo) and a fenced one.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "common/clock.h"
#include "common/error_codes.h"
#include "config/config.h"
#include "coordinator/coordinator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kafka/dead_letter.h"
#include "kafka/topics.h"
#include "metrics/fleet_metrics.h"
#include "prometheus/registry.h"
#include "tests/unit/fake_kafka.h"

namespace agentfleet {
namespace {

using ::testing::HasSubstr;
using testing::FakeConsumer;
using testing::FakeProducer;

constexpr size_t kMaxMessage = 65536;

FleetConfig Config() {
  auto c = LoadConfigString(R"(
kafka: {partitions: 2, max_message_bytes: 65536}
coordinator: {max_payload_bytes: 65536, commit_policy: interval}
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a: {provider: sim, models: {default: m}}
workflows: {w: {steps: [{id: s, agent: a}, {id: t, agent: a, input: {prev: $steps.s}}]}}
)", "w.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

// A worker's OK answer to `item` with `output`, encoded for the events topic
// (the coordinator goes by its own clock, not the event's time).
Encoded OkAnswer(const v1::WorkItem& item, const nlohmann::json& output) {
  v1::WorkEvent e = WorkEventFor(item, absl::UnixEpoch());
  e.mutable_result()->set_status(v1::RESULT_STATUS_OK);
  e.mutable_result()->set_model("m");
  *e.mutable_result()->mutable_output() = ToStruct(output);
  return Encode(e, "");
}

// A submission of workflow w, on the tasks topic's partition 0.
void SubmitTo(testing::FakeLog& log, const Topics& topics, const std::string& id, const nlohmann::json& input) {
  v1::TaskSubmission sub;
  sub.set_task_id(id);
  sub.set_workflow("w");
  *sub.mutable_input() = ToStruct(input);
  Encoded e = Encode(sub, "");
  log.Append({topics.tasks, 0, 0, id, e.payload, e.headers, 0});
}

class CoordinatorLoopTest : public ::testing::Test {
 protected:
  // Most tests step transactions by the clock (commit_policy: interval);
  // AdaptiveCommitTest below runs the default.
  explicit CoordinatorLoopTest(CoordinatorOptions options = {}) : producer_(kMaxMessage, &log_) {
    coordinator_ = std::make_unique<Coordinator>(
        &config_, &consumer_, &producer_, &clock_,
        [this](const std::vector<int32_t>& partitions) -> absl::StatusOr<std::vector<Message>> {
          SyncStateLog();
          std::vector<Message> out;
          for (const Message& m : state_log_) {
            if (std::find(partitions.begin(), partitions.end(), m.partition) != partitions.end()) out.push_back(m);
          }
          return out;
        },
        options);
    consumer_.set_listener(coordinator_.get());
  }

  // The state topic as one ordered log: what the test injected, and what
  // the coordinator wrote, in the order they happened.
  void SyncStateLog() {
    auto written = producer_.To(topics_.state);
    for (; state_synced_ < written.size(); ++state_synced_) {
      const OutboundMessage& o = written[state_synced_];
      state_log_.push_back({o.topic, o.partition, 0, o.key, o.payload, o.headers, 0});
    }
  }
  void Start() {
    ASSERT_TRUE(coordinator_->Start().ok());
    Rebalance();
  }
  // Revokes and assigns every partition again: a restore.
  void Rebalance() {
    std::vector<TopicPartition> all;
    for (int32_t p = 0; p < config_.kafka.partitions; ++p) {
      all.push_back({topics_.tasks, p});
      all.push_back({topics_.events, p});
    }
    consumer_.ScheduleRebalance(all);
    RunOnce();
  }
  void RunOnce() {
    auto n = coordinator_->RunOnce();
    ASSERT_TRUE(n.ok()) << n.status();
  }
  // One cycle, then one more once the commit interval has passed: the
  // transaction (or the stored offsets) is committed.
  void RunAndCommit() {
    RunOnce();
    clock_.Advance(config_.coordinator.commit_interval);
    RunOnce();
  }
  void Submit(const std::string& id, const std::string& text, const std::string& key) {
    v1::TaskSubmission s;
    s.set_task_id(id);
    s.set_workflow("w");
    *s.mutable_input() = ToStruct(nlohmann::json{{"text", text}});
    Encoded e = Encode(s, "");
    consumer_.Append(topics_.tasks, 0, key, e.payload, e.headers);
  }
  std::vector<v1::TaskResult> Results() {
    std::vector<v1::TaskResult> out;
    for (const auto& m : producer_.To(topics_.results)) {
      auto r = Decode<v1::TaskResult>(m.payload, m.headers);
      EXPECT_TRUE(r.ok()) << r.status();
      if (r.ok()) out.push_back(*r);
    }
    return out;
  }
  // Answers the last step and checks the task's one result.
  void FinishAndExpectOneCompletedResult() {
    AnswerWork({{"n", 2}});
    RunAndCommit();
    std::vector<v1::TaskResult> results = Results();
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].status(), v1::TASK_STATUS_COMPLETED);
  }
  // Answers every work item produced so far that has not been answered, with `output`.
  void AnswerWork(const nlohmann::json& output) {
    auto work = producer_.To(topics_.Work("a"));
    for (; answered_ < work.size(); ++answered_) {
      auto item = Decode<v1::WorkItem>(work[answered_].payload, work[answered_].headers);
      ASSERT_TRUE(item.ok());
      Encoded enc = OkAnswer(*item, output);
      consumer_.Append(topics_.events, 0, item->task_id(), enc.payload, enc.headers);
    }
  }

  FleetConfig config_ = Config();
  Topics topics_{config_.kafka.topic_prefix};
  FakeClock clock_;
  // The topics, as the coordinator's consumer and producer and any other
  // reader (a worker) see them.
  testing::FakeLog log_;
  FakeConsumer consumer_{nullptr, &log_};
  FakeProducer producer_;
  std::vector<Message> state_log_;
  size_t state_synced_ = 0;
  std::unique_ptr<Coordinator> coordinator_;
  size_t answered_ = 0;
};

// Issue 15, item 6: an output that makes the next work item or the task's
// state larger than a message may be used to make the coordinator fail to
// produce, restart, re-read the same input and fail again, forever. Now the
// task fails with message_too_large, and the coordinator goes on.
TEST_F(CoordinatorLoopTest, AnOutputTooLargeToPublishFailsItsTaskAndTheLoopGoesOn) {
  Start();
  Submit("big", std::string(30000, 'x'), "big");
  RunOnce();
  AnswerWork({{"text", std::string(40000, 'y')}});  // step s's output; the task's state now exceeds 64 KiB
  RunOnce();
  EXPECT_EQ(producer_.oversized(), 0) << "nothing larger than kafka.max_message_bytes may reach the producer";
  auto results = Results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].task_id(), "big");
  EXPECT_EQ(results[0].status(), v1::TASK_STATUS_FAILED);
  EXPECT_EQ(results[0].error().code(), kMessageTooLarge);
  EXPECT_THAT(results[0].error().message(), HasSubstr("exceeds kafka.max_message_bytes (65536)"));
  // The loop goes on: a small task completes.
  Submit("small", "hello", "small");
  for (int i = 0; i < 3; ++i) {
    RunOnce();
    AnswerWork({{"ok", true}});
  }
  RunOnce();
  results = Results();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1].task_id(), "small");
  EXPECT_EQ(results[1].status(), v1::TASK_STATUS_COMPLETED);
}

// The stall backstop on the coordinator's inputs (seen on Kafka 4.4.0: two
// submissions sat unfetched on the tasks topic for three minutes while the
// rest of the run completed): a tasks partition whose fetcher stopped after
// its last fetch is restarted once it has not moved for stall_after (30 s),
// and the submissions it held run.
TEST_F(CoordinatorLoopTest, ATasksPartitionWhoseFetcherStoppedIsRestartedAndItsSubmissionsRun) {
  Start();
  Submit("first", "hello", "first");
  RunAndCommit();
  consumer_.FreezeFetch(topics_.tasks, 0);
  Submit("stuck", "hello", "stuck");
  int seconds = 0;
  for (; seconds < 60 && consumer_.restarts() == 0; ++seconds) {
    clock_.Advance(absl::Seconds(1));
    RunOnce();
  }
  EXPECT_GE(seconds, 30) << "restarted before stall_after";
  EXPECT_LT(seconds, 60) << "never restarted";
  EXPECT_GE(consumer_.end_queries(), 1) << "it looked caught up: the broker was asked for its end";
  RunOnce();
  EXPECT_GE(producer_.To(topics_.Work("a")).size(), 2u) << "the stuck submission was dispatched";
}

// Issue 15, item 9: a submission that parses but is invalid, with a null
// key, is REJECTED under the id its message names (docs/protocol.md).
TEST_F(CoordinatorLoopTest, AnInvalidSubmissionWithoutAKeyIsRejectedByTheIdInTheMessage) {
  Start();
  v1::TaskSubmission s;
  s.set_task_id("keyless-1");
  s.set_workflow("w");
  s.mutable_budget()->set_max_tokens(-5);  // parses, fails validation
  Encoded e = Encode(s, "");
  consumer_.Append(topics_.tasks, 0, "", e.payload, e.headers);
  RunOnce();
  auto results = Results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].task_id(), "keyless-1");
  EXPECT_EQ(results[0].status(), v1::TASK_STATUS_REJECTED);
  EXPECT_THAT(results[0].error().message(), HasSubstr("budget.max_tokens is negative"));
  EXPECT_EQ(producer_.To(topics_.dlq).size(), 1u);
}

// Issue 15, item 8: garbage on the state topic. A keyless record is skipped
// (no result with an empty id, no snapshot under key ""); a keyed record
// that no coordinator wrote is dead-lettered once, gives no result for an id
// nobody submitted, and its key is overwritten so the next restore does not
// meet it again.
TEST_F(CoordinatorLoopTest, GarbageOnTheStateTopicIsDeadLetteredOnceAndNeverBecomesAResult) {
  state_log_.push_back({topics_.state, 0, 0, "", "\x01\x02 garbage without a key", {}, 0});
  state_log_.push_back({topics_.state, 1, 0, "nobody-submitted-this", "\xff\xfe garbage", {}, 0});
  Start();
  RunOnce();
  EXPECT_TRUE(Results().empty()) << Results()[0].DebugString();
  ASSERT_EQ(producer_.To(topics_.dlq).size(), 1u);
  auto dead = producer_.To(topics_.dlq)[0];
  EXPECT_EQ(dead.key, "nobody-submitted-this");
  for (const auto& m : producer_.To(topics_.state)) {
    EXPECT_FALSE(m.key.empty()) << "a snapshot under an empty key";
  }
  auto rewrites = producer_.To(topics_.state);
  ASSERT_EQ(rewrites.size(), 1u);
  EXPECT_EQ(rewrites[0].key, "nobody-submitted-this");
  EXPECT_TRUE(rewrites[0].payload.empty()) << "a tombstone over the garbage";
  // A second restore reads the garbage, then the tombstone: nothing more.
  Rebalance();
  RunOnce();
  EXPECT_EQ(producer_.To(topics_.dlq).size(), 1u);
  EXPECT_TRUE(Results().empty());
}

// Garbage written under the id of a running task must not lose the task:
// its earlier state is restored and written back, the garbage dead-lettered,
// and the task still ends with its one result.
TEST_F(CoordinatorLoopTest, GarbageOverARunningTasksStateIsDeadLetteredAndTheTaskGoesOn) {
  Start();
  Submit("live", "hello", "live");
  RunOnce();
  SyncStateLog();
  state_log_.push_back({topics_.state, state_log_.back().partition, 0, "live", "\xff\xfe garbage", {}, 0});
  Rebalance();
  RunOnce();
  ASSERT_EQ(producer_.To(topics_.dlq).size(), 1u);
  EXPECT_EQ(producer_.To(topics_.dlq)[0].key, "live");
  EXPECT_EQ(coordinator_->engine().active_tasks(), 1u);
  EXPECT_EQ(coordinator_->engine().stats().accepted, 1) << "restored, not submitted again";
  auto states = producer_.To(topics_.state);
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.back().key, "live");
  EXPECT_FALSE(states.back().payload.empty()) << "its state written back, not a tombstone";
  for (int i = 0; i < 3; ++i) {
    AnswerWork({{"ok", true}});
    RunOnce();
  }
  auto results = Results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].task_id(), "live");
  EXPECT_EQ(results[0].status(), v1::TASK_STATUS_COMPLETED);
}

// Issue 15: a publish that fails half-way returned with the transaction
// still open, and the revocation that closing the consumer triggers then
// committed it: the input offsets with only part of their outputs. Now the
// transaction is aborted first, and nothing of it is ever committed.
TEST_F(CoordinatorLoopTest, AFailedPublishAbortsItsTransactionAndNothingOfItIsCommitted) {
  Start();
  producer_.RefuseTopic(topics_.Work("a"));
  Submit("t1", "hello", "t1");
  auto n = coordinator_->RunOnce();
  EXPECT_FALSE(n.ok()) << "a work item that cannot be produced fails the loop (the process restarts)";
  // What closing the consumer does next: revoke, which commits what is open.
  coordinator_->OnRevoked(consumer_.Assignment());
  EXPECT_EQ(producer_.commits(), 0);
  EXPECT_EQ(producer_.offsets_sent(), 0) << "the input offsets of a half-published batch were committed";
  EXPECT_GE(producer_.aborts(), 1);
}

// Ownership moves: a revocation commits what the coordinator has and forgets
// the partitions' tasks; the assignment restores them from the state topic,
// and the task goes on from where it was, with one result.
TEST_F(CoordinatorLoopTest, ARevokedTaskIsRestoredFromTheStateTopicAndFinishesOnce) {
  Start();
  Submit("t1", "hello", "t1");
  RunAndCommit();
  ASSERT_EQ(producer_.To(topics_.Work("a")).size(), 1u) << "step s dispatched";
  EXPECT_EQ(consumer_.Committed(topics_.tasks, 0), 1) << "the submission's offset went with the transaction";
  Rebalance();
  EXPECT_EQ(coordinator_->engine().active_tasks(), 1u) << "restored from the state topic";
  AnswerWork({{"n", 1}});
  RunAndCommit();
  ASSERT_EQ(producer_.To(topics_.Work("a")).size(), 2u) << "step t dispatched after the restore";
  FinishAndExpectOneCompletedResult();
}

// A transaction that fails to commit is aborted: nothing it produced is
// visible, and the coordinator goes back to the last commit in place
// (rewinds its consumer, restores state) and does the work again, once.
TEST_F(CoordinatorLoopTest, AFailedCommitIsAbortedAndTheWorkRedoneFromTheLastCommitOnce) {
  Start();
  Submit("t1", "hello", "t1");
  RunAndCommit();
  AnswerWork({{"n", 1}});  // step s's result waits on the events topic
  producer_.FailNextCommit(absl::AbortedError("commit_transaction: Broker: Transaction coordinator is loading"));
  RunAndCommit();
  EXPECT_EQ(producer_.aborts(), 1);
  EXPECT_EQ(consumer_.rewinds(), 1);
  EXPECT_EQ(producer_.To(topics_.Work("a")).size(), 1u) << "step t's item of the aborted transaction is not visible";
  EXPECT_EQ(consumer_.Committed(topics_.events, 0), 0) << "the event's offset was not committed";
  RunAndCommit();  // reads step s's result again
  ASSERT_EQ(producer_.To(topics_.Work("a")).size(), 2u) << "step t dispatched once, after the rewind";
  FinishAndExpectOneCompletedResult();
}

// A fenced producer (a newer replica under the same transactional.id)
// cannot go back in place: Run() ends with the error, for the Replica to
// start a new incarnation, and nothing of the batch is committed.
TEST_F(CoordinatorLoopTest, AFencedCommitEndsTheIncarnationWithoutCommittingTheBatch) {
  Start();
  Submit("t1", "hello", "t1");
  RunOnce();
  EXPECT_EQ(producer_.To(topics_.Work("a")).size(), 1u) << "in the open transaction";
  producer_.FailNextCommit(absl::FailedPreconditionError("This instance has been fenced by a newer instance"));
  clock_.Advance(config_.coordinator.commit_interval);
  absl::StatusOr<size_t> n = coordinator_->RunOnce();
  ASSERT_FALSE(n.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(n.status())) << n.status();
  EXPECT_EQ(consumer_.Committed(topics_.tasks, 0), 0);
  EXPECT_EQ(consumer_.rewinds(), 0) << "a fenced replica does not go back in place";
}

// What a worker reads from the work topics: a read_committed consumer sees a
// work item only once the coordinator's transaction commits, never one of a
// transaction that aborted, and the item redone after the abort once.
TEST_F(CoordinatorLoopTest, AWorkerSeesWorkItemsOnlyFromCommittedTransactionsAndEachOnce) {
  FakeConsumer worker{nullptr, &log_};
  const std::string work = topics_.Work("a");
  ASSERT_TRUE(worker.Assign({{work, 0, 0}, {work, 1, 0}}).ok());
  auto poll = [&] {
    std::vector<std::string> steps;
    for (const Message& m : worker.Poll(absl::ZeroDuration(), 100)) {
      auto item = Decode<v1::WorkItem>(m.payload, m.headers);
      EXPECT_TRUE(item.ok()) << item.status();
      if (item.ok()) steps.push_back(item->task_id() + "." + item->step());
    }
    return steps;
  };
  Start();
  Submit("t1", "hello", "t1");
  RunOnce();
  EXPECT_THAT(poll(), ::testing::IsEmpty()) << "step s's item is in an open transaction";
  clock_.Advance(config_.coordinator.commit_interval);
  RunOnce();
  EXPECT_THAT(poll(), ::testing::ElementsAre("t1.s")) << "committed";
  AnswerWork({{"n", 1}});
  producer_.FailNextCommit(absl::AbortedError("commit_transaction: Broker: Transaction coordinator is loading"));
  RunAndCommit();  // step t's item is produced, then its transaction aborted
  EXPECT_THAT(poll(), ::testing::IsEmpty()) << "an aborted transaction's item reached a worker";
  RunAndCommit();  // the rewind: step s's result read again, step t dispatched again
  EXPECT_THAT(poll(), ::testing::ElementsAre("t1.t"));
  RunAndCommit();
  EXPECT_THAT(poll(), ::testing::IsEmpty());
  for (const TopicPartition& p : worker.Positions()) {
    EXPECT_EQ(p.offset, log_.End({p.topic, p.partition})) << "the reader moved past the markers";
  }
}

// commit_policy: adaptive (the default). A lone step waits for no commit
// interval: the transaction commits as soon as the poll has drained the
// input. While the input is not drained (a full batch), the transaction
// stays open and takes the next batch too, and never longer than
// commit_interval.
class AdaptiveCommitTest : public CoordinatorLoopTest {
 protected:
  static CoordinatorOptions SmallBatches() {
    CoordinatorOptions o;
    o.max_batch = 2;
    return o;
  }
  AdaptiveCommitTest() : CoordinatorLoopTest(SmallBatches()) {
    config_.coordinator.commit_policy = CoordinatorConfig::CommitPolicy::kAdaptive;
    coordinator_->SetMetrics(&metrics_);
  }
  // How many commits the replica counted with `trigger`, and the input
  // messages they committed in all.
  double Commits(const std::string& trigger) {
    for (const auto& family : registry_.Collect()) {
      if (family.name != "agentfleet_coordinator_commit_seconds") continue;
      for (const auto& m : family.metric) {
        if (!m.label.empty() && m.label[0].value == trigger) return static_cast<double>(m.histogram.sample_count);
      }
    }
    return 0;
  }
  double CommittedInputs() {
    for (const auto& family : registry_.Collect()) {
      if (family.name == "agentfleet_coordinator_commit_inputs" && !family.metric.empty()) {
        return family.metric[0].histogram.sample_sum;
      }
    }
    return 0;
  }
  std::vector<std::string> WorkerSees(FakeConsumer& worker) {
    std::vector<std::string> ids;
    for (const Message& m : worker.Poll(absl::ZeroDuration(), 100)) {
      auto item = Decode<v1::WorkItem>(m.payload, m.headers);
      EXPECT_TRUE(item.ok()) << item.status();
      if (item.ok()) ids.push_back(item->task_id());
    }
    return ids;
  }
  prometheus::Registry registry_;
  CoordinatorMetrics metrics_{registry_};
};

TEST_F(AdaptiveCommitTest, ALoneSubmissionIsCommittedInTheSameRoundWithoutWaitingForTheInterval) {
  FakeConsumer worker{nullptr, &log_};
  const std::string work = topics_.Work("a");
  ASSERT_TRUE(worker.Assign({{work, 0, 0}, {work, 1, 0}}).ok());
  Start();
  const int commits_before = producer_.commits();
  Submit("t1", "hello", "t1");
  RunOnce();  // the clock does not move
  EXPECT_THAT(WorkerSees(worker), ::testing::ElementsAre("t1")) << "step s's item is committed";
  EXPECT_EQ(producer_.commits(), commits_before + 1);
  EXPECT_EQ(consumer_.Committed(topics_.tasks, 0), 1) << "the submission's offset went with it";
  EXPECT_EQ(Commits("drained"), 1);
  EXPECT_EQ(Commits("interval"), 0);
  RunOnce();  // nothing to read: no empty transaction
  EXPECT_EQ(producer_.commits(), commits_before + 1);
}

TEST_F(AdaptiveCommitTest, AFullBatchKeepsTheTransactionOpenForTheNextOne) {
  FakeConsumer worker{nullptr, &log_};
  const std::string work = topics_.Work("a");
  ASSERT_TRUE(worker.Assign({{work, 0, 0}, {work, 1, 0}}).ok());
  Start();
  const int commits_before = producer_.commits();
  for (const char* id : {"t1", "t2", "t3"}) Submit(id, "hello", id);
  RunOnce();  // t1, t2: a full batch (max_batch 2), more to read
  EXPECT_THAT(WorkerSees(worker), ::testing::IsEmpty()) << "committed before the input was drained";
  EXPECT_EQ(producer_.commits(), commits_before);
  RunOnce();  // t3: drained
  EXPECT_THAT(WorkerSees(worker), ::testing::ElementsAre("t1", "t2", "t3"));
  EXPECT_EQ(producer_.commits(), commits_before + 1) << "one transaction for the three";
  EXPECT_EQ(consumer_.Committed(topics_.tasks, 0), 3);
  EXPECT_EQ(CommittedInputs(), 3);
}

TEST_F(AdaptiveCommitTest, AnInputThatIsNeverDrainedIsStillCommittedEveryInterval) {
  Start();
  const int commits_before = producer_.commits();
  int next = 0;
  auto submit_two = [&] {
    for (int i = 0; i < 2; ++i) {
      std::string id = absl::StrCat("t", next++);
      Submit(id, "hello", id);
    }
  };
  submit_two();
  RunOnce();  // a full batch: open
  clock_.Advance(config_.coordinator.commit_interval / 2);
  submit_two();
  RunOnce();  // full again, half the interval
  EXPECT_EQ(producer_.commits(), commits_before);
  clock_.Advance(config_.coordinator.commit_interval / 2);
  submit_two();
  RunOnce();  // full again, and the interval is up: committed with the next batch
  EXPECT_EQ(producer_.commits(), commits_before);
  submit_two();
  RunOnce();
  EXPECT_EQ(producer_.commits(), commits_before + 1);
  EXPECT_EQ(Commits("interval"), 1);
  EXPECT_EQ(consumer_.Committed(topics_.tasks, 0), 6) << "the batch processed during the commit is not in it";
}

// Under load (a full batch when the interval is up) the commit runs on a
// second thread while the next batch is processed; that batch's output waits
// for the next transaction, so a reader sees it only when that commits.
TEST_F(AdaptiveCommitTest, UnderLoadTheCommitRunsBesideTheNextBatchWhoseOutputWaitsForTheNextTransaction) {
  FakeConsumer worker{nullptr, &log_};
  const std::string work = topics_.Work("a");
  ASSERT_TRUE(worker.Assign({{work, 0, 0}, {work, 1, 0}}).ok());
  Start();
  const int commits_before = producer_.commits();
  for (const char* id : {"t1", "t2", "t3", "t4", "t5"}) Submit(id, "hello", id);
  RunOnce();  // t1, t2
  clock_.Advance(config_.coordinator.commit_interval);
  RunOnce();  // t3, t4: full, the interval is up
  EXPECT_EQ(producer_.commits(), commits_before);
  EXPECT_THAT(WorkerSees(worker), ::testing::IsEmpty());
  RunOnce();  // t5 processed while t1..t4 commit; drained, so committed too
  EXPECT_EQ(producer_.commits(), commits_before + 2);
  EXPECT_EQ(Commits("interval"), 1);
  EXPECT_EQ(Commits("drained"), 1);
  ASSERT_EQ(producer_.commit_threads().size(), static_cast<size_t>(commits_before + 2));
  EXPECT_NE(producer_.commit_threads()[commits_before], std::this_thread::get_id())
      << "the commit under load ran on the loop's thread";
  EXPECT_THAT(WorkerSees(worker), ::testing::ElementsAre("t1", "t2", "t3", "t4", "t5")) << "each once, in order";
  EXPECT_EQ(consumer_.Committed(topics_.tasks, 0), 5);
  EXPECT_EQ(CommittedInputs(), 5);
}

// A commit that fails while the next batch is processed takes that batch
// with it: both are read again from the last commit, and every step is
// dispatched once.
TEST_F(AdaptiveCommitTest, AnOverlappedCommitThatFailsRewindsTheBatchProcessedBesideItToo) {
  FakeConsumer worker{nullptr, &log_};
  const std::string work = topics_.Work("a");
  ASSERT_TRUE(worker.Assign({{work, 0, 0}, {work, 1, 0}}).ok());
  Start();
  for (const char* id : {"t1", "t2", "t3", "t4"}) Submit(id, "hello", id);
  consumer_.Append(topics_.tasks, 0, "junk", "not a submission", {});  // dead-lettered beside the commit
  Submit("t5", "hello", "t5");
  RunOnce();  // t1, t2
  clock_.Advance(config_.coordinator.commit_interval);
  RunOnce();  // t3, t4: full, the interval is up
  producer_.FailNextCommit(absl::AbortedError("commit_transaction: Broker: Transaction coordinator is loading"));
  RunOnce();  // the junk and t5, while t1..t4 fail to commit
  EXPECT_EQ(producer_.aborts(), 1);
  EXPECT_EQ(consumer_.rewinds(), 1);
  EXPECT_THAT(WorkerSees(worker), ::testing::IsEmpty());
  EXPECT_EQ(consumer_.Committed(topics_.tasks, 0), 0);
  EXPECT_THAT(producer_.To(topics_.dlq), ::testing::IsEmpty()) << "the held dead letter went with the rewind";
  for (int i = 0; i < 4; ++i) RunOnce();  // three full batches again, then drained
  EXPECT_THAT(WorkerSees(worker), ::testing::ElementsAre("t1", "t2", "t3", "t4", "t5")) << "each once";
  EXPECT_EQ(consumer_.Committed(topics_.tasks, 0), 6);
  EXPECT_EQ(producer_.To(topics_.dlq).size(), 1u);
}

// Two replicas in one consumer group over one log: the task's partitions
// move from the first to the second, which restores the task from the state
// topic the first wrote, resumes from the group's committed offsets, and
// finishes it with one result; each step runs once.
TEST(CoordinatorHandoffTest, ATaskWhosePartitionMovesIsRestoredByTheNewOwnerAndFinishesOnce) {
  FleetConfig config = Config();
  Topics topics(config.kafka.topic_prefix);
  FakeClock clock;
  testing::FakeLog log;
  testing::FakeGroup group;
  // A read_committed reader of `topic`'s partitions, from the start.
  auto read = [&](const std::string& topic, std::vector<int32_t> partitions) {
    FakeConsumer reader{nullptr, &log};
    std::vector<TopicPartition> tps;
    for (int32_t p : partitions) tps.push_back({topic, p, 0});
    EXPECT_TRUE(reader.Assign(tps).ok());
    return reader.Poll(absl::ZeroDuration(), 100000);
  };
  StateReader state_reader = [&](const std::vector<int32_t>& partitions) -> absl::StatusOr<std::vector<Message>> {
    return read(topics.state, partitions);
  };
  struct Member {
    std::unique_ptr<FakeConsumer> consumer;
    std::unique_ptr<FakeProducer> producer;
    std::unique_ptr<Coordinator> coordinator;
    void RunAndCommit(FakeClock& clock, absl::Duration interval) {
      for (int i = 0; i < 2; ++i) {
        auto n = coordinator->RunOnce();
        ASSERT_TRUE(n.ok()) << n.status();
        clock.Advance(interval);
      }
    }
  };
  auto join = [&] {
    Member m;
    m.consumer = std::make_unique<FakeConsumer>(nullptr, &log, &group);
    m.producer = std::make_unique<FakeProducer>(kMaxMessage, &log);
    m.coordinator = std::make_unique<Coordinator>(&config, m.consumer.get(), m.producer.get(), &clock, state_reader);
    m.consumer->set_listener(m.coordinator.get());
    EXPECT_TRUE(m.coordinator->Start().ok());
    return m;
  };
  std::vector<TopicPartition> all;
  for (int32_t p = 0; p < config.kafka.partitions; ++p) {
    all.push_back({topics.tasks, p});
    all.push_back({topics.events, p});
  }
  // Answers every work item committed so far that is not answered yet.
  size_t answered = 0;
  auto answer_work = [&] {
    std::vector<Message> work = read(topics.Work("a"), {0, 1});
    for (; answered < work.size(); ++answered) {
      auto item = Decode<v1::WorkItem>(work[answered].payload, work[answered].headers);
      ASSERT_TRUE(item.ok());
      Encoded enc = OkAnswer(*item, {{"n", answered}});
      log.Append({topics.events, std::max(item->event_partition(), 0), 0, item->task_id(), enc.payload, enc.headers, 0});
    }
  };

  Member first = join();
  first.consumer->ScheduleRebalance(all);
  SubmitTo(log, topics, "t1", {{"text", "hello"}});
  ASSERT_TRUE(first.coordinator->RunOnce().ok());
  ASSERT_TRUE(read(topics.Work("a"), {0, 1}).empty()) << "step s's item is in the open transaction";
  // The partitions move mid-transaction: the first replica commits what it
  // has and forgets them; the second restores what the first wrote.
  first.consumer->ScheduleRebalance({});
  ASSERT_TRUE(first.coordinator->RunOnce().ok());
  ASSERT_EQ(read(topics.Work("a"), {0, 1}).size(), 1u) << "the revocation committed step s's dispatch";
  EXPECT_EQ(first.coordinator->engine().active_tasks(), 0u);
  Member second = join();
  second.consumer->ScheduleRebalance(all);
  second.RunAndCommit(clock, config.coordinator.commit_interval);
  EXPECT_EQ(second.coordinator->engine().active_tasks(), 1u) << "restored from the state topic";
  EXPECT_EQ(read(topics.Work("a"), {0, 1}).size(), 1u) << "the restore dispatched nothing again";
  answer_work();
  second.RunAndCommit(clock, config.coordinator.commit_interval);
  ASSERT_EQ(read(topics.Work("a"), {0, 1}).size(), 2u) << "step t dispatched by the second replica";
  answer_work();
  second.RunAndCommit(clock, config.coordinator.commit_interval);
  std::vector<Message> results = read(topics.results, {0, 1});
  ASSERT_EQ(results.size(), 1u);
  auto result = Decode<v1::TaskResult>(results[0].payload, results[0].headers);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->status(), v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(second.coordinator->engine().active_tasks(), 0u);
}


// The audit log's chain across a takeover (issue 19): the second replica
// continues each partition's chain from the last entry the first committed,
// past a record someone else wrote to the audit topic (reported by the
// verification, never a reason to stop).
TEST(CoordinatorHandoffTest, TheAuditChainGoesOnAcrossATakeoverAndPastGarbage) {
  auto loaded = LoadConfigString(R"(
kafka: {partitions: 2, work_partitions: 2, max_message_bytes: 65536}
coordinator: {max_payload_bytes: 65536}
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a: {provider: sim, models: {default: m}}
actions:
  pay: {url: "https://pay.example.com/v1/pay"}
workflows: {w: {steps: [{id: pay, action: pay, input: {n: $task.n}}]}}
)", "w.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  FleetConfig config = *loaded;
  Topics topics(config.kafka.topic_prefix);
  FakeClock clock;
  testing::FakeLog log;
  testing::FakeGroup group;
  auto read = [&](const std::string& topic) {
    FakeConsumer reader{nullptr, &log};
    EXPECT_TRUE(reader.Assign({{topic, 0, 0}, {topic, 1, 0}}).ok());
    return reader.Poll(absl::ZeroDuration(), 100000);
  };
  StateReader state_reader = [&](const std::vector<int32_t>&) { return absl::StatusOr<std::vector<Message>>(read(topics.state)); };
  AuditReader audit_reader = [&](const std::vector<int32_t>&, int64_t) {
    return absl::StatusOr<std::vector<Message>>(read(topics.audit));
  };
  struct Member {
    std::unique_ptr<FakeConsumer> consumer;
    std::unique_ptr<FakeProducer> producer;
    std::unique_ptr<Coordinator> coordinator;
  };
  auto join = [&](const std::string& name) {
    Member m;
    m.consumer = std::make_unique<FakeConsumer>(nullptr, &log, &group);
    m.producer = std::make_unique<FakeProducer>(kMaxMessage, &log);
    m.coordinator = std::make_unique<Coordinator>(&config, m.consumer.get(), m.producer.get(), &clock, state_reader);
    m.coordinator->SetAuditReader(audit_reader);
    m.consumer->set_listener(m.coordinator.get());
    EXPECT_TRUE(m.coordinator->Start().ok());
    return m;
  };
  auto run = [&](Member& m) {
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(m.coordinator->RunOnce().ok());
      clock.Advance(config.coordinator.commit_interval);
    }
  };
  std::vector<TopicPartition> all;
  for (int32_t p = 0; p < 2; ++p) {
    all.push_back({topics.tasks, p});
    all.push_back({topics.events, p});
  }
  Member first = join("first");
  first.consumer->ScheduleRebalance(all);
  SubmitTo(log, topics, "t1", {{"n", 1}});
  run(first);
  std::vector<Message> audit = read(topics.audit);
  ASSERT_EQ(audit.size(), 1u) << "the dispatch, committed with it";
  int32_t partition = audit[0].partition;
  first.consumer->ScheduleRebalance({});
  ASSERT_TRUE(first.coordinator->RunOnce().ok());
  log.Append({topics.audit, partition, 0, "t1", "not an audit entry", {}, 0});
  Member second = join("second");
  second.consumer->ScheduleRebalance(all);
  run(second);
  std::vector<Message> work = read(topics.Work("pay"));
  ASSERT_EQ(work.size(), 1u);
  auto item = Decode<v1::WorkItem>(work[0].payload, work[0].headers);
  ASSERT_TRUE(item.ok());
  EXPECT_EQ(item->effect_id(), EffectId("t1", "pay", -1));
  Encoded answer = OkAnswer(*item, {{"status", 201}});
  log.Append({topics.events, std::max(item->event_partition(), 0), 0, "t1", answer.payload, answer.headers, 0});
  run(second);
  ASSERT_EQ(read(topics.results).size(), 1u);
  std::vector<StoredAuditEntry> stored;
  for (const Message& m : read(topics.audit)) stored.push_back({m.partition, m.offset, m.payload, m.headers});
  ASSERT_EQ(stored.size(), 3u);
  AuditVerification v = VerifyAuditChain(stored);
  EXPECT_EQ(v.entries, 2);
  ASSERT_EQ(v.problems.size(), 1u) << "only the garbage: " << ::testing::PrintToString(v.problems);
  EXPECT_THAT(v.problems[0], ::testing::HasSubstr("AuditEntry"));
  EXPECT_EQ(v.ranges[partition], std::make_pair(int64_t{1}, int64_t{2})) << "the second replica went on at seq 2";
}

}  // namespace
}  // namespace agentfleet
