#include "audit/task_records.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <set>
#include <tuple>

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

using Lists = std::map<std::string, std::vector<Message> TaskRecords::*>;

// The topic of each kind of a task's records but its result, and where the
// kind goes in TaskRecords.
Lists RecordTopics(const FleetConfig& config, const Topics& topics) {
  Lists lists = {{topics.tasks, &TaskRecords::tasks},
                 {topics.events, &TaskRecords::events},
                 {topics.signals, &TaskRecords::signals},
                 {topics.state, &TaskRecords::state}};
  for (const auto& [name, agent] : config.agents) lists[topics.Work(name)] = &TaskRecords::work;
  return lists;
}

std::vector<std::string> Names(const Lists& lists) {
  std::vector<std::string> names;
  for (const auto& [topic, list] : lists) names.push_back(topic);
  return names;
}

absl::Status InTopic(const std::string& topic, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(topic, ": ", status.message()));
}

absl::Duration Left(absl::Time deadline) { return std::max(deadline - absl::Now(), absl::Milliseconds(1)); }

// The newest results of `ids`: each id's results partition read backwards
// from its end, in chunks growing fourfold, until every id is found or the
// partition's beginning is reached.
absl::StatusOr<std::vector<Message>> FindResults(const Properties& props, const std::string& topic,
                                                 const std::vector<std::string>& ids, absl::Time deadline,
                                                 LookupStats* stats) {
  auto marks = QueryWatermarks(props, topic, Left(deadline));
  if (!marks.ok()) return marks.status();
  std::map<int32_t, absl::flat_hash_set<std::string>> missing;
  for (const std::string& id : ids) missing[KeyPartition(id, static_cast<int32_t>(marks->size()))].insert(id);
  std::map<int32_t, int64_t> cursor;
  for (const auto& [p, keys] : missing) cursor[p] = (*marks)[p].high;
  std::vector<Message> found;
  for (int64_t chunk = 1000;; chunk *= 4) {
    std::vector<OffsetRange> ranges;
    absl::flat_hash_set<std::string> keys;
    for (const auto& [p, wanted] : missing) {
      if (wanted.empty() || cursor[p] <= (*marks)[p].low) continue;
      int64_t begin = std::max((*marks)[p].low, cursor[p] - chunk);
      ranges.push_back({topic, p, begin, cursor[p]});
      cursor[p] = begin;
      keys.insert(wanted.begin(), wanted.end());
    }
    if (ranges.empty()) break;
    ++stats->result_rounds;
    auto got = ReadKeysInRanges(props, ranges, keys, Left(deadline), &stats->scanned);
    if (!got.ok()) return got.status();
    absl::flat_hash_set<std::string> seen;
    for (Message& m : *got) {
      if (!missing[m.partition].contains(m.key)) continue;
      seen.insert(m.key);
      found.push_back(std::move(m));
    }
    for (auto& [p, wanted] : missing) {
      for (const std::string& key : seen) wanted.erase(key);
    }
  }
  std::sort(found.begin(), found.end(), [](const Message& a, const Message& b) {
    return std::tie(a.partition, a.offset) < std::tie(b.partition, b.offset);
  });
  return found;
}

// When a task's records were written, from its result, widened by `margin`.
struct Window {
  absl::Time from = absl::InfinitePast();
  absl::Time to = absl::InfiniteFuture();
  void Cover(const Window& w) {
    from = std::min(from, w.from);
    to = std::max(to, w.to);
  }
};

Window WindowOf(const v1::TaskResult& result, absl::Duration margin) {
  Window w;
  absl::Time start = absl::InfiniteFuture();
  if (result.has_accepted_at()) start = std::min(start, FromTimestamp(result.accepted_at()));
  if (result.has_submitted_at()) start = std::min(start, FromTimestamp(result.submitted_at()));
  if (start != absl::InfiniteFuture()) w.from = start - margin;
  if (result.has_finished_at()) w.to = FromTimestamp(result.finished_at()) + margin;
  return w;
}

// The ranges of `topics` that hold the records of `windows`' ids: on each
// id's partition, the offsets between its window's ends by the time index
// (the union, where ids share a partition). `counts`: partitions per topic.
// `probe`, a record just read, checks the broker's time index: asked for its
// own timestamp, the index must answer its offset or an earlier one. Where
// it does not (the development broker has no time index), the ranges are
// the ids' whole partitions.
absl::StatusOr<std::vector<OffsetRange>> WindowRanges(const Properties& props, const std::vector<std::string>& topics,
                                                      const std::map<std::string, int>& counts,
                                                      const std::map<std::string, Window>& windows,
                                                      const Message* probe, absl::Time deadline,
                                                      LookupStats* stats) {
  std::map<std::pair<std::string, int32_t>, Window> by_partition;
  for (const std::string& topic : topics) {
    for (const auto& [id, window] : windows) {
      auto [it, fresh] = by_partition.emplace(std::pair{topic, KeyPartition(id, counts.at(topic))}, window);
      if (!fresh) it->second.Cover(window);
    }
  }
  std::vector<TimeQuery> queries;
  for (const auto& [tp, w] : by_partition) {
    if (w.from != absl::InfinitePast()) queries.push_back({tp.first, tp.second, w.from});
    if (w.to != absl::InfiniteFuture()) queries.push_back({tp.first, tp.second, w.to});
  }
  if (probe != nullptr && probe->timestamp_ms > 0) {
    queries.push_back({probe->topic, probe->partition, absl::FromUnixMillis(probe->timestamp_ms)});
  }
  auto offsets = OffsetsAtTimes(props, queries, Left(deadline));
  if (!offsets.ok()) return offsets.status();
  const bool indexed = probe == nullptr || probe->timestamp_ms <= 0 || offsets->back() <= probe->offset;
  if (!indexed) stats->whole_partitions = true;
  std::vector<OffsetRange> ranges;
  size_t i = 0;
  for (const auto& [tp, w] : by_partition) {
    OffsetRange r{tp.first, tp.second};
    if (w.from != absl::InfinitePast()) r.begin = (*offsets)[i++];
    if (w.to != absl::InfiniteFuture()) r.end = (*offsets)[i++];
    if (!indexed) r = {tp.first, tp.second};
    ranges.push_back(r);
  }
  return ranges;
}


}  // namespace

