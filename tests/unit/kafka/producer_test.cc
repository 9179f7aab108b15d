// The producer's delivery reports, on librdkafka's in-process mock cluster:
// each message's callback runs once, with its outcome, and Flush() (which a
// transaction's commit does first) returns only after every callback ran —
// the reports are events the producer's own poller thread serves, and
// flush() waits on the count of undelivered messages.
#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "kafka/kafka.h"
#include "kafka/mock_cluster.h"

namespace agentfleet {
namespace {

class ProducerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = MockCluster::Start(1, {TopicSpec{"t", 4, 1, {}}});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
  }
  Properties Props() const {
    return {{"bootstrap.servers", cluster_->bootstrap()}, {"linger.ms", "2"}, {"message.timeout.ms", "5000"}};
  }
  std::unique_ptr<MockCluster> cluster_;
};

TEST_F(ProducerTest, FlushReturnsAfterEveryMessagesCallbackRanOnce) {
  auto producer = NewProducer(Props());
  ASSERT_TRUE(producer.ok()) << producer.status();
  constexpr int kMessages = 2000;
  std::vector<std::atomic<int>> calls(kMessages);
  std::atomic<int> failed{0};
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE((*producer)
                    ->Produce({"t", absl::StrCat("k", i), "v", {}},
                              [&, i](const absl::Status& s) {
                                calls[i].fetch_add(1);
                                if (!s.ok()) failed.fetch_add(1);
                              })
                    .ok());
  }
  ASSERT_TRUE((*producer)->Flush(absl::Seconds(30)).ok());
  // No waiting here: Flush() returned, so every callback has run.
  for (int i = 0; i < kMessages; ++i) ASSERT_EQ(calls[i].load(), 1) << "message " << i;
  EXPECT_EQ(failed.load(), 0);
}

TEST_F(ProducerTest, AMessageTheBrokerRefusesReachesItsCallbackWithTheError) {
  auto producer = NewProducer(Props());
  ASSERT_TRUE(producer.ok()) << producer.status();
  ASSERT_TRUE((*producer)->Warm("t", absl::Seconds(10)).ok());
  ASSERT_TRUE(cluster_->Inject("errors Produce MSG_SIZE_TOO_LARGE 1").ok());
  absl::Mutex mu;
  std::vector<absl::Status> outcomes;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE((*producer)
                    ->Produce({"t", "k", "v", {}, 0},
                              [&](const absl::Status& s) {
                                absl::MutexLock lock(&mu);
                                outcomes.push_back(s);
                              })
                    .ok());
    ASSERT_TRUE((*producer)->Flush(absl::Seconds(30)).ok());
  }
  absl::MutexLock lock(&mu);
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_FALSE(outcomes[0].ok());
  EXPECT_NE(outcomes[0].message().find("delivery: Broker: Message size too large"), std::string::npos) << outcomes[0];
  EXPECT_TRUE(outcomes[1].ok()) << outcomes[1];
}

TEST_F(ProducerTest, ATransactionsCommitReturnsAfterItsMessagesCallbacks) {
  Properties props = Props();
  props["transactional.id"] = "producer-test";
  auto producer = NewProducer(props);
  ASSERT_TRUE(producer.ok()) << producer.status();
  ASSERT_TRUE((*producer)->InitTransactions(absl::Seconds(30)).ok());
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE((*producer)->BeginTransaction().ok());
    std::atomic<int> delivered{0};
    for (int i = 0; i < 300; ++i) {
      ASSERT_TRUE((*producer)
                      ->Produce({"t", absl::StrCat("k", i), "v", {}},
                                [&](const absl::Status& s) {
                                  if (s.ok()) delivered.fetch_add(1);
                                })
                      .ok());
    }
    absl::Status committed = (*producer)->CommitTransaction(absl::Seconds(30));
    ASSERT_TRUE(committed.ok()) << committed;
    EXPECT_EQ(delivered.load(), 300) << "round " << round;
  }
}

}  // namespace
}  // namespace agentfleet
