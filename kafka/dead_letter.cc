#include "kafka/dead_letter.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace agentfleet {

OutboundMessage DeadLetterMessage(const std::string& dlq_topic, const Message& original,
                                  absl::string_view reason, absl::string_view component) {
  OutboundMessage dead{dlq_topic, original.key, original.payload, original.headers};
  dead.headers.emplace_back(kDlqReasonHeader, std::string(reason));
  dead.headers.emplace_back(kDlqTopicHeader, original.topic);
  dead.headers.emplace_back(kDlqPartitionHeader, absl::StrCat(original.partition));
  dead.headers.emplace_back(kDlqOffsetHeader, absl::StrCat(original.offset));
  dead.headers.emplace_back(kDlqComponentHeader, std::string(component));
  Log(LogLevel::kWarning, component, "message sent to the dead-letter queue",
      {{"reason", reason},
       {"topic", original.topic},
       {"partition", absl::StrCat(original.partition)},
       {"offset", absl::StrCat(original.offset)}});
  return dead;
}

absl::Status SendToDeadLetter(Producer& producer, const std::string& dlq_topic,
                              const Message& original, absl::string_view reason,
                              absl::string_view component, DeliveryCallback on_delivery) {
  return producer.Produce(DeadLetterMessage(dlq_topic, original, reason, component), std::move(on_delivery));
}

}  // namespace agentfleet