absl::StatusOr<std::map<std::string, TaskRecords>> ReadTaskRecords(const FleetConfig& config,
                                                                   const std::vector<std::string>& task_ids,
                                                                   absl::Duration timeout,
                                                                   const RecordsLookup& lookup, LookupStats* stats) {
  LookupStats ignored;
  if (stats == nullptr) stats = &ignored;
  absl::Time deadline = absl::Now() + timeout;
  Topics topics(config.kafka.topic_prefix);
  Properties props = ConsumerProperties(config.kafka, "agentfleet-trace");
  const absl::flat_hash_set<std::string> keys(task_ids.begin(), task_ids.end());
  std::map<std::string, TaskRecords> out;
  for (const std::string& id : task_ids) out[id];
  Lists lists = RecordTopics(config, topics);
  if (lookup.scan_all) {  // every partition of every topic, results too, in one read
    lists[topics.results] = &TaskRecords::results;
    auto counts = PartitionCounts(props, Names(lists), Left(deadline));
    if (!counts.ok()) return counts.status();
    std::vector<OffsetRange> whole;
    for (const auto& [topic, count] : *counts) {
      for (int32_t p = 0; p < count; ++p) whole.push_back({topic, p});
    }
    auto got = ReadKeysInRanges(props, whole, keys, Left(deadline), &stats->scanned);
    if (!got.ok()) return got.status();
    for (Message& m : *got) (out[m.key].*lists.at(m.topic)).push_back(std::move(m));
    return out;
  }
  auto results = FindResults(props, topics.results, task_ids, deadline, stats);
  if (!results.ok()) return InTopic(topics.results, results.status());
  std::map<std::string, Window> windows;
  for (const std::string& id : task_ids) windows[id];
  std::map<std::string, Window> found;
  for (Message& m : *results) {
    auto result = Decode<v1::TaskResult>(m.payload, m.headers,
                                         std::max(config.coordinator.max_payload_bytes, config.worker.max_payload_bytes));
    if (result.ok() && result->task_id() == m.key) {
      Window w = WindowOf(*result, lookup.margin);
      auto [it, fresh] = found.emplace(m.key, w);
      if (!fresh) it->second.Cover(w);
    }
    out[m.key].results.push_back(std::move(m));
  }
  for (const auto& [id, w] : found) windows[id] = w;
  const std::vector<std::string> names = Names(lists);
  auto counts = PartitionCounts(props, names, Left(deadline));
  if (!counts.ok()) return counts.status();
  const Message* probe = nullptr;
  for (const auto& [id, records] : out) {
    if (!records.results.empty()) probe = &records.results.front();
  }
  auto ranges = WindowRanges(props, names, *counts, windows, probe, deadline, stats);
  if (!ranges.ok()) return ranges.status();
  auto got = ReadKeysInRanges(props, *ranges, keys, Left(deadline), &stats->scanned);
  if (!got.ok()) return got.status();
  for (Message& m : *got) (out[m.key].*lists.at(m.topic)).push_back(std::move(m));
  // A submission stamped outside its window (a client's clock far off): its
  // whole tasks partition, in a second read.
  absl::flat_hash_set<std::string> unsubmitted;
  std::set<int32_t> partitions;
  for (const auto& [id, w] : found) {
    if (!out[id].tasks.empty()) continue;
    unsubmitted.insert(id);
    partitions.insert(KeyPartition(id, counts->at(topics.tasks)));
  }
  if (!unsubmitted.empty()) {
    std::vector<OffsetRange> whole;
    for (int32_t p : partitions) whole.push_back({topics.tasks, p});
    auto again = ReadKeysInRanges(props, whole, unsubmitted, Left(deadline), &stats->scanned);
    if (!again.ok()) return InTopic(topics.tasks, again.status());
    for (Message& m : *again) out[m.key].tasks.push_back(std::move(m));
  }
  return out;
}

absl::StatusOr<TaskRecords> ReadTaskRecords(const FleetConfig& config, const std::string& task_id,
                                            absl::Duration timeout, const RecordsLookup& lookup,
                                            LookupStats* stats) {
  auto read = ReadTaskRecords(config, std::vector<std::string>{task_id}, timeout, lookup, stats);
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
