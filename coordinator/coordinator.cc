#include "coordinator/coordinator.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "codec/codec.h"
#include "cost/ledger.h"
#include "codec/trace.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/error_codes.h"
#include "coordinator/trigger.h"
#include "common/log.h"
#include "coordinator/tenant_ledgers.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "kafka/dead_letter.h"

namespace agentfleet {
namespace {
constexpr char kComponent[] = "coordinator";

std::string TraceparentOf(const Message& m) {
  auto tp = FindHeader(m.headers, kTraceparentHeader);
  return tp && IsValidTraceparent(*tp) ? ChildTraceparent(*tp) : NewTraceparent();
}

absl::Duration NonNegative(absl::Duration d) { return std::max(d, absl::ZeroDuration()); }

}  // namespace

Coordinator::Coordinator(const FleetConfig* config, Consumer* consumer, Producer* producer,
                         const Clock* clock, StateReader state_reader, CoordinatorOptions options)
    : config_(config),
      consumer_(consumer),
      producer_(producer),
      clock_(clock),
      state_reader_(std::move(state_reader)),
      options_(options),
      topics_(config->kafka.topic_prefix),
      engine_(config, clock),
      committer_(consumer) {
  // No partitions yet, so no share of the provider quotas: a replica waiting
  // to join must not gather calls the owners of the partitions also gather.
  engine_.SetQuotaShare(0);
}

Span Coordinator::TaskSpan(const Outbox::Result& r) {
  const v1::TaskResult& t = r.result;
  absl::Time end = t.has_finished_at() ? FromTimestamp(t.finished_at()) : clock_->Now();
  absl::Time start = t.has_accepted_at() ? FromTimestamp(t.accepted_at()) : end;
  Span span = SpanFrom(r.traceparent, r.parent_traceparent, "task " + t.workflow(), Span::Kind::kConsumer, start, end);
  span.attributes = {{"agentfleet.task_id", t.task_id()},
                     {"agentfleet.workflow", t.workflow()},
                     {"agentfleet.tenant", t.tenant()},
                     {"agentfleet.status", v1::TaskStatus_Name(t.status())},
                     {"agentfleet.steps", static_cast<int64_t>(t.steps_size())},
                     {"agentfleet.calls", static_cast<int64_t>(t.usage().calls())},
                     {"gen_ai.usage.input_tokens", static_cast<int64_t>(t.usage().input_tokens())},
                     {"gen_ai.usage.output_tokens", static_cast<int64_t>(t.usage().output_tokens())},
                     {"agentfleet.cost_usd", t.usage().cost_usd()}};
  span.error = t.status() == v1::TASK_STATUS_FAILED || t.status() == v1::TASK_STATUS_REJECTED;
  if (t.has_error()) span.status_message = t.error().code() + ": " + t.error().message();
  return span;
}

void Coordinator::SetMetrics(CoordinatorMetrics* metrics) {
  metrics_ = metrics;
  engine_.SetMetrics(metrics);
}

void Coordinator::ShareFleetState(Consumer* feed, const std::string& replica) {
  replica_ = replica;
  shared_feed_ = feed;
  engine_.SetReplicaName(replica);
}

void Coordinator::FollowSharedState(absl::Duration timeout) {
  if (shared_feed_ == nullptr) return;
  for (const Message& m : shared_feed_->Poll(timeout, 1000)) {
    if (m.payload.empty()) continue;  // a tombstone
    absl::Status s;
    if (m.topic == topics_.breakers) {
      auto state = Decode<v1::BreakerState>(m.payload, m.headers, config_->coordinator.max_payload_bytes);
      if (state.ok()) {
        engine_.ApplyBreaker(*state);
        if (metrics_) metrics_->Breaker(state->name(), engine_.BreakerStatus(state->name()));
      }
      s = state.status();
    } else {
      auto entry = Decode<v1::CacheEntry>(m.payload, m.headers, config_->coordinator.max_payload_bytes);
      if (entry.ok()) engine_.ApplyCacheEntry(*entry);
      s = entry.status();
    }
    if (!s.ok()) {
      if (metrics_) metrics_->Liveness(kLivenessUnreadableSharedState);
      Log(LogLevel::kWarning, kComponent, "unreadable shared state ignored",
          {{"topic", m.topic}, {"error", s.message()}});
      // Every replica reads these topics; the owner of tasks partition 0
      // dead-letters the record and writes a tombstone over its key.
      if (owned_.count(0)) deferred_dead_letters_.push_back({m, std::string(s.message())});
    }
  }
}

void Coordinator::CatchUpSharedState(absl::Duration bound) {
  absl::Time start = absl::Now();
  absl::Time deadline = start + bound;
  std::map<std::pair<std::string, int32_t>, int64_t> ends;
  for (const std::string& topic : {topics_.breakers, topics_.cache}) {
    auto end = shared_feed_->QueryEnd(topic, 0, bound);
    if (absl::IsUnimplemented(end.status())) {  // an in-memory fake: what it holds is there at once
      FollowSharedState(absl::Seconds(1));
      return;
    }
    if (!end.ok()) {
      Log(LogLevel::kWarning, kComponent, "cannot ask where the fleet's shared state ends; reading it as it comes",
          {{"topic", topic}, {"error", end.status().message()}});
      continue;
    }
    if (*end > 0) ends[{topic, 0}] = *end;
  }
  while (!ends.empty() && absl::Now() < deadline) {
    FollowSharedState(absl::Milliseconds(100));
    for (const TopicPartition& p : shared_feed_->Positions()) {
      auto it = ends.find({p.topic, p.partition});
      if (it != ends.end() && p.offset >= it->second) ends.erase(it);
    }
  }
  if (!ends.empty()) {
    Log(LogLevel::kWarning, kComponent, "started before reading the fleet's shared state to its end; reading the rest as it comes",
        {{"topic", ends.begin()->first.first}, {"end", absl::StrCat(ends.begin()->second)},
         {"waited_ms", absl::StrCat(absl::ToInt64Milliseconds(absl::Now() - start))}});
  } else {
    Log(LogLevel::kInfo, kComponent, "read the fleet's shared state (breakers, cache)",
        {{"ms", absl::StrCat(absl::ToInt64Milliseconds(absl::Now() - start))}});
  }
}

absl::Status Coordinator::Start() {
  // Fences a previous incarnation with the same transactional.id and aborts
  // its open transaction, so read_committed readers are not held back.
  if (exactly_once()) RETURN_IF_ERROR(producer_->InitTransactions(options_.kafka_timeout));
  // Learn the output topics' leaders now, not on the first task.
  std::vector<std::string> outputs = {topics_.results, topics_.costs, topics_.dlq, topics_.state};
  for (const auto& [name, agent] : config_->agents) outputs.push_back(topics_.Work(name));
  for (const std::string& topic : EmitTopics(*config_)) outputs.push_back(topic);
  if (!config_->triggers.empty()) outputs.push_back(topics_.tasks);
  if (shared_feed_) {
    outputs.push_back(topics_.breakers);
    outputs.push_back(topics_.cache);
  }
  for (const auto& topic : outputs) RETURN_IF_ERROR(producer_->Warm(topic, options_.kafka_timeout));
  if (shared_feed_) {
    // Start with the fleet's current view of the breakers and the cache.
    RETURN_IF_ERROR(shared_feed_->Assign({{topics_.breakers, 0}, {topics_.cache, 0}}));
    CatchUpSharedState(options_.kafka_timeout);
  }
  std::vector<std::string> inputs = {topics_.tasks, topics_.events, topics_.signals};
  for (const auto& [name, trigger] : config_->triggers) {
    inputs.push_back(trigger.topic);
    trigger_of_[trigger.topic] = &trigger;
  }
  return consumer_->Subscribe(inputs);
}

absl::Status Coordinator::Run(const std::function<bool()>& stop) {
  while (!stop()) {
    auto n = RunOnce();
    if (!n.ok()) return n.status();
  }
  return CommitNow(/*rewind=*/true, "stop");
}

absl::Status Coordinator::EnsureTransaction() {
  if (in_transaction_) return absl::OkStatus();
  RETURN_IF_ERROR(producer_->BeginTransaction());
  in_transaction_ = true;
  transaction_started_ = clock_->Now();
  return absl::OkStatus();
}

absl::StatusOr<size_t> Coordinator::RunOnce() {
  if (!failure_.ok()) return failure_;
  if (!exactly_once() && !committer_.error().ok()) return committer_.error();
  absl::Time now = clock_->Now();
  absl::Duration wait = std::min(options_.poll_timeout, NonNegative(engine_.NextTimer() - now));
  if (in_transaction_) {
    wait = std::min(wait, NonNegative(transaction_started_ + config_->coordinator.commit_interval - now));
  }
  // The batch, outbox and state changes reuse their arrays from batch to
  // batch: freeing arrays of thousands of elements made glibc consolidate its
  // free lists on every batch, a third of this thread's time under load.
  std::vector<Message>& batch = batch_buffer_;
  batch.clear();
  consumer_->PollInto(wait, options_.max_batch, &batch);
  if (!failure_.ok()) return failure_;  // a rebalance callback could not commit
  // The coordinator never pauses its inputs: a partition with records that
  // does not move is stalled in the client (seen on Kafka 4.4.0: two
  // submissions unfetched for three minutes).
  for (int n = stalls_.Check(*consumer_, clock_->Now(), /*had_room=*/true, kComponent); n > 0; --n) {
    if (metrics_) metrics_->Liveness(kLivenessPartitionRestarted);
  }
  FollowSharedState(absl::ZeroDuration());
  consumed_ += batch.size();
  LogProgress();
  if (metrics_) {
    metrics_->SetActive(engine_.active_tasks(), engine_.rate_waiting());
    for (const auto& [name, agent] : config_->agents) {
      if (agent.max_in_flight > 0) metrics_->SetWindowWaiting(name, engine_.window_waiting(name));
    }
  }
  if (reload_) {
    std::string outcome = reload_();
    if (!outcome.empty() && metrics_) metrics_->ConfigReload(outcome);
    if (outcome == "applied") engine_.LimitsChanged();
  }
  bool timers_due = engine_.NextTimer() <= clock_->Now();
  if (!commit_due_.empty() && in_transaction_) {
    // Deferred by the last round (a full batch): it runs while this batch is
    // processed. (A rebalance in the poll may have committed it already.)
    StartCommit(commit_due_, /*overlap=*/true);
  }
  commit_due_.clear();
  if (!batch.empty() || timers_due || !deferred_dead_letters_.empty()) {
    if (exactly_once()) {
      // With a commit in flight the next transaction begins after it.
      if (!commit_.valid()) RETURN_IF_ERROR(EnsureTransaction());
    } else {
      batch_ = committer_.Begin();
    }
    Outbox& out = outbox_;
    out.clear();
    BatchCommitter::Offsets offsets;
    for (const auto& [m, reason] : deferred_dead_letters_) {
      DeadLetter(m, reason);
      // A tombstone over a shared-state key (the state topic's keys are
      // rewritten by the engine instead).
      if (m.topic != topics_.state && !m.key.empty()) {
        (void)Produce({m.topic, m.key, "", {}, m.partition});
      }
    }
    deferred_dead_letters_.clear();
    for (const Message& m : batch) {
      if (m.topic == topics_.tasks) {
        HandleSubmission(m, &out);
      } else if (m.topic == topics_.events) {
        HandleEvent(m, &out);
      } else if (m.topic == topics_.signals) {
        HandleSignal(m, &out);
      } else if (auto t = trigger_of_.find(m.topic); t != trigger_of_.end()) {
        HandleTrigger(*t->second, m, &out);
      }
      offsets[{m.topic, m.partition}] = m.offset + 1;
    }
    engine_.Tick(&out);
    if (commit_.valid()) {
      absl::StatusOr<bool> committed = FinishCommit(/*rewind=*/true);
      if (!committed.ok()) return committed.status();
      // Aborted and rewound: this batch is read again from the last commit.
      if (!*committed) return batch.size();
      RETURN_IF_ERROR(EnsureTransaction());
      // As their callers do, a message the client refuses at once is dropped
      // (dead letters and tombstones).
      for (OutboundMessage& m : held_) (void)producer_->Produce(std::move(m));
      held_.clear();
    }
    if (absl::Status published = Publish(out); !published.ok()) {
      AbandonTransaction(published);
      return published;
    }
    if (exactly_once()) {
      for (const auto& [tp, next] : offsets) pending_offsets_[tp] = next;
      transaction_inputs_ += batch.size();
    } else {
      committer_.Seal(batch_, std::move(offsets));
    }
  }
  if (commit_.valid()) {  // nothing came to overlap it with
    absl::StatusOr<bool> committed = FinishCommit(/*rewind=*/true);
    if (!committed.ok()) return committed.status();
  }
  if (in_transaction_) {
    // Adaptive: the poll took everything the client had (fewer than a full
    // batch), so nothing is gained by waiting; what arrives during this
    // commit makes the next, larger transaction. Either way no transaction
    // stays open longer than commit_interval.
    // Under load (a full batch: more input is waiting) the commit is made
    // while the next batch is processed, not here: the loop does not stand
    // still for it.
    const bool full = batch.size() >= options_.max_batch;
    const bool drained =
        config_->coordinator.commit_policy == CoordinatorConfig::CommitPolicy::kAdaptive && !full;
    if (clock_->Now() - transaction_started_ >= config_->coordinator.commit_interval) {
      if (full) {
        commit_due_ = "interval";
      } else {
        RETURN_IF_ERROR(CommitNow(/*rewind=*/true, "interval"));
      }
    } else if (drained) {
      RETURN_IF_ERROR(CommitNow(/*rewind=*/true, "drained"));
    }
  }
  return batch.size();
}

void Coordinator::LogProgress() {
  absl::Time now = clock_->Now();
  if (now < next_progress_log_) return;
  next_progress_log_ = now + absl::Seconds(10);
  const EngineStats& s = engine_.stats();
  Log(LogLevel::kInfo, kComponent, "progress",
      {{"consumed", absl::StrCat(consumed_)},
       {"partitions", absl::StrCat(owned_.size())},
       {"active_tasks", absl::StrCat(engine_.active_tasks())},
       {"accepted", absl::StrCat(s.accepted)},
       {"finished", absl::StrCat(s.finished)},
       {"dispatched", absl::StrCat(s.dispatched)},
       {"retries", absl::StrCat(s.retries)},
       {"timeouts", absl::StrCat(s.timeouts)},
       {"stale_events", absl::StrCat(s.stale_events)},
       {"duplicate_submissions", absl::StrCat(s.duplicate_submissions)},
       {"dead_letters", absl::StrCat(dead_letters_)}});
}

absl::Status Coordinator::CommitNow(bool rewind, absl::string_view trigger) {
  if (!exactly_once()) {
    if (!committer_.WaitIdle(options_.kafka_timeout)) {
      return committer_.error().ok() ? absl::DeadlineExceededError("outputs not acknowledged in time")
                                     : committer_.error();
    }
    // A failed commit loses nothing, so it must not stop the coordinator: the
    // stored offsets go out with the next (auto) commit, or the partitions'
    // next owner redoes the input since the last commit (a duplicate at
    // worst, as at_least_once allows). Found by the development broker's
    // fault injection (REQUEST_TIMED_OUT on OffsetCommit during a rebalance).
    if (absl::Status s = consumer_->CommitStored(); !s.ok()) {
      Log(LogLevel::kWarning, kComponent, "offset commit failed; input since the last commit may be redone",
          {{"error", s.message()}});
    }
    return absl::OkStatus();
  }
  if (!in_transaction_) return absl::OkStatus();
  // Never with a commit in flight: that is only inside RunOnce, after its poll.
  StartCommit(trigger, /*overlap=*/false);
  return FinishCommit(rewind).status();
}

void Coordinator::StartCommit(absl::string_view trigger, bool overlap) {
  std::vector<TopicPartition> offsets;
  for (const auto& [tp, next] : pending_offsets_) offsets.push_back({tp.first, tp.second, next});
  // The group's generation as of the input consumed (taken on this thread).
  std::unique_ptr<GroupMetadata> group = offsets.empty() ? nullptr : consumer_->CurrentGroupMetadata();
  commit_trigger_ = std::string(trigger);
  commit_inputs_ = transaction_inputs_;
  in_transaction_ = false;
  transaction_inputs_ = 0;
  pending_offsets_.clear();
  auto commit = [producer = producer_, timeout = options_.kafka_timeout, offsets = std::move(offsets),
                 group = std::move(group)]() {
    const absl::Time start = absl::Now();  // real time: this waits for the broker
    absl::Status status;
    if (!offsets.empty()) status = producer->SendOffsetsToTransaction(offsets, *group, timeout);
    if (status.ok()) status = producer->CommitTransaction(timeout);
    return CommitOutcome{status, absl::Now() - start};
  };
  commit_ = std::async(overlap ? std::launch::async : std::launch::deferred, std::move(commit));
}

absl::StatusOr<bool> Coordinator::FinishCommit(bool rewind) {
  const absl::Time wait_start = absl::Now();
  CommitOutcome outcome = commit_.get();
  if (metrics_) {
    metrics_->Commit(commit_trigger_, outcome.took, commit_inputs_, outcome.status.ok());
    metrics_->CommitWaited(absl::Now() - wait_start);
  }
  if (outcome.status.ok()) return true;
  // What came since the commit began goes with the rewind.
  held_.clear();
  pending_offsets_.clear();
  transaction_inputs_ = 0;
  Log(LogLevel::kError, kComponent, "transaction failed", {{"error", outcome.status.message()}});
  // Fenced: another instance owns this transactional id; stop.
  if (absl::IsFailedPrecondition(outcome.status)) return outcome.status;
  // Nothing of this transaction is visible: go back to the last commit.
  RETURN_IF_ERROR(AbortAndRewind(outcome.status, rewind));
  return false;
}

absl::Status Coordinator::AbortAndRewind(const absl::Status& cause, bool rewind) {
  // The broker may be down for a while (a restart, a leader election): keep
  // trying for a few Kafka timeouts before giving up (and restarting). Real
  // time, not clock_: this waits for a real broker.
  absl::Time deadline = absl::Now() + 4 * options_.kafka_timeout;
  absl::Status aborted = producer_->AbortTransaction(options_.kafka_timeout);
  while (!aborted.ok() && !absl::IsFailedPrecondition(aborted) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));
    aborted = producer_->AbortTransaction(options_.kafka_timeout);
  }
  if (!aborted.ok()) {
    Log(LogLevel::kError, kComponent, "cannot abort the failed transaction", {{"error", aborted.message()}});
    return aborted;
  }
  ++rewinds_;
  if (!rewind) {
    // In a revocation: the partitions are being dropped anyway, and their
    // next owner starts from the last commit.
    Log(LogLevel::kWarning, kComponent, "transaction aborted", {{"cause", cause.message()}});
    return absl::OkStatus();
  }
  std::set<int32_t> all(owned_.begin(), owned_.end());
  engine_.DropPartitions(all);
  owned_.clear();
  RETURN_IF_ERROR(consumer_->RewindToCommitted(options_.kafka_timeout));
  OnAssigned(consumer_->Assignment());
  Log(LogLevel::kWarning, kComponent, "transaction aborted; rewound to the last commit",
      {{"cause", cause.message()}, {"partitions", absl::StrCat(owned_.size())},
       {"active_tasks", absl::StrCat(engine_.active_tasks())}, {"rewinds", absl::StrCat(rewinds_)}});
  return failure_;  // OnAssigned's, if the state could not be read
}

