// Message headers as ordered (name, value) pairs, the shape Kafka gives them.
#pragma once

#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

namespace agentfleet {

using Headers = std::vector<std::pair<std::string, std::string>>;

// The last value of header `name`, if present.
inline std::optional<std::string> FindHeader(const Headers& headers, absl::string_view name) {
  std::optional<std::string> found;
  for (const auto& [k, v] : headers) {
    if (k == name) found = v;
  }
  return found;
}

}  // namespace agentfleet
