// The audit log's hash chain (issue 19): each partition of the audit topic
// is a chain of AuditEntry, entry n holding SHA-256(hash of entry n-1 ||
// n as 8 big-endian bytes || the record's bytes). The coordinator replica
// that owns a partition appends to its chain (in the transaction of the
// decision the record is about); `agentfleet audit-log --verify` checks
// every chain, so a deleted, altered, inserted or reordered entry shows.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "agentfleet/v1/audit.pb.h"
#include "agentfleet/v1/work.pb.h"
#include "common/headers.h"

namespace agentfleet {

// What a worker's result says about an action's attempt, into `record`:
// worker, request (method, host, path, payload hash), outcome, HTTP status,
// violations, the recorded payload, and the error code of a failure.
void FillFromResult(const v1::WorkResult& result, v1::AuditRecord* record);

// The chain's link: SHA-256(prev_hash || seq (8 bytes, big-endian) || record).
std::string AuditHash(int64_t seq, const std::string& prev_hash, const std::string& record);

// The heads of the chains of the partitions one writer owns.
class AuditChain {
 public:
  struct Head {
    int64_t seq = 0;  // 0: an empty chain
    std::string hash;
  };
  // The partition's chain continues from `head` (the last entry on the topic).
  void Reset(int32_t partition, Head head) { heads_[partition] = std::move(head); }
  void Drop(int32_t partition) { heads_.erase(partition); }
  bool Has(int32_t partition) const { return heads_.count(partition) > 0; }
  // The next entry of the partition's chain, holding `record`.
  v1::AuditEntry Append(int32_t partition, const v1::AuditRecord& record);

 private:
  std::map<int32_t, Head> heads_;
};

// One stored entry, as read from the topic.
struct StoredAuditEntry {
  int32_t partition = 0;
  int64_t offset = 0;
  std::string payload;
  Headers headers;
};

struct AuditVerification {
  int64_t entries = 0;
  // Per partition: the first and last seq seen (a first seq above 1 means
  // the head of the chain was removed, by retention or otherwise).
  std::map<int32_t, std::pair<int64_t, int64_t>> ranges;
  // Every break: "partition 3 offset 17: seq 9 follows 7 (an entry is missing)".
  std::vector<std::string> problems;
  bool ok() const { return problems.empty(); }
};

// Checks every partition's chain, entries in offset order per partition.
AuditVerification VerifyAuditChain(const std::vector<StoredAuditEntry>& entries);

}  // namespace agentfleet