void Coordinator::AbandonTransaction(const absl::Status& cause) {
  if (!exactly_once() || !in_transaction_) return;
  // Part of the batch may be produced: none of it, and none of its input
  // offsets, may ever be committed (a revocation commits what is open).
  in_transaction_ = false;
  transaction_inputs_ = 0;
  pending_offsets_.clear();
  absl::Status aborted = producer_->AbortTransaction(options_.kafka_timeout);
  Log(LogLevel::kError, kComponent, "publishing failed; transaction abandoned",
      {{"error", cause.message()}, {"abort", aborted.ok() ? "ok" : std::string(aborted.message())}});
}

void Coordinator::OnRevoked(const std::vector<TopicPartition>& partitions) {
  // The group generation is still ours during the revocation: commit first.
  absl::Status committed = CommitNow(/*rewind=*/false);
  if (!committed.ok() && failure_.ok()) failure_ = committed;
  std::set<int32_t> lost;
  for (const auto& tp : partitions) {
    if (tp.topic == topics_.tasks) lost.insert(tp.partition);
  }
  engine_.DropPartitions(lost);
  for (int32_t p : lost) {
    owned_.erase(p);
    audit_chain_.Drop(p);
  }
  engine_.SetQuotaShare(static_cast<double>(owned_.size()) / config_->kafka.partitions);
  Log(LogLevel::kInfo, kComponent, "partitions revoked",
      {{"partitions", absl::StrCat(lost.size())}, {"active_tasks", absl::StrCat(engine_.active_tasks())}});
}

