// In-memory fakes of the Kafka seam (kafka/kafka.h) for tests of the Kafka
// loops (Worker, Coordinator) without a broker. They model the librdkafka
// behaviour those loops depend on, not all of Kafka:
// - a partition paused by the application stays paused across
//   unassign/assign (librdkafka's documented contract, librdkafka #1849);
// - rebalances happen inside PollInto(), on the polling thread, as
//   librdkafka's rebalance callback does: OnRevoked, then the new
//   assignment, then OnAssigned;
// - an assigned partition starts at its committed offset (stored offsets
//   are committed by CommitStored() and by a rebalance's revocation);
// - transactions: producers and consumers may share a FakeLog, where a
//   read_committed consumer stops at the last stable offset, never gets an
//   aborted transaction's records, and moves past the commit and abort
//   markers; To() likewise drops an aborted transaction's messages; offsets
//   sent to a transaction are committed with it; group metadata of an older
//   generation is refused (a zombie); RewindToCommitted() goes back to the
//   committed offsets.
// Thread-safe: PollInto on one thread, the test and delivery paths on others.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "kafka/dead_letter.h"
#include "kafka/kafka.h"

namespace agentfleet::testing {

// Topic-partition logs that fake producers write and fake consumers read,
// with Kafka's transactional visibility: a transaction's records go into the
// log at once, but a read_committed reader gets nothing at or past the first
// record of a transaction still open (the last stable offset); commit and
// abort each write a control marker into every partition the transaction
// wrote, which no reader gets; an aborted transaction's records are skipped.
// A reader's position moves past markers and skipped records. Thread-safe.
class FakeLog {
 public:
  using Key = std::pair<std::string, int32_t>;
  // Appends `m` (its offset set here) as part of transaction `txn` (0: none).
  int64_t Append(Message m, uint64_t txn = 0) {
    absl::MutexLock lock(&mu_);
    auto& log = logs_[{m.topic, m.partition}];
    m.offset = static_cast<int64_t>(log.size());
    if (txn != 0) open_[txn].insert({m.topic, m.partition});
    log.push_back({std::move(m), txn, false});
    return static_cast<int64_t>(log.size()) - 1;
  }
  uint64_t BeginTransaction() {
    absl::MutexLock lock(&mu_);
    open_[++last_txn_];
    return last_txn_;
  }
  // Writes the commit or abort marker of `txn` into each partition it wrote.
  void EndTransaction(uint64_t txn, bool commit) {
    absl::MutexLock lock(&mu_);
    auto it = open_.find(txn);
    if (it == open_.end()) return;
    for (const Key& k : it->second) {
      auto& log = logs_[k];
      log.push_back({Message{k.first, k.second, static_cast<int64_t>(log.size()), "", "", {}, 0}, txn, true});
    }
    if (!commit) aborted_.insert(txn);
    open_.erase(it);
  }
  // Appends to `out` up to `max` records visible from `*position`, moving it
  // past what it read and what no reader gets; read_committed stops at the
  // last stable offset.
  void Read(const Key& tp, int64_t* position, size_t max, bool read_committed, std::vector<Message>* out) {
    absl::MutexLock lock(&mu_);
    const auto& log = logs_[tp];
    int64_t stable = StableOffsetLocked(tp);
    size_t taken = 0;
    while (*position < static_cast<int64_t>(log.size()) && taken < max) {
      const Entry& e = log[*position];
      if (read_committed && *position >= stable) break;
      ++*position;
      if (e.marker || (read_committed && aborted_.count(e.txn))) continue;
      out->push_back(e.message);
      ++taken;
    }
  }
  int64_t End(const Key& tp) {
    absl::MutexLock lock(&mu_);
    return static_cast<int64_t>(logs_[tp].size());
  }
  // The offset of the first record of a transaction still open, else the end.
  int64_t StableOffset(const Key& tp) {
    absl::MutexLock lock(&mu_);
    return StableOffsetLocked(tp);
  }

