// at_least_once offsets (coordinator/batch_committer.h): stored only for the
// prefix of batches whose every output was acknowledged.
#include "coordinator/batch_committer.h"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kafka/kafka.h"

namespace agentfleet {
namespace {

class RecordingConsumer : public Consumer {
 public:
  absl::Status Subscribe(const std::vector<std::string>&) override { return absl::OkStatus(); }
  absl::Status Assign(const std::vector<TopicPartition>&) override { return absl::OkStatus(); }
  void PollInto(absl::Duration, size_t, std::vector<Message>*) override {}
  absl::Status StoreOffset(const std::string& topic, int32_t partition, int64_t next) override {
    stored[{topic, partition}] = next;
    return absl::OkStatus();
  }
  absl::Status CommitStored() override { return absl::OkStatus(); }
  absl::Status Pause(const std::vector<TopicPartition>&) override { return absl::OkStatus(); }
  absl::Status Resume(const std::vector<TopicPartition>&) override { return absl::OkStatus(); }
  std::vector<TopicPartition> Assignment() override { return {}; }
  std::unique_ptr<GroupMetadata> CurrentGroupMetadata() override { return std::make_unique<GroupMetadata>(); }
  void Close() override {}
  std::map<std::pair<std::string, int32_t>, int64_t> stored;
};

TEST(BatchCommitterTest, StoresOffsetsOnlyForTheAcknowledgedPrefixOfBatches) {
  RecordingConsumer consumer;
  BatchCommitter c(&consumer);
  uint64_t b1 = c.Begin();
  DeliveryCallback b1_out = c.Track(b1);
  c.Seal(b1, {{{"tasks", 0}, 10}});
  uint64_t b2 = c.Begin();
  DeliveryCallback b2_out = c.Track(b2);
  c.Seal(b2, {{{"tasks", 0}, 20}});
  uint64_t b3 = c.Begin();  // produced nothing
  c.Seal(b3, {{{"events", 1}, 5}});
  EXPECT_TRUE(consumer.stored.empty());
  // Batch 2 is acknowledged first: batch 1 still blocks everything.
  b2_out(absl::OkStatus());
  EXPECT_TRUE(consumer.stored.empty());
  b1_out(absl::OkStatus());
  EXPECT_EQ((consumer.stored[{"tasks", 0}]), 20);
  EXPECT_EQ((consumer.stored[{"events", 1}]), 5);
  EXPECT_EQ(c.open_batches(), 0u);
  EXPECT_TRUE(c.WaitIdle(absl::ZeroDuration()));
}

TEST(BatchCommitterTest, AFailedDeliveryStopsAllLaterCommits) {
  RecordingConsumer consumer;
  BatchCommitter c(&consumer);
  uint64_t b1 = c.Begin();
  DeliveryCallback out = c.Track(b1);
  c.Seal(b1, {{{"tasks", 0}, 10}});
  out(absl::UnavailableError("broker gone"));
  uint64_t b2 = c.Begin();
  c.Seal(b2, {{{"tasks", 0}, 11}});
  EXPECT_TRUE(consumer.stored.empty());
  EXPECT_FALSE(c.error().ok());
  EXPECT_FALSE(c.WaitIdle(absl::ZeroDuration()));
}

}  // namespace
}  // namespace agentfleet