void Coordinator::OnAssigned(const std::vector<TopicPartition>& partitions) {
  joined_.store(true);
  std::vector<int32_t> gained;
  for (const auto& tp : partitions) {
    if (tp.topic == topics_.tasks && !owned_.count(tp.partition)) gained.push_back(tp.partition);
  }
  absl::Time start = clock_->Now();
  auto records = state_reader_(gained);
  if (!records.ok()) {
    if (failure_.ok()) failure_ = records.status();
    Log(LogLevel::kError, kComponent, "cannot restore state", {{"error", records.status().message()}});
    return;
  }
  size_t restored_before = engine_.stats().restored;
  // Records are applied in order, so the latest of each key wins, as
  // compaction keeps it. An unreadable record only matters when it is its
  // key's latest: an earlier one is superseded.
  absl::flat_hash_map<std::string, size_t> latest;
  for (size_t i = 0; i < records->size(); ++i) latest[(*records)[i].key] = i;
  for (size_t i = 0; i < records->size(); ++i) {
    const Message& m = (*records)[i];
    if (m.key.empty()) {
      // No task has an empty id, and no agentfleet process writes one (Kafka
      // refuses keyless records on a compacted topic; the development broker
      // does not). Skipped, never a result.
      if (metrics_) metrics_->Liveness(kLivenessUnreadableSharedState);
      Log(LogLevel::kWarning, kComponent, "keyless record on the state topic skipped",
          {{"partition", absl::StrCat(m.partition)}, {"offset", absl::StrCat(m.offset)}});
      continue;
    }
    if (m.key.rfind(TenantLedgers::LedgerKey(""), 0) == 0) {  // a tenant's ledger, not a task
      auto ledger = Decode<v1::TenantLedger>(m.payload, m.headers, SIZE_MAX);
      if (ledger.ok()) {
        engine_.RestoreLedger(*ledger, m.partition);
      } else {
        std::string tenant = m.key.substr(TenantLedgers::LedgerKey("").size());
        Log(LogLevel::kError, kComponent, "unreadable tenant ledger: its slice counts as spent this period",
            {{"tenant", tenant}, {"error", ledger.status().message()}});
        engine_.RestoreUnreadableLedger(tenant, m.partition);
      }
      continue;
    }
    if (m.payload.empty()) {
      engine_.Restore(m.key, std::nullopt, m.partition);
      continue;
    }
    auto state = Decode<v1::TaskState>(m.payload, m.headers, SIZE_MAX);
    if (!state.ok() && latest[m.key] != i) continue;  // superseded by a later record
    if (!state.ok() && FindHeader(m.headers, kSchemaHeader) != v1::TaskState::descriptor()->full_name()) {
      // Not written by a coordinator (ours always carry the schema header):
      // garbage from outside, not a task of ours. It is dead-lettered once,
      // and the key's state is written again — the earlier state restored
      // above, if there was one, else a tombstone — so the task goes on and
      // the next restore does not meet the garbage again.
      if (metrics_) metrics_->Liveness(kLivenessUnreadableSharedState);
      deferred_dead_letters_.push_back({m, std::string(state.status().message())});
      engine_.Rewrite(m.key, m.partition);
      continue;
    }
    if (!state.ok()) {
      Log(LogLevel::kError, kComponent, "unreadable state record: the task will fail",
          {{"task_id", m.key}, {"error", state.status().message()}});
      engine_.RestoreUnreadable(m.key, std::string(state.status().message()), m.partition);
      continue;
    }
    engine_.Restore(m.key, *state, m.partition);
  }
  if (absl::Status heads = LoadAuditHeads(gained); !heads.ok()) {
    if (failure_.ok()) failure_ = heads;
    Log(LogLevel::kError, kComponent, "cannot read the audit log's chain heads", {{"error", heads.message()}});
    return;
  }
  owned_.insert(gained.begin(), gained.end());
  // The share of every provider quota follows the share of task partitions owned.
  engine_.SetQuotaShare(static_cast<double>(owned_.size()) / config_->kafka.partitions);
  Log(LogLevel::kInfo, kComponent, "partitions assigned",
      {{"gained", absl::StrCat(gained.size())},
       {"state_records", absl::StrCat(records->size())},
       {"restored", absl::StrCat(engine_.stats().restored - restored_before)},
       {"active_tasks", absl::StrCat(engine_.active_tasks())},
       {"restore_ms", absl::StrCat(absl::ToInt64Milliseconds(clock_->Now() - start))}});
}

