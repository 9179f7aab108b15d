// The codec: the one place that turns agentfleet.v1 messages into Kafka
// payloads and headers and back. Every reader decodes through Decode<T>(),
// which checks the schema headers, parses and validates, so a message that
// fails any check is never worked with (its Status message is the DLQ reason).
#pragma once

#include <cstddef>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agentfleet/v1/audit.pb.h"
#include "agentfleet/v1/state.pb.h"
#include "agentfleet/v1/task.pb.h"
#include "agentfleet/v1/work.pb.h"
#include "codec/registry_framing.h"
#include "common/headers.h"

namespace agentfleet {

inline constexpr char kSchemaHeader[] = "agentfleet.schema";
inline constexpr char kSchemaVersionHeader[] = "agentfleet.schema.version";
inline constexpr char kTraceparentHeader[] = "traceparent";
// The only version of the agentfleet.v1 package so far.
inline constexpr char kSchemaVersion[] = "1";

// Default cap on one message's payload; the fleet config can change it.
inline constexpr size_t kDefaultMaxPayloadBytes = 1 << 20;

struct Encoded {
  std::string payload;
  Headers headers;
};

// Serializes `message` with the schema name, version and (if non-empty)
// traceparent headers.
Encoded Encode(const google::protobuf::Message& message, absl::string_view traceparent);
// The same for a message already serialized: `payload` is a `schema`'s wire
// bytes (for one written in parts, the coordinator's task snapshots).
Encoded EncodeSerialized(std::string payload, const google::protobuf::Descriptor& schema,
                         absl::string_view traceparent);

// Semantic checks after a successful parse. Each returns InvalidArgument
// naming the offending field.
[[nodiscard]] absl::Status Validate(const v1::TaskSubmission& m);
[[nodiscard]] absl::Status Validate(const v1::WorkItem& m);
[[nodiscard]] absl::Status Validate(const v1::WorkEvent& m);
[[nodiscard]] absl::Status Validate(const v1::TaskResult& m);
[[nodiscard]] absl::Status Validate(const v1::TaskState& m);
[[nodiscard]] absl::Status Validate(const v1::BreakerState& m);
[[nodiscard]] absl::Status Validate(const v1::CacheEntry& m);
[[nodiscard]] absl::Status Validate(const v1::TenantLedger& m);
[[nodiscard]] absl::Status Validate(const v1::TaskSignal& m);
[[nodiscard]] absl::Status Validate(const v1::AuditEntry& m);
[[nodiscard]] absl::Status Validate(const v1::CostEntry& m);

// Parses `payload` into `message`; InvalidArgument "payload is not a valid
// <type> (<why>)", with protobuf's own complaint (a string field with invalid
// UTF-8, nesting past its limit) when it has one.
[[nodiscard]] absl::Status ParsePayload(absl::string_view payload,
                                        google::protobuf::Message* message);

// JSON-like inputs (google.protobuf.Struct) may nest at most this deep.
inline constexpr int kMaxNesting = 24;
// InvalidArgument "<field> nests more than 24 levels deep" past kMaxNesting.
[[nodiscard]] absl::Status CheckNesting(absl::string_view field,
                                        const google::protobuf::Struct& value);

// Checks the schema headers against `expected_schema`: a header that is
// present must name that schema and a known version. Absent headers are
// accepted (clients in other languages may not set them).
[[nodiscard]] absl::Status CheckSchemaHeaders(const Headers& headers,
                                              absl::string_view expected_schema);

// Parses and validates: plain protobuf bytes, or the same framed in the
// Schema Registry wire format. Errors are InvalidArgument with a reason fit
// for the DLQ, e.g. "payload is not a valid agentfleet.v1.WorkItem
// (protobuf parse failed: ...)".
template <typename T>
[[nodiscard]] absl::StatusOr<T> Decode(absl::string_view payload, const Headers& headers,
                                       size_t max_payload_bytes = kDefaultMaxPayloadBytes) {
  const std::string& name = T::descriptor()->full_name();
  if (payload.size() > max_payload_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("payload of ", payload.size(),
                                                   " bytes exceeds the limit of ",
                                                   max_payload_bytes, " bytes"));
  }
  absl::Status headers_ok = CheckSchemaHeaders(headers, name);
  if (!headers_ok.ok()) return headers_ok;
  // Confluent's Protobuf serializers frame the message (registry_framing.h).
  absl::StatusOr<absl::string_view> bytes = UnwrapRegistryFraming(payload, *T::descriptor());
  if (!bytes.ok()) return bytes.status();
  T message;
  if (absl::Status parsed = ParsePayload(*bytes, &message); !parsed.ok()) return parsed;
  absl::Status valid = Validate(message);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("invalid ", name, ": ", valid.message()));
  }
  return message;
}

// The task_id that a submission's bytes name when they parse as a
// TaskSubmission, valid or not (so an invalid one can still be REJECTED by
// its id); "" if they do not parse, exceed `max_payload_bytes`, or name no
// usable id.
std::string ReadableTaskId(absl::string_view payload, size_t max_payload_bytes);

// Adds `from` (tokens, cost, calls) to `*to`: a child task's usage to its
// parent's, a step's to its cost ledger line.
inline void AddUsage(const v1::Usage& from, v1::Usage* to) {
  to->set_input_tokens(to->input_tokens() + from.input_tokens());
  to->set_output_tokens(to->output_tokens() + from.output_tokens());
  to->set_cost_usd(to->cost_usd() + from.cost_usd());
  to->set_calls(to->calls() + from.calls());
}

// An event about `item`'s attempt (ids, attempt, idempotency key) made at
// `at` (the caller's Clock), of no kind yet: the worker adds a receipt,
// heartbeat or result.
v1::WorkEvent WorkEventFor(const v1::WorkItem& item, absl::Time at);

// absl::Time <-> google.protobuf.Timestamp, to the nanosecond (the one
// conversion every timestamp of the protocol goes through).
google::protobuf::Timestamp ToTimestamp(absl::Time t);
absl::Time FromTimestamp(const google::protobuf::Timestamp& t);

// A result event reporting that `item`'s attempt could not run at all (the
// worker's invalid input or shutdown, the coordinator's oversized item).
v1::WorkEvent MakeFailure(const v1::WorkItem& item, const std::string& code, const std::string& message,
                          bool retryable, const std::string& worker, absl::Time at);

// "<task_id>/<step>/<fan_index>/<attempt>": unique per work attempt.
std::string IdempotencyKey(absl::string_view task_id, absl::string_view step, int fan_index,
                           int attempt);

// An action's effect id: "eff-" and 32 hex digits of the SHA-256 of task,
// step and fan index. The same for every attempt of a step instance, on any
// coordinator replica: the Idempotency-Key of the action's request.
std::string EffectId(absl::string_view task_id, absl::string_view step, int fan_index);

}  // namespace agentfleet
