// A built-in prompt-injection detector (issue 19): text an agent will read
// (a ticket, a document, a tool's answer) scanned for instructions aimed at
// the model rather than at its reader — "ignore your previous instructions",
// "you are now ...", "reveal your system prompt", "send ... to http://..." —
// in English, Spanish, French, German, Portuguese, Italian, Russian, Chinese
// and Japanese, after normalization (case, zero-width and bidi characters,
// full-width forms, spacing) and in encoded forms (base64, hex, percent and
// HTML-entity encoding, JSON \\u escapes, decoded and scanned again).
//
// It is one layer, not a guarantee: a phrasing it does not know passes. The
// runtime's containment does not depend on it (untrusted text is delimited,
// outputs carry no canary, actions pass their schema and policy); a workflow
// gates its actions on it with a `screen:` step. Patterns are RE2: linear
// time on any input.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace agentfleet {

struct InjectionFinding {
  std::string rule;      // "override", "role", "reveal", "exfiltrate", "delimiter", "tool"
  std::string language;  // "en", "es", ..., or "any"
  std::string via;       // "text", "base64", "hex", "percent", "html_entities", "json_escapes"
};

struct InjectionScan {
  bool flagged = false;
  std::vector<InjectionFinding> findings;  // distinct rules and encodings, first 16
};

// Scans `text` (at most its first 256 KiB; decoded forms at most one level deep).
InjectionScan DetectInjection(absl::string_view text);

// `text` lowercased, without zero-width and bidi control characters, full-width
// ASCII folded to ASCII, and runs of whitespace collapsed to one space.
std::string NormalizeForScan(absl::string_view text);

}  // namespace agentfleet
