#include "kafka/stall_watch.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace agentfleet {

int StallWatch::Check(Consumer& consumer, absl::Time now, bool had_room, const char* component) {
  if (!had_room) {
    // Not fetching on purpose: nothing counts as stalled until room returns.
    for (auto& [key, w] : watch_) w.since = now;
    return 0;
  }
  if (now < next_check_) return 0;
  next_check_ = now + std::max(stall_after_ / 3, absl::Milliseconds(10));
  std::map<std::pair<std::string, int32_t>, Watch> seen;
  // Broker round trips per check, for partitions that look caught up.
  constexpr int kMaxEndQueries = 16;
  int queries = 0, restarted = 0;
  for (const Consumer::PartitionProgress& p : consumer.Progress(absl::Seconds(1))) {
    auto key = std::make_pair(p.topic, p.partition);
    Watch w = watch_.count(key) ? watch_[key] : Watch{p.position, now};
    if (p.position != w.position) {  // moving
      seen[key] = Watch{p.position, now};
      continue;
    }
    // Where fetching should go on from: what was consumed, else the commit.
    int64_t next = p.position >= 0 ? p.position : p.committed;
    bool behind = p.high < 0 || (next >= 0 && p.high > next);
    if (now - w.since < stall_after_) {
      seen[key] = w;
      continue;
    }
    if (!behind && queries < kMaxEndQueries) {
      // The high watermark Progress() knows comes from fetch responses: a
      // fetcher that stopped after a fetch leaves it where it was, looking
      // caught up (seen on Kafka 3.7.2: items sat unfetched for minutes).
      // Ask the broker, once per stall_after for a still partition.
      ++queries;
      auto end = consumer.QueryEnd(p.topic, p.partition, absl::Seconds(1));
      behind = end.ok() && (next >= 0 ? *end > next : *end > 0);
    }
    if (!behind) {
      seen[key] = Watch{p.position, now};  // quiet: nothing to fetch
      continue;
    }
    ++restarted;
    absl::Status s = consumer.RestartFetch(p.topic, p.partition, absl::Seconds(1));
    Log(LogLevel::kWarning, component, "partition assigned but not fetching; restarting its fetch",
        {{"topic", p.topic}, {"partition", absl::StrCat(p.partition)}, {"position", absl::StrCat(p.position)},
         {"committed", absl::StrCat(p.committed)}, {"high_watermark", absl::StrCat(p.high)},
         {"stalled_ms", absl::StrCat(absl::ToInt64Milliseconds(now - w.since))},
         {"result", s.ok() ? "ok" : std::string(s.message())}});
    w.since = now;
    seen[key] = w;
  }
  watch_ = std::move(seen);  // partitions no longer assigned are forgotten
  return restarted;
}

}  // namespace agentfleet
