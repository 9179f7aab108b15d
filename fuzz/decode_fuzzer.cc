// Every agentfleet.v1 message a topic reader decodes, from arbitrary bytes:
// Decode<T>() must return a message or an error, never crash, hang or leak.
// Byte 0 picks the type and whether schema headers come along (with a
// version taken from byte 1); the rest is the payload.
#include <cstddef>
#include <cstdint>

#include "codec/codec.h"

namespace {

template <typename T>
void Try(absl::string_view payload, bool with_headers, char version) {
  agentfleet::Headers headers;
  if (with_headers) {
    headers.push_back({agentfleet::kSchemaHeader, T::descriptor()->full_name()});
    headers.push_back({agentfleet::kSchemaVersionHeader, std::string(1, version)});
  }
  auto decoded = agentfleet::Decode<T>(payload, headers, 64 << 10);
  if (decoded.ok()) {
    // What passed must survive a round trip through the wire format.
    agentfleet::Encoded again = agentfleet::Encode(*decoded, "");
    auto twice = agentfleet::Decode<T>(again.payload, again.headers, SIZE_MAX);
    if (!twice.ok()) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  using namespace agentfleet::v1;
  absl::string_view payload(reinterpret_cast<const char*>(data) + 2, size - 2);
  bool headers = data[0] & 0x80;
  char version = static_cast<char>(data[1]);
  switch (data[0] & 0x7f) {
    case 0: Try<TaskSubmission>(payload, headers, version); break;
    case 1: Try<WorkItem>(payload, headers, version); break;
    case 2: Try<WorkEvent>(payload, headers, version); break;
    case 3: Try<TaskResult>(payload, headers, version); break;
    case 4: Try<TaskState>(payload, headers, version); break;
    case 5: Try<BreakerState>(payload, headers, version); break;
    case 6: Try<CacheEntry>(payload, headers, version); break;
    case 7: Try<TenantLedger>(payload, headers, version); break;
    default: break;
  }
  return 0;
}
