// W3C Trace Context (`traceparent`) values carried in Kafka headers.
#pragma once

#include <string>
#include "absl/strings/string_view.h"

namespace agentfleet {

// True for a well-formed version-00 traceparent with non-zero ids.
bool IsValidTraceparent(absl::string_view traceparent);

// A new traceparent with random trace and span ids, sampled.
std::string NewTraceparent();

// The same trace with a new span id (a child span).
std::string ChildTraceparent(absl::string_view parent);

// The 32-hex-digit trace id, or "" if invalid.
std::string TraceId(absl::string_view traceparent);

}  // namespace agentfleet
