#include "cli/dlq.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "kafka/kafka.h"
#include "kafka/key_scan.h"
#include "kafka/topics.h"

namespace agentfleet {
namespace {

constexpr char kComponent[] = "dlq";

Properties ReaderProperties(const FleetConfig& config) {
  Properties props = ConsumerProperties(config.kafka, "agentfleet-dlq");
  props["enable.auto.commit"] = "false";
  return props;
}

std::string When(absl::Time t) { return absl::FormatTime("%Y-%m-%d %H:%M:%S", t, absl::UTCTimeZone()); }

}  // namespace

DeadLetter WithDisposition(DeadLetter d, const DeadLetterActions& actions) {
  if (auto it = actions.find({d.partition, d.offset}); it != actions.end()) {
    d.disposition = it->second.action;
    d.disposition_by = it->second.by;
    d.disposition_at = it->second.at;
  }
  return d;
}

absl::StatusOr<DeadLetterActions> ReadDeadLetterActions(const FleetConfig& config, absl::Duration timeout,
                                                        int64_t* unreadable) {
  Properties props = ReaderProperties(config);
  const std::string topic = Topics(config.kafka.topic_prefix).dlq_actions;
  auto counts = PartitionCounts(props, {topic}, timeout);
  if (!counts.ok()) return counts.status();
  DeadLetterActions actions;
  auto it = counts->find(topic);
  if (it == counts->end() || it->second <= 0) return actions;  // nothing was ever handled
  std::vector<int32_t> partitions;
  for (int32_t p = 0; p < it->second; ++p) partitions.push_back(p);
  auto records = ReadPartitionsToEnd(props, topic, partitions, timeout);
  if (!records.ok()) return records.status();
  for (const Message& m : *records) {
    auto a = ParseDeadLetterAction(m.payload);
    if (a.ok()) {
      actions[{a->partition, a->offset}] = *std::move(a);
    } else if (unreadable != nullptr) {
      ++*unreadable;
    }
  }
  return actions;
}

absl::StatusOr<std::vector<DeadLetter>> ReadDeadLetters(const FleetConfig& config, int64_t per_partition,
                                                        absl::Duration timeout) {
  Properties props = ReaderProperties(config);
  const Topics topics(config.kafka.topic_prefix);
  auto counts = PartitionCounts(props, {topics.dlq}, timeout);
  if (!counts.ok()) return counts.status();
  auto count = counts->find(topics.dlq);
  if (count == counts->end() || count->second <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("topic ", topics.dlq, " does not exist (run `agentfleet topics create`)"));
  }
  std::vector<int32_t> partitions;
  for (int32_t p = 0; p < count->second; ++p) partitions.push_back(p);
  auto records = per_partition > 0 ? ReadPartitionTails(props, topics.dlq, partitions, per_partition, timeout)
                                   : ReadPartitionsToEnd(props, topics.dlq, partitions, timeout);
  if (!records.ok()) return records.status();
  auto actions = ReadDeadLetterActions(config, timeout);
  if (!actions.ok()) return actions.status();
  std::vector<DeadLetter> letters;
  letters.reserve(records->size());
  for (const Message& m : *records) letters.push_back(WithDisposition(ParseDeadLetter(config, m), *actions));
  std::stable_sort(letters.begin(), letters.end(),
                   [](const DeadLetter& a, const DeadLetter& b) { return a.at < b.at; });
  return letters;
}

