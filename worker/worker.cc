#include "worker/worker.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "codec/codec.h"
#include "codec/trace.h"
#include "common/error_codes.h"
#include "common/log.h"
#include "kafka/dead_letter.h"
#include "worker/execution.h"

namespace agentfleet {
namespace {
constexpr char kComponent[] = "worker";
}  // namespace

Worker::Worker(const FleetConfig* config, Consumer* consumer, Producer* producer,
               std::map<std::string, ModelProvider*> providers, WorkerOptions options)
    : config_(config),
      consumer_(consumer),
      producer_(producer),
      providers_(std::move(providers)),
      options_(std::move(options)),
      topics_(config->kafka.topic_prefix) {}

absl::Status Worker::Start() {
  if (options_.agents.empty()) return absl::InvalidArgumentError("the worker serves no agents");
  std::vector<std::string> topics;
  for (const auto& name : options_.agents) {
    const AgentConfig* agent = config_->FindAgent(name);
    if (agent == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown agent '", name, "'"));
    for (const std::string* p : {&agent->provider, agent->semantic_cache ? &agent->semantic_cache->provider : nullptr}) {
      if (p != nullptr && providers_.count(*p) == 0) {
        return absl::InvalidArgumentError(absl::StrCat("no provider '", *p, "' for agent '", name, "'"));
      }
    }
    topics.push_back(topics_.Work(name));
  }
  // Learn the output topics' leaders now, not on the first result.
  for (const std::string& out : {topics_.events, topics_.dlq}) {
    if (absl::Status s = producer_->Warm(out, absl::Seconds(30)); !s.ok()) return s;
  }
  return consumer_->Subscribe(topics);
}

void Worker::OnAssigned(const std::vector<TopicPartition>& partitions) {
  // librdkafka keeps an application pause across unassign/assign (its
  // documented contract, librdkafka #1849): a partition paused while the
  // worker was full, revoked as lost (a session timeout) and assigned again
  // would otherwise never be fetched again. New assignments start fetching;
  // Run() pauses them again if the worker is still full. Under incremental
  // (cooperative) rebalancing `partitions` are only the added ones and the
  // partitions kept may be paused: then the whole assignment (which holds
  // the added ones by now) is resumed, so that `paused_` stays true to what
  // the consumer does.
  if (!partitions.empty()) {
    if (paused_ && metrics_) metrics_->Liveness(kLivenessResumedOnAssign);
    absl::Status s = consumer_->Resume(paused_ ? consumer_->Assignment() : partitions);
    if (!s.ok()) Log(LogLevel::kWarning, kComponent, "resume of assigned partitions failed", {{"error", s.message()}});
    paused_ = false;
  }
  assigned_.store(true);
  Log(LogLevel::kInfo, kComponent, "partitions assigned", {{"count", absl::StrCat(partitions.size())}});
}

void Worker::OnRevoked(const std::vector<TopicPartition>& partitions) {
  std::vector<OffsetTracker::Partition> ps;
  for (const auto& tp : partitions) ps.emplace_back(tp.topic, tp.partition);
  // Items still running on these partitions finish and report, but their
  // offsets are no longer ours to commit; the new owner may redo them
  // (at-least-once; the coordinator ignores the duplicate result).
  tracker_.Revoke(ps);
  if (held_) {
    for (const auto& tp : partitions) {
      if (held_ && held_->topic == tp.topic && held_->partition == tp.partition) held_.reset();
    }
  }
  Log(LogLevel::kInfo, kComponent, "partitions revoked", {{"count", absl::StrCat(partitions.size())}});
}

void Worker::SetPaused(bool paused) {
  if (paused == paused_) return;
  auto assignment = consumer_->Assignment();
  absl::Status s = paused ? consumer_->Pause(assignment) : consumer_->Resume(assignment);
  if (!s.ok()) Log(LogLevel::kWarning, kComponent, "pause/resume failed", {{"error", s.message()}});
  paused_ = paused;
}

void Worker::AwaitSlot(size_t limit, absl::Duration timeout) {
  absl::MutexLock lock(&slot_mu_);
  uint64_t seen = completions_;
  auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(slot_mu_) { return completions_ != seen; };
  if (tracker_.in_flight() >= limit) slot_mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
}

absl::Status Worker::Run(const std::function<bool()>& stop) {
  const size_t limit = static_cast<size_t>(options_.max_in_flight);
  absl::Time full_since = absl::InfiniteFuture();
  absl::Time next_progress_log = absl::InfinitePast();
  while (!stop() && !delivery_failed_.load()) {
    Heartbeat();
    SendDueReceipts();
    if (options_.clock->Now() >= next_progress_log) {
      next_progress_log = options_.clock->Now() + absl::Seconds(10);
      Log(LogLevel::kInfo, kComponent, "progress",
          {{"in_flight", absl::StrCat(tracker_.in_flight())},
           {"started", absl::StrCat(stats_.started.load())},
           {"succeeded", absl::StrCat(stats_.succeeded.load())},
           {"failed", absl::StrCat(stats_.failed.load())},
           {"heartbeats", absl::StrCat(stats_.heartbeats.load())},
           {"paused", paused_ ? "true" : "false"}});
    }
    size_t running = tracker_.in_flight();
    if (metrics_) metrics_->SetInFlight(running);
    if (running == 0 && !held_) CommitPastMarkers();
    CheckStalls(/*had_room=*/running < limit && !held_ && !paused_);
    if (running < limit) {
      full_since = absl::InfiniteFuture();
      SetPaused(false);
      if (held_) {
        Handle(*held_);
        held_.reset();
        StartCalls();
        continue;
      }
      for (const Message& m : consumer_->Poll(options_.poll_timeout, limit - running)) Handle(m);
      StartCalls();
      continue;
    }
    absl::Time now = options_.clock->Now();
    full_since = std::min(full_since, now);
    if (now - full_since >= options_.pause_after) SetPaused(true);
    if (paused_ || !held_) {
      // Keeps the group session and rebalances served; at most one message
      // is taken and held while full.
      for (Message& m : consumer_->Poll(paused_ ? options_.poll_timeout : absl::ZeroDuration(), 1)) {
        if (held_) {
          Handle(m);  // only if fetched before the pause took effect
        } else {
          held_ = std::move(m);
        }
      }
      StartCalls();
    }
    AwaitSlot(limit, options_.poll_timeout);
  }
  // Drain: stop fetching, let in-flight items finish within the grace period.
  draining_.store(true);
  SetPaused(true);
  held_.reset();  // never started; its offset is not committed, so it is redone
  absl::Time deadline = absl::Now() + options_.shutdown_grace;
  auto wait_for_results = [&](absl::Time until) {
    while (tracker_.in_flight() > 0 && absl::Now() < until && !delivery_failed_.load()) {
      // Still a turn of the loop: asked once per pass here too (its answer
      // no longer matters), so a watch on the loop sees a long drain go on.
      (void)stop();
      Heartbeat();
      SendDueReceipts();
      consumer_->Poll(absl::Milliseconds(20), 0);
    }
  };
  wait_for_results(deadline);
  if (tracker_.in_flight() > 0 && !delivery_failed_.load()) {
    AbandonRunning();
    wait_for_results(absl::Now() + absl::Seconds(30));  // their acknowledgements
  }
  producer_->Flush(absl::Seconds(10)).IgnoreError();
  if (absl::Status s = consumer_->CommitStored(); !s.ok()) {
    Log(LogLevel::kWarning, kComponent, "final commit failed; uncommitted items will be redone",
        {{"error", s.message()}});
  }
  if (tracker_.in_flight() > 0) {
    Log(LogLevel::kWarning, kComponent, "stopping with unacknowledged items; they will be redone",
        {{"in_flight", absl::StrCat(tracker_.in_flight())}});
  }
  if (delivery_failed_.load()) {
    absl::MutexLock lock(&error_mu_);
    return absl::UnavailableError(absl::StrCat("result delivery failed: ", delivery_error_));
  }
  return absl::OkStatus();
}

void Worker::Handle(const Message& m) {
  OffsetTracker::Partition partition{m.topic, m.partition};
  uint64_t generation = tracker_.Begin(partition, m.offset);
  auto item = Decode<v1::WorkItem>(m.payload, m.headers, config_->worker.max_payload_bytes);
  if (!item.ok()) {
    ++stats_.dead_letters;
    if (metrics_) metrics_->DeadLetter(m.topic);
    // Delivered or not, the item is done: an undeliverable dead letter must
    // not hold the partition's offsets (and the worker's shutdown) forever.
    // librdkafka has retried it already; the original stays in its topic.
    auto settled = [this, partition, offset = m.offset, generation](const absl::Status& st) {
      if (!st.ok()) {
        ++stats_.dead_letter_failures;
        if (metrics_) metrics_->Liveness(kLivenessDeadLetterFailed);
        Log(LogLevel::kError, kComponent, "cannot dead-letter an unreadable item; skipping it",
            {{"topic", partition.first}, {"partition", absl::StrCat(partition.second)},
             {"offset", absl::StrCat(offset)}, {"error", st.message()}});
      }
      MarkDone(partition, offset, generation);
    };
    absl::Status s = SendToDeadLetter(*producer_, topics_.dlq, m, item.status().message(), kComponent,
                                      config_->kafka.max_message_bytes, settled);
    if (!s.ok()) settled(s);  // not even queued: the callback will not run
    return;
  }
  auto tp = FindHeader(m.headers, kTraceparentHeader);
  std::string traceparent = tp ? ChildTraceparent(*tp) : NewTraceparent();  // a new trace if invalid
  auto request = MakeRequest(*config_, *item);
  if (!request.ok() && absl::IsInvalidArgument(request.status())) {
    ++stats_.failed;  // a sound message whose input does not fit the prompt
    Report(MakeFailure(*item, kInvalidInput, std::string(request.status().message()), false, options_.worker_id, options_.clock->Now()),
           item->agent(), traceparent, EventPartition(*item), partition, m.offset, generation);
    return;
  }
  if (!request.ok() || topics_.Work(item->agent()) != m.topic) {
    std::string why = request.ok() ? absl::StrCat("item for agent '", item->agent(), "' arrived on ", m.topic)
                                   : std::string(request.status().message());
    ++stats_.dead_letters;
    if (metrics_) metrics_->DeadLetter(m.topic);
    SendToDeadLetter(*producer_, topics_.dlq, m, why, kComponent, config_->kafka.max_message_bytes).IgnoreError();
    ++stats_.failed;
    Report(MakeFailure(*item, kInvalidWorkItem, why, false, options_.worker_id, options_.clock->Now()), item->agent(), traceparent,
           EventPartition(*item), partition, m.offset, generation);
    return;
  }
  // The request holds the input from here on: the item's copies (running_,
  // the call's callback) need only its identity.
  item->clear_input();
  ++stats_.started;
  if (metrics_) metrics_->Started(item->agent());
  if (LogEnabled(LogLevel::kDebug) && item->has_dispatched_at()) {
    int64_t waited_us = absl::ToInt64Microseconds(options_.clock->Now() - FromTimestamp(item->dispatched_at()));
    Log(LogLevel::kDebug, kComponent, "item started",
        {{"task_id", item->task_id()}, {"trace_id", TraceId(traceparent)}, {"step", item->step()},
         {"queued_us", absl::StrCat(waited_us)},
         {"in_flight", absl::StrCat(tracker_.in_flight())}});
  }
  if (item->has_deadline() && FromTimestamp(item->deadline()) < options_.clock->Now()) {
    ++stats_.failed;
    Report(MakeFailure(*item, kTimeout, "the item's deadline passed before it started", true,
                       options_.worker_id, options_.clock->Now()),
           item->agent(), traceparent, EventPartition(*item), partition, m.offset, generation);
    return;
  }
  // One key per consumed message: a redelivered item runs under its own.
  std::string key = absl::StrCat(m.topic, "/", m.partition, "@", m.offset, "#", generation);
  // The receipt waits: a call done before it is due needs only its result.
  const AgentConfig* agent = config_->FindAgent(item->agent());
  absl::Duration receipt_delay = options_.receipt_delay;
  if (agent->schedule_to_start_timeout > absl::ZeroDuration()) {
    receipt_delay = std::min(receipt_delay, agent->schedule_to_start_timeout / 4);
  }
  {
    Running running{*item, traceparent, options_.clock->Now(), partition, m.offset, generation};
    running.receipt_due = options_.clock->Now() + receipt_delay;
    absl::MutexLock lock(&running_mu_);
    running_[key] = std::move(running);
    pending_receipts_.push({running_[key].receipt_due, key});
  }
  ModelProvider* provider =
      providers_.at(item->embed_text().empty() ? agent->provider : agent->semantic_cache->provider);
  std::string parent = tp.value_or("");
  absl::Time started = options_.clock->Now();
  std::string canary = request->canary;
  starting_[provider].push_back({std::move(*request), [this, item = *item, key, traceparent, parent, started, partition,
                                                        offset = m.offset, generation, canary](ModelResponse response) {
    bool receipt_owed = false;
    {
      absl::MutexLock lock(&running_mu_);
      auto it = running_.find(key);
      if (it == running_.end()) return;  // already reported by the drain
      // Due but not sent (the loop was late): every call that ran past its
      // receipt delay has a receipt, sent right before its result.
      receipt_owed = !it->second.receipted && options_.clock->Now() >= it->second.receipt_due;
      running_.erase(it);
    }
    if (receipt_owed) {
      Encoded e = Encode(MakeReceipt(item, options_.worker_id, options_.clock->Now()), traceparent);
      producer_->Produce({topics_.events, item.task_id(), std::move(e.payload), std::move(e.headers),
                          EventPartition(item)})
          .IgnoreError();  // a lost receipt only delays the coordinator's view
    }
    v1::WorkEvent result = MakeResult(*config_, item, response, options_.worker_id, options_.clock->Now(), canary);
    if (result.result().status() == v1::RESULT_STATUS_OK) {
      ++stats_.succeeded;
    } else {
      ++stats_.failed;
    }
    if (tracer_) tracer_->Export(CallSpan(item, result.result(), traceparent, parent, started));
    if (result.result().status() != v1::RESULT_STATUS_OK) {
      const v1::Error& e = result.result().error();
      Log(e.retryable() ? LogLevel::kInfo : LogLevel::kWarning, kComponent, "call failed",
          {{"task_id", item.task_id()}, {"trace_id", TraceId(traceparent)}, {"step", item.step()},
           {"attempt", absl::StrCat(item.attempt())}, {"agent", item.agent()}, {"code", e.code()},
           {"error", e.message()}});
    }
    Report(result, item.agent(), traceparent, EventPartition(item), partition, offset, generation);
  }});
}

void Worker::StartCalls() {
  for (auto& [provider, calls] : starting_) {
    if (!calls.empty()) provider->CallAll(std::move(calls));
    calls.clear();
  }
}

Span Worker::CallSpan(const v1::WorkItem& item, const v1::WorkResult& r, const std::string& traceparent,
                      const std::string& parent, absl::Time started) {
  Span span = SpanFrom(traceparent, parent, "call " + item.agent(), Span::Kind::kClient, started, options_.clock->Now());
  span.attributes = {{"agentfleet.task_id", item.task_id()},
                     {"agentfleet.step", item.step()},
                     {"agentfleet.fan_index", static_cast<int64_t>(item.fan_index())},
                     {"agentfleet.attempt", static_cast<int64_t>(item.attempt())},
                     {"agentfleet.agent", item.agent()},
                     {"agentfleet.worker", options_.worker_id},
                     {"agentfleet.outcome", CallOutcome(r)},
                     {"gen_ai.request.model", r.model()},
                     {"gen_ai.request.max_tokens", static_cast<int64_t>(item.max_tokens())},
                     {"gen_ai.usage.input_tokens", static_cast<int64_t>(r.usage().input_tokens())},
                     {"gen_ai.usage.output_tokens", static_cast<int64_t>(r.usage().output_tokens())}};
  if (r.model_turns() > 1) span.attributes.push_back({"agentfleet.model_turns", static_cast<int64_t>(r.model_turns())});
  if (r.tool_calls_size() > 0) {
    std::string tools;
    for (const v1::ToolCall& c : r.tool_calls()) absl::StrAppend(&tools, tools.empty() ? "" : ",", c.name(), ":", c.status());
    span.attributes.push_back({"agentfleet.tool_calls", tools});
  }
  if (r.has_action()) {
    span.attributes.push_back({"agentfleet.effect_id", r.action().effect_id()});
    span.attributes.push_back({"agentfleet.action_outcome", r.action().outcome()});
  }
  span.error = r.status() != v1::RESULT_STATUS_OK;
  if (span.error) span.status_message = r.error().code() + ": " + r.error().message();
  return span;
}

void Worker::CommitPastMarkers() {
  absl::Time now = options_.clock->Now();
  if (now < next_marker_check_) return;
  next_marker_check_ = now + absl::Seconds(1);
  for (const TopicPartition& p : consumer_->Positions()) {
    if (p.offset < 0) continue;
    std::optional<int64_t> done = tracker_.Committable({p.topic, p.partition});
    if (done && *done >= p.offset) continue;
    consumer_->StoreOffset(p.topic, p.partition, p.offset).IgnoreError();
  }
}

void Worker::CheckStalls(bool had_room) {
  for (int n = stalls_.Check(*consumer_, options_.clock->Now(), had_room, kComponent); n > 0; --n) {
    ++stats_.stalls_recovered;
    if (metrics_) metrics_->Liveness(kLivenessPartitionRestarted);
  }
}

void Worker::AbandonRunning() {
  std::vector<Running> left;
  {
    absl::MutexLock lock(&running_mu_);
    for (auto& [key, r] : running_) left.push_back(std::move(r));
    running_.clear();
  }
  Log(LogLevel::kWarning, kComponent, "grace period over; reporting unfinished items as retryable",
      {{"count", absl::StrCat(left.size())}, {"grace", absl::FormatDuration(options_.shutdown_grace)}});
  for (const Running& r : left) {
    ++stats_.abandoned;
    Report(MakeFailure(r.item, kWorkerShutdown, "the worker shut down before the call finished", true,
                       options_.worker_id, options_.clock->Now()),
           r.item.agent(), r.traceparent, EventPartition(r.item), r.partition, r.offset, r.generation);
  }
}

void Worker::Heartbeat() {
  absl::Time now = options_.clock->Now();
  if (now < next_heartbeat_scan_) return;
  next_heartbeat_scan_ = now + options_.heartbeat_interval / 4;
  std::vector<std::pair<v1::WorkEvent, std::pair<std::string, int32_t>>> beats;
  {
    absl::MutexLock lock(&running_mu_);
    for (auto& [key, r] : running_) {
      if (now - r.last_beat < options_.heartbeat_interval) continue;
      r.last_beat = now;
      beats.push_back({MakeHeartbeat(r.item, options_.worker_id, now), {r.traceparent, EventPartition(r.item)}});
    }
  }
  for (auto& [event, where] : beats) {
    Encoded e = Encode(event, where.first);
    ++stats_.heartbeats;
    producer_->Produce({topics_.events, event.task_id(), std::move(e.payload), std::move(e.headers), where.second})
        .IgnoreError();  // a lost heartbeat is covered by the next one
  }
}

void Worker::SendDueReceipts() {
  absl::Time now = options_.clock->Now();
  std::vector<std::pair<v1::WorkEvent, std::pair<std::string, int32_t>>> receipts;
  {
    absl::MutexLock lock(&running_mu_);
    while (!pending_receipts_.empty() && pending_receipts_.top().due <= now) {
      auto it = running_.find(pending_receipts_.top().key);
      pending_receipts_.pop();
      if (it == running_.end()) continue;  // finished: its result says it all
      Running& r = it->second;
      r.receipted = true;
      receipts.push_back({MakeReceipt(r.item, options_.worker_id, now), {r.traceparent, EventPartition(r.item)}});
    }
  }
  for (auto& [event, where] : receipts) {
    Encoded e = Encode(event, where.first);
    producer_->Produce({topics_.events, event.task_id(), std::move(e.payload), std::move(e.headers), where.second})
        .IgnoreError();  // a lost receipt only delays the coordinator's view
  }
}

void Worker::Report(const v1::WorkEvent& event, const std::string& agent, const std::string& traceparent,
                    int32_t event_partition, const OffsetTracker::Partition& partition, int64_t offset,
                    uint64_t generation) {
  if (metrics_ && event.has_result()) {
    const v1::WorkResult& r = event.result();
    metrics_->Finished(agent, r.model(), CallOutcome(r), absl::Milliseconds(r.latency_ms()));
    for (const v1::ToolCall& c : r.tool_calls()) metrics_->ToolCall(agent, c.name(), c.status());
  }
  Encoded e = Encode(event, traceparent);
  absl::Status s = producer_->Produce(
      {topics_.events, event.task_id(), std::move(e.payload), std::move(e.headers), event_partition},
      [this, partition, offset, generation](const absl::Status& delivered) {
        if (delivered.ok()) {
          MarkDone(partition, offset, generation);
          return;
        }
        absl::MutexLock lock(&error_mu_);
        delivery_error_ = std::string(delivered.message());
        delivery_failed_.store(true);
      });
  if (!s.ok()) {
    absl::MutexLock lock(&error_mu_);
    delivery_error_ = std::string(s.message());
    delivery_failed_.store(true);
  }
}

void Worker::MarkDone(const OffsetTracker::Partition& partition, int64_t offset, uint64_t generation) {
  if (auto next = tracker_.Finish(partition, offset, generation)) {
    consumer_->StoreOffset(partition.first, partition.second, *next).IgnoreError();
  }
  absl::MutexLock lock(&slot_mu_);
  ++completions_;
}

}  // namespace agentfleet
