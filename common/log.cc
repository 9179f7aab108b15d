#include "common/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <vector>

#include "absl/base/const_init.h"
#include "absl/strings/ascii.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace agentfleet {
namespace {

LogLevel LevelFromEnv() {
  const char* env = std::getenv("AGENTFLEET_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  std::string v = absl::AsciiStrToLower(env);
  if (v == "debug") return LogLevel::kDebug;
  if (v == "warning" || v == "warn") return LogLevel::kWarning;
  if (v == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<int>& Threshold() {
  static std::atomic<int> level{static_cast<int>(LevelFromEnv())};
  return level;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
  }
  return "info";
}

void AppendJsonString(std::string* out, absl::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20) {
          out->append(absl::StrFormat("\\u%04x", c));
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

absl::Mutex secrets_mu(absl::kConstInit);
std::vector<std::string>* secrets ABSL_GUARDED_BY(secrets_mu) = nullptr;
std::atomic<bool> have_secrets{false};

std::string Redacted(absl::string_view text) {
  std::string out(text);
  absl::MutexLock lock(&secrets_mu);
  for (const std::string& s : *secrets) {
    for (size_t at = out.find(s); at != std::string::npos; at = out.find(s, at)) out.replace(at, s.size(), "[REDACTED]");
  }
  return out;
}

}  // namespace

void RedactInLogs(std::string secret) {
  if (secret.size() < 4) return;
  absl::MutexLock lock(&secrets_mu);
  if (secrets == nullptr) secrets = new std::vector<std::string>();
  secrets->push_back(std::move(secret));
  have_secrets.store(true);
}

void SetLogLevel(LogLevel level) { Threshold().store(static_cast<int>(level)); }

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= Threshold().load(); }

void Log(LogLevel level, absl::string_view component, absl::string_view message,
         std::initializer_list<LogField> fields) {
  if (!LogEnabled(level)) return;
  std::string line = "{\"ts\":";
  AppendJsonString(&line, absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()));
  line.append(",\"level\":");
  AppendJsonString(&line, LevelName(level));
  line.append(",\"component\":");
  AppendJsonString(&line, component);
  line.append(",\"msg\":");
  AppendJsonString(&line, message);
  for (const auto& [key, value] : fields) {
    line.push_back(',');
    AppendJsonString(&line, key);
    line.push_back(':');
    AppendJsonString(&line, value);
  }
  line.append("}\n");
  if (have_secrets.load(std::memory_order_relaxed)) line = Redacted(line);
  // One fwrite per line keeps lines whole when threads log at once.
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace agentfleet
