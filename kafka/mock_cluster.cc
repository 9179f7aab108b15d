#include "kafka/mock_cluster.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "absl/strings/str_cat.h"

namespace agentfleet {

struct MockCluster::Impl {
  rd_kafka_t* rk = nullptr;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  ~Impl() {
    if (cluster) rd_kafka_mock_cluster_destroy(cluster);
    if (rk) rd_kafka_destroy(rk);
  }
};

absl::StatusOr<std::unique_ptr<MockCluster>> MockCluster::Start(int brokers,
                                                                const std::vector<TopicSpec>& topics) {
  auto impl = std::make_unique<Impl>();
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
  impl->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (impl->rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InternalError(absl::StrCat("mock cluster handle: ", errstr));
  }
  impl->cluster = rd_kafka_mock_cluster_new(impl->rk, brokers);
  if (impl->cluster == nullptr) return absl::InternalError("rd_kafka_mock_cluster_new failed");
  for (const auto& t : topics) {
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(
        impl->cluster, t.name.c_str(), t.partitions, std::min(t.replication_factor, brokers));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return absl::InternalError(absl::StrCat("create topic ", t.name, ": ", rd_kafka_err2str(err)));
    }
  }
  std::string bootstrap = rd_kafka_mock_cluster_bootstraps(impl->cluster);
  return std::unique_ptr<MockCluster>(new MockCluster(std::move(impl), std::move(bootstrap)));
}

MockCluster::MockCluster(std::unique_ptr<Impl> impl, std::string bootstrap)
    : impl_(std::move(impl)), bootstrap_(std::move(bootstrap)) {}

MockCluster::~MockCluster() = default;

}  // namespace agentfleet
