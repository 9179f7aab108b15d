// OffsetTracker: which offset of each partition may be committed when items
// finish out of order. An offset is committable only when every item below it
// is finished, so a crash never skips unfinished work.
//
// Thread-safe: Begin() on the consumer thread, Finish() from completion
// threads, Revoke() from the rebalance callback.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace agentfleet {

class OffsetTracker {
 public:
  using Partition = std::pair<std::string, int32_t>;

  // Records that the item at `offset` started. Offsets of a partition must be
  // begun in increasing order (the order Kafka delivers them). Returns the
  // generation of the partition's assignment, to pass to Finish().
  uint64_t Begin(const Partition& partition, int64_t offset);

  // Records that the item at `offset` finished. Returns the new committable
  // offset (next offset to consume) if it advanced, or nullopt if it did not
  // or the partition was revoked since Begin() (stale `generation`).
  std::optional<int64_t> Finish(const Partition& partition, int64_t offset, uint64_t generation);

  // Forgets partitions (revoked): late Finish() calls for them commit
  // nothing, but their items still count in in_flight() until they finish
  // (they still run in this process: a drain must wait for them, and the
  // worker's limit must hold them).
  void Revoke(const std::vector<Partition>& partitions);

  // Items begun and not finished, on partitions held or revoked.
  size_t in_flight() const;
  // The committable offset of a partition, if anything was begun there.
  std::optional<int64_t> Committable(const Partition& partition) const;

 private:
  struct State {
    uint64_t generation = 0;
    std::set<int64_t> pending;
    int64_t highest_begun = -1;
    int64_t committable = -1;
  };
  int64_t ComputeCommittable(const State& s) const;

  mutable absl::Mutex mu_;
  std::map<Partition, State> partitions_ ABSL_GUARDED_BY(mu_);
  // The unfinished offsets of revoked assignments, by generation.
  std::map<uint64_t, std::set<int64_t>> revoked_ ABSL_GUARDED_BY(mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
  size_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace agentfleet
