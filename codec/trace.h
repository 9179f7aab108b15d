// W3C Trace Context (`traceparent`) values carried in Kafka headers.
#pragma once

#include <array>
#include <cstdint>
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

// A traceparent held in 26 bytes instead of a 55-character string on the
// heap: a coordinator holds two per task in flight (its span's and its
// submitter's). Only a valid one is kept; anything else is held as empty.
class PackedTraceparent {
 public:
  PackedTraceparent() = default;
  explicit PackedTraceparent(absl::string_view traceparent);
  bool empty() const { return !set_; }
  // The traceparent as it was given (its hex digits are lowercase), "" if empty.
  std::string str() const;

 private:
  std::array<uint8_t, 25> bytes_{};  // trace id (16), span id (8), flags (1)
  bool set_ = false;
};

}  // namespace agentfleet
