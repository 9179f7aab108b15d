#include "cli/audit_log.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "codec/codec.h"
#include "kafka/kafka.h"
#include "kafka/topics.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

absl::StatusOr<AuditLog> ReadAuditLog(const FleetConfig& config, absl::Duration timeout) {
  Topics topics(config.kafka.topic_prefix);
  Properties props = ConsumerProperties(config.kafka, "agentfleet-audit-log");
  auto count = PartitionCount(props, topics.audit, timeout);
  if (!count.ok()) return absl::Status(count.status().code(), absl::StrCat(topics.audit, ": ", count.status().message()));
  std::vector<int32_t> partitions;
  for (int p = 0; p < *count; ++p) partitions.push_back(p);
  auto messages = ReadPartitionsToEnd(props, topics.audit, partitions, timeout);
  if (!messages.ok()) return messages.status();
  AuditLog log;
  std::vector<StoredAuditEntry> stored;
  for (const Message& m : *messages) {
    stored.push_back({m.partition, m.offset, m.payload, m.headers});
    auto entry = Decode<v1::AuditEntry>(m.payload, m.headers, SIZE_MAX);
    AuditLog::Entry e;
    if (!entry.ok() || !e.record.ParseFromString(entry->record())) continue;  // reported by the verification
    e.partition = m.partition;
    e.offset = m.offset;
    e.seq = entry->seq();
    log.entries.push_back(std::move(e));
  }
  std::stable_sort(log.entries.begin(), log.entries.end(), [](const AuditLog::Entry& a, const AuditLog::Entry& b) {
    return a.partition != b.partition ? a.partition < b.partition : a.offset < b.offset;
  });
  log.verification = VerifyAuditChain(stored);
  return log;
}

namespace {

const char* KindName(v1::AuditRecord::Kind kind) {
  switch (kind) {
    case v1::AuditRecord::KIND_ACTION_DISPATCHED:
      return "dispatched";
    case v1::AuditRecord::KIND_ACTION_OUTCOME:
      return "outcome";
    default:
      return "unknown";
  }
}

std::vector<const AuditLog::Entry*> Selected(const AuditLog& log, const std::string& task) {
  std::vector<const AuditLog::Entry*> out;
  for (const auto& e : log.entries) {
    if (task.empty() || e.record.task_id() == task) out.push_back(&e);
  }
  // Oldest first across partitions (each partition is in order already).
  std::stable_sort(out.begin(), out.end(), [](const AuditLog::Entry* a, const AuditLog::Entry* b) {
    const auto& x = a->record.at();
    const auto& y = b->record.at();
    return x.seconds() != y.seconds() ? x.seconds() < y.seconds() : x.nanos() < y.nanos();
  });
  return out;
}

}  // namespace

std::string AuditLogText(const AuditLog& log, const std::string& task) {
  std::string out;
  for (const AuditLog::Entry* e : Selected(log, task)) {
    const v1::AuditRecord& r = e->record;
    absl::Time at = FromTimestamp(r.at());
    std::string where = absl::StrCat(r.step(), r.fan_index() >= 0 ? absl::StrCat("[", r.fan_index(), "]") : "");
    absl::StrAppend(&out, absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", at, absl::UTCTimeZone()), "  p", e->partition, "#",
                    e->seq, "  ", KindName(r.kind()), " ", r.decision(), "  task ", r.task_id(), " ", where,
                    " attempt ", r.attempt(), "  action ", r.action(), "  ", r.effect_id(), "  ", r.method(), " ",
                    r.host(), r.path());
    if (r.kind() == v1::AuditRecord::KIND_ACTION_OUTCOME) {
      absl::StrAppend(&out, "  outcome ", r.outcome().empty() ? "-" : r.outcome());
      if (r.http_status() != 0) absl::StrAppend(&out, " HTTP ", r.http_status());
      if (!r.error_code().empty()) absl::StrAppend(&out, " error ", r.error_code());
      if (!r.worker().empty()) absl::StrAppend(&out, "  worker ", r.worker());
      if (!r.payload_sha256().empty()) absl::StrAppend(&out, "  sha256 ", r.payload_sha256().substr(0, 16));
      if (r.violations_size() > 0) absl::StrAppend(&out, "  violations: ", absl::StrJoin(r.violations(), "; "));
    }
    out += "\n";
  }
  const AuditVerification& v = log.verification;
  absl::StrAppend(&out, v.entries, " audit entries in ", v.ranges.size(), " partition(s)");
  for (const auto& [p, range] : v.ranges) {
    if (range.first > 1) absl::StrAppend(&out, "; partition ", p, " starts at seq ", range.first, " (older entries expired)");
  }
  out += "\n";
  for (const std::string& problem : v.problems) absl::StrAppend(&out, "CHAIN BROKEN: ", problem, "\n");
  if (v.ok()) out += "chains verified: every entry links to the one before it\n";
  return out;
}

std::string AuditLogJson(const AuditLog& log, const std::string& task) {
  nlohmann::json entries = nlohmann::json::array();
  for (const AuditLog::Entry* e : Selected(log, task)) {
    const v1::AuditRecord& r = e->record;
    nlohmann::json j = {{"partition", e->partition}, {"offset", e->offset}, {"seq", e->seq},
                        {"kind", KindName(r.kind())}, {"decision", r.decision()},
                        {"at", absl::FormatTime(absl::RFC3339_full, FromTimestamp(r.at()), absl::UTCTimeZone())},
                        {"task_id", r.task_id()}, {"tenant", r.tenant()}, {"workflow", r.workflow()},
                        {"step", r.step()}, {"fan_index", r.fan_index()}, {"attempt", r.attempt()},
                        {"action", r.action()}, {"effect_id", r.effect_id()}, {"method", r.method()},
                        {"host", r.host()}, {"path", r.path()}, {"payload_sha256", r.payload_sha256()},
                        {"outcome", r.outcome()}, {"http_status", r.http_status()}, {"error_code", r.error_code()},
                        {"worker", r.worker()}, {"coordinator", r.coordinator()}};
    if (r.violations_size() > 0) j["violations"] = std::vector<std::string>(r.violations().begin(), r.violations().end());
    if (!r.payload().empty()) j["payload"] = r.payload();
    entries.push_back(std::move(j));
  }
  nlohmann::json ranges = nlohmann::json::object();
  for (const auto& [p, range] : log.verification.ranges) ranges[std::to_string(p)] = {range.first, range.second};
  return nlohmann::json{{"entries", entries},
                        {"verification",
                         {{"ok", log.verification.ok()}, {"entries", log.verification.entries},
                          {"ranges", ranges}, {"problems", log.verification.problems}}}}
      .dump();
}

}  // namespace agentfleet
