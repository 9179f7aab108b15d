#include "metrics/lag_monitor.h"

#include "absl/time/clock.h"
#include "common/log.h"

namespace agentfleet {

LagMonitor::LagMonitor(prometheus::Registry& registry, Properties properties, std::vector<LagTarget> targets)
    : shared_(std::make_shared<Shared>()),
      lag_(prometheus::BuildGauge()
               .Name("agentfleet_consumer_group_lag")
               .Help("Messages not yet consumed: per topic, the sum over partitions of the high watermark minus "
                     "the group's committed offset.")
               .Register(registry),
           {"group", "topic"}),
      stalled_(prometheus::BuildGauge()
                   .Name("agentfleet_consumer_group_stalled_partitions")
                   .Help("Partitions of the topic with lag whose committed offset has not moved for 5 minutes: "
                         "nobody consumes them, or a call at their head has run that long.")
                   .Register(registry),
               {"group", "topic"}),
      errors_family_(prometheus::BuildCounter()
                         .Name("agentfleet_consumer_group_lag_errors_total")
                         .Help("Lag reads that failed (broker unreachable, topic missing).")
                         .Register(registry)),
      errors_(errors_family_.Add({})) {
  shared_->properties = std::move(properties);
  shared_->targets = std::move(targets);
}

LagMonitor::~LagMonitor() {
  shared_->stop.Notify();
  if (!thread_.joinable()) return;
  if (shared_->done.WaitForNotificationWithTimeout(absl::Seconds(5))) {
    thread_.join();
  } else {
    Log(LogLevel::kWarning, "metrics", "a consumer-group lag read is stuck; not waiting for it");
    thread_.detach();  // it holds `shared_` and touches nothing else once stopped
  }
}

void LagMonitor::Refresh() {
  RefreshShared(
      *shared_, [this](const std::string& g, const std::string& t, int64_t lag, int64_t stalled) { Record(g, t, lag, stalled); },
      [this] { errors_.Increment(); });
  if (on_refreshed_ && !shared_->stop.HasBeenNotified()) on_refreshed_();
}

bool LagMonitor::Latest(const std::string& group, const std::string& topic, int64_t* lag) const {
  absl::MutexLock lock(&mu_);
  auto it = latest_.find({group, topic});
  if (it == latest_.end()) return false;
  *lag = it->second;
  return true;
}

void LagMonitor::RefreshShared(Shared& shared,
                               const std::function<void(const std::string&, const std::string&, int64_t, int64_t)>& record,
                               const std::function<void()>& failed) {
  for (const LagTarget& target : shared.targets) {
    for (const std::string& topic : target.topics) {
      if (shared.stop.HasBeenNotified()) return;  // shutting down: do not hold the process
      // One topic per read: a topic that does not exist yet must not hide the others.
      auto lag = GroupLag(shared.properties, target.group, {topic}, absl::Seconds(2));
      if (shared.stop.HasBeenNotified()) return;  // the monitor may be gone: touch nothing of it
      if (!lag.ok()) {
        failed();
        Log(LogLevel::kDebug, "metrics", "lag read failed",
            {{"group", target.group}, {"topic", topic}, {"error", lag.status().message()}});
        continue;
      }
      const TopicLag& t = lag->front();
      if (target.only_consumed && !t.consumed()) continue;
      int64_t stalled = 0;
      absl::Time now = absl::Now();
      for (const PartitionLag& p : t.partitions) stalled += shared.watch.Observe(target.group, topic, p, now);
      record(target.group, topic, t.total(), stalled);
    }
  }
}

void LagMonitor::Record(const std::string& group, const std::string& topic, int64_t lag, int64_t stalled) {
  lag_.With({group, topic}).Set(static_cast<double>(lag));
  {
    absl::MutexLock lock(&mu_);
    latest_[{group, topic}] = lag;
  }
  stalled_.With({group, topic}).Set(static_cast<double>(stalled));
}

bool ProgressWatch::Observe(const std::string& group, const std::string& topic, const PartitionLag& p,
                            absl::Time now) {
  Seen& s = seen_[{group, topic, p.partition}];
  if (p.lag <= 0 || p.committed != s.committed) {
    s = Seen{p.committed, now};
    return false;
  }
  return now - s.since >= window_;
}

void LagMonitor::Start(absl::Duration interval) {
  thread_ = std::thread([this, shared = shared_, interval] {
    do {
      Refresh();
    } while (!shared->stop.WaitForNotificationWithTimeout(interval));
    shared->done.Notify();
  });
}

}  // namespace agentfleet
