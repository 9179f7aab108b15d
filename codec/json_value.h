// Conversions between nlohmann::json (how agentfleet code handles payloads)
// and google.protobuf.Value/Struct (how payloads travel on the wire).
#pragma once

#include <string>

#include "google/protobuf/struct.pb.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

using Json = nlohmann::json;

google::protobuf::Value ToValue(const Json& json);
// A JSON object becomes a Struct; anything else is wrapped as {"value": json}.
google::protobuf::Struct ToStruct(const Json& json);
Json FromValue(const google::protobuf::Value& value);
Json FromStruct(const google::protobuf::Struct& value);

// Compact JSON with object keys sorted: the same value always gives the same
// bytes, so it can be hashed (result cache, simulated provider).
std::string CanonicalJson(const Json& json);

}  // namespace agentfleet