 private:
  struct Entry {
    Message message;
    uint64_t txn = 0;
    bool marker = false;
  };
  int64_t StableOffsetLocked(const Key& tp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const auto& log = logs_[tp];
    for (size_t i = 0; i < log.size(); ++i) {
      if (log[i].txn != 0 && !log[i].marker && open_.count(log[i].txn)) return static_cast<int64_t>(i);
    }
    return static_cast<int64_t>(log.size());
  }
  absl::Mutex mu_;
  std::map<Key, std::vector<Entry>> logs_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::set<Key>> open_ ABSL_GUARDED_BY(mu_);  // open transactions: partitions written
  std::set<uint64_t> aborted_ ABSL_GUARDED_BY(mu_);
  uint64_t last_txn_ ABSL_GUARDED_BY(mu_) = 0;
};

// A consumer group's committed offsets, shared by the FakeConsumers that are
// its members (each consumer without a group has offsets of its own).
// Thread-safe.
class FakeGroup {
 public:
  using Key = std::pair<std::string, int32_t>;
  // The committed next offset; -1 where nothing was committed.
  int64_t Committed(const Key& tp) {
    absl::MutexLock lock(&mu_);
    auto it = committed_.find(tp);
    return it == committed_.end() ? -1 : it->second;
  }
  void Commit(const Key& tp, int64_t next) {
    absl::MutexLock lock(&mu_);
    committed_[tp] = next;
  }

 private:
  absl::Mutex mu_;
  std::map<Key, int64_t> committed_ ABSL_GUARDED_BY(mu_);
};

class FakeConsumer;

// A FakeConsumer's membership: which consumer, and its generation (one more
// at every rebalance).
struct FakeGroupMetadata : GroupMetadata {
  FakeConsumer* consumer = nullptr;
  int generation = 0;
};

class FakeConsumer : public Consumer {
 public:
  // Reads `log` (shared with producers), or a log of its own; as a
  // read_committed consumer unless told otherwise.
  // Reads `log` (shared with producers), or a log of its own; commits to
  // `group` (shared with other members), or offsets of its own; as a
  // read_committed consumer unless told otherwise.
  explicit FakeConsumer(RebalanceListener* listener = nullptr, FakeLog* log = nullptr, FakeGroup* group = nullptr,
                        bool read_committed = true)
      : listener_(listener),
        log_(log != nullptr ? log : &own_log_),
        group_(group != nullptr ? group : &own_group_),
        read_committed_(read_committed) {}
  void set_listener(RebalanceListener* listener) { listener_ = listener; }

  // Test side: appends a message (no transaction) to a partition's log;
  // returns its offset.
  int64_t Append(const std::string& topic, int32_t partition, std::string key, std::string payload,
                 Headers headers = {}) {
    return log_->Append({topic, partition, 0, std::move(key), std::move(payload), std::move(headers), 0});
  }
  // Test side: the next PollInto revokes the whole assignment and assigns
  // `partitions` (a session timeout's "lost" partitions coming back, or a
  // real move).
  void ScheduleRebalance(std::vector<TopicPartition> partitions) {
    absl::MutexLock lock(&mu_);
    pending_rebalance_ = std::move(partitions);
  }
  // Test side: the next PollInto runs `before` (on the polling thread), then
  // adds `partitions` to the assignment and reports only them, as an
  // incremental (cooperative) rebalance does; nothing is revoked.
  void ScheduleIncrementalAssign(std::vector<TopicPartition> partitions, std::function<void()> before = nullptr) {
    absl::MutexLock lock(&mu_);
    pending_incremental_ = std::move(partitions);
    before_incremental_ = std::move(before);
  }
  // Test side: the partition stays assigned but its fetcher never starts
  // (librdkafka 2.0.2 after a failed committed-offset fetch): nothing is
  // delivered from it, and no high watermark is known, until RestartFetch().
  void StallFetch(const std::string& topic, int32_t partition) {
    absl::MutexLock lock(&mu_);
    stalled_.insert({topic, partition});
  }
  // Test side: the partition's fetcher stops after its last fetch (seen on
  // Kafka 3.7.2 in the client tests): nothing more is delivered, and the high
  // watermark Progress() reports stays at the position, as a cached one does,
  // until RestartFetch(); QueryEnd() asks the log and tells the truth.
  void FreezeFetch(const std::string& topic, int32_t partition) {
    absl::MutexLock lock(&mu_);
    stalled_.insert({topic, partition});
    frozen_.insert({topic, partition});
  }
  int end_queries() {
    absl::MutexLock lock(&mu_);
    return end_queries_;
  }
  int restarts() {
    absl::MutexLock lock(&mu_);
    return restarts_;
  }
  // Polls so far: a test waits for some to know its consumer's loop has run.
  int64_t polls() {
    absl::MutexLock lock(&mu_);
    return polls_;
  }
  bool IsPaused(const std::string& topic, int32_t partition) {
    absl::MutexLock lock(&mu_);
    return paused_.count({topic, partition}) > 0;
  }
  int64_t Committed(const std::string& topic, int32_t partition) {
    absl::MutexLock lock(&mu_);
    return std::max<int64_t>(group_->Committed({topic, partition}), 0);
  }
  int rebalances() {
    absl::MutexLock lock(&mu_);
    return rebalances_;
  }

