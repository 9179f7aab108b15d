#include "kafka/key_scan.h"

#include "gtest/gtest.h"

namespace agentfleet {
namespace {

// Kafka's Java client hashes keys with murmur2 (Utils.murmur2, whose test
// vectors these are) and takes the positive 31 bits modulo the partition
// count. A task's records are looked up on the partition this gives, so it
// must agree with every producer that writes them.
TEST(KeyPartitionTest, AgreesWithTheJavaClientsDefaultPartitioner) {
  struct Case {
    const char* key;
    int32_t java_hash;
  };
  for (const Case& c : {Case{"21", -973932308}, Case{"foobar", -790332482}, Case{"a-little-bit-long-string", -985981536},
                        Case{"a-little-bit-longer-string", -1486304829},
                        Case{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
                        Case{"abc", 479470107}}) {
    for (int32_t partitions : {1, 3, 8, 12, 100}) {
      EXPECT_EQ(KeyPartition(c.key, partitions), (c.java_hash & 0x7fffffff) % partitions)
          << c.key << " on " << partitions << " partitions";
    }
  }
  // A task id (clients/python computes the same: 119369647 → 7 of 8).
  EXPECT_EQ(KeyPartition("ticket-1001", 8), 7);
}

}  // namespace
}  // namespace agentfleet
