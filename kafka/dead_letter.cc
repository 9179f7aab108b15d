#include "kafka/dead_letter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/digest.h"
#include "common/log.h"

namespace agentfleet {
namespace {

// What is kept of a key or of the original headers when a copy must shrink.
constexpr size_t kKeptKeyBytes = 1024;
constexpr size_t kKeptHeaderBytes = 16 * 1024;

}  // namespace

OutboundMessage DeadLetterMessage(const std::string& dlq_topic, const Message& original,
                                  absl::string_view reason, absl::string_view component, size_t max_bytes) {
  OutboundMessage dead{dlq_topic, original.key, original.payload, original.headers};
  dead.headers.emplace_back(kDlqReasonHeader, std::string(reason.substr(0, 4096)));
  dead.headers.emplace_back(kDlqTopicHeader, original.topic);
  dead.headers.emplace_back(kDlqPartitionHeader, absl::StrCat(original.partition));
  dead.headers.emplace_back(kDlqOffsetHeader, absl::StrCat(original.offset));
  dead.headers.emplace_back(kDlqComponentHeader, std::string(component));
  bool truncated = false;
  if (MessageBytes(dead.key, dead.payload, dead.headers) > max_bytes) {
    truncated = true;
    dead.headers.emplace_back(kDlqOriginalBytesHeader, absl::StrCat(original.payload.size()));
    dead.headers.emplace_back(kDlqOriginalSha256Header, Sha256Hex(original.payload));
    if (dead.key.size() > kKeptKeyBytes) dead.key.resize(kKeptKeyBytes);
    size_t header_bytes = MessageBytes("", "", dead.headers);
    if (header_bytes > kKeptHeaderBytes) {
      // The original's headers themselves are too large: keep only ours.
      dead.headers.erase(dead.headers.begin(), dead.headers.begin() + original.headers.size());
    }
    size_t room = max_bytes - std::min(max_bytes, MessageBytes(dead.key, "", dead.headers));
    dead.payload.resize(std::min(dead.payload.size(), room));
  }
  Log(LogLevel::kWarning, component, "message sent to the dead-letter queue",
      {{"reason", reason},
       {"topic", original.topic},
       {"partition", absl::StrCat(original.partition)},
       {"offset", absl::StrCat(original.offset)},
       {"truncated", truncated ? "true" : "false"}});
  return dead;
}

absl::Status SendToDeadLetter(Producer& producer, const std::string& dlq_topic,
                              const Message& original, absl::string_view reason,
                              absl::string_view component, size_t max_bytes, DeliveryCallback on_delivery) {
  return producer.Produce(DeadLetterMessage(dlq_topic, original, reason, component, max_bytes),
                          std::move(on_delivery));
}

}  // namespace agentfleet