  absl::Status Subscribe(const std::vector<std::string>& topics) override { return absl::OkStatus(); }
  absl::Status Assign(const std::vector<TopicPartition>& partitions) override {
    absl::MutexLock lock(&mu_);
    AssignLocked(partitions);
    return absl::OkStatus();
  }
  void PollInto(absl::Duration timeout, size_t max_messages, std::vector<Message>* out) override {
    std::optional<std::vector<TopicPartition>> rebalance;
    {
      absl::MutexLock lock(&mu_);
      ++polls_;
      rebalance.swap(pending_rebalance_);
    }
    if (rebalance) {
      std::vector<TopicPartition> old = Assignment();
      if (listener_) listener_->OnRevoked(old);
      {
        absl::MutexLock lock(&mu_);
        CommitLocked();
        assigned_.clear();
        AssignLocked(*rebalance);
        ++rebalances_;
      }
      if (listener_) listener_->OnAssigned(*rebalance);
    }
    std::optional<std::vector<TopicPartition>> added;
    std::function<void()> before_added;
    {
      absl::MutexLock lock(&mu_);
      added.swap(pending_incremental_);
      before_added.swap(before_incremental_);
    }
    if (added) {
      if (before_added) before_added();
      {
        absl::MutexLock lock(&mu_);
        AssignLocked(*added);
        ++rebalances_;
      }
      if (listener_) listener_->OnAssigned(*added);
    }
    size_t before = out->size();
    {
      absl::MutexLock lock(&mu_);
      for (auto& [tp, position] : assigned_) {
        if (paused_.count(tp) || stalled_.count(tp)) continue;
        log_->Read(tp, &position, max_messages - (out->size() - before), read_committed_, out);
      }
    }
    // An empty poll waits a little, as a real one does (never the whole timeout: tests stay fast).
    if (out->size() == before) absl::SleepFor(std::min(timeout, absl::Milliseconds(1)));
  }
  absl::Status StoreOffset(const std::string& topic, int32_t partition, int64_t next_offset) override {
    absl::MutexLock lock(&mu_);
    if (!assigned_.count({topic, partition})) return absl::FailedPreconditionError("not assigned");
    stored_[{topic, partition}] = next_offset;
    return absl::OkStatus();
  }
  // What a committed transaction's send_offsets_to_transaction commits.
  void CommitOffsets(const std::vector<TopicPartition>& offsets) {
    absl::MutexLock lock(&mu_);
    for (const auto& tp : offsets) group_->Commit({tp.topic, tp.partition}, tp.offset);
  }
  absl::Status CommitStored() override {
    absl::MutexLock lock(&mu_);
    CommitLocked();
    return absl::OkStatus();
  }
  absl::Status Pause(const std::vector<TopicPartition>& partitions) override {
    absl::MutexLock lock(&mu_);
    for (const auto& tp : partitions) {
      if (assigned_.count({tp.topic, tp.partition})) paused_.insert({tp.topic, tp.partition});
    }
    return absl::OkStatus();
  }
  absl::Status Resume(const std::vector<TopicPartition>& partitions) override {
    absl::MutexLock lock(&mu_);
    for (const auto& tp : partitions) paused_.erase({tp.topic, tp.partition});
    return absl::OkStatus();
  }
  std::vector<TopicPartition> Assignment() override {
    absl::MutexLock lock(&mu_);
    std::vector<TopicPartition> out;
    for (const auto& [tp, position] : assigned_) out.push_back({tp.first, tp.second});
    return out;
  }
  std::vector<TopicPartition> Positions() override {
    absl::MutexLock lock(&mu_);
    std::vector<TopicPartition> out;
    for (const auto& [tp, position] : assigned_) out.push_back({tp.first, tp.second, position});
    return out;
  }
  std::vector<PartitionProgress> Progress(absl::Duration) override {
    absl::MutexLock lock(&mu_);
    std::vector<PartitionProgress> out;
    for (const auto& [tp, position] : assigned_) {
      PartitionProgress p{tp.first, tp.second, position, log_->End(tp), -1};
      if (stalled_.count(tp)) p.high = frozen_.count(tp) ? std::max<int64_t>(position, 0) : -1;
      if (int64_t c = group_->Committed(tp); c >= 0) p.committed = c;
      out.push_back(p);
    }
    return out;
  }
  // Every assigned partition back to its committed offset (0 where none).
  absl::Status RewindToCommitted(absl::Duration) override {
    absl::MutexLock lock(&mu_);
    ++rewinds_;
    for (auto& [tp, position] : assigned_) {
      position = std::max<int64_t>(group_->Committed(tp), 0);
    }
    return absl::OkStatus();
  }
  int rewinds() {
    absl::MutexLock lock(&mu_);
    return rewinds_;
  }
  absl::StatusOr<int64_t> QueryEnd(const std::string& topic, int32_t partition, absl::Duration) override {
    absl::MutexLock lock(&mu_);
    ++end_queries_;
    return log_->End({topic, partition});
  }
  absl::Status RestartFetch(const std::string& topic, int32_t partition, absl::Duration) override {
    absl::MutexLock lock(&mu_);
    paused_.erase({topic, partition});
    stalled_.erase({topic, partition});
    frozen_.erase({topic, partition});
    ++restarts_;
    return absl::OkStatus();
  }
  std::unique_ptr<GroupMetadata> CurrentGroupMetadata() override {
    absl::MutexLock lock(&mu_);
    auto group = std::make_unique<FakeGroupMetadata>();
    group->consumer = this;
    group->generation = rebalances_;
    return group;
  }
  void Close() override {}

