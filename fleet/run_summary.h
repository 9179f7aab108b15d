// Collecting the results of submitted tasks and summarising a run: what
// `submit --wait` and `demo` print.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agentfleet/v1/task.pb.h"
#include "config/config.h"
#include "kafka/kafka.h"
#include "kafka/topics.h"

namespace agentfleet {

struct RunSummary {
  int64_t submitted = 0;
  int64_t received = 0;  // distinct tasks with a result
  std::map<v1::TaskStatus, int64_t> by_status;
  int64_t duplicates = 0;  // results beyond the first for a task
  int64_t lost = 0;        // submitted tasks without a result at the end
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  double tasks_per_s = 0;
  int64_t input_tokens = 0, output_tokens = 0;
  double cost_usd = 0;
  double elapsed_s = 0;

  int64_t count(v1::TaskStatus s) const {
    auto it = by_status.find(s);
    return it == by_status.end() ? 0 : it->second;
  }
  std::string Text() const;
  std::string Json() const;  // one line
};

// Reads the results topic from its end at Start(), and matches results to the
// tasks registered with Expect(). Not thread-safe.
class ResultCollector {
 public:
  // `dlq_producer` receives results that fail to decode (may be null).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ResultCollector>> Start(
      const FleetConfig& config, Producer* dlq_producer);
  void Expect(const std::string& task_id, absl::Time submitted_at);
  // Reads what arrived within `timeout`; returns how many results it matched.
  size_t Poll(absl::Duration timeout);
  bool Done() const { return received_ >= expected_.size(); }
  size_t received() const { return received_; }
  size_t expected() const { return expected_.size(); }
  RunSummary Summary() const;
  // Results of expected tasks, first one per task, in arrival order.
  const std::vector<v1::TaskResult>& results() const { return results_; }

 private:
  ResultCollector(const FleetConfig& config, std::unique_ptr<Consumer> consumer, Producer* dlq);
  struct Expected {
    absl::Time submitted_at;
    int results = 0;
  };
  const FleetConfig& config_;
  Topics topics_;
  std::unique_ptr<Consumer> consumer_;
  Producer* dlq_;
  absl::flat_hash_map<std::string, Expected> expected_;
  size_t received_ = 0;
  int64_t duplicates_ = 0;
  std::vector<double> latencies_ms_;
  std::vector<v1::TaskResult> results_;
  absl::Time first_submit_ = absl::InfiniteFuture();
  absl::Time last_result_ = absl::InfinitePast();
};

// A one-line progress bar on stderr: redrawn in place on a terminal, a line
// every few seconds otherwise.
class ProgressBar {
 public:
  ProgressBar(std::string label, size_t total);
  void Update(size_t done);
  void Finish();

 private:
  std::string label_;
  size_t total_;
  bool tty_;
  absl::Time start_;
  absl::Time last_draw_ = absl::InfinitePast();
  size_t drawn_ = 0;  // `done` at the last draw
};

struct RunOutcome {
  RunSummary summary;
  std::vector<v1::TaskResult> results;  // first result per task, arrival order
};

// Produces `tasks` (stamping submitted_at, a new traceparent each) and, with
// `wait`, collects their results — progress bar on stderr — until all arrived
// or `timeout`. Without `wait` only `summary.submitted` is set.
[[nodiscard]] absl::StatusOr<RunOutcome> SubmitAndCollect(const FleetConfig& config,
                                                          std::vector<v1::TaskSubmission> tasks,
                                                          bool wait, absl::Duration timeout);

}  // namespace agentfleet
