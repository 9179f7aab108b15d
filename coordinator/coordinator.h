// Coordinator: the Kafka loop around TaskEngine. Consumes the tasks and events
// topics (co-partitioned, so this replica sees all of a task's messages),
// feeds the engine, fires its timers, and publishes its work items, results
// and state changes. Bad input never stops it: it goes to the DLQ with a
// reason, and a submission whose task_id can be read gets a REJECTED result.
//
// Processing guarantee (coordinator.processing):
// - exactly_once: everything one commit interval consumed and produced —
//   work items, results, DLQ copies, state snapshots — and the input offsets
//   are one Kafka transaction. Offsets go through send_offsets_to_transaction
//   with the consumer's group metadata, so a zombie replica of an older group
//   generation is fenced; a restarted replica with the same transactional.id
//   aborts its predecessor's open transaction.
// - at_least_once: no transactions; a batch's input offsets are stored once
//   everything it produced was acknowledged (BatchCommitter). After a crash
//   some work may be redone; duplicate results are avoided by the restored
//   state (a finished task stays finished), and stale attempts are ignored.
//
// Ownership: it is the consumer's RebalanceListener. On revocation it
// commits what it has, then forgets the partitions' tasks; on assignment it
// restores the new partitions' tasks from the state topic before it
// processes their input. A failed transaction that is not fatal is aborted
// and the coordinator goes back to the last commit in place
// (AbortAndRewind); a fatal one (fenced) or a failed delivery ends Run() with
// an error, and its Replica (coordinator/replica.h) starts a new incarnation
// with fresh clients, which resumes from committed state.
//
// Overlapped commits (exactly_once under load): when commit_interval is up
// after a full batch, more input is waiting, so the commit is not made at
// once: the next poll takes the next batch, the commit runs on a second
// thread while that batch is processed, and what the batch produces is held
// until the commit has ended and the next transaction begins (StartCommit,
// FinishCommit). A failed commit rewinds the batch with it. A commit is in
// flight only inside RunOnce, after its poll: rebalance callbacks, Run's final
// commit and the rewind never meet one.
//
// Threading: everything on the loop thread (rebalance callbacks run inside
// Consumer::Poll) but an overlapped commit's Kafka calls; the producer's
// delivery thread only touches BatchCommitter.
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "config/config.h"
#include "codec/audit_chain.h"
#include "coordinator/batch_committer.h"
#include "coordinator/task_engine.h"
#include "kafka/kafka.h"
#include "kafka/stall_watch.h"
#include "kafka/topics.h"
#include "tracing/otlp_exporter.h"

namespace agentfleet {

struct CoordinatorOptions {
  absl::Duration poll_timeout = absl::Milliseconds(20);
  size_t max_batch = 5000;
  // Timeout of transactional calls and of the final drain on shutdown.
  absl::Duration kafka_timeout = absl::Seconds(30);
  // The stall backstop on its inputs (kafka/stall_watch.h): a partition
  // with records to fetch that has not moved for this long is restarted.
  absl::Duration stall_after = absl::Seconds(30);
};

// Reads the state topic's given partitions from the beginning to their end.
using StateReader = std::function<absl::StatusOr<std::vector<Message>>(const std::vector<int32_t>&)>;
// Reads the audit topic's given partitions: the last `tail` offsets of each,
// or (tail 0) all of them.
using AuditReader =
    std::function<absl::StatusOr<std::vector<Message>>(const std::vector<int32_t>& partitions, int64_t tail)>;

class Coordinator : public RebalanceListener {
 public:
  // All pointers must outlive the coordinator; `consumer` must not be
  // subscribed yet, and must have this coordinator as its rebalance listener.
  // In exactly_once mode `producer` must be transactional.
  Coordinator(const FleetConfig* config, Consumer* consumer, Producer* producer, const Clock* clock,
              StateReader state_reader, CoordinatorOptions options = {});

