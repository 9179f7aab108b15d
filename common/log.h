// Structured logs: one JSON object per line on stderr, with level, component,
// message and any fields the call site adds (task_id, trace_id, ...).
//
//   Log(LogLevel::kInfo, "coordinator", "task accepted", {{"task_id", id}});
//
// Thread-safe. Fields are strings; values are escaped. Secrets registered with
// RedactInLogs() are replaced wherever they appear; pass none all the same.
#pragma once

#include <initializer_list>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>

namespace agentfleet {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

using LogField = std::pair<absl::string_view, absl::string_view>;

// Messages below `level` are dropped. Default kInfo; AGENTFLEET_LOG_LEVEL
// (debug|info|warning|error) sets it at start.
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

void Log(LogLevel level, absl::string_view component, absl::string_view message,
         std::initializer_list<LogField> fields = {});

// A secret (an API key, a SASL password) that must never reach a log: from
// now on every occurrence in a message or field is written as "[REDACTED]".
// Secrets shorter than 4 characters are ignored (they would redact noise).
void RedactInLogs(std::string secret);

}  // namespace agentfleet
