// The dead-letter queue: a message no agentfleet process can work with is
// copied there, byte for byte with its key and headers, plus headers saying
// why, where it came from and who rejected it. A copy that would not fit in
// one message is truncated, with the original's size and SHA-256 kept, so an
// oversized record can never make its dead letter fail (and its reader stall).
#pragma once

#include <cstddef>

#include "absl/strings/string_view.h"

#include "kafka/kafka.h"

namespace agentfleet {

inline constexpr char kDlqReasonHeader[] = "agentfleet.dlq.reason";
inline constexpr char kDlqTopicHeader[] = "agentfleet.dlq.topic";
inline constexpr char kDlqPartitionHeader[] = "agentfleet.dlq.partition";
inline constexpr char kDlqOffsetHeader[] = "agentfleet.dlq.offset";
inline constexpr char kDlqComponentHeader[] = "agentfleet.dlq.component";
// Only on truncated copies: the original payload's size in bytes and its
// SHA-256 (hex); the copy holds the payload's first bytes.
inline constexpr char kDlqOriginalBytesHeader[] = "agentfleet.dlq.original_bytes";
inline constexpr char kDlqOriginalSha256Header[] = "agentfleet.dlq.original_sha256";

// The dead letter for `original`: same key, payload and headers, plus the
// reason and origin headers; truncated to fit in `max_bytes`
// (kafka.max_message_bytes) when it would not.
OutboundMessage DeadLetterMessage(const std::string& dlq_topic, const Message& original,
                                  absl::string_view reason, absl::string_view component,
                                  size_t max_bytes);

// Queues the dead letter; `on_delivery` as for Producer::Produce.
[[nodiscard]] absl::Status SendToDeadLetter(Producer& producer, const std::string& dlq_topic,
                                            const Message& original, absl::string_view reason,
                                            absl::string_view component, size_t max_bytes,
                                            DeliveryCallback on_delivery = nullptr);

}  // namespace agentfleet