absl::Status Coordinator::LoadAuditHeads(const std::vector<int32_t>& gained) {
  if (!config_->HasActions()) return absl::OkStatus();
  for (int32_t p : gained) audit_chain_.Reset(p, {});
  if (!audit_reader_ || gained.empty()) return absl::OkStatus();
  // The last entry of each partition; markers and aborted records take
  // offsets too, so a partition whose tail holds none is read whole.
  std::set<int32_t> missing(gained.begin(), gained.end());
  auto apply = [&](const std::vector<Message>& records) -> absl::Status {
    for (const Message& m : records) {
      auto entry = Decode<v1::AuditEntry>(m.payload, m.headers, SIZE_MAX);
      if (!entry.ok()) {
        // Not ours (someone wrote to the audit topic): the chain goes on from
        // the last real entry, and `audit-log --verify` reports this one.
        // Never a reason to stop: that would restart the replica forever.
        if (metrics_) metrics_->Liveness(kLivenessUnreadableSharedState);
        Log(LogLevel::kError, kComponent, "unreadable record on the audit topic; the chain goes on without it",
            {{"partition", absl::StrCat(m.partition)}, {"offset", absl::StrCat(m.offset)},
             {"error", entry.status().message()}});
        continue;
      }
      audit_chain_.Reset(m.partition, {entry->seq(), entry->hash()});
      missing.erase(m.partition);
    }
    return absl::OkStatus();
  };
  auto tails = audit_reader_(gained, 64);
  if (!tails.ok()) return tails.status();
  RETURN_IF_ERROR(apply(*tails));
  if (missing.empty()) return absl::OkStatus();
  auto whole = audit_reader_(std::vector<int32_t>(missing.begin(), missing.end()), 0);
  if (!whole.ok()) return whole.status();
  return apply(*whole);
}

