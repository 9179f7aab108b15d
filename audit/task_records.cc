#include "audit/task_records.h"

#include <functional>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agentfleet/v1/state.pb.h"
#include "agentfleet/v1/task.pb.h"
#include "agentfleet/v1/work.pb.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "google/protobuf/util/json_util.h"
#include "kafka/key_scan.h"
#include "kafka/topics.h"
#include "nlohmann/json.hpp"

namespace agentfleet {
namespace {

using Json = nlohmann::json;

// The kinds of record a saved task holds, with the message each carries.
struct Kind {
  const char* name;
  std::vector<Message> TaskRecords::*list;
  std::function<std::unique_ptr<google::protobuf::Message>()> make;
};

const std::vector<Kind>& Kinds() {
  static const auto* kinds = new std::vector<Kind>{
      {"tasks", &TaskRecords::tasks, [] { return std::make_unique<v1::TaskSubmission>(); }},
      {"work", &TaskRecords::work, [] { return std::make_unique<v1::WorkItem>(); }},
      {"events", &TaskRecords::events, [] { return std::make_unique<v1::WorkEvent>(); }},
      {"signals", &TaskRecords::signals, [] { return std::make_unique<v1::TaskSignal>(); }},
      {"results", &TaskRecords::results, [] { return std::make_unique<v1::TaskResult>(); }},
  };
  return *kinds;
}

}  // namespace

absl::StatusOr<std::map<std::string, TaskRecords>> ReadTaskRecords(const FleetConfig& config,
                                                                   const std::vector<std::string>& task_ids,
                                                                   absl::Duration timeout) {
  Topics topics(config.kafka.topic_prefix);
  Properties props = ConsumerProperties(config.kafka, "agentfleet-trace");
  std::map<std::string, TaskRecords> out;
  absl::flat_hash_set<std::string> keys(task_ids.begin(), task_ids.end());
  for (const std::string& id : task_ids) out[id];
  std::vector<std::pair<std::string, std::vector<Message> TaskRecords::*>> reads = {
      {topics.tasks, &TaskRecords::tasks},     {topics.events, &TaskRecords::events},
      {topics.signals, &TaskRecords::signals}, {topics.state, &TaskRecords::state},
      {topics.results, &TaskRecords::results}};
  for (const auto& [name, agent] : config.agents) reads.push_back({topics.Work(name), &TaskRecords::work});
  for (const auto& [topic, list] : reads) {
    auto got = ReadKeysToEnd(props, topic, keys, timeout);
    if (!got.ok()) return absl::Status(got.status().code(), absl::StrCat(topic, ": ", got.status().message()));
    for (Message& m : *got) (out[m.key].*list).push_back(std::move(m));
  }
  return out;
}

absl::StatusOr<TaskRecords> ReadTaskRecords(const FleetConfig& config, const std::string& task_id,
                                            absl::Duration timeout) {
  auto read = ReadTaskRecords(config, std::vector<std::string>{task_id}, timeout);
  if (!read.ok()) return read.status();
  return std::move((*read)[task_id]);
}

namespace {

template <typename T>
std::optional<T> FindFirst(const std::vector<Message>& messages, const std::string& task_id, size_t limit) {
  for (const Message& m : messages) {
    auto decoded = Decode<T>(m.payload, m.headers, limit);
    if (decoded.ok() && decoded->task_id() == task_id) return *std::move(decoded);
  }
  return std::nullopt;
}

}  // namespace

std::optional<v1::TaskSubmission> FindSubmission(const TaskRecords& records, const std::string& task_id,
                                                 size_t max_payload_bytes) {
  return FindFirst<v1::TaskSubmission>(records.tasks, task_id, max_payload_bytes);
}

std::optional<v1::TaskResult> FindResult(const TaskRecords& records, const std::string& task_id,
                                         size_t max_payload_bytes) {
  return FindFirst<v1::TaskResult>(records.results, task_id, max_payload_bytes);
}

std::map<std::pair<std::string, int>, Json> StepOutputs(const TaskRecords& records, const v1::TaskResult& result,
                                                        size_t max_payload_bytes) {
  std::map<std::pair<std::string, int>, std::map<int, Json>> by_attempt;
  for (const Message& m : records.events) {
    auto e = Decode<v1::WorkEvent>(m.payload, m.headers, max_payload_bytes);
    if (!e.ok() || e->task_id() != result.task_id() || !e->has_result() ||
        e->result().status() != v1::RESULT_STATUS_OK || e->result().embedding_size() > 0) {
      continue;  // not an answer of the agent (a failure, an embedding)
    }
    // The first result of an attempt counts, as in the coordinator.
    by_attempt[{e->step(), e->fan_index()}].emplace(e->attempt(), FromStruct(e->result().output()));
  }
  // A fork's reused outputs are in its submission, not on the events topic.
  std::map<std::pair<std::string, int>, Json> reused;
  if (auto sub = FindSubmission(records, result.task_id(), max_payload_bytes)) {
    for (const v1::ReusedOutput& r : sub->fork().reused()) reused[{r.step(), r.fan_index()}] = FromValue(r.output());
  }
  std::map<std::pair<std::string, int>, Json> out;
  for (const v1::StepSummary& s : result.steps()) {
    if (s.status() != v1::STEP_STATUS_SUCCEEDED) continue;
    if (s.reused()) {
      if (auto it = reused.find({s.step(), s.fan_index()}); it != reused.end()) out[it->first] = it->second;
      continue;
    }
    auto it = by_attempt.find({s.step(), s.fan_index()});
    if (it == by_attempt.end() || it->second.empty()) continue;
    auto at = it->second.find(s.attempts());
    out[{s.step(), s.fan_index()}] = at != it->second.end() ? at->second : it->second.rbegin()->second;
  }
  return out;
}

std::string SaveTaskRecords(const TaskRecords& records, size_t max_payload_bytes) {
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  std::string out;
  for (const Kind& kind : Kinds()) {
    for (const Message& m : records.*kind.list) {
      Json line = {{"kind", kind.name},          {"topic", m.topic},   {"partition", m.partition},
                   {"offset", m.offset},         {"timestamp_ms", m.timestamp_ms}, {"key", m.key}};
      if (auto tp = FindHeader(m.headers, kTraceparentHeader)) line["traceparent"] = *tp;
      std::unique_ptr<google::protobuf::Message> message = kind.make();
      absl::Status decoded = m.payload.size() > max_payload_bytes
                                 ? absl::InvalidArgumentError("payload over the size limit")
                                 : ParsePayload(m.payload, message.get());
      std::string json;
      if (decoded.ok()) {
        auto printed = google::protobuf::util::MessageToJsonString(*message, &json, print);
        if (!printed.ok()) decoded = absl::InvalidArgumentError(std::string(printed.message()));
      }
      if (decoded.ok()) {
        line["message"] = Json::parse(json);
      } else {
        line["payload_base64"] = absl::Base64Escape(m.payload);
        line["unreadable"] = std::string(decoded.message());
      }
      absl::StrAppend(&out, line.dump(), "\n");
    }
  }
  return out;
}

absl::StatusOr<TaskRecords> LoadTaskRecords(const std::string& text, const std::string& source) {
  TaskRecords records;
  int number = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++number;
    if (raw.empty()) continue;
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(source, ":", number, ": ", why));
    };
    Json line = Json::parse(raw, nullptr, /*allow_exceptions=*/false);
    if (!line.is_object() || !line.contains("kind") || !line["kind"].is_string()) {
      return bad("not a saved record (a JSON object with a \"kind\")");
    }
    const std::string kind_name = line["kind"];
    const Kind* kind = nullptr;
    for (const Kind& k : Kinds()) {
      if (kind_name == k.name) kind = &k;
    }
    if (kind == nullptr) return bad(absl::StrCat("unknown kind '", kind_name, "'"));
    Message m;
    try {
      m.topic = line.value("topic", "");
      m.partition = line.value("partition", 0);
      m.offset = line.value("offset", int64_t{0});
      m.timestamp_ms = line.value("timestamp_ms", int64_t{0});
      m.key = line.value("key", "");
      std::string traceparent = line.value("traceparent", "");
      if (line.contains("message")) {
        std::unique_ptr<google::protobuf::Message> message = kind->make();
        auto parsed = google::protobuf::util::JsonStringToMessage(line["message"].dump(), message.get());
        if (!parsed.ok()) return bad(absl::StrCat("message: ", std::string(parsed.message())));
        Encoded e = Encode(*message, traceparent);
        m.payload = std::move(e.payload);
        m.headers = std::move(e.headers);
      } else if (!absl::Base64Unescape(line.value("payload_base64", ""), &m.payload)) {
        return bad("payload_base64 is not base64");
      } else if (!traceparent.empty()) {
        m.headers.push_back({kTraceparentHeader, traceparent});
      }
    } catch (const Json::exception& e) {
      return bad(e.what());
    }
    (records.*kind->list).push_back(std::move(m));
  }
  return records;
}

}  // namespace agentfleet