  // Follows the state the replicas share — the breakers and cache topics —
  // with `feed` (a consumer of its own, not in a group), and names this
  // replica in what it publishes there. Without it, breakers and the result
  // cache are this replica's alone. Call before Start().
  void ShareFleetState(Consumer* feed, const std::string& replica);

  // Where the audit log's chains continue from on an assignment: the last
  // entry of each gained partition of the audit topic. Without it (tests),
  // every chain starts afresh. Only used when the config has actions.
  void SetAuditReader(AuditReader reader) { audit_reader_ = std::move(reader); }

  // Where this replica counts what it does (null: nowhere). Must outlive it.
  void SetMetrics(CoordinatorMetrics* metrics);
  // Where it sends each finished task's span (null: nowhere). Must outlive it.
  void SetTracer(OtlpExporter* tracer) { tracer_ = tracer; }
  // Asked on the loop thread every round: a config reload's outcome
  // ("applied", "refused", "" for none; ReloadConfigIfAsked). Once applied,
  // the calls held by a spending limit are tried again under the new one.
  void SetReloader(std::function<std::string()> reload) { reload_ = std::move(reload); }

  // Initialises transactions (exactly_once), warms the producer, subscribes.
  [[nodiscard]] absl::Status Start();
  // Loops until `stop()` or a failure; on stop commits what it has.
  [[nodiscard]] absl::Status Run(const std::function<bool()>& stop);
  // One poll-process-publish cycle; returns messages consumed.
  [[nodiscard]] absl::StatusOr<size_t> RunOnce();

  void OnAssigned(const std::vector<TopicPartition>& partitions) override;
  void OnRevoked(const std::vector<TopicPartition>& partitions) override;

  const TaskEngine& engine() const { return engine_; }
  // Joined the group (an assignment, possibly empty, arrived); thread-safe.
  bool joined() const { return joined_.load(); }
  int64_t dead_letters() const { return dead_letters_; }

 private:
  bool exactly_once() const {
    return config_->coordinator.processing == CoordinatorConfig::Processing::kExactlyOnce;
  }
  void HandleSubmission(const Message& m, Outbox* out);
  void HandleTrigger(const TriggerConfig& trigger, const Message& m, Outbox* out);
  void HandleSignal(const Message& m, Outbox* out);
  void HandleEvent(const Message& m, Outbox* out);
  void DeadLetter(const Message& m, absl::string_view reason);
  // Produces the outbox and the engine's state changes. Nothing larger than
  // kafka.max_message_bytes is produced: an oversized work item fails its
  // attempt, an oversized state fails its task, an oversized result goes out
  // as FAILED without its outputs (then whatever that yields is published).
  [[nodiscard]] absl::Status Publish(const Outbox& out);
  [[nodiscard]] absl::Status PublishOnce(const Outbox& out, Outbox* next, bool* overflowed);
  void Oversized(absl::string_view what, const std::string& task_id, size_t bytes);
  Outbox overflow_[2];
  // Unreadable records met outside a transaction (a restore, the shared
  // state feed), dead-lettered with the next batch.
  std::vector<std::pair<Message, std::string>> deferred_dead_letters_;
  [[nodiscard]] absl::Status Produce(OutboundMessage message);
  // Makes everything so far durable: commits the transaction (exactly_once),
  // or waits for acknowledgements and commits offsets (at_least_once).
  // Commits the open transaction (exactly_once) or the stored offsets. A
  // failed transaction that is not fatal is aborted and, with `rewind`, the
  // coordinator goes back to the last commit in-process (AbortAndRewind).
  // `trigger` names why, for agentfleet_coordinator_commit_seconds.
  [[nodiscard]] absl::Status CommitNow(bool rewind = true, absl::string_view trigger = "rebalance");
  // exactly_once: closes the open transaction and starts committing it (its
  // offsets, then the commit), on another thread when `overlap`, else when
  // FinishCommit asks. Produce() holds what comes until FinishCommit.
  void StartCommit(absl::string_view trigger, bool overlap);
  // Waits for the commit StartCommit began; a failure is handled as
  // CommitNow's (the held output and the input since are dropped with the
  // rewind); returns whether it committed (false: aborted and rewound).
  [[nodiscard]] absl::StatusOr<bool> FinishCommit(bool rewind);
  struct CommitOutcome {
    absl::Status status;
    absl::Duration took;
  };
  std::future<CommitOutcome> commit_;  // valid from StartCommit to FinishCommit
  std::string commit_trigger_;
  size_t commit_inputs_ = 0;
  // A commit deferred to overlap the next batch (its trigger), or empty.
  std::string commit_due_;
  // Produced while a commit was in flight: sent first in the next transaction.
  std::vector<OutboundMessage> held_;
  // After a failed transaction: aborts it (retrying while the broker is
  // unreachable), forgets every task state since the last commit, rewinds
  // the consumer to the committed offsets and restores state from the state
  // topic: what a restart would do, without one. Fatal errors (fenced) are
  // returned.
  [[nodiscard]] absl::Status AbortAndRewind(const absl::Status& cause, bool rewind);
  [[nodiscard]] absl::Status EnsureTransaction();
  // After a failed publish: aborts the open transaction (exactly_once) so
  // that no later commit (a revocation's) can commit a half-published batch.
  void AbandonTransaction(const absl::Status& cause);
  // Every 10 s, one log line with the engine's counters.
  void LogProgress();

