// Coordinator: the Kafka loop around TaskEngine. Consumes the tasks and events
// topics (co-partitioned, so this replica sees all of a task's messages),
// feeds the engine, publishes its work items and results, and stores a
// batch's input offsets only after everything it (and every earlier batch)
// produced was acknowledged (at-least-once) — without waiting for those
// acknowledgements in the loop (BatchCommitter). Bad input never stops it: it goes to the DLQ with a
// reason, and a submission whose task_id can be read gets a REJECTED result.
//
// Threading: Run()/RunOnce() on one thread; the producer's delivery
// callbacks touch nothing here.
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "config/config.h"
#include "coordinator/batch_committer.h"
#include "coordinator/task_engine.h"
#include "kafka/kafka.h"
#include "kafka/topics.h"

namespace agentfleet {

struct CoordinatorOptions {
  absl::Duration poll_timeout = absl::Milliseconds(50);
  size_t max_batch = 5000;
  // On shutdown, how long to wait for outstanding acknowledgements.
  absl::Duration drain_timeout = absl::Seconds(30);
};

class Coordinator {
 public:
  // All pointers must outlive the coordinator. The consumer must not be
  // subscribed yet.
  Coordinator(const FleetConfig* config, Consumer* consumer, Producer* producer, const Clock* clock,
              CoordinatorOptions options = {});

  absl::Status Start();  // subscribes
  // Loops until `stop()` is true or publishing fails (then returns the error,
  // with the input offsets of the failed batch not stored). On stop, waits for
  // outstanding acknowledgements so their offsets are committed.
  absl::Status Run(const std::function<bool()>& stop);
  // One poll-process-publish-store cycle; returns messages consumed.
  absl::StatusOr<size_t> RunOnce();

  const TaskEngine& engine() const { return engine_; }
  int64_t dead_letters() const { return dead_letters_; }

 private:
  void HandleSubmission(const Message& m, uint64_t batch, Outbox* out);
  void HandleEvent(const Message& m, uint64_t batch, Outbox* out);
  void DeadLetter(const Message& m, absl::string_view reason, uint64_t batch);
  absl::Status Publish(const Outbox& out, uint64_t batch);

  const FleetConfig* config_;
  Consumer* consumer_;
  Producer* producer_;
  CoordinatorOptions options_;
  Topics topics_;
  TaskEngine engine_;
  BatchCommitter committer_;
  int64_t dead_letters_ = 0;
};

}  // namespace agentfleet
