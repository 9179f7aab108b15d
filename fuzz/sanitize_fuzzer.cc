// The payload checks of safety/sanitize.h on arbitrary text (issue 19): the
// first byte picks the policy, the rest is a payload (JSON if it parses, else
// one string). Never a crash, never a slow scan; a redacted or stripped
// payload is checked again and must not grow new violations of its own, and
// no violation may repeat the configured secret.
#include <cstddef>
#include <cstdint>
#include <string>

#include "safety/injection.h"
#include "safety/sanitize.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  agentfleet::SanitizePolicy policy;
  policy.redact_pii = data[0] & 1;
  policy.strip_markup = data[0] & 2;
  policy.scan_secret_shapes = data[0] & 4;
  policy.allowed_hosts = {"api.example.com", "*.example.org"};
  policy.secrets = {{"planted", "tok_PLANTED_9f8e7d"}};
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  // The injection detector reads the same hostile text (its decoders too).
  agentfleet::InjectionScan scan = agentfleet::DetectInjection(text);
  if (scan.flagged != !scan.findings.empty()) __builtin_trap();
  nlohmann::json payload = nlohmann::json::parse(text, nullptr, false);
  if (payload.is_discarded()) payload = text;
  agentfleet::SanitizeResult r = agentfleet::Sanitize(policy, payload);
  for (const agentfleet::Violation& v : r.violations) {
    if (v.detail.find("tok_PLANTED_9f8e7d") != std::string::npos) __builtin_trap();
  }
  // Sanitizing what was sanitized finds nothing more: redaction and
  // stripping never make a new secret or URL appear.
  agentfleet::SanitizeResult again = agentfleet::Sanitize(policy, r.payload);
  if (again.violations.size() > r.violations.size()) __builtin_trap();
  return 0;
}
