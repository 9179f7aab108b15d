// A coordinator replica's life (coordinator/replica.h) on the in-memory Kafka
// fakes: failed incarnations restart in-process with fresh clients after a
// backoff, clients that cannot be made stop it, shutdown stops it at once.
#include "coordinator/replica.h"

#include <memory>
#include <vector>

#include "common/clock.h"
#include "config/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kafka/topics.h"
#include "tests/unit/fake_kafka.h"

namespace agentfleet {
namespace {

using ::testing::ElementsAre;
using testing::FakeConsumer;
using testing::FakeProducer;

FleetConfig Config() {
  auto c = LoadConfigString(R"(
kafka: {partitions: 1}
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a: {provider: sim, models: {default: m}}
workflows: {w: {steps: [{id: s, agent: a}]}}
)", "w.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

TEST(RestartBackoffTest, DoublesUpToItsMaximumWhileIncarnationsFailQuicklyAndStartsOverAfterAHealthyOne) {
  RestartBackoff backoff;
  absl::Time t = absl::FromUnixSeconds(1000);
  std::vector<int64_t> delays;
  for (int i = 0; i < 7; ++i) delays.push_back(absl::ToInt64Seconds(backoff.AfterFailure(t, t + absl::Seconds(5))));
  EXPECT_THAT(delays, ElementsAre(1, 2, 4, 8, 16, 30, 30));
  // One that ran for more than a minute was healthy: the next delay is 1 s again.
  EXPECT_EQ(backoff.AfterFailure(t, t + absl::Seconds(61)), absl::Seconds(1));
  EXPECT_EQ(backoff.AfterFailure(t, t + absl::Seconds(1)), absl::Seconds(2));
}

class ReplicaTest : public ::testing::Test {
 protected:
  // Makes fake clients; the first `failing_` incarnations' producers fail
  // InitTransactions as a fenced producer does; later ones join the group.
  ReplicaClientFactory Factory() {
    return [this](RebalanceListener* listener) -> absl::StatusOr<ReplicaClients> {
      if (!client_error_.ok()) return client_error_;
      ReplicaClients c;
      auto producer = std::make_unique<FakeProducer>();
      auto consumer = std::make_unique<FakeConsumer>(listener);
      if (made_ < failing_) {
        producer->FailInitTransactions(absl::FailedPreconditionError("This instance has been fenced"));
      } else {
        consumer->ScheduleRebalance({{topics_.tasks, 0}, {topics_.events, 0}});
      }
      ++made_;
      c.producer = std::move(producer);
      c.consumer = std::move(consumer);
      c.shared_feed = std::make_unique<FakeConsumer>();
      c.state_reader = [](const std::vector<int32_t>&) { return std::vector<Message>{}; };
      return c;
    };
  }
  ReplicaOptions Options() {
    ReplicaOptions o;
    o.clock = &clock_;
    o.sleep = [this](absl::Duration d) {
      clock_.Advance(d);
      if (waits_.size() < static_cast<size_t>(made_)) waits_.resize(made_);
      waits_[made_ - 1] += d;
    };
    return o;
  }

  FleetConfig config_ = Config();
  Topics topics_{config_.kafka.topic_prefix};
  FakeClock clock_;
  int failing_ = 0;
  int made_ = 0;
  absl::Status client_error_;
  std::vector<absl::Duration> waits_;  // slept after incarnation i
};

TEST_F(ReplicaTest, AFencedIncarnationRestartsInProcessWithFreshClientsAfterABackoffThatDoubles) {
  failing_ = 3;
  Replica replica(&config_, "r1", Factory(), Options());
  EXPECT_FALSE(replica.Ready().ok()) << "no incarnation yet";
  bool was_ready = false;
  int code = replica.Run([&] {
    was_ready = replica.Ready().ok();
    return was_ready;  // stop once the fourth incarnation is in its group
  });
  EXPECT_EQ(code, 0);
  EXPECT_TRUE(was_ready);
  EXPECT_EQ(replica.incarnations(), 4);
  EXPECT_EQ(made_, 4) << "every incarnation has clients of its own";
  EXPECT_THAT(waits_, ElementsAre(absl::Seconds(1), absl::Seconds(2), absl::Seconds(4)));
  EXPECT_FALSE(replica.Ready().ok()) << "no incarnation after Run()";
}

TEST_F(ReplicaTest, ClientsThatCannotBeMadeStopItWithCodeTwoAndNoRestart) {
  client_error_ = absl::InvalidArgumentError("Configuration property \"bogus\" not supported");
  Replica replica(&config_, "r1", Factory(), Options());
  EXPECT_EQ(replica.Run([] { return false; }), 2);
  EXPECT_EQ(replica.incarnations(), 1);
  EXPECT_TRUE(waits_.empty());
}

TEST_F(ReplicaTest, ShutdownDuringTheBackoffStopsItAtOnce) {
  failing_ = 1000;
  Replica replica(&config_, "r1", Factory(), Options());
  absl::Time began = clock_.Now();
  int code = replica.Run([&] { return clock_.Now() >= began + absl::Milliseconds(300); });
  EXPECT_EQ(code, 0);
  EXPECT_EQ(replica.incarnations(), 1);
  ASSERT_EQ(waits_.size(), 1u);
  EXPECT_EQ(waits_[0], absl::Milliseconds(300)) << "it waits in steps of 100 ms and checks for shutdown between";
}

}  // namespace
}  // namespace agentfleet
