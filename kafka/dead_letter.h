// The dead-letter queue: a message no agentfleet process can work with is
// copied there, byte for byte with its key and headers, plus headers saying
// why, where it came from and who rejected it.
#pragma once

#include "absl/strings/string_view.h"

#include "kafka/kafka.h"

namespace agentfleet {

inline constexpr char kDlqReasonHeader[] = "agentfleet.dlq.reason";
inline constexpr char kDlqTopicHeader[] = "agentfleet.dlq.topic";
inline constexpr char kDlqPartitionHeader[] = "agentfleet.dlq.partition";
inline constexpr char kDlqOffsetHeader[] = "agentfleet.dlq.offset";
inline constexpr char kDlqComponentHeader[] = "agentfleet.dlq.component";

// The dead letter for `original`: same key, payload and headers, plus the
// reason and origin headers.
OutboundMessage DeadLetterMessage(const std::string& dlq_topic, const Message& original,
                                  absl::string_view reason, absl::string_view component);

// Queues the dead letter; `on_delivery` as for Producer::Produce.
absl::Status SendToDeadLetter(Producer& producer, const std::string& dlq_topic,
                              const Message& original, absl::string_view reason,
                              absl::string_view component, DeliveryCallback on_delivery = nullptr);

}  // namespace agentfleet
