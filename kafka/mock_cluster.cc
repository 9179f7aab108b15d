#include "kafka/mock_cluster.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <cstdlib>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace agentfleet {
namespace {

// Kafka protocol API keys, by the names the protocol guide uses.
const std::map<std::string, int16_t>& ApiKeys() {
  static const auto* keys = new std::map<std::string, int16_t>{
      {"produce", 0},         {"fetch", 1},           {"listoffsets", 2},       {"metadata", 3},
      {"offsetcommit", 8},    {"offsetfetch", 9},     {"findcoordinator", 10},  {"joingroup", 11},
      {"heartbeat", 12},      {"leavegroup", 13},     {"syncgroup", 14},        {"initproducerid", 22},
      {"addpartitionstotxn", 24}, {"addoffsetstotxn", 25}, {"endtxn", 26},      {"txnoffsetcommit", 28},
  };
  return *keys;
}

absl::StatusOr<int16_t> ParseApi(const std::string& name) {
  int key;
  if (absl::SimpleAtoi(name, &key) && key >= 0 && key < 100) return static_cast<int16_t>(key);
  auto it = ApiKeys().find(absl::AsciiStrToLower(name));
  if (it == ApiKeys().end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown Kafka API '", name, "' (Produce, Fetch, OffsetCommit, ",
                                                   "JoinGroup, Heartbeat, SyncGroup, EndTxn, ... or its number)"));
  }
  return it->second;
}

// A broker-side Kafka error by name ("NOT_LEADER_FOR_PARTITION") or number.
absl::StatusOr<rd_kafka_resp_err_t> ParseError(const std::string& name) {
  int code;
  if (absl::SimpleAtoi(name, &code) && code > 0) return static_cast<rd_kafka_resp_err_t>(code);
  const rd_kafka_err_desc* descs;
  size_t n;
  rd_kafka_get_err_descs(&descs, &n);
  std::string wanted = absl::AsciiStrToUpper(name);
  for (size_t i = 0; i < n; ++i) {
    // Positive codes are the broker's; negative ones are librdkafka's own.
    if (descs[i].name != nullptr && descs[i].code > 0 && wanted == descs[i].name) return descs[i].code;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown Kafka error '", name, "' (e.g. NOT_LEADER_FOR_PARTITION, ",
                                                 "REQUEST_TIMED_OUT, NOT_COORDINATOR)"));
}

absl::StatusOr<int32_t> ParseInt(const std::string& what, const std::string& text) {
  int32_t v;
  if (!absl::SimpleAtoi(text, &v)) return absl::InvalidArgumentError(absl::StrCat(what, " '", text, "' is not a number"));
  return v;
}

absl::Status Check(rd_kafka_resp_err_t err, const std::string& what) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", rd_kafka_err2str(err)));
}

}  // namespace

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

const char* MockCluster::FaultHelp() {
  return "errors API ERROR [COUNT] | clear API | rtt BROKER MS | down BROKER | up BROKER | "
         "leader TOPIC PARTITION BROKER";
}

absl::StatusOr<std::string> MockCluster::Inject(const std::string& command) {
  std::vector<std::string> w = absl::StrSplit(command, ' ', absl::SkipWhitespace());
  if (w.empty()) return absl::InvalidArgumentError(absl::StrCat("empty fault; one of: ", FaultHelp()));
  const std::string op = absl::AsciiStrToLower(w[0]);
  auto args = [&](size_t min, size_t max) -> absl::Status {
    if (w.size() - 1 < min || w.size() - 1 > max) {
      return absl::InvalidArgumentError(absl::StrCat("'", command, "': wrong number of arguments; usage: ", FaultHelp()));
    }
    return absl::OkStatus();
  };
  rd_kafka_mock_cluster_t* c = impl_->cluster;
  if (op == "errors") {
    if (absl::Status s = args(2, 3); !s.ok()) return s;
    auto api = ParseApi(w[1]);
    if (!api.ok()) return api.status();
    auto err = ParseError(w[2]);
    if (!err.ok()) return err.status();
    int32_t count = 1;
    if (w.size() == 4) {
      auto n = ParseInt("COUNT", w[3]);
      if (!n.ok()) return n.status();
      if (*n < 1 || *n > 100000) return absl::InvalidArgumentError("COUNT must be 1..100000");
      count = *n;
    }
    std::vector<rd_kafka_resp_err_t> errors(count, *err);
    rd_kafka_mock_push_request_errors_array(c, *api, errors.size(), errors.data());
    return absl::StrCat("the next ", count, " ", w[1], " requests fail with ", rd_kafka_err2name(*err));
  }
  if (op == "clear") {
    if (absl::Status s = args(1, 1); !s.ok()) return s;
    auto api = ParseApi(w[1]);
    if (!api.ok()) return api.status();
    rd_kafka_mock_clear_request_errors(c, *api);
    return absl::StrCat("cleared pending ", w[1], " errors");
  }
  if (op == "rtt" || op == "down" || op == "up") {
    if (absl::Status s = args(op == "rtt" ? 2 : 1, op == "rtt" ? 2 : 1); !s.ok()) return s;
    auto broker = ParseInt("BROKER", w[1]);
    if (!broker.ok()) return broker.status();
    if (op == "rtt") {
      auto ms = ParseInt("MS", w[2]);
      if (!ms.ok()) return ms.status();
      if (*ms < 0) return absl::InvalidArgumentError("MS must be >= 0");
      if (auto s = Check(rd_kafka_mock_broker_set_rtt(c, *broker, *ms), command); !s.ok()) return s;
      return absl::StrCat(*broker < 0 ? std::string("every broker") : absl::StrCat("broker ", *broker), ": round trips take ", *ms, " ms more");
    }
    rd_kafka_resp_err_t err =
        op == "down" ? rd_kafka_mock_broker_set_down(c, *broker) : rd_kafka_mock_broker_set_up(c, *broker);
    if (auto s = Check(err, command); !s.ok()) return s;
    return absl::StrCat("broker ", *broker, op == "down" ? " is down" : " is up");
  }
  if (op == "leader") {
    if (absl::Status s = args(3, 3); !s.ok()) return s;
    auto partition = ParseInt("PARTITION", w[2]);
    if (!partition.ok()) return partition.status();
    auto broker = ParseInt("BROKER", w[3]);
    if (!broker.ok()) return broker.status();
    if (auto s = Check(rd_kafka_mock_partition_set_leader(c, w[1].c_str(), *partition, *broker), command); !s.ok()) {
      return s;
    }
    return absl::StrCat(w[1], "/", *partition, ": leader is broker ", *broker);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown fault '", w[0], "'; one of: ", FaultHelp()));
}

MockCluster::MockCluster(std::unique_ptr<Impl> impl, std::string bootstrap)
    : impl_(std::move(impl)), bootstrap_(std::move(bootstrap)) {}

MockCluster::~MockCluster() = default;

}  // namespace agentfleet