absl::StatusOr<DeadLetterAction> ActOnDeadLetter(const FleetConfig& config, DeadLetterAction action,
                                                 absl::Duration timeout) {
  if (action.action != "replayed" && action.action != "discarded") {
    return absl::InvalidArgumentError(absl::StrCat("unknown action \"", action.action, "\" (replayed or discarded)"));
  }
  const Topics topics(config.kafka.topic_prefix);
  const std::string where = absl::StrCat(action.partition, "/", action.offset);
  Properties producer_props = ProducerProperties(config.kafka);
  producer_props["transactional.id"] = absl::StrCat(config.kafka.topic_prefix, "agentfleet-dlq-operator");
  auto producer = NewProducer(producer_props);
  if (!producer.ok()) return producer.status();
  // Fences any other operator's producer and completes its transaction, so
  // what is read below includes every action committed before.
  if (absl::Status s = (*producer)->InitTransactions(timeout); !s.ok()) return s;
  auto actions = ReadDeadLetterActions(config, timeout);
  if (!actions.ok()) return actions.status();
  if (auto it = actions->find({action.partition, action.offset}); it != actions->end()) {
    return absl::AlreadyExistsError(absl::StrCat("dead letter ", where, " was already ", it->second.action, " by ",
                                                 it->second.by, " at ", When(it->second.at), " UTC"));
  }
  auto read = ReadRanges(ReaderProperties(config), {{topics.dlq, action.partition, action.offset, action.offset + 1}},
                         timeout);
  if (!read.ok()) return read.status();
  const Message* record = nullptr;
  for (const Message& m : *read) {
    if (m.offset == action.offset) record = &m;
  }
  if (record == nullptr) {
    return absl::NotFoundError(absl::StrCat("no dead letter at ", where, " on ", topics.dlq,
                                            " (never written, or past the topic's retention)"));
  }
  DeadLetter letter = ParseDeadLetter(config, *record);
  letter.message = *record;  // the whole payload, however large
  letter.payload_kept = true;
  action.origin_topic = letter.origin_topic;
  // The topics' leaders known before the transaction: a first produce to a
  // topic the producer has no metadata for registers its partition with
  // the transaction a second later.
  (void)(*producer)->Warm(topics.dlq_actions, timeout);
  if (action.action == "replayed" && !letter.origin_topic.empty()) (void)(*producer)->Warm(letter.origin_topic, timeout);
  // Another operator's InitTransactions fences this producer: its calls fail
  // FailedPrecondition, and nothing of this transaction is written.
  auto fenced = [&](const absl::Status& s) {
    return absl::IsFailedPrecondition(s)
               ? absl::AbortedError(absl::StrCat("another operator acted on the dead-letter queue at the same time; "
                                                 "nothing was written (",
                                                 s.message(), ")"))
               : s;
  };
  if (absl::Status s = (*producer)->BeginTransaction(); !s.ok()) return fenced(s);
  auto abort = [&](absl::Status why) {
    (void)(*producer)->AbortTransaction(timeout);
    return why;
  };
  if (action.action == "replayed") {
    auto replay = ReplayMessage(letter);
    if (!replay.ok()) return abort(replay.status());
    if (absl::Status s = (*producer)->Produce(*std::move(replay)); !s.ok()) return abort(fenced(s));
  }
  action.at = absl::Now();
  OutboundMessage record_of_action;
  record_of_action.topic = topics.dlq_actions;
  record_of_action.key = absl::StrCat(action.partition, ":", action.offset);
  record_of_action.payload = DeadLetterActionJson(action);
  if (absl::Status s = (*producer)->Produce(std::move(record_of_action)); !s.ok()) return abort(fenced(s));
  if (absl::Status s = (*producer)->CommitTransaction(timeout); !s.ok()) {
    return abort(absl::IsFailedPrecondition(s) ? fenced(s)
                                               : absl::Status(s.code(), absl::StrCat("nothing written: ", s.message())));
  }
  Log(LogLevel::kInfo, kComponent, "dead letter " + action.action,
      {{"partition", absl::StrCat(action.partition)}, {"offset", absl::StrCat(action.offset)}, {"by", action.by},
       {"from", action.from}, {"origin_topic", action.origin_topic}});
  return action;
}

