#include "coordinator/coordinator.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
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
      engine_(config, clock),
      committer_(consumer) {}

absl::Status Coordinator::Start() {
  // Learn the output topics' leaders now, not on the first task.
  std::vector<std::string> outputs = {topics_.results, topics_.dlq};
  for (const auto& [name, agent] : config_->agents) outputs.push_back(topics_.Work(name));
  for (const auto& topic : outputs) {
    if (absl::Status s = producer_->Warm(topic, absl::Seconds(30)); !s.ok()) return s;
  }
  return consumer_->Subscribe({topics_.tasks, topics_.events});
}

absl::Status Coordinator::Run(const std::function<bool()>& stop) {
  while (!stop()) {
    auto n = RunOnce();
    if (!n.ok()) return n.status();
  }
  if (!committer_.WaitIdle(options_.drain_timeout)) {
    return committer_.error().ok() ? absl::DeadlineExceededError("outputs not acknowledged in time")
                                   : committer_.error();
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> Coordinator::RunOnce() {
  if (absl::Status failed = committer_.error(); !failed.ok()) return failed;
  std::vector<Message> batch = consumer_->Poll(options_.poll_timeout, options_.max_batch);
  if (batch.empty()) return 0;
  uint64_t id = committer_.Begin();
  Outbox out;
  BatchCommitter::Offsets next_offsets;
  for (const Message& m : batch) {
    if (m.topic == topics_.tasks) {
      HandleSubmission(m, id, &out);
    } else if (m.topic == topics_.events) {
      HandleEvent(m, id, &out);
    }
    next_offsets[{m.topic, m.partition}] = m.offset + 1;
  }
  absl::Status published = Publish(out, id);
  if (!published.ok()) return published;
  committer_.Seal(id, std::move(next_offsets));
  if (LogEnabled(LogLevel::kDebug)) {
    Log(LogLevel::kDebug, kComponent, "batch",
        {{"consumed", absl::StrCat(batch.size())},
         {"produced", absl::StrCat(out.work.size() + out.results.size())},
         {"open_batches", absl::StrCat(committer_.open_batches())}});
  }
  return batch.size();
}

void Coordinator::DeadLetter(const Message& m, absl::string_view reason, uint64_t batch) {
  ++dead_letters_;
  DeliveryCallback delivered = committer_.Track(batch);
  absl::Status s = SendToDeadLetter(*producer_, topics_.dlq, m, reason, kComponent, delivered);
  if (!s.ok()) delivered(s);  // could not even queue it: a failed delivery
}

void Coordinator::HandleSubmission(const Message& m, uint64_t batch, Outbox* out) {
  auto sub = Decode<v1::TaskSubmission>(m.payload, m.headers, config_->coordinator.max_payload_bytes);
  std::string traceparent = TraceparentOf(m);
  absl::Status status = sub.status();
  if (sub.ok()) status = engine_.Submit(*sub, traceparent, out);  // adds REJECTED itself
  if (status.ok()) return;
  DeadLetter(m, status.message(), batch);
  if (sub.ok()) return;
  // Unparseable: reject by the key when it is a usable task id.
  v1::TaskResult r;
  r.set_task_id(m.key);
  r.set_status(v1::TASK_STATUS_REJECTED);
  r.mutable_error()->set_code("invalid_submission");
  r.mutable_error()->set_message(std::string(status.message()));
  if (Validate(r).ok()) out->results.push_back({std::move(r), traceparent});
}

void Coordinator::HandleEvent(const Message& m, uint64_t batch, Outbox* out) {
  auto event = Decode<v1::WorkEvent>(m.payload, m.headers, config_->coordinator.max_payload_bytes);
  if (!event.ok()) {
    DeadLetter(m, event.status().message(), batch);
    return;
  }
  engine_.OnEvent(*event, out);
}

absl::Status Coordinator::Publish(const Outbox& out, uint64_t batch) {
  for (const auto& w : out.work) {
    Encoded e = Encode(w.item, w.traceparent);
    absl::Status s = producer_->Produce({topics_.Work(w.topic_agent), w.item.task_id(), std::move(e.payload), std::move(e.headers)},
                                        committer_.Track(batch));
    if (!s.ok()) return s;
  }
  for (const auto& r : out.results) {
    Encoded e = Encode(r.result, r.traceparent);
    absl::Status s = producer_->Produce(
        {topics_.results, r.result.task_id(), std::move(e.payload), std::move(e.headers)},
        committer_.Track(batch));
    if (!s.ok()) return s;
    Log(LogLevel::kDebug, kComponent, "task finished",
        {{"task_id", r.result.task_id()},
         {"trace_id", TraceId(r.traceparent)},
         {"status", v1::TaskStatus_Name(r.result.status())}});
  }
  return absl::OkStatus();
}

}  // namespace agentfleet