 private:
  using Key = std::pair<std::string, int32_t>;
  void AssignLocked(const std::vector<TopicPartition>& partitions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& tp : partitions) {
      Key k{tp.topic, tp.partition};
      assigned_[k] = tp.offset >= 0 ? tp.offset : std::max<int64_t>(group_->Committed(k), 0);
      // paused_ is deliberately kept: librdkafka keeps an application pause.
    }
  }
  void CommitLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& [k, next] : stored_) group_->Commit(k, next);
    stored_.clear();
  }

  RebalanceListener* listener_;
  absl::Mutex mu_;
  FakeLog own_log_;
  FakeLog* log_;
  FakeGroup own_group_;
  FakeGroup* group_;
  const bool read_committed_;
  std::map<Key, int64_t> assigned_ ABSL_GUARDED_BY(mu_);  // -> next position
  std::set<Key> paused_ ABSL_GUARDED_BY(mu_);
  std::map<Key, int64_t> stored_ ABSL_GUARDED_BY(mu_);
  std::optional<std::vector<TopicPartition>> pending_rebalance_ ABSL_GUARDED_BY(mu_);
  std::optional<std::vector<TopicPartition>> pending_incremental_ ABSL_GUARDED_BY(mu_);
  std::function<void()> before_incremental_ ABSL_GUARDED_BY(mu_);
  int rebalances_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<Key> stalled_ ABSL_GUARDED_BY(mu_);
  std::set<Key> frozen_ ABSL_GUARDED_BY(mu_);
  int end_queries_ ABSL_GUARDED_BY(mu_) = 0;
  int restarts_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t polls_ ABSL_GUARDED_BY(mu_) = 0;
  int rewinds_ ABSL_GUARDED_BY(mu_) = 0;
};

