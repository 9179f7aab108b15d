// What a payload must pass before it leaves the fleet for an external system
// (issue 19): no URL to a host outside the allowlist, no configured secret and
// nothing shaped like a common key or token, at most max_bytes; optionally
// PII redacted (emails, phone numbers, card numbers that pass Luhn) and markup
// stripped. Pure functions over JSON; the patterns are RE2's (linear time, no
// backtracking), so hostile text cannot make a check slow.
//
// A violation names its kind and where it is (a JSON path), never the secret
// it found: violations are logged, audited and shown to operators.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

struct SanitizePolicy {
  // Hosts a URL may name: "api.example.com", or "*.example.com" for its
  // subdomains (not example.com itself). Compared case-insensitively. Empty:
  // no URL may appear in a payload.
  std::vector<std::string> allowed_hosts;
  // The payload as compact JSON, after redaction, at most this many bytes.
  size_t max_bytes = 64 * 1024;
  // Configured secrets that must never leave: name -> value (values shorter
  // than 8 bytes are not searched for: they would match ordinary text).
  std::map<std::string, std::string> secrets;
  // Also refuse text shaped like a common key or token (AWS, OpenAI,
  // Anthropic, GitHub, Slack, Google, Stripe keys, private key blocks, JWTs,
  // bearer tokens).
  bool scan_secret_shapes = true;
  // Replace emails, phone numbers and card numbers by [email], [phone], [card].
  bool redact_pii = false;
  // Remove HTML/XML tags, and script and style elements with their content.
  bool strip_markup = false;
};

struct Violation {
  // "url_not_allowed", "secret", "too_large", "too_deep".
  std::string kind;
  std::string path;    // where: "$", "$.to", "$.items[2].note"
  std::string detail;  // what, never the secret itself
};

struct SanitizeResult {
  nlohmann::json payload;  // with PII redacted and markup stripped, as the policy asks
  std::vector<Violation> violations;
  int redactions = 0;  // PII replaced
};

// Checks `payload` against `policy` and rewrites its strings as the policy
// asks. Object keys are checked, never rewritten. Nesting deeper than 64
// levels is a violation, not a crash.
SanitizeResult Sanitize(const SanitizePolicy& policy, const nlohmann::json& payload);

// The URL an action is sent to: http or https, no user:password@, a host the
// policy allows. InvalidArgument saying which rule it breaks.
absl::Status CheckUrl(const SanitizePolicy& policy, absl::string_view url);

// Whether the host is allowed by the policy's allowlist.
bool HostAllowed(const SanitizePolicy& policy, absl::string_view host);

// Whether the digits of `number` (spaces and dashes ignored) pass the Luhn check.
bool LuhnValid(absl::string_view number);

// `text` with emails, phone numbers and Luhn-valid card numbers replaced;
// `*count` (if not null) is increased by the replacements made.
std::string RedactPii(absl::string_view text, int* count = nullptr);

// `text` without tags, and without script and style elements.
std::string StripMarkup(absl::string_view text);

// The kind of key or token `text` contains ("aws_access_key", "openai_key",
// ...), or "" if none.
std::string SecretShape(absl::string_view text);

}  // namespace agentfleet
