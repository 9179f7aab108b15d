#include "codec/audit_chain.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "codec/codec.h"
#include "common/digest.h"

namespace agentfleet {

std::string AuditHash(int64_t seq, const std::string& prev_hash, const std::string& record) {
  std::string data = prev_hash;
  for (int shift = 56; shift >= 0; shift -= 8) data.push_back(static_cast<char>((static_cast<uint64_t>(seq) >> shift) & 0xff));
  data += record;
  return Sha256(data);
}

void FillFromResult(const v1::WorkResult& result, v1::AuditRecord* record) {
  record->set_worker(result.worker());
  if (result.has_action()) {
    const v1::ActionCall& call = result.action();
    record->set_method(call.method());
    record->set_host(call.host());
    record->set_path(call.path());
    record->set_payload_sha256(call.payload_sha256());
    record->set_outcome(call.outcome());
    record->set_http_status(call.http_status());
    record->set_payload(call.payload());
    for (const std::string& v : call.violations()) record->add_violations(v);
  }
  if (result.status() != v1::RESULT_STATUS_OK) record->set_error_code(result.error().code());
}

v1::AuditEntry AuditChain::Append(int32_t partition, const v1::AuditRecord& record) {
  Head& head = heads_[partition];
  v1::AuditEntry entry;
  entry.set_seq(head.seq + 1);
  entry.set_prev_hash(head.hash);
  std::string bytes;
  record.SerializeToString(&bytes);
  entry.set_hash(AuditHash(entry.seq(), head.hash, bytes));
  entry.set_record(std::move(bytes));
  head = {entry.seq(), entry.hash()};
  return entry;
}

AuditVerification VerifyAuditChain(const std::vector<StoredAuditEntry>& stored) {
  AuditVerification v;
  std::vector<const StoredAuditEntry*> order;
  for (const auto& e : stored) order.push_back(&e);
  std::stable_sort(order.begin(), order.end(), [](const StoredAuditEntry* a, const StoredAuditEntry* b) {
    return a->partition != b->partition ? a->partition < b->partition : a->offset < b->offset;
  });
  std::map<int32_t, AuditChain::Head> heads;
  for (const StoredAuditEntry* s : order) {
    std::string where = absl::StrCat("partition ", s->partition, " offset ", s->offset, ": ");
    auto entry = Decode<v1::AuditEntry>(s->payload, s->headers);
    if (!entry.ok()) {
      v.problems.push_back(where + std::string(entry.status().message()));
      continue;
    }
    ++v.entries;
    auto [it, first] = heads.try_emplace(s->partition);
    AuditChain::Head& head = it->second;
    auto& range = v.ranges[s->partition];
    if (first) {
      range.first = entry->seq();
      // The head may be gone (retention): the chain is checked from here.
      head = {entry->seq() - 1, entry->prev_hash()};
    }
    range.second = entry->seq();
    if (entry->seq() != head.seq + 1) {
      v.problems.push_back(absl::StrCat(where, "seq ", entry->seq(), " follows ", head.seq,
                                        entry->seq() > head.seq + 1 ? " (entries are missing)" : " (out of order or repeated)"));
    } else if (entry->prev_hash() != head.hash) {
      v.problems.push_back(absl::StrCat(where, "seq ", entry->seq(), " does not link to the entry before it"));
    }
    if (AuditHash(entry->seq(), entry->prev_hash(), entry->record()) != entry->hash()) {
      v.problems.push_back(absl::StrCat(where, "seq ", entry->seq(), " was altered (its hash does not match)"));
    }
    v1::AuditRecord record;
    if (!record.ParseFromString(entry->record())) {
      v.problems.push_back(absl::StrCat(where, "seq ", entry->seq(), ": the record does not parse"));
    }
    head = {entry->seq(), entry->hash()};
  }
  return v;
}

}  // namespace agentfleet
