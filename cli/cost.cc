#include "cli/cost.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "agentfleet/v1/task.pb.h"
#include "codec/codec.h"
#include "common/log.h"
#include "kafka/kafka.h"
#include "kafka/topics.h"

namespace agentfleet {
namespace {
constexpr char kComponent[] = "cli";
}  // namespace

absl::StatusOr<absl::Time> ParseReportTime(const std::string& text, const std::string& what) {
  absl::CivilDay day;
  if (absl::ParseCivilTime(text, &day)) return absl::FromCivil(day, absl::UTCTimeZone());
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return t;
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": '", text, "' is neither a day (2026-11-30) nor an RFC 3339 time (2026-11-30T12:00:00Z)"));
}

absl::StatusOr<CostQuery> CostQueryOf(const std::string& from, const std::string& to, const std::string& by,
                                      absl::Time now) {
  CostQuery q;
  auto dims = ParseCostDimensions(by);
  if (!dims.ok()) return dims.status();
  q.by = *dims;
  const absl::TimeZone utc = absl::UTCTimeZone();
  if (to.empty()) {
    q.to = absl::FromCivil(absl::ToCivilDay(now, utc) + 1, utc);
  } else {
    auto t = ParseReportTime(to, "--to");
    if (!t.ok()) return t.status();
    absl::CivilDay day;
    // A day names the whole day.
    q.to = absl::ParseCivilTime(to, &day) ? absl::FromCivil(day + 1, utc) : *t;
  }
  if (from.empty()) {
    q.from = absl::FromCivil(absl::ToCivilDay(q.to - absl::Nanoseconds(1), utc) - 29, utc);
  } else {
    auto f = ParseReportTime(from, "--from");
    if (!f.ok()) return f.status();
    q.from = absl::FromCivil(absl::ToCivilDay(*f, utc), utc);  // whole days
  }
  if (q.from >= q.to) return absl::InvalidArgumentError("--from must be before --to");
  return q;
}

absl::StatusOr<CostReport> ReadCostReport(const FleetConfig& config, const CostQuery& query, absl::Duration timeout) {
  Topics topics(config.kafka.topic_prefix);
  Properties props = ConsumerProperties(config.kafka, "agentfleet-cost");
  auto count = PartitionCount(props, topics.costs, timeout);
  if (!count.ok()) {
    return absl::Status(count.status().code(), absl::StrCat(topics.costs, ": ", count.status().message()));
  }
  std::vector<int32_t> partitions;
  for (int32_t p = 0; p < *count; ++p) partitions.push_back(p);
  // The trend of the first days reads the days before them.
  absl::Time since = query.from - absl::Hours(24 * kTrendDays);
  auto messages = ReadPartitionsSince(props, topics.costs, partitions, since, timeout);
  if (!messages.ok()) return messages.status();
  CostReportBuilder builder;
  int unreadable = 0;
  for (const Message& m : *messages) {
    auto entry = Decode<v1::CostEntry>(m.payload, m.headers);
    if (!entry.ok()) {
      ++unreadable;
      continue;
    }
    builder.Add(*entry);
  }
  if (unreadable > 0) {
    Log(LogLevel::kWarning, kComponent, "unreadable cost ledger entries skipped",
        {{"topic", topics.costs}, {"count", absl::StrCat(unreadable)}});
  }
  return builder.Build(query);
}

}  // namespace agentfleet
