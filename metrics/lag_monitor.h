// Consumer-group lag as a Prometheus gauge, so lag is visible (and alerted
// on) where KEDA is not installed: agentfleet_consumer_group_lag{group,topic}
// is the sum over the topic's partitions of the high watermark minus the
// group's committed offset (kafka/kafka.h GroupLag). The coordinator runs
// one for its own group and every worker pool's.
#pragma once

#include <functional>
#include <map>
#include <tuple>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "kafka/kafka.h"
#include "metrics/metrics.h"

namespace agentfleet {

struct LagTarget {
  std::string group;
  std::vector<std::string> topics;
  // Export a topic only once the group has committed on it: a worker pool
  // may serve some agents' topics and not others.
  bool only_consumed = false;
};

// Which partitions of a group make no progress: a partition whose lag is
// above zero while its committed offset has not moved for `window` is
// stalled (nobody consumes what is there, or a call at its head has run that
// long). Pure logic, fed by the lag reads. Not thread-safe.
class ProgressWatch {
 public:
  explicit ProgressWatch(absl::Duration window) : window_(window) {}
  // One read of a group's partition; returns whether it is stalled now.
  bool Observe(const std::string& group, const std::string& topic, const PartitionLag& p, absl::Time now);

 private:
  struct Seen {
    int64_t committed = -2;
    absl::Time since;
  };
  absl::Duration window_;
  std::map<std::tuple<std::string, std::string, int32_t>, Seen> seen_;
};

// Refresh() and Record() from one thread at a time: the monitor's own once
// Start()ed, else the caller's.
class LagMonitor {
 public:
  LagMonitor(prometheus::Registry& registry, Properties properties, std::vector<LagTarget> targets);
  // Stops the thread: waits for the lag read in progress for at most 5 s,
  // then leaves it behind (a read stuck inside librdkafka with the broker
  // gone must not hold the process's shutdown; it touches nothing of this
  // object once it returns).
  ~LagMonitor();

  // Reads every target's lag now and updates the gauges (what the thread
  // does every `interval`).
  void Refresh();
  // Sets the gauges of one group and topic (what Refresh() does per topic):
  // its lag and how many of its partitions make no progress (ProgressWatch,
  // over 5 minutes).
  void Record(const std::string& group, const std::string& topic, int64_t lag, int64_t stalled_partitions = 0);
  // Refreshes every `interval` on a thread of its own until destroyed.
  void Start(absl::Duration interval);
  // The lag last read of `group` on `topic`; false if none was (yet).
  bool Latest(const std::string& group, const std::string& topic, int64_t* lag) const;
  // Called after every refresh, on the refreshing thread (before Start).
  void OnRefreshed(std::function<void()> done) { on_refreshed_ = std::move(done); }

 private:
  // What the refresh thread owns with the monitor, so that a thread left
  // behind at destruction never reads freed memory.
  struct Shared {
    Properties properties;
    std::vector<LagTarget> targets;
    ProgressWatch watch{absl::Minutes(5)};
    absl::Notification stop;
    absl::Notification done;
  };
  // Reads every target's lag; records through `record` unless stopped.
  static void RefreshShared(Shared& shared,
                            const std::function<void(const std::string&, const std::string&, int64_t, int64_t)>& record,
                            const std::function<void()>& failed);
  std::shared_ptr<Shared> shared_;
  Series<prometheus::Gauge> lag_;
  Series<prometheus::Gauge> stalled_;
  prometheus::Family<prometheus::Counter>& errors_family_;
  prometheus::Counter& errors_;
  mutable absl::Mutex mu_;
  std::map<std::pair<std::string, std::string>, int64_t> latest_ ABSL_GUARDED_BY(mu_);
  std::function<void()> on_refreshed_;
  std::thread thread_;
};

}  // namespace agentfleet
