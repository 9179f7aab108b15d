// What the action provider and the tool loop share to build HTTP requests
// from configured templates: URL placeholders filled from JSON arguments,
// ${ENV} references in secret headers, and a URL's host and path.
#pragma once

#include <functional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

// `url_template` with its {field} placeholders filled from `values`' top-level
// strings, numbers and booleans, percent-encoded. InvalidArgument naming a
// field that is missing, empty or not a scalar.
absl::StatusOr<std::string> FillUrl(const std::string& url_template, const nlohmann::json& values);

// "https://h:1/a/b?q" -> {"h", "/a/b?q"}; an empty host if not a URL.
std::pair<std::string, std::string> SplitUrl(const std::string& url);

// `value` with each ${NAME} replaced by the variable `env` gives (getenv by
// default); InvalidArgument "<where>: environment variable NAME is not set".
absl::StatusOr<std::string> ResolveEnvRefs(const std::string& value, const std::string& where,
                                           const std::function<const char*(const char*)>& env = nullptr);

// `text` delimited as untrusted with the call's `nonce`:
// "<untrusted-NONCE source=\"SOURCE\">\nTEXT\n</untrusted-NONCE>" (prompt-injection
// containment: the worker's untrusted fields and the tool loop's answers).
std::string DelimitUntrusted(const std::string& nonce, const std::string& source, const std::string& text);

}  // namespace agentfleet