// Records what is produced; delivers at once (OK), or fails every message to
// a topic named in fail_topics (as a broker that rejects them would). Like
// librdkafka, refuses at once a message larger than message.max.bytes.
class FakeProducer : public Producer {
 public:
  // With `log`, what it produces is also written there (partition -1 as 0),
  // inside its open transaction if it has one.
  explicit FakeProducer(size_t max_message_bytes = 1000000, FakeLog* log = nullptr)
      : max_message_bytes_(max_message_bytes), log_(log) {}
  absl::Status Produce(OutboundMessage message, DeliveryCallback on_delivery) override {
    absl::Status delivered = absl::OkStatus();
    if (MessageBytes(message.key, message.payload, message.headers) > max_message_bytes_) {
      absl::MutexLock lock(&mu_);
      ++oversized_;
      return absl::InvalidArgumentError("produce: Broker: Message size too large");
    }
    {
      absl::MutexLock lock(&mu_);
      if (refuse_topics_.count(message.topic)) return absl::UnavailableError("produce: Local: Queue full");
      if (fail_topics_.count(message.topic)) {
        delivered = absl::InternalError("delivery: Broker: Message size too large");
        ++failed_;
      } else {
        produced_.push_back(message);
        if (log_ != nullptr) {
          log_->Append({message.topic, std::max(message.partition, 0), 0, message.key, message.payload,
                        message.headers, 0},
                       txn_);
        }
      }
    }
    if (on_delivery) on_delivery(delivered);
    return absl::OkStatus();
  }
  absl::Status Flush(absl::Duration) override { return absl::OkStatus(); }
  absl::Status Warm(const std::string&, absl::Duration) override { return absl::OkStatus(); }
  // InitTransactions fails with `status` (a fenced or unreachable producer).
  void FailInitTransactions(absl::Status status) {
    absl::MutexLock lock(&mu_);
    init_error_ = std::move(status);
  }
  absl::Status InitTransactions(absl::Duration) override {
    absl::MutexLock lock(&mu_);
    return init_error_;
  }
  // What a transaction produced is what a read_committed reader sees only
  // once it commits: an abort takes it out of To().
  absl::Status BeginTransaction() override {
    absl::MutexLock lock(&mu_);
    txn_start_ = produced_.size();
    if (log_ != nullptr) txn_ = log_->BeginTransaction();
    return absl::OkStatus();
  }
  // The next CommitTransaction fails with `status` (Aborted: the caller must
  // abort; FailedPrecondition: fenced) and commits nothing.
  void FailNextCommit(absl::Status status) {
    absl::MutexLock lock(&mu_);
    commit_error_ = std::move(status);
  }
  // Offsets sent to a transaction are committed to their FakeConsumer when
  // the transaction commits, and dropped when it aborts. Metadata of an
  // older generation than the consumer's is refused, as the broker refuses a
  // zombie's (ILLEGAL_GENERATION).
  absl::Status SendOffsetsToTransaction(const std::vector<TopicPartition>& offsets, const GroupMetadata& group,
                                        absl::Duration) override {
    const auto* fake = dynamic_cast<const FakeGroupMetadata*>(&group);
    if (fake == nullptr || fake->consumer == nullptr) {
      return absl::InvalidArgumentError("send_offsets_to_transaction: not a FakeConsumer's group metadata");
    }
    if (fake->generation != fake->consumer->rebalances()) {
      return absl::AbortedError("send_offsets_to_transaction: Broker: Specified group generation id is not valid");
    }
    absl::MutexLock lock(&mu_);
    ++offsets_sent_;
    txn_offsets_.insert(txn_offsets_.end(), offsets.begin(), offsets.end());
    txn_consumer_ = fake->consumer;
    return absl::OkStatus();
  }
  absl::Status CommitTransaction(absl::Duration) override {
    std::vector<TopicPartition> offsets;
    FakeConsumer* consumer = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (!commit_error_.ok()) {
        absl::Status failed = commit_error_;
        commit_error_ = absl::OkStatus();
        return failed;
      }
      ++commits_;
      commit_threads_.push_back(std::this_thread::get_id());
      offsets.swap(txn_offsets_);
      consumer = txn_consumer_;
      if (log_ != nullptr && txn_ != 0) log_->EndTransaction(txn_, /*commit=*/true);
      txn_ = 0;
    }
    if (consumer) consumer->CommitOffsets(offsets);
    return absl::OkStatus();
  }
  absl::Status AbortTransaction(absl::Duration) override {
    absl::MutexLock lock(&mu_);
    ++aborts_;
    txn_offsets_.clear();
    if (txn_start_ < produced_.size()) produced_.resize(txn_start_);
    if (log_ != nullptr && txn_ != 0) log_->EndTransaction(txn_, /*commit=*/false);
    txn_ = 0;
    return absl::OkStatus();
  }
  // Produce() to `topic` fails at once, as when librdkafka cannot queue.
  void RefuseTopic(const std::string& topic) {
    absl::MutexLock lock(&mu_);
    refuse_topics_.insert(topic);
  }
  int commits() {
    absl::MutexLock lock(&mu_);
    return commits_;
  }
  int aborts() {
    absl::MutexLock lock(&mu_);
    return aborts_;
  }
  // The threads the successful CommitTransactions ran on, in order.
  std::vector<std::thread::id> commit_threads() {
    absl::MutexLock lock(&mu_);
    return commit_threads_;
  }
  int offsets_sent() {
    absl::MutexLock lock(&mu_);
    return offsets_sent_;
  }

  void FailTopic(const std::string& topic) {
    absl::MutexLock lock(&mu_);
    fail_topics_.insert(topic);
  }
  std::vector<OutboundMessage> To(const std::string& topic) {
    absl::MutexLock lock(&mu_);
    std::vector<OutboundMessage> out;
    for (const auto& m : produced_) {
      if (m.topic == topic) out.push_back(m);
    }
    return out;
  }
  int failed() {
    absl::MutexLock lock(&mu_);
    return failed_;
  }
  int oversized() {
    absl::MutexLock lock(&mu_);
    return oversized_;
  }

 private:
  const size_t max_message_bytes_;
  absl::Mutex mu_;
  std::vector<OutboundMessage> produced_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> fail_topics_ ABSL_GUARDED_BY(mu_);
  int failed_ ABSL_GUARDED_BY(mu_) = 0;
  int oversized_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> refuse_topics_ ABSL_GUARDED_BY(mu_);
  int commits_ ABSL_GUARDED_BY(mu_) = 0;
  int aborts_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread::id> commit_threads_ ABSL_GUARDED_BY(mu_);
  int offsets_sent_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<TopicPartition> txn_offsets_ ABSL_GUARDED_BY(mu_);
  FakeConsumer* txn_consumer_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Status init_error_ ABSL_GUARDED_BY(mu_);
  absl::Status commit_error_ ABSL_GUARDED_BY(mu_);
  size_t txn_start_ ABSL_GUARDED_BY(mu_) = 0;
  FakeLog* const log_;
  uint64_t txn_ ABSL_GUARDED_BY(mu_) = 0;  // the log's transaction now open (0: none)
};

}  // namespace agentfleet::testing
