// `agentfleet cost [--from D] [--to D] [--by tenant,workflow,agent,model]
// [--json|--csv]`: spend, tokens, tasks, cost per task and savings day by day
// from the cost ledger (the costs topic, read from the first entry at or
// after 7 days before --from, by timestamp), with the day-over-day change,
// the trailing 7-day average and a flag on days more than 2σ off it.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "config/config.h"
#include "cost/report.h"

namespace agentfleet {

// "2026-11-30" (a UTC day) or RFC 3339; `what` names the flag in errors.
absl::StatusOr<absl::Time> ParseReportTime(const std::string& text, const std::string& what);

// The query for --from/--to/--by: --to defaults to the end of today (UTC),
// --from to 30 days before --to; --to is exclusive (a day given as --to is included).
absl::StatusOr<CostQuery> CostQueryOf(const std::string& from, const std::string& to, const std::string& by,
                                      absl::Time now);

// Reads the ledger entries the query needs and builds the report.
absl::StatusOr<CostReport> ReadCostReport(const FleetConfig& config, const CostQuery& query, absl::Duration timeout);

}  // namespace agentfleet