absl::Status Coordinator::Produce(OutboundMessage message) {
  if (exactly_once()) {
    if (commit_.valid()) {  // for the next transaction
      held_.push_back(std::move(message));
      return absl::OkStatus();
    }
    return producer_->Produce(std::move(message));
  }
  DeliveryCallback delivered = committer_.Track(batch_);
  absl::Status s = producer_->Produce(std::move(message), delivered);
  if (!s.ok()) delivered(s);  // could not even queue it: a failed delivery
  return s;
}

void Coordinator::DeadLetter(const Message& m, absl::string_view reason) {
  ++dead_letters_;
  if (metrics_) metrics_->DeadLetter(kComponent, m.topic);
  auto tp = FindHeader(m.headers, kTraceparentHeader);
  Log(LogLevel::kWarning, kComponent, "dead-lettered",
      {{"task_id", m.key}, {"trace_id", tp ? TraceId(*tp) : ""}, {"topic", m.topic},
       {"partition", absl::StrCat(m.partition)}, {"offset", absl::StrCat(m.offset)}, {"reason", reason}});
  // Through Produce(), so the copy is part of the transaction / batch.
  OutboundMessage dead = DeadLetterMessage(topics_.dlq, m, reason, kComponent, config_->kafka.max_message_bytes);
  Produce(std::move(dead)).IgnoreError();
}

