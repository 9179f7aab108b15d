// Cost reports from the cost ledger: per UTC day and per group (any of
// tenant, workflow, agent, model), the spend, tokens, calls, tasks, cost per
// task and what the cache and batch pricing saved; the change from the day
// before, the average of the 7 days before and a flag where a day is more
// than 2σ (and at least a cent) off that average, given at least 3 days of
// history. Entries are counted once per task id (an at_least_once fleet may
// write one twice).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "agentfleet/v1/task.pb.h"

namespace agentfleet {

// The dimensions a report can group by.
inline constexpr const char* kCostDimensions[] = {"tenant", "workflow", "agent", "model"};
// How many days before `from` a report reads for its first days' trend.
inline constexpr int kTrendDays = 7;

struct CostQuery {
  absl::Time from;  // inclusive, a UTC midnight
  absl::Time to;    // exclusive
  std::vector<std::string> by;
};

// "tenant,model" -> {"tenant", "model"}; an unknown or repeated dimension is an error.
absl::StatusOr<std::vector<std::string>> ParseCostDimensions(const std::string& list);

struct CostRow {
  absl::CivilDay day;
  std::vector<std::string> key;  // the values of CostQuery::by, in its order
  double cost_usd = 0;
  int64_t input_tokens = 0, output_tokens = 0, calls = 0, tasks = 0;
  double cache_saved_usd = 0, batch_saved_usd = 0;
  std::optional<double> change;        // (spend - the day before's) / the day before's; none when that was 0
  std::optional<double> trailing_avg;  // of the kTrendDays before, given 3 or more of them
  std::optional<double> trailing_sd;
  bool anomaly = false;
  double cost_per_task() const { return tasks > 0 ? cost_usd / static_cast<double>(tasks) : 0; }
};

struct CostReport {
  CostQuery query;
  std::vector<CostRow> rows;  // by day, then by key
  CostRow total;              // over the whole range (no day, no trend)
  int64_t entries = 0;        // ledger entries in the range
  int64_t duplicates = 0;     // entries of a task already counted
};

class CostReportBuilder {
 public:
  // Entries outside [from - kTrendDays days, to) are ignored by Build.
  void Add(const v1::CostEntry& entry);
  CostReport Build(const CostQuery& query) const;

 private:
  std::vector<v1::CostEntry> entries_;
  absl::flat_hash_set<std::string> seen_;
  int64_t duplicates_ = 0;
};

std::string FormatCostText(const CostReport& report);
std::string FormatCostJson(const CostReport& report);
std::string FormatCostCsv(const CostReport& report);

}  // namespace agentfleet
