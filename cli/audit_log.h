// `agentfleet audit-log [--task T] [--verify] [--json]`: the audit log of
// actions (issue 19), read from the audit topic: who (task, tenant, step,
// action, worker, coordinator) did what (method, host, path, payload hash,
// effect id) with what outcome; with --verify, every partition's hash chain
// checked (a deleted, altered or reordered entry is reported, exit 1).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agentfleet/v1/audit.pb.h"
#include "codec/audit_chain.h"
#include "config/config.h"

namespace agentfleet {

struct AuditLog {
  struct Entry {
    int32_t partition = 0;
    int64_t offset = 0;
    int64_t seq = 0;
    v1::AuditRecord record;
  };
  std::vector<Entry> entries;  // readable ones, by partition then offset
  AuditVerification verification;
};

// Reads the whole audit topic (committed records) and verifies its chains.
[[nodiscard]] absl::StatusOr<AuditLog> ReadAuditLog(const FleetConfig& config, absl::Duration timeout);

// One line per record (those of `task` only, if not empty), oldest first.
std::string AuditLogText(const AuditLog& log, const std::string& task);
// {"entries": [...], "verification": {...}}.
std::string AuditLogJson(const AuditLog& log, const std::string& task);

}  // namespace agentfleet
