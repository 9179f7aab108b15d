// The Confluent Schema Registry wire format for Protobuf, as Confluent's
// serializers (Java, Python, Go, .NET) write it: a magic byte 0, the schema
// id (4 bytes, big-endian), the path of message indexes to the message type
// in its .proto file (zigzag varints: a count, then the indexes; the single
// byte 0 stands for [0], the file's first message), then the protobuf bytes.
// A plain protobuf message never starts with a 0 byte (field number 0 is
// invalid), so a reader tells the two apart by the first byte.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace agentfleet {

struct RegistryFraming {
  int32_t schema_id = 0;
  std::vector<int> message_indexes;
  absl::string_view message;  // the protobuf bytes after the framing
};

// nullopt when `payload` is not framed (empty, or not starting with 0);
// InvalidArgument when it starts with 0 but the framing is cut short or bad.
[[nodiscard]] absl::StatusOr<std::optional<RegistryFraming>> ParseRegistryFraming(absl::string_view payload);

// Where a message type sits in its file: [index of its top-level message,
// index within that, ...]; TaskSubmission is [0] in task.proto.
std::vector<int> MessageIndexPath(const google::protobuf::Descriptor& type);

// The protobuf bytes of a payload that is either plain or framed for
// `type`; InvalidArgument naming the schema id and index path when the
// framing names another message type.
[[nodiscard]] absl::StatusOr<absl::string_view> UnwrapRegistryFraming(absl::string_view payload,
                                                                       const google::protobuf::Descriptor& type);

// `message` framed with `schema_id`, as a Confluent serializer writes it.
std::string FrameForRegistry(int32_t schema_id, const google::protobuf::Message& message);

}  // namespace agentfleet
