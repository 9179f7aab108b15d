// The Kafka seam: the producer and consumer interfaces the rest of agentfleet
// uses. The only implementation over librdkafka is in rdkafka_client.cc, the
// one file (with mock_cluster.cc) that includes librdkafka's headers; tests of
// logic use in-memory fakes of these interfaces.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/headers.h"

namespace agentfleet {

// librdkafka configuration properties, name -> value.
using Properties = std::map<std::string, std::string>;

struct Message {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string payload;
  Headers headers;
  int64_t timestamp_ms = 0;
};

struct OutboundMessage {
  std::string topic;
  std::string key;
  std::string payload;  // empty is sent as a null value: a tombstone
  Headers headers;
  int32_t partition = -1;  // -1: chosen from the key (murmur2, like the Java client)
};

struct TopicPartition {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = -1001;  // librdkafka's "invalid/stored" sentinel
  bool operator<(const TopicPartition& o) const {
    return topic != o.topic ? topic < o.topic : partition < o.partition;
  }
  bool operator==(const TopicPartition& o) const {
    return topic == o.topic && partition == o.partition;
  }
};

// What a message of this key, payload and headers weighs against a
// message.max.bytes limit (kafka.max_message_bytes): its bytes plus a
// record's framing (lengths, timestamps, attributes), with room to spare.
inline size_t MessageBytes(const std::string& key, const std::string& payload, const Headers& headers) {
  size_t bytes = key.size() + payload.size() + 128;
  for (const auto& [k, v] : headers) bytes += k.size() + v.size() + 8;
  return bytes;
}

// A consumer's group membership at one moment (group, generation, member),
// which a transactional producer sends with the offsets so that the broker
// fences a zombie of an older generation (KIP-447). Opaque: made by a
// Consumer, read only by a Producer of the same Kafka implementation.
class GroupMetadata {
 public:
  virtual ~GroupMetadata() = default;
};

// Called once the broker acknowledged (OK) or finally failed a message.
using DeliveryCallback = std::function<void(const absl::Status&)>;

// Thread-safe: Produce and Flush may be called from any thread. Delivery
// callbacks run on the producer's own polling thread; keep them short.
class Producer {
 public:
  virtual ~Producer() = default;
  // Queues a message (keyed partitioning, murmur2 like the Java client). Blocks
  // only while the local queue is full, at most `queue.buffering.max.ms`-ish
  // bounded time; returns Unavailable if it still cannot queue.
  [[nodiscard]] virtual absl::Status Produce(OutboundMessage message,
                                             DeliveryCallback on_delivery = nullptr) = 0;
  // Blocks until everything queued so far is delivered or failed.
  [[nodiscard]] virtual absl::Status Flush(absl::Duration timeout) = 0;
  // Blocks until the producer knows `topic`'s partition leaders, so the first
  // Produce() does not pay for metadata and connection setup.
  [[nodiscard]] virtual absl::Status Warm(const std::string& topic, absl::Duration timeout) = 0;