int RunDlqList(const FleetConfig& config, const DeadLetterFilter& filter, const CliOptions& options) {
  int64_t per_partition = options.count > 0 ? options.count : 1000;
  auto letters = ReadDeadLetters(config, per_partition, options.timeout);
  if (!letters.ok()) {
    std::cerr << "agentfleet dlq: " << letters.status().message() << "\n";
    return 3;
  }
  std::vector<DeadLetter> shown;
  for (auto it = letters->rbegin(); it != letters->rend(); ++it) {
    if (Matches(filter, *it)) shown.push_back(std::move(*it));
  }
  if (options.json) {
    std::cout << DeadLettersJson(shown) << "\n";
    return 0;
  }
  if (shown.empty()) {
    std::cout << "no dead letters" << (filter.include_handled ? "" : " to handle (--all shows the handled ones)")
              << "\n";
    return 0;
  }
  std::cout << absl::StrFormat("%-12s %-19s %-11s %-34s %9s  %-10s %s\n", "AT", "WHEN (UTC)", "COMPONENT", "ORIGIN",
                               "BYTES", "HANDLED", "REASON");
  for (const DeadLetter& d : shown) {
    std::string origin = d.origin_topic.empty() ? "-" : absl::StrCat(d.origin_topic, "/", d.origin_partition, "/",
                                                                      d.origin_offset);
    std::cout << absl::StrFormat("%-12s %-19s %-11s %-34s %9d  %-10s %s\n", absl::StrCat(d.partition, "/", d.offset),
                                 When(d.at), d.component.empty() ? "-" : d.component, origin, d.payload_bytes,
                                 d.disposition.empty() ? "-" : d.disposition, d.reason);
  }
  std::cout << shown.size() << " dead letter(s); replay one with `agentfleet dlq replay PARTITION/OFFSET`\n";
  return 0;
}

int RunDlqAction(const FleetConfig& config, const std::string& verb, const std::string& where,
                 const std::string& by, const std::string& note, const CliOptions& options) {
  DeadLetterAction action;
  action.action = verb == "replay" ? "replayed" : verb == "discard" ? "discarded" : "";
  std::vector<std::string> parts = absl::StrSplit(where, absl::ByAnyChar("/:"));
  if (action.action.empty() || parts.size() != 2 || !absl::SimpleAtoi(parts[0], &action.partition) ||
      !absl::SimpleAtoi(parts[1], &action.offset) || action.partition < 0 || action.offset < 0) {
    std::cerr << "agentfleet dlq: agentfleet dlq replay|discard PARTITION/OFFSET [--sender WHO] [--reason NOTE] "
                 "(PARTITION/OFFSET as `agentfleet dlq` lists it)\n";
    return 2;
  }
  action.by = by;
  if (action.by.empty()) {
    const char* user = std::getenv("USER");
    action.by = user != nullptr && *user != '\0' ? user : "operator";
  }
  action.from = "agentfleet dlq";
  if (const char* host = std::getenv("HOSTNAME"); host != nullptr && *host != '\0') {
    action.from = absl::StrCat("agentfleet dlq on ", host);
  }
  action.note = note;
  auto done = ActOnDeadLetter(config, action, options.timeout);
  if (!done.ok()) {
    std::cerr << "agentfleet dlq: " << done.status().message() << "\n";
    absl::StatusCode c = done.status().code();
    return c == absl::StatusCode::kNotFound || c == absl::StatusCode::kAlreadyExists ||
                   c == absl::StatusCode::kFailedPrecondition || c == absl::StatusCode::kAborted
               ? 1
               : 3;
  }
  if (options.json) {
    std::cout << DeadLetterActionJson(*done) << "\n";
  } else {
    std::cout << "dead letter " << where << " " << done->action
              << (done->action == "replayed" ? " to " + done->origin_topic : "") << " by " << done->by
              << " (recorded on " << Topics(config.kafka.topic_prefix).dlq_actions << ")\n";
  }
  return 0;
}

}  // namespace agentfleet
