#include "codec/codec.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/digest.h"
#include "common/log.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/time_util.h"

namespace agentfleet {
namespace {

// Protobuf reports parse problems (e.g. invalid UTF-8) on stderr in its own
// format; the codec turns them into Status, so route protobuf's lines into the
// JSON log at debug level to keep every process's stderr one JSON object per line.
// While ParsePayload() runs on this thread, protobuf's complaint is kept for
// the error instead (it names the field with invalid UTF-8, or the nesting).
thread_local std::string* parse_complaint = nullptr;

void ProtobufLog(google::protobuf::LogLevel, const char* file, int line, const std::string& message) {
  if (parse_complaint != nullptr) {
    if (parse_complaint->empty()) *parse_complaint = message;
    return;
  }
  Log(LogLevel::kDebug, "protobuf", message,
      {{"file", file}, {"line", absl::StrCat(line)}});
}
[[maybe_unused]] const bool kProtobufLogRouted = (google::protobuf::SetLogHandler(&ProtobufLog), true);

constexpr size_t kMaxIdBytes = 256;

absl::Status CheckId(absl::string_view field, absl::string_view value) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is empty"));
  if (value.size() > kMaxIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", value.size(), " bytes; the limit is ", kMaxIdBytes));
  }
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(field, " contains a control character"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckUsage(absl::string_view field, const v1::Usage& u) {
  if (u.input_tokens() < 0 || u.output_tokens() < 0 || u.calls() < 0 ||
      !(u.cost_usd() >= 0) || !std::isfinite(u.cost_usd())) {
    return absl::InvalidArgumentError(absl::StrCat(field, " has a negative or non-finite value"));
  }
  return absl::OkStatus();
}

absl::Status CheckAttempt(int attempt, int fan_index) {
  if (attempt < 1) return absl::InvalidArgumentError(absl::StrCat("attempt is ", attempt, "; must be >= 1"));
  if (fan_index < -1) return absl::InvalidArgumentError(absl::StrCat("fan_index is ", fan_index, "; must be >= -1"));
  return absl::OkStatus();
}

// How deep a google.protobuf.Value nests (a scalar is 0).
int Depth(const google::protobuf::Value& v, int limit);
int Depth(const google::protobuf::Struct& s, int limit) {
  int deepest = 0;
  for (const auto& [k, v] : s.fields()) {
    deepest = std::max(deepest, Depth(v, limit));
    if (deepest >= limit) break;
  }
  return deepest + 1;
}
int Depth(const google::protobuf::Value& v, int limit) {
  if (limit <= 0) return 0;
  if (v.has_struct_value()) return Depth(v.struct_value(), limit - 1);
  if (v.has_list_value()) {
    int deepest = 0;
    for (const auto& e : v.list_value().values()) {
      deepest = std::max(deepest, Depth(e, limit - 1));
      if (deepest >= limit) break;
    }
    return deepest + 1;
  }
  return 0;
}

}  // namespace

absl::Status ParsePayload(absl::string_view payload, google::protobuf::Message* message) {
  std::string complaint;
  parse_complaint = &complaint;
  bool ok = message->ParseFromArray(payload.data(), static_cast<int>(payload.size()));
  parse_complaint = nullptr;
  if (ok) return absl::OkStatus();
  const std::string& name = message->GetDescriptor()->full_name();
  if (complaint.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("payload is not a valid ", name, " (protobuf parse failed: truncated, malformed, or nested deeper than protobuf allows)"));
  }
  return absl::InvalidArgumentError(absl::StrCat("payload is not a valid ", name, " (", complaint, ")"));
}

absl::Status CheckNesting(absl::string_view field, const google::protobuf::Struct& value) {
  int depth = Depth(value, kMaxNesting + 1);
  if (depth > kMaxNesting) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " nests more than ", kMaxNesting, " levels deep (objects and lists)"));
  }
  return absl::OkStatus();
}

Encoded Encode(const google::protobuf::Message& message, absl::string_view traceparent) {
  return EncodeSerialized(message.SerializeAsString(), *message.GetDescriptor(), traceparent);
}

Encoded EncodeSerialized(std::string payload, const google::protobuf::Descriptor& schema,
                         absl::string_view traceparent) {
  Encoded out;
  out.payload = std::move(payload);
  out.headers.emplace_back(kSchemaHeader, schema.full_name());
  out.headers.emplace_back(kSchemaVersionHeader, kSchemaVersion);
  if (!traceparent.empty()) out.headers.emplace_back(kTraceparentHeader, std::string(traceparent));
  return out;
}

