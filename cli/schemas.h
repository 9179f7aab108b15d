// `agentfleet schemas register --registry URL`: the agentfleet.v1 schemas in
// a Confluent-compatible Schema Registry, under the subjects Confluent's
// serializers use (TopicNameStrategy: `<topic>-value`), each .proto file it
// imports registered first under its import path (their default reference
// naming). Kafka shops whose tooling looks schemas up by topic then find
// ours; producers may frame tasks in the registry's wire format
// (codec/registry_framing.h).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "config/config.h"
#include "google/protobuf/descriptor.h"

namespace agentfleet {

struct SchemaSubject {
  std::string subject;                           // "<prefix>tasks-value"
  const google::protobuf::FileDescriptor* file;  // the .proto its value's message is in
  std::string message;                           // the value's message type
};

// Every topic of the fleet with the message its values hold.
std::vector<SchemaSubject> FleetSchemaSubjects(const FleetConfig& config);

struct RegisteredSchema {
  std::string subject;
  int id = 0;
  int version = 0;
};

// Registers each subject's file (its imports first); returns one entry per
// subject and imported file, in registration order.
[[nodiscard]] absl::StatusOr<std::vector<RegisteredSchema>> RegisterSchemas(const std::string& registry_url,
                                                                            const std::vector<SchemaSubject>& subjects,
                                                                            absl::Duration timeout);

int RunSchemasRegister(const FleetConfig& config, const std::string& registry_url, bool json);

}  // namespace agentfleet
