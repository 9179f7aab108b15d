// Asking where a partition's log ends, on the in-process mock cluster, when
// the partition's leader is down: the answer (an error) comes within the time
// asked, not when the node comes back. librdkafka's query_watermark_offsets()
// ignores its timeout and retries a request the dead node never received until
// that node returns: the coordinator's main loop, asking from its stall watch,
// stopped for minutes when a node of a three-node cluster was SIGKILLed (the
// chaos test's fail-over, found in CI).
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "kafka/kafka.h"
#include "kafka/mock_cluster.h"

namespace agentfleet {
namespace {

class LeaderDownTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = MockCluster::Start(3, {TopicSpec{"t", 1, 1, {}}});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    ASSERT_TRUE(cluster_->Inject("leader t 0 1").ok());
    common_ = {{"bootstrap.servers", cluster_->bootstrap()}};
    auto producer = NewProducer(common_);
    ASSERT_TRUE(producer.ok()) << producer.status();
    for (int i = 0; i < 3; ++i) ASSERT_TRUE((*producer)->Produce({"t", absl::StrCat("k", i), "v", {}, 0}).ok());
    ASSERT_TRUE((*producer)->Flush(absl::Seconds(10)).ok());
  }

  // Runs `ask` on a thread of its own and waits for it at most 30 s (a
  // generous bound for a call asked to give up after one or two seconds).
  // A call still waiting then is a failure; the node comes back so the
  // call can return and the thread be joined.
  void ExpectAnswerInTime(const char* what, const std::function<absl::Status()>& ask) {
    std::packaged_task<absl::Status()> task(ask);
    std::future<absl::Status> answer = task.get_future();
    std::thread asker(std::move(task));
    bool in_time = answer.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
    if (!in_time) (void)cluster_->Inject("up 1");
    asker.join();
    EXPECT_TRUE(in_time) << what << " still waited for the dead leader after 30 s";
    absl::Status s = answer.get();
    EXPECT_FALSE(s.ok()) << what << " answered although the leader is down";
  }

  std::unique_ptr<MockCluster> cluster_;
  Properties common_;
};

TEST_F(LeaderDownTest, AConsumerAskingWhereAPartitionEndsGivesUpInTime) {
  Properties props = common_;
  props["group.id"] = "g";
  auto consumer = NewConsumer(props);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  auto end = (*consumer)->QueryEnd("t", 0, absl::Seconds(10));
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(*end, 3);

  ASSERT_TRUE(cluster_->Inject("down 1").ok());
  ExpectAnswerInTime("QueryEnd", [&] { return (*consumer)->QueryEnd("t", 0, absl::Seconds(1)).status(); });

  // Back up, the same consumer asks again and is answered.
  ASSERT_TRUE(cluster_->Inject("up 1").ok());
  absl::StatusOr<int64_t> again = absl::UnavailableError("not asked");
  for (absl::Time until = absl::Now() + absl::Seconds(30); !again.ok() && absl::Now() < until;) {
    again = (*consumer)->QueryEnd("t", 0, absl::Seconds(1));
  }
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, 3);
}

TEST_F(LeaderDownTest, TheWatermarksOfATopicAreAskedUntilTheDeadlineAndNoLonger) {
  auto marks = QueryWatermarks(common_, "t", absl::Seconds(10));
  ASSERT_TRUE(marks.ok()) << marks.status();
  ASSERT_EQ(marks->size(), 1u);
  EXPECT_EQ((*marks)[0].low, 0);
  EXPECT_EQ((*marks)[0].high, 3);

  ASSERT_TRUE(cluster_->Inject("down 1").ok());
  ExpectAnswerInTime("QueryWatermarks", [&] { return QueryWatermarks(common_, "t", absl::Seconds(2)).status(); });
}

}  // namespace
}  // namespace agentfleet