absl::Status CheckSchemaHeaders(const Headers& headers, absl::string_view expected_schema) {
  if (auto schema = FindHeader(headers, kSchemaHeader); schema && *schema != expected_schema) {
    return absl::InvalidArgumentError(absl::StrCat("schema header says ", *schema,
                                                   " but this topic carries ", expected_schema));
  }
  if (auto version = FindHeader(headers, kSchemaVersionHeader);
      version && *version != kSchemaVersion) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported schema version ", *version, " of ",
                                                   expected_schema, " (this build reads version ",
                                                   kSchemaVersion, ")"));
  }
  return absl::OkStatus();
}

absl::Status Validate(const v1::TaskSubmission& m) {
  if (auto s = CheckId("task_id", m.task_id()); !s.ok()) return s;
  if (auto s = CheckId("workflow", m.workflow()); !s.ok()) return s;
  if (m.tenant().size() > kMaxIdBytes) return absl::InvalidArgumentError("tenant is too long");
  for (unsigned char c : m.tenant()) {
    if (c < 0x20 || c == 0x7f) return absl::InvalidArgumentError("tenant has a control character");
  }
  const auto& b = m.budget();
  if (b.max_tokens() < 0) return absl::InvalidArgumentError("budget.max_tokens is negative");
  if (!(b.max_cost_usd() >= 0) || !std::isfinite(b.max_cost_usd())) {
    return absl::InvalidArgumentError("budget.max_cost_usd is negative or not finite");
  }
  if (b.max_steps() < 0) return absl::InvalidArgumentError("budget.max_steps is negative");
  if (b.max_fanout_depth() < 0) return absl::InvalidArgumentError("budget.max_fanout_depth is negative");
  if (!v1::Priority_IsValid(m.priority())) return absl::InvalidArgumentError("priority is unknown");
  return CheckNesting("input", m.input());
}

absl::Status Validate(const v1::WorkItem& m) {
  if (auto s = CheckId("task_id", m.task_id()); !s.ok()) return s;
  if (auto s = CheckId("step", m.step()); !s.ok()) return s;
  if (auto s = CheckId("agent", m.agent()); !s.ok()) return s;
  if (auto s = CheckAttempt(m.attempt(), m.fan_index()); !s.ok()) return s;
  if (m.max_tokens() < 0) return absl::InvalidArgumentError("max_tokens is negative");
  return absl::OkStatus();
}

absl::Status Validate(const v1::WorkEvent& m) {
  if (auto s = CheckId("task_id", m.task_id()); !s.ok()) return s;
  if (auto s = CheckId("step", m.step()); !s.ok()) return s;
  if (auto s = CheckAttempt(m.attempt(), m.fan_index()); !s.ok()) return s;
  switch (m.kind_case()) {
    case v1::WorkEvent::kReceipt:
    case v1::WorkEvent::kHeartbeat:
      return absl::OkStatus();
    case v1::WorkEvent::kResult: {
      const auto& r = m.result();
      if (r.status() != v1::RESULT_STATUS_OK && r.status() != v1::RESULT_STATUS_ERROR) {
        return absl::InvalidArgumentError("result.status is unspecified or unknown");
      }
      return CheckUsage("result.usage", r.usage());
    }
    default:
      return absl::InvalidArgumentError("event has no receipt, heartbeat or result");
  }
}

absl::Status Validate(const v1::TaskSignal& m) {
  if (auto s = CheckId("task_id", m.task_id()); !s.ok()) return s;
  if (!m.cancel()) {
    if (auto s = CheckId("name", m.name()); !s.ok()) return s;
  }
  if (Depth(m.payload(), kMaxNesting + 1) > kMaxNesting) {
    return absl::InvalidArgumentError(absl::StrCat("payload nests more than ", kMaxNesting, " levels deep"));
  }
  return absl::OkStatus();
}

absl::Status Validate(const v1::AuditEntry& m) {
  if (m.seq() < 1) return absl::InvalidArgumentError("seq must be at least 1");
  if (m.hash().size() != 32) return absl::InvalidArgumentError("hash must be 32 bytes (SHA-256)");
  if (m.prev_hash().size() != (m.seq() == 1 ? 0u : 32u)) {
    return absl::InvalidArgumentError("prev_hash must be empty for seq 1, 32 bytes after");
  }
  if (m.record().empty()) return absl::InvalidArgumentError("record is empty");
  return absl::OkStatus();
}