  // Transactions (producers created with a transactional.id). A failed call
  // leaves the transaction unusable: the caller aborts it or, if
  // FailedPrecondition says this producer was fenced, stops.
  [[nodiscard]] virtual absl::Status InitTransactions(absl::Duration timeout) = 0;
  [[nodiscard]] virtual absl::Status BeginTransaction() = 0;
  // Adds consumed positions (next offsets) to the transaction, with the
  // consuming group's metadata (Consumer::CurrentGroupMetadata), so a zombie
  // of an older generation is fenced. InvalidArgument for metadata of
  // another Kafka implementation.
  [[nodiscard]] virtual absl::Status SendOffsetsToTransaction(
      const std::vector<TopicPartition>& offsets, const GroupMetadata& group,
      absl::Duration timeout) = 0;
  [[nodiscard]] virtual absl::Status CommitTransaction(absl::Duration timeout) = 0;
  [[nodiscard]] virtual absl::Status AbortTransaction(absl::Duration timeout) = 0;
};

// Partition assignment changes, reported from inside Consumer::Poll on the
// consumer's thread.
class RebalanceListener {
 public:
  virtual ~RebalanceListener() = default;
  virtual void OnAssigned(const std::vector<TopicPartition>& partitions) = 0;
  virtual void OnRevoked(const std::vector<TopicPartition>& partitions) = 0;
};

// Not thread-safe except where noted: one thread polls it.
class Consumer {
 public:
  virtual ~Consumer() = default;
  // Joins the consumer group on these topics.
  [[nodiscard]] virtual absl::Status Subscribe(const std::vector<std::string>& topics) = 0;
  // Reads these partitions from the given offsets, without a group.
  [[nodiscard]] virtual absl::Status Assign(const std::vector<TopicPartition>& partitions) = 0;
  // Waits up to `timeout` for the first message, then appends what is
  // already fetched to `out`, up to `max_messages`. Transient errors are
  // logged, not returned. Hot loops keep one `out` and clear() it between
  // calls, so a batch of thousands of messages allocates no new array.
  virtual void PollInto(absl::Duration timeout, size_t max_messages, std::vector<Message>* out) = 0;
  std::vector<Message> Poll(absl::Duration timeout, size_t max_messages) {
    std::vector<Message> out;
    PollInto(timeout, max_messages, &out);
    return out;
  }
  // Marks everything below `next_offset` processed; committed in the
  // background. Thread-safe. Fails for a partition no longer assigned.
  [[nodiscard]] virtual absl::Status StoreOffset(const std::string& topic, int32_t partition,
                                                 int64_t next_offset) = 0;
  // Commits stored offsets now (synchronously).
  [[nodiscard]] virtual absl::Status CommitStored() = 0;
  [[nodiscard]] virtual absl::Status Pause(const std::vector<TopicPartition>& partitions) = 0;
  [[nodiscard]] virtual absl::Status Resume(const std::vector<TopicPartition>& partitions) = 0;
  virtual std::vector<TopicPartition> Assignment() = 0;
  // The group membership now (never null), for Producer::SendOffsetsToTransaction.
  virtual std::unique_ptr<GroupMetadata> CurrentGroupMetadata() = 0;
  // This consumer's position on each assigned partition: the offset after
  // the last message Poll() returned, past any transaction markers that
  // follow it (offset -1001 where it has none yet). In-memory fakes: none.
  virtual std::vector<TopicPartition> Positions() { return {}; }
  // Moves every assigned partition back to the group's committed offset (its
  // start where nothing was committed); what was fetched past it is dropped
  // and read again. After an aborted transaction.
  [[nodiscard]] virtual absl::Status RewindToCommitted(absl::Duration timeout) {
    return absl::UnimplementedError("RewindToCommitted");
  }
  // Each assigned partition's fetch progress, for stall detection: the
  // position (-1001: nothing consumed since assignment), the high watermark
  // last seen in a fetch response (-1: no fetch answered since assignment;
  // no request is made for it), and the group's committed offset (asked of
  // the broker, at most `timeout`; -1: none or unknown).
  struct PartitionProgress {
    std::string topic;
    int32_t partition = 0;
    int64_t position = -1001;
    int64_t high = -1;
    int64_t committed = -1;
  };
  virtual std::vector<PartitionProgress> Progress(absl::Duration timeout) { return {}; }
  // The partition's end as this consumer may read it (the last stable offset
  // under read_committed), asked of the broker now, at most `timeout`. What
  // Progress() cannot tell: a fetcher that stopped after a fetch leaves its
  // last high watermark where it was, looking caught up.
  [[nodiscard]] virtual absl::StatusOr<int64_t> QueryEnd(const std::string& topic, int32_t partition,
                                                         absl::Duration timeout) {
    return absl::UnimplementedError("QueryEnd");
  }
  // Starts fetching `partition` again: resumes it and seeks to its position
  // or, without one, to its committed offset (the earliest if none); a
  // partition whose fetcher never started (no seek possible) is assigned
  // again at that offset. The backstop for a partition that is assigned but
  // not fetching.
  [[nodiscard]] virtual absl::Status RestartFetch(const std::string& topic, int32_t partition,
                                                  absl::Duration timeout) {
    return absl::UnimplementedError("RestartFetch");
  }
  // OK if a broker answers a metadata request within `timeout` (readiness
  // probes). Thread-safe. In-memory fakes are always connected.
  [[nodiscard]] virtual absl::Status Ping(absl::Duration timeout) { return absl::OkStatus(); }
  // Commits stored offsets and leaves the group. Call before destruction.
  virtual void Close() = 0;
};

// Forwards rebalance callbacks to a listener set later: the consumer needs its
// listener when it is created, and the listener (a Coordinator or Worker)
// needs the consumer when it is created.
class RebalanceRelay : public RebalanceListener {
 public:
  void set_target(RebalanceListener* target) { target_ = target; }
  void OnAssigned(const std::vector<TopicPartition>& p) override {
    if (target_) target_->OnAssigned(p);
  }
  void OnRevoked(const std::vector<TopicPartition>& p) override {
    if (target_) target_->OnRevoked(p);
  }

 private:
  RebalanceListener* target_ = nullptr;
};

struct TopicSpec {
  std::string name;
  int partitions = 1;
  int replication_factor = 1;
  std::map<std::string, std::string> configs;
};

struct Watermarks {
  int64_t low = 0;
  int64_t high = 0;
};

[[nodiscard]] absl::StatusOr<std::unique_ptr<Producer>> NewProducer(const Properties& properties);
// `listener` may be null; it must outlive the consumer.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Consumer>> NewConsumer(
    const Properties& properties, RebalanceListener* listener = nullptr);

