// SHA-256 (OpenSSL's EVP), for content hashes that leave the process: a
// dead letter's original, an action's payload, the audit log's chain.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace agentfleet {

// The 32-byte digest of `data`.
std::string Sha256(absl::string_view data);
// The same, as 64 lowercase hex digits.
std::string Sha256Hex(absl::string_view data);

}  // namespace agentfleet
