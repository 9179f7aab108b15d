#include "fleet/run_summary.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "codec/codec.h"
#include "codec/trace.h"
#include "common/signals.h"
#include "kafka/dead_letter.h"
#include "nlohmann/json.hpp"

namespace agentfleet {


namespace {

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(q * (v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

}  // namespace

std::string RunSummary::Text() const {
  return absl::StrFormat(
      "submitted %d | completed %d, partial %d, budget_exhausted %d, failed %d, rejected %d | "
      "duplicates %d, lost %d\n"
      "latency p50 %.1f ms, p99 %.1f ms, max %.1f ms | %.1f tasks/s over %.2f s\n"
      "tokens %d in, %d out | cost $%.4f\n",
      submitted, count(v1::TASK_STATUS_COMPLETED), count(v1::TASK_STATUS_PARTIAL),
      count(v1::TASK_STATUS_BUDGET_EXHAUSTED), count(v1::TASK_STATUS_FAILED),
      count(v1::TASK_STATUS_REJECTED), duplicates, lost, p50_ms, p99_ms, max_ms, tasks_per_s,
      elapsed_s, input_tokens, output_tokens, cost_usd);
}

std::string RunSummary::Json() const {
  nlohmann::json j = {
      {"submitted", submitted},
      {"completed", count(v1::TASK_STATUS_COMPLETED)},
      {"partial", count(v1::TASK_STATUS_PARTIAL)},
      {"budget_exhausted", count(v1::TASK_STATUS_BUDGET_EXHAUSTED)},
      {"failed", count(v1::TASK_STATUS_FAILED)},
      {"rejected", count(v1::TASK_STATUS_REJECTED)},
      {"duplicates", duplicates},
      {"lost", lost},
      {"p50_ms", p50_ms},
      {"p99_ms", p99_ms},
      {"max_ms", max_ms},
      {"tasks_per_s", tasks_per_s},
      {"elapsed_s", elapsed_s},
      {"input_tokens", input_tokens},
      {"output_tokens", output_tokens},
      {"cost_usd", cost_usd},
  };
  return j.dump();
}

absl::StatusOr<std::unique_ptr<ResultCollector>> ResultCollector::Start(const FleetConfig& config,
                                                                        Producer* dlq_producer) {
  Topics topics(config.kafka.topic_prefix);
  Properties props = ConsumerProperties(config.kafka, "agentfleet-cli");
  auto marks = QueryWatermarks(props, topics.results, absl::Seconds(15));
  if (!marks.ok()) return marks.status();
  auto consumer = NewConsumer(props);
  if (!consumer.ok()) return consumer.status();
  std::vector<TopicPartition> assignment;
  for (size_t p = 0; p < marks->size(); ++p) {
    assignment.push_back({topics.results, static_cast<int32_t>(p), (*marks)[p].high});
  }
  absl::Status assigned = (*consumer)->Assign(assignment);
  if (!assigned.ok()) return assigned;
  return std::unique_ptr<ResultCollector>(new ResultCollector(config, std::move(*consumer), dlq_producer));
}

ResultCollector::ResultCollector(const FleetConfig& config, std::unique_ptr<Consumer> consumer, Producer* dlq)
    : config_(config), topics_(config.kafka.topic_prefix), consumer_(std::move(consumer)), dlq_(dlq) {}

void ResultCollector::Expect(const std::string& task_id, absl::Time submitted_at) {
  expected_[task_id] = Expected{submitted_at, 0};
  first_submit_ = std::min(first_submit_, submitted_at);
}

size_t ResultCollector::Poll(absl::Duration timeout) {
  size_t matched = 0;
  for (const Message& m : consumer_->Poll(timeout, 10000)) {
    auto result = Decode<v1::TaskResult>(m.payload, m.headers);
    if (!result.ok()) {
      if (dlq_) SendToDeadLetter(*dlq_, topics_.dlq, m, result.status().message(), "cli", config_.kafka.max_message_bytes).IgnoreError();
      continue;
    }
    auto it = expected_.find(result->task_id());
    if (it == expected_.end()) continue;  // another client's task
    if (++it->second.results > 1) {
      ++duplicates_;
      continue;
    }
    absl::Time now = absl::Now();
    latencies_ms_.push_back(absl::ToDoubleMilliseconds(now - it->second.submitted_at));
    last_result_ = std::max(last_result_, now);
    ++received_;
    ++matched;
    results_.push_back(std::move(*result));
  }
  return matched;
}

RunSummary ResultCollector::Summary() const {
  RunSummary s;
  s.submitted = expected_.size();
  s.received = received_;
  s.duplicates = duplicates_;
  s.lost = s.submitted - s.received;
  for (const auto& r : results_) {
    ++s.by_status[r.status()];
    s.input_tokens += r.usage().input_tokens();
    s.output_tokens += r.usage().output_tokens();
    s.cost_usd += r.usage().cost_usd();
  }
  s.p50_ms = Percentile(latencies_ms_, 0.50);
  s.p99_ms = Percentile(latencies_ms_, 0.99);
  s.max_ms = Percentile(latencies_ms_, 1.0);
  if (received_ > 0 && last_result_ > first_submit_) {
    s.elapsed_s = absl::ToDoubleSeconds(last_result_ - first_submit_);
    s.tasks_per_s = received_ / s.elapsed_s;
  }
  return s;
}

ProgressBar::ProgressBar(std::string label, size_t total)
    : label_(std::move(label)), total_(total), tty_(isatty(STDERR_FILENO) == 1), start_(absl::Now()) {}

void ProgressBar::Update(size_t done) {
  absl::Time now = absl::Now();
  bool final_draw = done >= total_ && drawn_ < total_;
  if (!final_draw && now - last_draw_ < (tty_ ? absl::Milliseconds(100) : absl::Seconds(2))) return;
  if (done == drawn_ && !final_draw && last_draw_ != absl::InfinitePast()) return;
  last_draw_ = now;
  drawn_ = done;
  double frac = total_ ? static_cast<double>(done) / total_ : 1;
  int width = 30, filled = static_cast<int>(frac * width);
  double rate = done / std::max(1e-3, absl::ToDoubleSeconds(now - start_));
  std::string bar = absl::StrCat(std::string(filled, '#'), std::string(width - filled, '-'));
  std::fprintf(stderr, "%s%s [%s] %zu/%zu %3.0f%% %.0f/s%s", tty_ ? "\r" : "", label_.c_str(),
               bar.c_str(), done, total_, frac * 100, rate, tty_ ? "" : "\n");
  std::fflush(stderr);
}

void ProgressBar::Finish() {
  if (tty_) std::fprintf(stderr, "\n");
}

absl::StatusOr<RunOutcome> SubmitAndCollect(const FleetConfig& config,
                                            std::vector<v1::TaskSubmission> tasks, bool wait,
                                            absl::Duration timeout) {
  Topics topics(config.kafka.topic_prefix);
  auto producer = NewProducer(ProducerProperties(config.kafka));
  if (!producer.ok()) return producer.status();
  if (absl::Status warm = (*producer)->Warm(topics.tasks, absl::Seconds(15)); !warm.ok()) return warm;
  std::unique_ptr<ResultCollector> collector;
  if (wait) {
    auto c = ResultCollector::Start(config, producer->get());
    if (!c.ok()) return c.status();
    collector = std::move(*c);
  }
  for (auto& t : tasks) {
    absl::Time now = absl::Now();
    *t.mutable_submitted_at() = ToTimestamp(now);
    if (collector) collector->Expect(t.task_id(), now);
    Encoded e = Encode(t, NewTraceparent());
    absl::Status s = (*producer)->Produce({topics.tasks, t.task_id(), std::move(e.payload), std::move(e.headers)});
    if (!s.ok()) return s;
    if (collector) collector->Poll(absl::ZeroDuration());
  }
  absl::Status flushed = (*producer)->Flush(absl::Seconds(30));
  if (!flushed.ok()) return flushed;
  RunOutcome outcome;
  outcome.summary.submitted = tasks.size();
  if (!collector) return outcome;
  ProgressBar bar("results", collector->expected());
  absl::Time deadline = absl::Now() + timeout;
  while (!collector->Done() && absl::Now() < deadline && !ShutdownRequested()) {
    collector->Poll(absl::Milliseconds(100));
    bar.Update(collector->received());
  }
  bar.Update(collector->received());
  bar.Finish();
  // Linger briefly so a duplicate result right behind the last one is counted.
  collector->Poll(absl::Milliseconds(500));
  outcome.summary = collector->Summary();
  outcome.results = collector->results();
  return outcome;
}


}  // namespace agentfleet
