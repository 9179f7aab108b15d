#include "cli/signal.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "codec/trace.h"
#include "common/signals.h"
#include "google/protobuf/util/json_util.h"
#include "kafka/kafka.h"
#include "kafka/topics.h"
#include "nlohmann/json.hpp"

namespace agentfleet {
namespace {

std::string StatusWord(v1::TaskStatus s) { return v1::TaskStatus_Name(s).substr(sizeof("TASK_STATUS_") - 1); }

// The task's results already on the results topic (normally none or one).
absl::StatusOr<std::vector<v1::TaskResult>> ResultsOf(const FleetConfig& config, const std::string& task_id) {
  auto msgs = ReadKeyToEnd(ConsumerProperties(config.kafka, "agentfleet-cli"),
                           Topics(config.kafka.topic_prefix).results, task_id, absl::Seconds(60));
  if (!msgs.ok()) return msgs.status();
  std::vector<v1::TaskResult> out;
  for (const Message& m : *msgs) {
    auto r = Decode<v1::TaskResult>(m.payload, m.headers, config.coordinator.max_payload_bytes);
    if (r.ok()) out.push_back(*std::move(r));
  }
  return out;
}

void PrintResult(const v1::TaskResult& r, const CliOptions& options) {
  if (options.json) {
    std::string json;
    google::protobuf::util::JsonPrintOptions print;
    print.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(r, &json, print);
    std::cout << json << "\n";
    return;
  }
  int done = 0;
  for (const v1::StepSummary& s : r.steps()) done += s.status() == v1::STEP_STATUS_SUCCEEDED;
  std::cout << r.task_id() << ": " << StatusWord(r.status()) << " (" << r.error().message() << ") with " << done
            << " of " << r.steps_size() << " step instances done, $" << r.usage().cost_usd() << " spent";
  if (r.has_output()) std::cout << "; best output so far: " << FromValue(r.output()).dump();
  std::cout << "\n";
}

}  // namespace

absl::Status SendSignal(const FleetConfig& config, const v1::TaskSignal& signal) {
  auto producer = NewProducer(ProducerProperties(config.kafka));
  if (!producer.ok()) return producer.status();
  Encoded e = Encode(signal, NewTraceparent());
  Topics topics(config.kafka.topic_prefix);
  if (absl::Status s = (*producer)->Produce({topics.signals, signal.task_id(), e.payload, e.headers}); !s.ok()) {
    return s;
  }
  return (*producer)->Flush(absl::Seconds(30));
}

int RunSignal(const FleetConfig& config, const std::string& task_id, const std::string& name,
              const std::string& payload_json, const std::string& sender, const CliOptions& options) {
  v1::TaskSignal signal;
  signal.set_task_id(task_id);
  signal.set_name(name);
  signal.set_sender(sender);
  *signal.mutable_sent_at() = ToTimestamp(absl::Now());
  if (!payload_json.empty()) {
    nlohmann::json payload = nlohmann::json::parse(payload_json, nullptr, /*allow_exceptions=*/false);
    if (payload.is_discarded()) {
      std::cerr << "agentfleet signal: the payload is not JSON: " << payload_json << "\n";
      return 2;
    }
    *signal.mutable_payload() = ToValue(payload);
  }
  if (absl::Status valid = Validate(signal); !valid.ok()) {
    std::cerr << "agentfleet signal: " << valid.message() << "\n";
    return 2;
  }
  if (absl::Status sent = SendSignal(config, signal); !sent.ok()) {
    std::cerr << "agentfleet signal: " << sent.message() << "\n";
    return 1;
  }
  std::cout << "sent signal '" << name << "' to " << task_id
            << " (a step waiting for it takes it; the coordinator ignores and counts a duplicate, a late one, or "
               "one for a task it does not run)\n";
  return 0;
}

int RunCancel(const FleetConfig& config, const std::string& task_id, const std::string& reason,
              const std::string& sender, const CliOptions& options) {
  // Finished already, or never submitted: say so, send nothing.
  auto before = ResultsOf(config, task_id);
  if (!before.ok()) {
    std::cerr << "agentfleet cancel: " << before.status().message() << "\n";
    return 1;
  }
  if (!before->empty()) {
    std::cout << task_id << " has already finished: " << StatusWord(before->front().status())
              << "; nothing to cancel\n";
    return 1;
  }
  Topics topics(config.kafka.topic_prefix);
  auto submitted = ReadKeyToEnd(ConsumerProperties(config.kafka, "agentfleet-cli"), topics.tasks, task_id,
                                absl::Seconds(60));
  if (!submitted.ok()) {
    std::cerr << "agentfleet cancel: " << submitted.status().message() << "\n";
    return 1;
  }
  if (submitted->empty()) {
    std::cout << "unknown task " << task_id << ": no submission under that id on " << topics.tasks << "\n";
    return 1;
  }
  // Read the results from their current ends, then send the cancellation.
  Properties props = ConsumerProperties(config.kafka, "agentfleet-cli");
  auto marks = QueryWatermarks(props, topics.results, absl::Seconds(15));
  auto consumer = marks.ok() ? NewConsumer(props) : marks.status();
  if (!consumer.ok()) {
    std::cerr << "agentfleet cancel: " << consumer.status().message() << "\n";
    return 1;
  }
  std::vector<TopicPartition> assignment;
  for (size_t p = 0; p < marks->size(); ++p) {
    assignment.push_back({topics.results, static_cast<int32_t>(p), (*marks)[p].high});
  }
  v1::TaskSignal cancel;
  cancel.set_task_id(task_id);
  cancel.set_cancel(true);
  cancel.set_reason(reason.empty() ? absl::StrCat("cancelled by ", sender.empty() ? "agentfleet cancel" : sender)
                                   : reason);
  cancel.set_sender(sender);
  *cancel.mutable_sent_at() = ToTimestamp(absl::Now());
  absl::Status ready = (*consumer)->Assign(assignment);
  if (ready.ok()) ready = SendSignal(config, cancel);
  if (!ready.ok()) {
    std::cerr << "agentfleet cancel: " << ready.message() << "\n";
    return 1;
  }
  absl::Time deadline = absl::Now() + options.timeout;
  while (!ShutdownRequested() && absl::Now() < deadline) {
    for (const Message& m : (*consumer)->Poll(absl::Milliseconds(200), 1000)) {
      if (m.key != task_id) continue;
      auto r = Decode<v1::TaskResult>(m.payload, m.headers, config.coordinator.max_payload_bytes);
      if (!r.ok()) continue;
      if (r->status() != v1::TASK_STATUS_CANCELLED) {
        std::cout << task_id << " finished " << StatusWord(r->status()) << " before the cancellation reached it\n";
        return 1;
      }
      PrintResult(*r, options);
      return 0;
    }
  }
  std::cout << "no result for " << task_id << " within " << absl::FormatDuration(options.timeout)
            << "; the cancellation is on " << topics.signals << " and takes effect when the coordinator reads it\n";
  return 1;
}

}  // namespace agentfleet
