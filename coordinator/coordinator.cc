#include "coordinator/coordinator.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "codec/codec.h"
#include "codec/trace.h"
#include "common/log.h"
#include "kafka/dead_letter.h"

namespace agentfleet {
namespace {
constexpr char kComponent[] = "coordinator";

std::string TraceparentOf(const Message& m) {
  auto tp = FindHeader(m.headers, kTraceparentHeader);
  return tp && IsValidTraceparent(*tp) ? ChildTraceparent(*tp) : NewTraceparent();
}
}  // namespace

Coordinator::Coordinator(const FleetConfig* config, Consumer* consumer, Producer* producer,
                         const Clock* clock, CoordinatorOptions options)
    : config_(config),
      consumer_(consumer),
      producer_(producer),
      options_(options),
      topics_(config->kafka.topic_prefix),
      engine_(config, clock) {}

absl::Status Coordinator::Start() { return consumer_->Subscribe({topics_.tasks, topics_.events}); }

absl::Status Coordinator::Run(const std::function<bool()>& stop) {
  while (!stop()) {
    auto n = RunOnce();
    if (!n.ok()) return n.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> Coordinator::RunOnce() {
  std::vector<Message> batch = consumer_->Poll(options_.poll_timeout, options_.max_batch);
  if (batch.empty()) return 0;
  Outbox out;
  std::map<std::pair<std::string, int32_t>, int64_t> next_offsets;
  for (const Message& m : batch) {
    if (m.topic == topics_.tasks) {
      HandleSubmission(m, &out);
    } else if (m.topic == topics_.events) {
      HandleEvent(m, &out);
    }
    next_offsets[{m.topic, m.partition}] = m.offset + 1;
  }
  absl::Status published = Publish(out);
  if (!published.ok()) return published;
  // Everything this batch caused is acknowledged: its input may be committed.
  absl::Status flushed = producer_->Flush(options_.flush_timeout);
  if (!flushed.ok()) return flushed;
  for (const auto& [tp, offset] : next_offsets) {
    absl::Status s = consumer_->StoreOffset(tp.first, tp.second, offset);
    if (!s.ok()) Log(LogLevel::kWarning, kComponent, "offset not stored (partition revoked?)", {{"error", s.message()}});
  }
  return batch.size();
}

void Coordinator::HandleSubmission(const Message& m, Outbox* out) {
  auto sub = Decode<v1::TaskSubmission>(m.payload, m.headers, config_->coordinator.max_payload_bytes);
  std::string traceparent = TraceparentOf(m);
  absl::Status status = sub.status();
  if (sub.ok()) status = engine_.Submit(*sub, traceparent, out);  // adds REJECTED itself
  if (status.ok()) return;
  ++dead_letters_;
  SendToDeadLetter(*producer_, topics_.dlq, m, status.message(), kComponent).IgnoreError();
  if (sub.ok()) return;
  // Unparseable: reject by the key when it is a usable task id.
  v1::TaskResult r;
  r.set_task_id(m.key);
  r.set_status(v1::TASK_STATUS_REJECTED);
  r.mutable_error()->set_code("invalid_submission");
  r.mutable_error()->set_message(std::string(status.message()));
  if (Validate(r).ok()) out->results.push_back({std::move(r), traceparent});
}

void Coordinator::HandleEvent(const Message& m, Outbox* out) {
  auto event = Decode<v1::WorkEvent>(m.payload, m.headers, config_->coordinator.max_payload_bytes);
  if (!event.ok()) {
    ++dead_letters_;
    SendToDeadLetter(*producer_, topics_.dlq, m, event.status().message(), kComponent).IgnoreError();
    return;
  }
  engine_.OnEvent(*event, out);
}

absl::Status Coordinator::Publish(const Outbox& out) {
  for (const auto& w : out.work) {
    Encoded e = Encode(w.item, w.traceparent);
    absl::Status s = producer_->Produce({topics_.Work(w.topic_agent), w.item.task_id(), std::move(e.payload), std::move(e.headers)});
    if (!s.ok()) return s;
  }
  for (const auto& r : out.results) {
    Encoded e = Encode(r.result, r.traceparent);
    absl::Status s = producer_->Produce({topics_.results, r.result.task_id(), std::move(e.payload), std::move(e.headers)});
    if (!s.ok()) return s;
    Log(LogLevel::kDebug, kComponent, "task finished",
        {{"task_id", r.result.task_id()},
         {"trace_id", TraceId(r.traceparent)},
         {"status", v1::TaskStatus_Name(r.result.status())}});
  }
  return absl::OkStatus();
}

}  // namespace agentfleet