void Coordinator::HandleSubmission(const Message& m, Outbox* out) {
  auto sub = Decode<v1::TaskSubmission>(m.payload, m.headers, config_->coordinator.max_payload_bytes);
  std::string traceparent = TraceparentOf(m);
  absl::Status status = sub.status();
  auto parent = FindHeader(m.headers, kTraceparentHeader);
  if (sub.ok()) {
    // adds REJECTED itself
    status = engine_.Submit(*sub, traceparent, m.partition, out,
                            parent && IsValidTraceparent(*parent) ? *parent : std::string());
  }
  // A tenant out of budget is no bad input: REJECTED, not dead-lettered.
  if (status.ok() || absl::IsResourceExhausted(status)) return;
  DeadLetter(m, status.message());
  if (sub.ok()) return;
  // Unreadable or invalid: reject by the id the message names (it parses,
  // but fails validation), else by the key (docs/protocol.md), unless that is
  // the id of a task that runs or has its result (that would be a second one).
  std::string id = ReadableTaskId(m.payload, config_->coordinator.max_payload_bytes);
  if (id.empty()) id = m.key;
  if (id.empty() || engine_.Knows(id)) return;
  v1::TaskResult r;
  r.set_task_id(id);
  r.set_status(v1::TASK_STATUS_REJECTED);
  r.mutable_error()->set_code("invalid_submission");
  r.mutable_error()->set_message(std::string(status.message()));
  if (!Validate(r).ok()) return;
  Outbox::Result rejected;
  rejected.result = std::move(r);
  rejected.traceparent = traceparent;
  out->results.push_back(std::move(rejected));
  engine_.RememberRejected(id, m.partition);
}

void Coordinator::HandleEvent(const Message& m, Outbox* out) {
  auto event = Decode<v1::WorkEvent>(m.payload, m.headers, config_->coordinator.max_payload_bytes);
  if (!event.ok()) {
    DeadLetter(m, event.status().message());
    return;
  }
  size_t audited = out->audit.size();
  engine_.OnEvent(*event, out);
  if (event->has_result() && event->result().has_action() && out->audit.size() == audited) {
    // An action's outcome for a task this replica no longer holds (it ended,
    // cancelled or failed, while the request was in flight): still audited.
    const v1::WorkResult& r = event->result();
    v1::AuditRecord record;
    record.set_kind(v1::AuditRecord::KIND_ACTION_OUTCOME);
    *record.mutable_at() = ToTimestamp(clock_->Now());
    record.set_task_id(event->task_id());
    record.set_step(event->step());
    record.set_fan_index(event->fan_index());
    record.set_attempt(event->attempt());
    record.set_effect_id(r.action().effect_id());
    FillFromResult(r, &record);
    record.set_decision("task_ended");
    out->audit.push_back({m.partition, std::move(record)});
  }
}

