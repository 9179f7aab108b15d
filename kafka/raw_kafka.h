// The raw limit: librdkafka's own API (not our Producer/Consumer adapter; only
// the configuration helper and log bridge of rdkafka_internal.h) moving messages
// produce → consume → produce → consume between two topics, with the fleet's
// own client settings. Every end-to-end figure of `agentfleet bench` is
// reported as a ratio to these, measured on the same broker in the same run.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace agentfleet {

struct RawKafkaResult {
  // Ping-pong, one message at a time: client → ping topic → echo (consume,
  // produce) → pong topic → client.
  std::vector<double> round_trip_ms;
  // Pipelined: `messages` produced as fast as the client can, through the
  // echo, once per pass; the rate of each pass, and their median (nearest
  // rank).
  int64_t messages = 0;
  std::vector<double> pipelined_per_s;
  double messages_per_s = 0;
};

struct RawKafkaOptions {
  std::map<std::string, std::string> producer;  // the fleet's producer properties
  std::map<std::string, std::string> consumer;  // the fleet's consumer properties (group.id unused)
  std::string ping_topic, pong_topic;           // existing, same partition count
  int round_trips = 200;
  int64_t messages = 50000;
  int pipelined_passes = 1;
  size_t message_bytes = 256;
  absl::Duration timeout = absl::Minutes(2);
};

[[nodiscard]] absl::StatusOr<RawKafkaResult> MeasureRawKafka(const RawKafkaOptions& options);

}  // namespace agentfleet
