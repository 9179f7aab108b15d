// What the files of kafka/ that use librdkafka directly share: building a
// configuration, and a consumer that is only ever assigned partitions. Not
// part of the seam: nothing outside kafka/ includes librdkafka
// (tests/layout/check.sh).
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kafka/kafka.h"

namespace agentfleet {

// A librdkafka configuration from `properties` (an error names the
// property); librdkafka's log lines and errors go to our logs.
[[nodiscard]] absl::StatusOr<std::unique_ptr<RdKafka::Conf>> MakeConf(const Properties& properties);

// A consumer of `group` that never joins it and never commits (readers, lag
// queries, the benchmark's baseline): assign partitions to it. `what` names
// it in errors.
[[nodiscard]] absl::StatusOr<std::unique_ptr<RdKafka::KafkaConsumer>> NewUnjoinedConsumer(
    Properties properties, const std::string& group, absl::string_view what);

}  // namespace agentfleet
