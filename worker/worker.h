// Worker: the Kafka loop of agentfleet-worker. Consumes the work topics of the
// agents it serves and keeps up to max_in_flight items running at once (LLM
// calls take seconds; one at a time per partition would be useless). For each
// item it emits a receipt, calls the model through the agent's provider,
// validates the output, and emits a result. An item's offset becomes
// committable only when it and every item below it are finished and their
// results acknowledged by Kafka (OffsetTracker).
//
// Flow control: when max_in_flight items run, the worker holds at most one
// more consumed message and waits for a slot. If it stays full longer than
// `pause_after` (slow model calls), it pauses its partitions so it can keep
// polling (group membership, rebalances) without fetching. It does not pause
// at every brief saturation: librdkafka's pause() drops the prefetched
// messages and resume() restarts fetching only after a delay (~1 s measured
// on the development broker), which would throttle fast agents.
//
// Threading: Run() on one thread (consumer, pause/resume, rebalance).
// Provider callbacks and producer delivery callbacks run on their own threads
// and touch only the OffsetTracker, the consumer's thread-safe StoreOffset,
// and atomics.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <queue>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "kafka/stall_watch.h"
#include "absl/time/time.h"
#include "agentfleet/v1/work.pb.h"
#include "common/clock.h"
#include "config/config.h"
#include "kafka/kafka.h"
#include "metrics/fleet_metrics.h"
#include "tracing/otlp_exporter.h"
#include "kafka/topics.h"
#include "provider/model_provider.h"
#include "worker/offset_tracker.h"

namespace agentfleet {

struct WorkerOptions {
  std::string worker_id;
  std::vector<std::string> agents;  // served agents; all must exist in the config
  int max_in_flight = 256;
  absl::Duration poll_timeout = absl::Milliseconds(20);
  // On shutdown, how long in-flight items may take to finish.
  absl::Duration shutdown_grace = absl::Seconds(30);
  // Pause fetching after being full this long.
  absl::Duration pause_after = absl::Seconds(1);
  // Items running longer than this send a heartbeat this often.
  absl::Duration heartbeat_interval = absl::Seconds(5);
  // A call still running this long after it started sends its receipt (at
  // most a quarter of its agent's schedule_to_start_timeout); one that
  // finished sooner sends only its result.
  absl::Duration receipt_delay = absl::Milliseconds(100);
  // Backstop: an assigned partition with messages to fetch that has not
  // moved for this long while the worker had room (not paused, not full) is
  // stalled in the client; the worker resumes it and seeks to its position.
  absl::Duration stall_after = absl::Seconds(30);
  // What decides when things are due: receipts, heartbeats, pausing, stall
  // checks, an item's deadline, a call's span, the time events are stamped
  // with. Real time still bounds
  // the waits of the drain (they wait for real threads). Must outlive the
  // worker.
  const Clock* clock = SystemClock::Get();
};

struct WorkerStats {
  std::atomic<int64_t> started{0};
  std::atomic<int64_t> succeeded{0};
  std::atomic<int64_t> failed{0};
  std::atomic<int64_t> dead_letters{0};
  // Dead letters Kafka finally refused (after librdkafka's own retries): the
  // item is let go so its partition moves on; the record stays in its topic
  // at the logged offset.
  std::atomic<int64_t> dead_letter_failures{0};
  std::atomic<int64_t> heartbeats{0};
  std::atomic<int64_t> abandoned{0};  // reported worker_shutdown at the end of the drain
  std::atomic<int64_t> stalls_recovered{0};  // partitions restarted by the stall backstop
};

class Worker : public RebalanceListener {
 public:
  // `providers` maps provider names (config) to implementations. All pointers
  // must outlive the worker.
  Worker(const FleetConfig* config, Consumer* consumer, Producer* producer,
         std::map<std::string, ModelProvider*> providers, WorkerOptions options);

  [[nodiscard]] absl::Status Start();  // checks the agents, subscribes
  // Loops until `stop()`, asked once per turn of the loop (the drain's turns
  // too: a liveness watch can count them); then drains: stops fetching, lets in-flight items
  // finish within the grace period, reports those still running as retryable
  // "worker_shutdown" failures (the coordinator retries them at once), waits
  // for Kafka to acknowledge every result and commits. Returns an error if a
  // result could not be delivered (the process should exit; uncommitted items
  // are redone).
  [[nodiscard]] absl::Status Run(const std::function<bool()>& stop);