void Coordinator::HandleSignal(const Message& m, Outbox* out) {
  auto signal = Decode<v1::TaskSignal>(m.payload, m.headers, config_->coordinator.max_payload_bytes);
  if (!signal.ok()) {
    DeadLetter(m, signal.status().message());
    return;
  }
  if (signal->task_id() != m.key) {
    DeadLetter(m, absl::StrCat("the key '", m.key, "' is not the signal's task_id '", signal->task_id(), "'"));
    return;
  }
  SignalOutcome outcome = engine_.OnSignal(*signal, m.partition, out);
  const char* kind = signal->cancel() ? "cancel" : "signal";
  if (metrics_) metrics_->Signal(kind, SignalOutcomeName(outcome));
  Log(outcome == SignalOutcome::kCancelled || outcome == SignalOutcome::kDelivered ||
              outcome == SignalOutcome::kBuffered || outcome == SignalOutcome::kCancelAhead
          ? LogLevel::kInfo
          : LogLevel::kWarning,
      kComponent, absl::StrCat(kind, " ", SignalOutcomeName(outcome)),
      {{"task_id", signal->task_id()}, {"name", signal->name()}, {"sender", signal->sender()}});
}

void Coordinator::HandleTrigger(const TriggerConfig& trigger, const Message& m, Outbox* out) {
  if (m.payload.size() > config_->coordinator.max_payload_bytes) {
    DeadLetter(m, absl::StrCat("trigger '", trigger.name, "': event of ", m.payload.size(), " bytes exceeds ",
                               config_->coordinator.max_payload_bytes));
    return;
  }
  auto submission = TriggeredSubmission(trigger, m.key, m.payload);
  if (!submission.ok()) {
    DeadLetter(m, absl::StrCat("trigger '", trigger.name, "': ", submission.status().message()));
    return;
  }
  if (m.timestamp_ms > 0) *submission->mutable_submitted_at() = ToTimestamp(absl::FromUnixMillis(m.timestamp_ms));
  (*submission->mutable_labels())["source"] = absl::StrCat(m.topic, "/", m.partition, "@", m.offset);
  Encoded e = Encode(*submission, TraceparentOf(m));
  out->records.push_back({topics_.tasks, submission->task_id(), std::move(e.payload), std::move(e.headers)});
}

void Coordinator::Oversized(absl::string_view what, const std::string& task_id, size_t bytes) {
  if (metrics_) metrics_->Liveness(kLivenessOversizedOutput);
  Log(LogLevel::kWarning, kComponent, "message too large to publish",
      {{"task_id", task_id}, {"what", what}, {"bytes", absl::StrCat(bytes)},
       {"max_message_bytes", absl::StrCat(config_->kafka.max_message_bytes)}});
}

absl::Status Coordinator::Publish(const Outbox& first) {
  // What cannot be published (over kafka.max_message_bytes) fails its attempt
  // or its task instead, which yields more to publish: a failure result, a
  // finished state. Each round fails what it could not publish, so this ends;
  // the bound only guards against a bug.
  const Outbox* out = &first;
  for (int round = 0; round < 16; ++round) {
    Outbox& next = overflow_[round % 2];
    next.clear();
    bool overflowed = false;
    RETURN_IF_ERROR(PublishOnce(*out, &next, &overflowed));
    if (!overflowed && next.empty()) return absl::OkStatus();
    out = &next;
  }
  return absl::InternalError("publishing did not settle after 16 rounds of oversized messages");
}

