#include "codec/audit_chain.h"

#include "codec/codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet {
namespace {

using ::testing::HasSubstr;

// A chain of `n` entries on partition 0, as stored.
std::vector<StoredAuditEntry> Chain(int n, AuditChain* chain) {
  std::vector<StoredAuditEntry> out;
  for (int i = 0; i < n; ++i) {
    v1::AuditRecord r;
    r.set_kind(v1::AuditRecord::KIND_ACTION_DISPATCHED);
    r.set_task_id("t" + std::to_string(i));
    r.set_effect_id("eff-" + std::to_string(i));
    Encoded e = Encode(chain->Append(0, r), "");
    out.push_back({0, i * 2, e.payload, e.headers});  // offsets with gaps (transaction markers)
  }
  return out;
}

v1::AuditEntry Read(const StoredAuditEntry& s) { return *Decode<v1::AuditEntry>(s.payload, s.headers); }

TEST(AuditChainTest, EachEntryLinksToTheOneBefore) {
  AuditChain chain;
  auto entries = Chain(5, &chain);
  AuditVerification v = VerifyAuditChain(entries);
  EXPECT_TRUE(v.ok()) << v.problems[0];
  EXPECT_EQ(v.entries, 5);
  EXPECT_EQ(v.ranges[0], std::make_pair(int64_t{1}, int64_t{5}));
  EXPECT_EQ(Read(entries[3]).prev_hash(), Read(entries[2]).hash());
  // A writer taking the partition over continues from the last entry.
  AuditChain next;
  next.Reset(0, {Read(entries[4]).seq(), Read(entries[4]).hash()});
  v1::AuditRecord r;
  r.set_task_id("t5");
  Encoded e = Encode(next.Append(0, r), "");
  entries.push_back({0, 20, e.payload, e.headers});
  EXPECT_TRUE(VerifyAuditChain(entries).ok());
}

TEST(AuditChainTest, ADeletedAlteredOrReorderedEntryBreaksTheChain) {
  AuditChain chain;
  const auto entries = Chain(5, &chain);
  {
    auto deleted = entries;
    deleted.erase(deleted.begin() + 2);
    AuditVerification v = VerifyAuditChain(deleted);
    ASSERT_FALSE(v.ok());
    EXPECT_THAT(v.problems[0], HasSubstr("partition 0 offset 6: seq 4 follows 2 (entries are missing)"));
  }
  {
    auto altered = entries;
    v1::AuditEntry e = Read(altered[1]);
    v1::AuditRecord r;
    r.ParseFromString(e.record());
    r.set_effect_id("eff-forged");
    e.set_record(r.SerializeAsString());
    altered[1].payload = Encode(e, "").payload;
    AuditVerification v = VerifyAuditChain(altered);
    ASSERT_FALSE(v.ok());
    EXPECT_THAT(v.problems[0], HasSubstr("seq 2 was altered"));
  }
  {
    // Rewritten with a recomputed hash: the next entry no longer links to it.
    auto rewritten = entries;
    v1::AuditEntry e = Read(rewritten[1]);
    v1::AuditRecord r;
    r.set_task_id("t1");
    r.set_effect_id("eff-forged");
    e.set_record(r.SerializeAsString());
    e.set_hash(AuditHash(e.seq(), e.prev_hash(), e.record()));
    rewritten[1].payload = Encode(e, "").payload;
    AuditVerification v = VerifyAuditChain(rewritten);
    ASSERT_FALSE(v.ok());
    EXPECT_THAT(v.problems[0], HasSubstr("seq 3 does not link to the entry before it"));
  }
  {
    auto swapped = entries;
    std::swap(swapped[1].offset, swapped[2].offset);
    EXPECT_FALSE(VerifyAuditChain(swapped).ok());
  }
  {
    // Retention removed the head: what is left still verifies, and says where it starts.
    auto expired = std::vector<StoredAuditEntry>(entries.begin() + 2, entries.end());
    AuditVerification v = VerifyAuditChain(expired);
    EXPECT_TRUE(v.ok());
    EXPECT_EQ(v.ranges[0].first, 3);
  }
}

TEST(AuditChainTest, EffectIdsAreStablePerStepInstanceAndDistinctAcrossThem) {
  EXPECT_EQ(EffectId("t1", "pay", -1), EffectId("t1", "pay", -1));
  EXPECT_NE(EffectId("t1", "pay", -1), EffectId("t1", "pay", 0));
  EXPECT_NE(EffectId("t1", "pay", 0), EffectId("t1", "pay", 1));
  EXPECT_NE(EffectId("t1/pay", "x", 0), EffectId("t1", "pay/x", 0));
  EXPECT_EQ(EffectId("t1", "pay", -1).size(), 36u);
}

}  // namespace
}  // namespace agentfleet
