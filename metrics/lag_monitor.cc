#include "metrics/lag_monitor.h"

#include "common/log.h"

namespace agentfleet {

LagMonitor::LagMonitor(prometheus::Registry& registry, Properties properties, std::vector<LagTarget> targets)
    : properties_(std::move(properties)),
      targets_(std::move(targets)),
      lag_(prometheus::BuildGauge()
               .Name("agentfleet_consumer_group_lag")
               .Help("Messages not yet consumed: per topic, the sum over partitions of the high watermark minus "
                     "the group's committed offset.")
               .Register(registry),
           {"group", "topic"}),
      errors_family_(prometheus::BuildCounter()
                         .Name("agentfleet_consumer_group_lag_errors_total")
                         .Help("Lag reads that failed (broker unreachable, topic missing).")
                         .Register(registry)),
      errors_(errors_family_.Add({})) {}

LagMonitor::~LagMonitor() {
  if (thread_.joinable()) {
    stop_.Notify();
    thread_.join();
  }
}

void LagMonitor::Refresh() {
  for (const LagTarget& target : targets_) {
    for (const std::string& topic : target.topics) {
      if (stop_.HasBeenNotified()) return;  // shutting down: do not hold the process
      // One topic per read: a topic that does not exist yet must not hide the others.
      auto lag = GroupLag(properties_, target.group, {topic}, absl::Seconds(2));
      if (!lag.ok()) {
        errors_.Increment();
        Log(LogLevel::kDebug, "metrics", "lag read failed",
            {{"group", target.group}, {"topic", topic}, {"error", lag.status().message()}});
        continue;
      }
      const TopicLag& t = lag->front();
      if (target.only_consumed && !t.consumed()) continue;
      Record(target.group, topic, t.total());
    }
  }
}

void LagMonitor::Record(const std::string& group, const std::string& topic, int64_t lag) {
  lag_.With({group, topic}).Set(static_cast<double>(lag));
}

void LagMonitor::Start(absl::Duration interval) {
  thread_ = std::thread([this, interval] {
    do {
      Refresh();
    } while (!stop_.WaitForNotificationWithTimeout(interval));
  });
}

}  // namespace agentfleet