absl::Status Validate(const v1::TaskResult& m) {
  if (auto s = CheckId("task_id", m.task_id()); !s.ok()) return s;
  if (m.status() == v1::TASK_STATUS_UNSPECIFIED || !v1::TaskStatus_IsValid(m.status())) {
    return absl::InvalidArgumentError("status is unspecified or unknown");
  }
  return CheckUsage("usage", m.usage());
}

absl::Status Validate(const v1::CostEntry& m) {
  if (auto s = CheckId("task_id", m.task_id()); !s.ok()) return s;
  if (!m.has_finished_at()) return absl::InvalidArgumentError("finished_at: missing");
  if (auto s = CheckUsage("usage", m.usage()); !s.ok()) return s;
  for (const v1::CostLine& line : m.lines()) {
    if (auto s = CheckUsage("lines.usage", line.usage()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Validate(const v1::TaskState& m) {
  // A finished task's compact snapshot keeps only the id.
  if (m.finished()) return CheckId("submission.task_id", m.submission().task_id());
  return Validate(m.submission());
}

absl::Status Validate(const v1::BreakerState& m) {
  if (absl::Status s = CheckId("name", m.name()); !s.ok()) return s;
  if (m.status() == v1::BREAKER_STATUS_UNSPECIFIED) return absl::InvalidArgumentError("status: unspecified");
  if (!m.has_since()) return absl::InvalidArgumentError("since: missing");
  return absl::OkStatus();
}

absl::Status Validate(const v1::CacheEntry& m) {
  if (m.agent().empty() || m.model().empty()) return absl::InvalidArgumentError("agent and model are required");
  if (!m.has_expires()) return absl::InvalidArgumentError("expires: missing");
  return absl::OkStatus();
}

absl::Status Validate(const v1::TenantLedger& m) {
  if (!m.has_period_start()) return absl::InvalidArgumentError("period_start: missing");
  if (m.cost_usd() < 0 || m.tokens() < 0) return absl::InvalidArgumentError("negative spend");
  return absl::OkStatus();
}

v1::WorkEvent WorkEventFor(const v1::WorkItem& item, absl::Time at) {
  v1::WorkEvent e;
  e.set_task_id(item.task_id());
  e.set_step(item.step());
  e.set_fan_index(item.fan_index());
  e.set_attempt(item.attempt());
  e.set_idempotency_key(item.idempotency_key());
  *e.mutable_at() = ToTimestamp(at);
  return e;
}

// Not TimeUtil::GetCurrentTime() anywhere: Debian's protobuf gives it whole seconds.
google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& t) {
  return absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(t));
}

v1::WorkEvent MakeFailure(const v1::WorkItem& item, const std::string& code, const std::string& message,
                          bool retryable, const std::string& worker, absl::Time at) {
  v1::WorkEvent e = WorkEventFor(item, at);
  v1::WorkResult* r = e.mutable_result();
  r->set_status(v1::RESULT_STATUS_ERROR);
  r->set_worker(worker);
  r->mutable_error()->set_code(code);
  r->mutable_error()->set_message(message);
  r->mutable_error()->set_retryable(retryable);
  return e;
}

std::string ReadableTaskId(absl::string_view payload, size_t max_payload_bytes) {
  if (payload.size() > max_payload_bytes) return "";
  auto bytes = UnwrapRegistryFraming(payload, *v1::TaskSubmission::descriptor());
  if (!bytes.ok()) return "";
  v1::TaskSubmission submission;
  if (!ParsePayload(*bytes, &submission).ok()) return "";
  if (!CheckId("task_id", submission.task_id()).ok()) return "";
  return submission.task_id();
}

std::string IdempotencyKey(absl::string_view task_id, absl::string_view step, int fan_index,
                           int attempt) {
  return absl::StrCat(task_id, "/", step, "/", fan_index, "/", attempt);
}

std::string EffectId(absl::string_view task_id, absl::string_view step, int fan_index) {
  // Lengths first, so no two (task, step) pairs hash the same text.
  std::string hex = Sha256Hex(absl::StrCat(task_id.size(), ":", task_id, "/", step.size(), ":", step, "/", fan_index));
  return absl::StrCat("eff-", hex.substr(0, 32));
}

}  // namespace agentfleet
