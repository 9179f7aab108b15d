#include "codec/registry_framing.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace agentfleet {
namespace {

// A zigzag varint (Kafka's ByteUtils.readVarint); false when cut short or longer than 5 bytes.
bool ReadZigzag(absl::string_view* in, int32_t* out) {
  uint32_t raw = 0;
  for (int shift = 0; shift < 35; shift += 7) {
    if (in->empty()) return false;
    uint8_t b = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    raw |= static_cast<uint32_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *out = static_cast<int32_t>((raw >> 1) ^ (~(raw & 1) + 1));
      return true;
    }
  }
  return false;
}

void WriteZigzag(int32_t v, std::string* out) {
  uint32_t raw = (static_cast<uint32_t>(v) << 1) ^ static_cast<uint32_t>(v >> 31);
  while (raw >= 0x80) {
    out->push_back(static_cast<char>((raw & 0x7f) | 0x80));
    raw >>= 7;
  }
  out->push_back(static_cast<char>(raw));
}

// No .proto file nests messages this deep; a longer path is garbage.
constexpr int32_t kMaxIndexes = 64;

}  // namespace

absl::StatusOr<std::optional<RegistryFraming>> ParseRegistryFraming(absl::string_view payload) {
  if (payload.empty() || payload.front() != '\0') return std::nullopt;
  if (payload.size() < 5) {
    return absl::InvalidArgumentError("Schema Registry framing cut short: no 4-byte schema id after the magic byte");
  }
  RegistryFraming f;
  f.schema_id = static_cast<int32_t>((static_cast<uint32_t>(static_cast<uint8_t>(payload[1])) << 24) |
                                     (static_cast<uint32_t>(static_cast<uint8_t>(payload[2])) << 16) |
                                     (static_cast<uint32_t>(static_cast<uint8_t>(payload[3])) << 8) |
                                     static_cast<uint32_t>(static_cast<uint8_t>(payload[4])));
  absl::string_view rest = payload.substr(5);
  int32_t count = 0;
  if (!ReadZigzag(&rest, &count) || count < 0 || count > kMaxIndexes) {
    return absl::InvalidArgumentError(
        absl::StrCat("Schema Registry framing (schema id ", f.schema_id, ") has no valid message-index count"));
  }
  if (count == 0) f.message_indexes = {0};
  for (int32_t i = 0; i < count; ++i) {
    int32_t index = 0;
    if (!ReadZigzag(&rest, &index) || index < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("Schema Registry framing (schema id ", f.schema_id, ") has a bad message index"));
    }
    f.message_indexes.push_back(index);
  }
  f.message = rest;
  return f;
}

std::vector<int> MessageIndexPath(const google::protobuf::Descriptor& type) {
  std::vector<int> path;
  for (const google::protobuf::Descriptor* d = &type; d != nullptr; d = d->containing_type()) {
    path.insert(path.begin(), d->index());
  }
  return path;
}

absl::StatusOr<absl::string_view> UnwrapRegistryFraming(absl::string_view payload,
                                                         const google::protobuf::Descriptor& type) {
  auto framing = ParseRegistryFraming(payload);
  if (!framing.ok()) return framing.status();
  if (!framing->has_value()) return payload;
  std::vector<int> want = MessageIndexPath(type);
  if ((*framing)->message_indexes != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Schema Registry framing (schema id ", (*framing)->schema_id, ") names message index path [",
        absl::StrJoin((*framing)->message_indexes, ","), "], not ", type.full_name(), " ([",
        absl::StrJoin(want, ","), "] in ", type.file()->name(), ")"));
  }
  return (*framing)->message;
}

std::string FrameForRegistry(int32_t schema_id, const google::protobuf::Message& message) {
  std::string out(1, '\0');
  for (int shift : {24, 16, 8, 0}) out.push_back(static_cast<char>((static_cast<uint32_t>(schema_id) >> shift) & 0xff));
  std::vector<int> path = MessageIndexPath(*message.GetDescriptor());
  if (path == std::vector<int>{0}) {
    out.push_back('\0');  // the serializers' shorthand for the first message
  } else {
    WriteZigzag(static_cast<int32_t>(path.size()), &out);
    for (int i : path) WriteZigzag(i, &out);
  }
  message.AppendToString(&out);
  return out;
}

}  // namespace agentfleet
