#include "worker/offset_tracker.h"

namespace agentfleet {

uint64_t OffsetTracker::Begin(const Partition& partition, int64_t offset) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = partitions_.try_emplace(partition);
  State& s = it->second;
  if (inserted) {
    s.generation = next_generation_++;
    // Nothing below the first offset we see is ours to commit.
    s.committable = offset;
  }
  if (s.pending.insert(offset).second) ++in_flight_;
  if (offset > s.highest_begun) s.highest_begun = offset;
  return s.generation;
}

int64_t OffsetTracker::ComputeCommittable(const State& s) const {
  // Everything below the lowest pending offset is done; with nothing pending,
  // everything up to the highest begun offset is.
  return s.pending.empty() ? s.highest_begun + 1 : *s.pending.begin();
}

std::optional<int64_t> OffsetTracker::Finish(const Partition& partition, int64_t offset,
                                             uint64_t generation) {
  absl::MutexLock lock(&mu_);
  auto it = partitions_.find(partition);
  if (it == partitions_.end() || it->second.generation != generation) {
    auto old = revoked_.find(generation);
    if (old != revoked_.end() && old->second.erase(offset) > 0) {
      --in_flight_;
      if (old->second.empty()) revoked_.erase(old);
    }
    return std::nullopt;
  }
  State& s = it->second;
  if (s.pending.erase(offset) == 0) return std::nullopt;
  --in_flight_;
  int64_t next = ComputeCommittable(s);
  if (next <= s.committable) return std::nullopt;
  s.committable = next;
  return next;
}

void OffsetTracker::Revoke(const std::vector<Partition>& partitions) {
  absl::MutexLock lock(&mu_);
  for (const auto& p : partitions) {
    auto it = partitions_.find(p);
    if (it == partitions_.end()) continue;
    if (!it->second.pending.empty()) revoked_[it->second.generation] = std::move(it->second.pending);
    partitions_.erase(it);
  }
}

size_t OffsetTracker::in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

std::optional<int64_t> OffsetTracker::Committable(const Partition& partition) const {
  absl::MutexLock lock(&mu_);
  auto it = partitions_.find(partition);
  if (it == partitions_.end() || it->second.highest_begun < 0) return std::nullopt;
  return ComputeCommittable(it->second);
}

}  // namespace agentfleet