// Creates the topics that do not exist (existing ones are left as they are).
[[nodiscard]] absl::Status CreateTopics(const Properties& properties,
                                        const std::vector<TopicSpec>& topics,
                                        absl::Duration timeout);

// Partition count of `topic` from cluster metadata.
[[nodiscard]] absl::StatusOr<int> PartitionCount(const Properties& properties,
                                                 const std::string& topic, absl::Duration timeout);

// Low and high watermark of each partition of `topic`, by partition number.
[[nodiscard]] absl::StatusOr<std::vector<Watermarks>> QueryWatermarks(const Properties& properties,
                                                                      const std::string& topic,
                                                                      absl::Duration timeout);

// Every committed message of these partitions of `topic`, from the beginning
// to the end as it is when the read starts (read_committed). Used to restore
// state from a compacted topic.
[[nodiscard]] absl::StatusOr<std::vector<Message>> ReadPartitionsToEnd(
    const Properties& properties, const std::string& topic, const std::vector<int32_t>& partitions,
    absl::Duration timeout);

// Like ReadPartitionsToEnd, from each partition's first message with a
// timestamp at or after `since` (ListOffsets by time). The cost ledger's reports.
[[nodiscard]] absl::StatusOr<std::vector<Message>> ReadPartitionsSince(
    const Properties& properties, const std::string& topic, const std::vector<int32_t>& partitions, absl::Time since,
    absl::Duration timeout);

// The committed messages among the last `count` offsets of each of these
// partitions of `topic` (transaction markers and aborted records take
// offsets too, so there may be fewer), read to the end as it is when the
// read starts. The audit log's chain heads.
[[nodiscard]] absl::StatusOr<std::vector<Message>> ReadPartitionTails(
    const Properties& properties, const std::string& topic, const std::vector<int32_t>& partitions, int64_t count,
    absl::Duration timeout);

// Every committed message of `topic` (all partitions) whose key is `key`,
// from the beginning to the end as it is when the read starts. Reads the
// whole topic (some keys' messages, without reading whole topics: key_scan.h).
[[nodiscard]] absl::StatusOr<std::vector<Message>> ReadKeyToEnd(const Properties& properties,
                                                                const std::string& topic,
                                                                const std::string& key,
                                                                absl::Duration timeout);

// Committed offsets of `group` for each partition of `topic` (-1 = none).
[[nodiscard]] absl::StatusOr<std::vector<int64_t>> CommittedOffsets(const Properties& properties,
                                                                    const std::string& group,
                                                                    const std::string& topic,
                                                                    absl::Duration timeout);

// A consumer group's position on one partition: the committed offset (-1:
// none), the partition's watermarks, and the lag: high watermark minus the
// committed offset, or minus the low watermark where nothing is committed
// (the group would start from the earliest message).
// A consumer group as the broker describes it (DescribeConsumerGroups):
// its state and each member with the partitions assigned to it.
struct GroupMember {
  std::string client_id;
  std::string consumer_id;  // the member id
  std::string host;
  std::vector<TopicPartition> assignment;
};
struct GroupDescription {
  std::string group;
  std::string state;  // "Stable", "PreparingRebalance", "CompletingRebalance", "Empty", "Dead", "Unknown"
  std::string error;  // why it could not be described, or ""
  std::vector<GroupMember> members;
};

// Describes `groups` (through the broker's group coordinator; needs the
// Admin API, which the development broker does not answer).
[[nodiscard]] absl::StatusOr<std::vector<GroupDescription>> DescribeGroups(const Properties& properties,
                                                                           const std::vector<std::string>& groups,
                                                                           absl::Duration timeout);

struct PartitionLag {
  int32_t partition = 0;
  int64_t committed = -1;
  int64_t low = 0;
  int64_t high = 0;
  int64_t lag = 0;
};

struct TopicLag {
  std::string topic;
  std::vector<PartitionLag> partitions;
  int64_t total() const {
    int64_t sum = 0;
    for (const auto& p : partitions) sum += p.lag;
    return sum;
  }
  // True if the group committed an offset on any partition of the topic.
  bool consumed() const {
    for (const auto& p : partitions) {
      if (p.committed >= 0) return true;
    }
    return false;
  }
};

// `group`'s lag on each of `topics`, read with one client that never joins
// the group (an offset fetch and a watermark query per partition). A topic
// that does not exist fails the call.
[[nodiscard]] absl::StatusOr<std::vector<TopicLag>> GroupLag(const Properties& properties,
                                                             const std::string& group,
                                                             const std::vector<std::string>& topics,
                                                             absl::Duration timeout);

}  // namespace agentfleet
