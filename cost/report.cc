#include "cost/report.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "codec/codec.h"
#include "nlohmann/json.hpp"

namespace agentfleet {
namespace {

using Json = nlohmann::json;
using Key = std::vector<std::string>;

absl::CivilDay DayOf(absl::Time t) { return absl::ToCivilDay(t, absl::UTCTimeZone()); }

struct Sums {
  double cost_usd = 0, cache_saved_usd = 0, batch_saved_usd = 0;
  int64_t input_tokens = 0, output_tokens = 0, calls = 0, tasks = 0;
  void Add(const v1::Usage& u, double cache, double batch) {
    cost_usd += u.cost_usd();
    input_tokens += u.input_tokens();
    output_tokens += u.output_tokens();
    calls += u.calls();
    cache_saved_usd += cache;
    batch_saved_usd += batch;
  }
  void Fill(CostRow* row) const {
    row->cost_usd = cost_usd;
    row->input_tokens = input_tokens;
    row->output_tokens = output_tokens;
    row->calls = calls;
    row->tasks = tasks;
    row->cache_saved_usd = cache_saved_usd;
    row->batch_saved_usd = batch_saved_usd;
  }
};

std::string Value(const v1::CostEntry& e, const v1::CostLine* line, const std::string& dimension) {
  if (dimension == "tenant") return e.tenant().empty() ? "(none)" : e.tenant();
  if (dimension == "workflow") return e.workflow();
  if (dimension == "agent") return line ? line->agent() : "";
  return line ? (line->model().empty() ? "(none)" : line->model()) : "";
}

bool ByLine(const std::vector<std::string>& by) {
  return std::find(by.begin(), by.end(), "agent") != by.end() || std::find(by.begin(), by.end(), "model") != by.end();
}

std::string Usd(double usd) { return absl::StrFormat("%.4f", usd); }

std::string Percent(const std::optional<double>& change) {
  return change ? absl::StrFormat("%+.1f%%", 100 * *change) : "-";
}

Json RowJson(const CostReport& report, const CostRow& r, bool with_day) {
  Json j = Json::object();
  if (with_day) j["day"] = absl::FormatCivilTime(r.day);
  if (!report.query.by.empty()) {
    Json key = Json::object();
    for (size_t i = 0; i < report.query.by.size(); ++i) key[report.query.by[i]] = r.key.size() > i ? r.key[i] : "";
    j["key"] = key;
  }
  j["cost_usd"] = r.cost_usd;
  j["input_tokens"] = r.input_tokens;
  j["output_tokens"] = r.output_tokens;
  j["calls"] = r.calls;
  j["tasks"] = r.tasks;
  j["cost_per_task_usd"] = r.cost_per_task();
  j["cache_saved_usd"] = r.cache_saved_usd;
  j["batch_saved_usd"] = r.batch_saved_usd;
  if (with_day) {
    j["change"] = r.change ? Json(*r.change) : Json();
    j["trailing_avg_usd"] = r.trailing_avg ? Json(*r.trailing_avg) : Json();
    j["trailing_sd_usd"] = r.trailing_sd ? Json(*r.trailing_sd) : Json();
    j["anomaly"] = r.anomaly;
  }
  return j;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseCostDimensions(const std::string& list) {
  std::vector<std::string> by;
  for (absl::string_view d : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    std::string name(absl::StripAsciiWhitespace(d));
    bool known = std::find_if(std::begin(kCostDimensions), std::end(kCostDimensions),
                              [&](const char* k) { return name == k; }) != std::end(kCostDimensions);
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("--by: unknown dimension '", name, "' (one or more of tenant, workflow, agent, model)"));
    }
    if (std::find(by.begin(), by.end(), name) != by.end()) {
      return absl::InvalidArgumentError(absl::StrCat("--by: '", name, "' given twice"));
    }
    by.push_back(std::move(name));
  }
  return by;
}

void CostReportBuilder::Add(const v1::CostEntry& entry) {
  if (!seen_.insert(entry.task_id()).second) {
    ++duplicates_;
    return;
  }
  entries_.push_back(entry);
}

CostReport CostReportBuilder::Build(const CostQuery& query) const {
  CostReport report;
  report.query = query;
  report.duplicates = duplicates_;
  const absl::CivilDay first = DayOf(query.from);
  const absl::CivilDay last = DayOf(query.to - absl::Nanoseconds(1));
  const absl::CivilDay history = first - kTrendDays;
  const bool by_line = ByLine(query.by);
  std::map<Key, std::map<absl::CivilDay, Sums>> groups;
  Sums total;
  for (const v1::CostEntry& e : entries_) {
    absl::Time at = FromTimestamp(e.finished_at());
    if (at >= query.to) continue;
    absl::CivilDay day = DayOf(at);
    if (day < history) continue;
    const bool in_range = at >= query.from;
    report.entries += in_range;
    if (in_range) {
      ++total.tasks;
      total.Add(e.usage(), e.cache_saved_usd(), e.batch_saved_usd());
    }
    if (!by_line) {
      Key key;
      for (const std::string& d : query.by) key.push_back(Value(e, nullptr, d));
      Sums& s = groups[key][day];
      ++s.tasks;
      s.Add(e.usage(), e.cache_saved_usd(), e.batch_saved_usd());
      continue;
    }
    // By agent or model: each line goes to its group; a task counts once in each group it has a line in.
    std::set<Key> counted;
    for (const v1::CostLine& line : e.lines()) {
      Key key;
      for (const std::string& d : query.by) key.push_back(Value(e, &line, d));
      Sums& s = groups[key][day];
      if (counted.insert(key).second) ++s.tasks;
      s.Add(line.usage(), line.cache_saved_usd(), line.batch_saved_usd());
    }
  }
  total.Fill(&report.total);
  if (query.by.empty() && groups.empty()) groups[Key()];  // an empty range still has its days
  // Every group gets every day of the range (a day without spend is a 0),
  // and its trend from the days before.
  std::map<absl::CivilDay, std::vector<CostRow>> by_day;
  for (const auto& [key, days] : groups) {
    std::vector<double> spend;  // history then range, one per day
    for (absl::CivilDay d = history; d <= last; ++d) {
      auto it = days.find(d);
      spend.push_back(it == days.end() ? 0 : it->second.cost_usd);
    }
    for (absl::CivilDay d = first; d <= last; ++d) {
      const size_t i = static_cast<size_t>(d - history);
      CostRow row;
      row.day = d;
      row.key = key;
      if (auto it = days.find(d); it != days.end()) it->second.Fill(&row);
      const double before = spend[i - 1];
      if (before > 0) row.change = (spend[i] - before) / before;
      // The trailing window: the kTrendDays before, from the group's first
      // day with spend on (days before a tenant existed are not zeros).
      size_t start = i - kTrendDays;
      while (start < i && spend[start] == 0 && days.find(history + static_cast<int64_t>(start)) == days.end()) ++start;
      const size_t n = i - start;
      if (n >= 3) {
        double mean = 0;
        for (size_t k = start; k < i; ++k) mean += spend[k];
        mean /= static_cast<double>(n);
        double var = 0;
        for (size_t k = start; k < i; ++k) var += (spend[k] - mean) * (spend[k] - mean);
        const double sd = std::sqrt(var / static_cast<double>(n));
        row.trailing_avg = mean;
        row.trailing_sd = sd;
        const double off = std::fabs(spend[i] - mean);
        row.anomaly = off > 2 * sd && off >= 0.01;
      }
      by_day[d].push_back(std::move(row));
    }
  }
  for (auto& [day, rows] : by_day) {
    for (CostRow& r : rows) report.rows.push_back(std::move(r));
  }
  return report;
}

std::string FormatCostText(const CostReport& report) {
  const auto& by = report.query.by;
  std::vector<std::string> header = {"day"};
  header.insert(header.end(), by.begin(), by.end());
  for (const char* h : {"spend_usd", "vs_day_before", "avg_7d_usd", "tasks", "usd_per_task", "input_tok", "output_tok",
                        "cache_saved_usd", "batch_saved_usd", ""}) {
    header.push_back(h);
  }
  std::vector<std::vector<std::string>> table = {header};
  for (const CostRow& r : report.rows) {
    std::vector<std::string> cells = {absl::FormatCivilTime(r.day)};
    cells.insert(cells.end(), r.key.begin(), r.key.end());
    std::string flag;
    if (r.anomaly) {
      flag = r.trailing_sd && *r.trailing_sd > 0
                 ? absl::StrFormat("ANOMALY (%+.1fσ)", (r.cost_usd - *r.trailing_avg) / *r.trailing_sd)
                 : "ANOMALY";
    }
    for (std::string c : {Usd(r.cost_usd), Percent(r.change), r.trailing_avg ? Usd(*r.trailing_avg) : "-",
                          absl::StrCat(r.tasks), absl::StrFormat("%.4f", r.cost_per_task()), absl::StrCat(r.input_tokens),
                          absl::StrCat(r.output_tokens), Usd(r.cache_saved_usd), Usd(r.batch_saved_usd), flag}) {
      cells.push_back(std::move(c));
    }
    table.push_back(std::move(cells));
  }
  std::vector<size_t> width(header.size(), 0);
  for (const auto& row : table) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : table) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      if (i > 0) line += "  ";
      line += i <= by.size() ? absl::StrFormat("%-*s", width[i], row[i]) : absl::StrFormat("%*s", width[i], row[i]);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  const CostRow& t = report.total;
  absl::StrAppend(&out, "total ", absl::FormatTime("%Y-%m-%d", report.query.from, absl::UTCTimeZone()), " .. ",
                  absl::FormatTime("%Y-%m-%d", report.query.to - absl::Nanoseconds(1), absl::UTCTimeZone()), ": $",
                  Usd(t.cost_usd), " over ", t.tasks, " tasks ($", absl::StrFormat("%.4f", t.cost_per_task()),
                  " per task), ", t.input_tokens, " input and ", t.output_tokens, " output tokens, ", t.calls,
                  " calls; cache saved $", Usd(t.cache_saved_usd), ", batch saved $", Usd(t.batch_saved_usd), "\n");
  int anomalies = 0;
  for (const CostRow& r : report.rows) anomalies += r.anomaly;
  if (anomalies > 0) absl::StrAppend(&out, anomalies, " day(s) more than 2σ off their trailing 7-day average\n");
  if (report.duplicates > 0) absl::StrAppend(&out, report.duplicates, " duplicate ledger entries counted once\n");
  return out;
}