absl::Status Coordinator::PublishOnce(const Outbox& out, Outbox* next, bool* overflowed) {
  const size_t limit = config_->kafka.max_message_bytes;
  // State first: a task whose snapshot would not fit fails now, and its work
  // items of this round are not sent.
  std::vector<StateChange>& changes = changes_buffer_;
  changes.clear();
  engine_.TakeStateChanges(&changes);
  absl::flat_hash_set<std::string> failed;
  for (auto& change : changes) {
    OutboundMessage m{topics_.state, change.task_id, "", {}, change.partition};
    if (change.state) {
      Encoded e = EncodeSerialized(std::move(*change.state), *v1::TaskState::descriptor(), change.traceparent);
      if (size_t bytes = MessageBytes(change.task_id, e.payload, e.headers); bytes > limit) {
        Oversized("task state", change.task_id, bytes);
        *overflowed = true;
        if (engine_.Fail(change.task_id, kMessageTooLarge,
                         absl::StrCat("the task's state (", bytes, " bytes) exceeds kafka.max_message_bytes (", limit,
                                      "); inputs and outputs must be smaller"),
                         next)) {
          failed.insert(change.task_id);
        }
        continue;
      }
      m.payload = std::move(e.payload);
      m.headers = std::move(e.headers);
    } else if (change.ledger) {
      Encoded e = Encode(*change.ledger, "");
      m.payload = std::move(e.payload);
      m.headers = std::move(e.headers);
    }
    RETURN_IF_ERROR(Produce(std::move(m)));
  }
  for (const auto& w : out.work) {
    if (failed.contains(w.item.task_id())) continue;
    Encoded e = Encode(w.item, w.traceparent);
    if (size_t bytes = MessageBytes(w.item.task_id(), e.payload, e.headers); bytes > limit) {
      Oversized("work item", w.item.task_id(), bytes);
      *overflowed = true;
      // The attempt fails as a worker's non-retryable failure would: the
      // step's fallback, or the task's end.
      engine_.OnEvent(MakeFailure(w.item, kMessageTooLarge,
                                  absl::StrCat("the work item (", bytes, " bytes) exceeds kafka.max_message_bytes (",
                                               limit, ")"),
                                  /*retryable=*/false, "coordinator", clock_->Now()),
                      next);
      continue;
    }
    RETURN_IF_ERROR(Produce({topics_.Work(w.topic_agent), w.item.task_id(), std::move(e.payload), std::move(e.headers)}));
  }
  for (const auto& r : out.results) {
    Encoded e = Encode(r.result, r.traceparent);
    const v1::TaskResult* published = &r.result;
    v1::TaskResult small;
    if (size_t bytes = MessageBytes(r.result.task_id(), e.payload, e.headers); bytes > limit) {
      Oversized("result", r.result.task_id(), bytes);
      // The one result still goes out: FAILED, saying why, without the outputs.
      small.set_task_id(r.result.task_id());
      small.set_tenant(r.result.tenant());
      small.set_workflow(r.result.workflow());
      small.set_status(v1::TASK_STATUS_FAILED);
      small.mutable_error()->set_code(kMessageTooLarge);
      small.mutable_error()->set_message(absl::StrCat("the result (", bytes, " bytes) exceeds kafka.max_message_bytes (",
                                                      limit, "); its outputs were dropped"));
      *small.mutable_usage() = r.result.usage();
      *small.mutable_submitted_at() = r.result.submitted_at();
      *small.mutable_accepted_at() = r.result.accepted_at();
      *small.mutable_finished_at() = r.result.finished_at();
      e = Encode(small, r.traceparent);
      published = &small;
    }
    RETURN_IF_ERROR(Produce({topics_.results, published->task_id(), std::move(e.payload), std::move(e.headers)}));
    // The cost ledger's entry, in the same transaction: the two agree.
    v1::CostEntry cost = CostEntryOf(*published, r.children_usage);
    Encoded ce = Encode(cost, "");
    RETURN_IF_ERROR(Produce({topics_.costs, cost.task_id(), std::move(ce.payload), std::move(ce.headers)}));
    if (metrics_) metrics_->TaskCost(cost);
    if (metrics_) metrics_->TaskFinished(*published, r.budget_used);
    if (tracer_) tracer_->Export(TaskSpan(r));
    Log(LogLevel::kDebug, kComponent, "task finished",
        {{"task_id", published->task_id()},
         {"trace_id", TraceId(r.traceparent)},
         {"status", v1::TaskStatus_Name(published->status())}});
  }
  for (const Outbox::Record& r : out.records) {
    if (size_t bytes = MessageBytes(r.key, r.payload, r.headers); bytes > limit) {
      Oversized(absl::StrCat("record for ", r.topic), r.key, bytes);  // dropped, counted, logged
      continue;
    }
    RETURN_IF_ERROR(Produce({r.topic, r.key, r.payload, r.headers}));
  }
  for (const Outbox::Audit& a : out.audit) {
    // A dispatch whose work item was not sent (its task failed above) did not happen.
    if (failed.contains(a.record.task_id()) && a.record.kind() == v1::AuditRecord::KIND_ACTION_DISPATCHED) continue;
    v1::AuditRecord record = a.record;
    record.set_coordinator(replica_);
    Encoded e = Encode(audit_chain_.Append(a.partition, record), "");
    RETURN_IF_ERROR(Produce({topics_.audit, record.task_id(), std::move(e.payload), std::move(e.headers), a.partition}));
  }
  for (auto& [key, entry] : engine_.TakeCacheInserts()) {
    if (shared_feed_ == nullptr) continue;
    Encoded e = Encode(entry, "");
    if (MessageBytes(key, e.payload, e.headers) > limit) continue;  // too large to share: not cached
    RETURN_IF_ERROR(Produce({topics_.cache, key, std::move(e.payload), std::move(e.headers), 0}));
  }
  for (const v1::BreakerState& b : engine_.TakeBreakerTransitions()) {
    if (metrics_) metrics_->Breaker(b.name(), b.status());
    if (shared_feed_ == nullptr) continue;
    Log(LogLevel::kWarning, kComponent, "circuit breaker " + v1::BreakerStatus_Name(b.status()),
        {{"breaker", b.name()}, {"reason", b.reason()}});
    Encoded e = Encode(b, "");
    RETURN_IF_ERROR(Produce({topics_.breakers, b.name(), std::move(e.payload), std::move(e.headers), 0}));
  }
  return absl::OkStatus();
}

}  // namespace agentfleet
