#include "audit/audit.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "audit/reference_run.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "coordinator/budget.h"
#include "coordinator/task_engine.h"
#include "coordinator/tenant_ledgers.h"
#include "kafka/kafka.h"
#include "kafka/topics.h"
#include "nlohmann/json.hpp"

namespace agentfleet {
namespace {

constexpr size_t kExamples = 5;

absl::StatusOr<std::vector<Message>> ReadAll(const FleetConfig& config, const std::string& topic,
                                             absl::Duration timeout) {
  Properties props = ConsumerProperties(config.kafka, "agentfleet-audit");
  auto count = PartitionCount(props, topic, timeout);
  if (!count.ok()) return count.status();
  std::vector<int32_t> partitions;
  for (int32_t p = 0; p < *count; ++p) partitions.push_back(p);
  return ReadPartitionsToEnd(props, topic, partitions, timeout);
}

}  // namespace

std::string AuditReport::Text() const {
  std::string out = absl::StrCat("submitted ", submitted, " | results ", results, " | lost ", lost,
                                 " | duplicated ", duplicated, " | unexpected ", unexpected, " | overspent ",
                                 overspent);
  if (children > 0) absl::StrAppend(&out, " | children ", children, ", over their parent's budget ", child_over_parent);
  if (verified > 0 || mismatched > 0) absl::StrAppend(&out, " | verified ", verified, ", mismatched ", mismatched);
  absl::StrAppend(&out, "\n");
  for (const auto& e : examples) absl::StrAppend(&out, "  ", e, "\n");
  absl::StrAppend(&out, clean() ? "audit: clean\n" : "audit: PROBLEMS FOUND\n");
  return out;
}

std::string AuditReport::Json() const {
  return nlohmann::json{{"submitted", submitted}, {"results", results},     {"lost", lost},
                        {"duplicated", duplicated}, {"unexpected", unexpected}, {"verified", verified},
                        {"mismatched", mismatched}, {"overspent", overspent}, {"children", children},
                        {"child_over_parent", child_over_parent}, {"clean", clean()}}
      .dump();
}

absl::StatusOr<AuditReport> Audit(const FleetConfig& config, bool verify, absl::Duration timeout) {
  Topics topics(config.kafka.topic_prefix);
  // Results first: a task submitted while the audit runs is then not "lost".
  auto result_msgs = ReadAll(config, topics.results, timeout);
  if (!result_msgs.ok()) return result_msgs.status();
  auto task_msgs = ReadAll(config, topics.tasks, timeout);
  if (!task_msgs.ok()) return task_msgs.status();

  AuditReport report;
  absl::flat_hash_map<std::string, v1::TaskSubmission> submitted;  // empty when unreadable
  for (const Message& m : *task_msgs) {
    auto s = Decode<v1::TaskSubmission>(m.payload, m.headers, SIZE_MAX);
    std::string id = s.ok() ? s->task_id() : m.key;
    if (id.empty()) continue;
    if (!submitted.contains(id)) submitted[id] = s.ok() ? *s : v1::TaskSubmission();
  }
  absl::flat_hash_map<std::string, int> result_count;
  absl::flat_hash_map<std::string, v1::TaskResult> first_result;
  for (const Message& m : *result_msgs) {
    auto r = Decode<v1::TaskResult>(m.payload, m.headers, SIZE_MAX);
    if (!r.ok()) continue;  // garbage on the results topic is not a result
    ++report.results;
    if (++result_count[r->task_id()] == 1) first_result[r->task_id()] = *r;
  }
  report.submitted = submitted.size();
  auto example = [&report](int64_t n, const std::string& what) {
    if (n <= static_cast<int64_t>(kExamples)) report.examples.push_back(what);
  };
  for (const auto& [id, sub] : submitted) {
    auto it = result_count.find(id);
    if (it == result_count.end()) {
      example(++report.lost, "lost: " + id);
    } else if (it->second > 1) {
      example(++report.duplicated, absl::StrCat("duplicated: ", id, " (", it->second, " results)"));
    }
  }
  for (const auto& [id, n] : result_count) {
    if (!submitted.contains(id)) example(++report.unexpected, "unexpected: " + id);
  }
  auto limits_of = [&](const v1::TaskSubmission& sub) -> std::optional<Limits> {
    const WorkflowConfig* wf = config.FindWorkflow(sub.workflow());
    if (wf == nullptr) return std::nullopt;
    Limits l = Limits::For(wf->budget, sub.budget());
    if (l.max_tokens == 0 && l.max_cost_usd == 0 && l.max_steps == 0) return std::nullopt;
    return l;
  };
  for (const auto& [id, result] : first_result) {
    auto sub = submitted.find(id);
    if (sub == submitted.end()) continue;
    std::optional<Limits> l = limits_of(sub->second);
    if (!l) continue;
    const v1::Usage& u = result.usage();
    if ((l->max_tokens > 0 && u.input_tokens() + u.output_tokens() > l->max_tokens) ||
        (l->max_cost_usd > 0 && u.cost_usd() > l->max_cost_usd * (1 + 1e-9))) {
      example(++report.overspent, absl::StrCat("overspent: ", id, " (", u.input_tokens() + u.output_tokens(),
                                               " tokens, $", u.cost_usd(), ")"));
    }
  }
  // A child's budget (its own limits) never exceeds its parent's limits.
  for (const auto& [id, sub] : submitted) {
    if (sub.parent_task_id().empty()) continue;
    ++report.children;
    auto parent = submitted.find(sub.parent_task_id());
    if (parent == submitted.end()) continue;
    std::optional<Limits> pl = limits_of(parent->second);
    std::optional<Limits> cl = limits_of(sub);
    if (!pl) continue;
    bool over = (pl->max_tokens > 0 && (!cl || cl->max_tokens == 0 || cl->max_tokens > pl->max_tokens)) ||
                (pl->max_cost_usd > 0 && (!cl || cl->max_cost_usd == 0 || cl->max_cost_usd > pl->max_cost_usd * (1 + 1e-9)));
    if (over) example(++report.child_over_parent, absl::StrCat("child over its parent's budget: ", id));
  }
  if (verify) {
    for (const auto& [id, result] : first_result) {
      auto sub = submitted.find(id);
      if (sub == submitted.end() || result.status() != v1::TASK_STATUS_COMPLETED) continue;
      if (limits_of(sub->second)) continue;
      std::optional<v1::TaskResult> expected = RunLocally(config, sub->second);
      if (!expected) continue;
      ++report.verified;
      if (FromValue(expected->output()) != FromValue(result.output())) {
        example(++report.mismatched, "mismatched output: " + id);
      }
    }
  }
  return report;
}

absl::StatusOr<std::vector<TenantSpending>> Tenants(const FleetConfig& config, absl::Duration timeout) {
  Topics topics(config.kafka.topic_prefix);
  auto records = ReadAll(config, topics.state, timeout);
  if (!records.ok()) return records.status();
  const std::string prefix = TenantLedgers::LedgerKey("");
  // The latest ledger per (tenant, partition).
  std::map<std::pair<std::string, int32_t>, v1::TenantLedger> latest;
  for (const Message& m : *records) {
    if (m.key.rfind(prefix, 0) != 0 || m.payload.empty()) continue;
    auto ledger = Decode<v1::TenantLedger>(m.payload, m.headers, SIZE_MAX);
    if (ledger.ok()) latest[{ledger->tenant(), m.partition}] = *ledger;
  }
  std::map<std::string, TenantSpending> by_tenant;
  absl::Time now = absl::Now();
  for (const auto& [key, ledger] : latest) {
    const TenantConfig* tc = config.FindTenant(key.first);
    if (tc == nullptr) continue;
    absl::Time start = TenantLedgers::PeriodStart(tc->period, now);
    absl::Time at = FromTimestamp(ledger.period_start());
    if (at < start) continue;  // an earlier period
    const bool fleet = key.first == kFleetLedger;
    TenantSpending& t = by_tenant[fleet ? "(fleet)" : key.first];
    t.tenant = fleet ? "(fleet spend_limit)" : key.first;
    t.period = TenantLedgers::PeriodName(tc->period);
    t.period_start = start;
    t.cost_usd += ledger.cost_usd();
    t.tokens += ledger.tokens();
    t.max_cost_usd = tc->max_cost_usd;
    t.max_tokens = tc->max_tokens;
    t.on_exhausted = fleet ? "holds non-critical agents and batch work"
                     : tc->on_exhausted == TenantConfig::OnExhausted::kHold ? "hold"
                                                                            : "reject";
    t.partitions = config.kafka.partitions;
    bool spent = (tc->max_cost_usd > 0 && ledger.cost_usd() >= tc->max_cost_usd / config.kafka.partitions) ||
                 (tc->max_tokens > 0 && ledger.tokens() >= tc->max_tokens / config.kafka.partitions);
    t.partitions_spent += spent;
  }
  std::vector<TenantSpending> out;
  for (auto& [name, t] : by_tenant) out.push_back(std::move(t));
  return out;
}

std::string TenantsText(const std::vector<TenantSpending>& tenants) {
  if (tenants.empty()) return "no tenant has spent anything this period\n";
  std::string out;
  for (const TenantSpending& t : tenants) {
    absl::StrAppend(&out, "tenant ", t.tenant, ": ", absl::StrFormat("$%.4f", t.cost_usd),
                    t.max_cost_usd > 0 ? absl::StrFormat(" of $%.4f", t.max_cost_usd) : "", ", ", t.tokens, " tokens",
                    t.max_tokens > 0 ? absl::StrCat(" of ", t.max_tokens) : "", " this ", t.period, " (",
                    t.on_exhausted, "); ", t.partitions_spent, " of ", t.partitions, " partition slices spent\n");
  }
  return out;
}

std::string TenantsJson(const std::vector<TenantSpending>& tenants) {
  nlohmann::json out = nlohmann::json::array();
  for (const TenantSpending& t : tenants) {
    out.push_back({{"tenant", t.tenant},
                   {"period", t.period},
                   {"period_start", absl::FormatTime(absl::RFC3339_sec, t.period_start, absl::UTCTimeZone())},
                   {"cost_usd", t.cost_usd},
                   {"tokens", t.tokens},
                   {"max_cost_usd", t.max_cost_usd},
                   {"max_tokens", t.max_tokens},
                   {"on_exhausted", t.on_exhausted},
                   {"partitions_spent", t.partitions_spent},
                   {"partitions", t.partitions}});
  }
  return out.dump();
}

}  // namespace agentfleet