std::string FormatCostJson(const CostReport& report) {
  Json j;
  j["from"] = absl::FormatTime(absl::RFC3339_sec, report.query.from, absl::UTCTimeZone());
  j["to"] = absl::FormatTime(absl::RFC3339_sec, report.query.to, absl::UTCTimeZone());
  j["by"] = report.query.by;
  Json rows = Json::array();
  for (const CostRow& r : report.rows) rows.push_back(RowJson(report, r, true));
  j["rows"] = std::move(rows);
  j["total"] = RowJson(report, report.total, false);
  j["entries"] = report.entries;
  j["duplicates"] = report.duplicates;
  return j.dump(2) + "\n";
}

std::string FormatCostCsv(const CostReport& report) {
  std::vector<std::string> header = {"day"};
  header.insert(header.end(), report.query.by.begin(), report.query.by.end());
  for (const char* h : {"cost_usd", "input_tokens", "output_tokens", "calls", "tasks", "cost_per_task_usd",
                        "cache_saved_usd", "batch_saved_usd", "change", "trailing_avg_usd", "anomaly"}) {
    header.push_back(h);
  }
  std::string out = absl::StrJoin(header, ",") + "\n";
  auto quote = [](const std::string& v) {
    if (v.find_first_of(",\"\n") == std::string::npos) return v;
    std::string q = "\"";
    for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  for (const CostRow& r : report.rows) {
    std::vector<std::string> cells = {absl::FormatCivilTime(r.day)};
    for (const std::string& k : r.key) cells.push_back(quote(k));
    for (std::string c :
         {absl::StrFormat("%.6f", r.cost_usd), absl::StrCat(r.input_tokens), absl::StrCat(r.output_tokens),
          absl::StrCat(r.calls), absl::StrCat(r.tasks), absl::StrFormat("%.6f", r.cost_per_task()),
          absl::StrFormat("%.6f", r.cache_saved_usd), absl::StrFormat("%.6f", r.batch_saved_usd),
          r.change ? absl::StrFormat("%.4f", *r.change) : std::string(),
          r.trailing_avg ? absl::StrFormat("%.6f", *r.trailing_avg) : std::string(),
          std::string(r.anomaly ? "true" : "false")}) {
      cells.push_back(std::move(c));
    }
    out += absl::StrJoin(cells, ",") + "\n";
  }
  return out;
}

}  // namespace agentfleet