  const FleetConfig* config_;
  std::function<std::string()> reload_;
  Consumer* consumer_;
  Producer* producer_;
  const Clock* clock_;
  StateReader state_reader_;
  AuditReader audit_reader_;
  AuditChain audit_chain_;
  std::string replica_ = "coordinator";  // named in audit records
  // The heads of the gained partitions' audit chains, from the topic.
  [[nodiscard]] absl::Status LoadAuditHeads(const std::vector<int32_t>& gained);
  CoordinatorOptions options_;
  StallWatch stalls_{options_.stall_after};  // after options_, which it reads
  Topics topics_;
  // Trigger topic -> its trigger (set at Start()).
  std::map<std::string, const TriggerConfig*> trigger_of_;
  TaskEngine engine_;
  BatchCommitter committer_;  // at_least_once
  uint64_t batch_ = 0;        // at_least_once: the batch being built
  bool in_transaction_ = false;
  absl::Time transaction_started_;
  size_t transaction_inputs_ = 0;  // input messages in the open transaction
  // exactly_once: next offsets consumed in the open transaction.
  std::map<std::pair<std::string, int32_t>, int64_t> pending_offsets_;
  std::set<int32_t> owned_;  // tasks/events/state partition numbers
  Consumer* shared_feed_ = nullptr;
  // Applies what the shared-state feed has (up to `timeout` for the first message).
  void FollowSharedState(absl::Duration timeout);
  // At start: the breakers and cache topics read up to their ends as they
  // are now (at most `bound`), so the first dispatch knows every open
  // breaker; past the bound the replica starts anyway, logged, and learns
  // the rest as it comes.
  void CatchUpSharedState(absl::Duration bound);
  std::atomic<bool> joined_{false};
  absl::Status failure_;     // set by a rebalance callback that could not commit
  int64_t dead_letters_ = 0;
  int64_t rewinds_ = 0;  // transactions aborted and gone back from
  CoordinatorMetrics* metrics_ = nullptr;
  OtlpExporter* tracer_ = nullptr;
  Span TaskSpan(const Outbox::Result& r);
  // Reused from batch to batch (RunOnce, Publish).
  std::vector<Message> batch_buffer_;
  Outbox outbox_;
  std::vector<StateChange> changes_buffer_;
  int64_t consumed_ = 0;
  absl::Time next_progress_log_ = absl::InfinitePast();
};

}  // namespace agentfleet