  size_t in_flight() const { return tracker_.in_flight(); }
  // Where the worker counts what it runs (null: nowhere). Must outlive it.
  void SetMetrics(WorkerMetrics* metrics) { metrics_ = metrics; }
  // Where it sends a span per model call (null: nowhere). Must outlive it.
  void SetTracer(OtlpExporter* tracer) { tracer_ = tracer; }
  // Joined the group (an assignment, possibly empty, arrived) and not draining.
  bool ready() const { return assigned_.load() && !draining_.load(); }
  const WorkerStats& stats() const { return stats_; }

  void OnAssigned(const std::vector<TopicPartition>& partitions) override;
  void OnRevoked(const std::vector<TopicPartition>& partitions) override;

 private:
  // An item between its receipt and its result, for heartbeats.
  // Whoever removes it from running_ (the provider's callback, or the drain
  // at the end of the grace period) reports its result, exactly once.
  struct Running {
    v1::WorkItem item;  // without its input
    std::string traceparent;
    absl::Time last_beat;
    OffsetTracker::Partition partition;
    int64_t offset = 0;
    uint64_t generation = 0;
    absl::Time receipt_due = absl::InfiniteFuture();
    bool receipted = false;
  };
  // With nothing running, moves each partition's committed offset to the
  // consumer's position: past the transaction markers the coordinator's
  // exactly-once writes leave after its work items, which would otherwise
  // show as lag (one per partition per transaction) to KEDA and the lag
  // metric. At most once a second.
  void CommitPastMarkers();
  absl::Time next_marker_check_ = absl::InfinitePast();
  // Reports every item still running as a retryable worker_shutdown failure.
  void AbandonRunning();
  // The stall backstop (WorkerOptions::stall_after): every stall_after / 3,
  // restarts the fetch of partitions that have something to fetch, have not
  // moved since the last check a stall_after ago, while the worker had room
  // all along. Run() thread.
  void CheckStalls(bool had_room);

  // Decodes `m` and prepares its call; StartCalls() starts it.
  void Handle(const Message& m);
  // Hands the calls Handle() prepared to their providers, each provider's at
  // once (one wake-up of its thread per poll, not one per call).
  void StartCalls();
  std::map<ModelProvider*, std::vector<ModelProvider::Pending>> starting_;  // Run() thread only
  // Sends `event` to `event_partition` (-1: by key) and, once Kafka
  // acknowledged it, marks the offset finished.
  void Report(const v1::WorkEvent& event, const std::string& agent, const std::string& traceparent,
              int32_t event_partition,
              const OffsetTracker::Partition& partition, int64_t offset, uint64_t generation);
  // Heartbeats every running item that has not sent one for an interval.
  void Heartbeat();
  // Sends the receipts that are due, of items still running.
  void SendDueReceipts();
  void MarkDone(const OffsetTracker::Partition& partition, int64_t offset, uint64_t generation);
  void SetPaused(bool paused);
  // Waits until fewer than `limit` items run, or `timeout`.
  void AwaitSlot(size_t limit, absl::Duration timeout);

  const FleetConfig* config_;
  WorkerMetrics* metrics_ = nullptr;
  OtlpExporter* tracer_ = nullptr;
  Span CallSpan(const v1::WorkItem& item, const v1::WorkResult& result, const std::string& traceparent,
                const std::string& parent, absl::Time started);
  Consumer* consumer_;
  Producer* producer_;
  std::map<std::string, ModelProvider*> providers_;
  WorkerOptions options_;
  StallWatch stalls_{options_.stall_after};  // after options_, which it reads
  Topics topics_;
  OffsetTracker tracker_;
  struct PendingReceipt {
    absl::Time due;
    std::string key;  // in running_
    bool operator>(const PendingReceipt& o) const { return due > o.due; }
  };
  // Run() thread only.
  std::priority_queue<PendingReceipt, std::vector<PendingReceipt>, std::greater<PendingReceipt>> pending_receipts_;
  WorkerStats stats_;
  bool paused_ = false;
  // A message consumed while full, handled when a slot frees.
  std::optional<Message> held_;
  absl::Mutex slot_mu_;
  uint64_t completions_ ABSL_GUARDED_BY(slot_mu_) = 0;
  absl::Mutex running_mu_;
  absl::flat_hash_map<std::string, Running> running_ ABSL_GUARDED_BY(running_mu_);
  absl::Time next_heartbeat_scan_ = absl::InfinitePast();
  std::atomic<bool> delivery_failed_{false};
  std::atomic<bool> assigned_{false};
  std::atomic<bool> draining_{false};
  absl::Mutex error_mu_;
  std::string delivery_error_ ABSL_GUARDED_BY(error_mu_);
};

}  // namespace agentfleet
