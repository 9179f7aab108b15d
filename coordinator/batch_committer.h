// BatchCommitter: at-least-once without blocking the coordinator's loop.
// Each consumed batch produces messages; the batch's input offsets may be
// committed only when every message it produced, and every message of every
// earlier batch, was acknowledged by Kafka. Batches are tracked in order and
// the completed prefix is stored for commit.
//
// Thread-safe: Begin/Track/Seal on the loop thread, the delivery callbacks
// returned by Track() on the producer's thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kafka/kafka.h"

namespace agentfleet {

class BatchCommitter {
 public:
  using Offsets = std::map<std::pair<std::string, int32_t>, int64_t>;  // next offset to read

  explicit BatchCommitter(Consumer* consumer) : consumer_(consumer) {}

  // Opens a batch; returns its id.
  uint64_t Begin();
  // A delivery callback for one message of batch `id`.
  DeliveryCallback Track(uint64_t id);
  // Closes batch `id` with the input offsets it consumed.
  void Seal(uint64_t id, Offsets offsets);
  // The first delivery failure, if any (the coordinator must stop: the
  // failed batch and all later ones are never committed).
  absl::Status error() const;
  // Batches not yet stored.
  size_t open_batches() const;
  // Blocks until every sealed batch is stored, a delivery failed, or timeout.
  bool WaitIdle(absl::Duration timeout);

 private:
  struct Batch {
    uint64_t id = 0;
    int pending = 0;
    bool sealed = false;
    Offsets offsets;
  };
  void Drain() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Batch* Find(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Consumer* consumer_;
  mutable absl::Mutex mu_;
  std::deque<Batch> batches_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace agentfleet
