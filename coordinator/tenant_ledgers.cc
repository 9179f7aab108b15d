// TaskEngine's tenant budgets: one ledger per tenant and task partition
// (that partition's slice of the tenant's limit for the current period),
// reservations on it, and the calls waiting for it.
#include <algorithm>
#include <string>

#include "coordinator/task_engine.h"
#include "coordinator/task_engine_internal.h"

namespace agentfleet {

using namespace task_engine_internal;

std::string TaskEngine::LedgerKey(const std::string& tenant) { return "\x1ftenant/" + tenant; }

void TaskEngine::RestoreUnreadableLedger(const std::string& tenant, int32_t partition) {
  // What was spent is unknown: count the slice as spent for this period
  // rather than as untouched, so the limit cannot be passed.
  const TenantConfig* tc = config_->FindTenant(tenant);
  if (tc == nullptr) return;
  Ledger& l = ledgers_[{tenant, partition}];
  l.period_start = PeriodStart(tc->period, clock_->Now());
  l.settled = {tc->max_tokens / config_->kafka.partitions, tc->max_cost_usd / config_->kafka.partitions};
  dirty_ledgers_.insert({tenant, partition});
}

void TaskEngine::RestoreLedger(const v1::TenantLedger& ledger, int32_t partition) {
  Ledger& l = ledgers_[{ledger.tenant(), partition}];
  l.period_start = FromProto(ledger.period_start());
  l.settled = {ledger.tokens(), ledger.cost_usd()};
}

absl::Time TaskEngine::PeriodStart(TenantConfig::Period period, absl::Time now) {
  absl::CivilSecond t = absl::ToCivilSecond(now, absl::UTCTimeZone());
  switch (period) {
    case TenantConfig::Period::kHour:
      return absl::FromCivil(absl::CivilHour(t), absl::UTCTimeZone());
    case TenantConfig::Period::kDay:
      return absl::FromCivil(absl::CivilDay(t), absl::UTCTimeZone());
    case TenantConfig::Period::kMonth:
      return absl::FromCivil(absl::CivilMonth(t), absl::UTCTimeZone());
  }
  return now;
}

absl::Time TaskEngine::PeriodEnd(TenantConfig::Period period, absl::Time now) {
  absl::CivilSecond t = absl::ToCivilSecond(now, absl::UTCTimeZone());
  switch (period) {
    case TenantConfig::Period::kHour:
      return absl::FromCivil(absl::CivilHour(t) + 1, absl::UTCTimeZone());
    case TenantConfig::Period::kDay:
      return absl::FromCivil(absl::CivilDay(t) + 1, absl::UTCTimeZone());
    case TenantConfig::Period::kMonth:
      return absl::FromCivil(absl::CivilMonth(t) + 1, absl::UTCTimeZone());
  }
  return now;
}

const char* TaskEngine::PeriodName(TenantConfig::Period period) {
  switch (period) {
    case TenantConfig::Period::kHour:
      return "hour";
    case TenantConfig::Period::kDay:
      return "day";
    case TenantConfig::Period::kMonth:
      return "month";
  }
  return "period";
}

TaskEngine::Ledger& TaskEngine::LedgerOf(const Task& task, const TenantConfig& tenant) {
  Ledger& l = ledgers_[{task.submission.tenant(), task.partition}];
  absl::Time start = PeriodStart(tenant.period, clock_->Now());
  if (l.period_start < start) {  // a new period: what was spent before no longer counts
    l.period_start = start;
    l.settled = Spend();
    dirty_ledgers_.insert({task.submission.tenant(), task.partition});
  }
  return l;
}

void TaskEngine::AddReserved(const Task& task, const Spend& spend, int sign) {
  if (config_->FindTenant(task.submission.tenant()) == nullptr) return;
  std::pair<std::string, int32_t> key{task.submission.tenant(), task.partition};
  Ledger& l = ledgers_[key];
  l.reserved.tokens += sign * spend.tokens;
  l.reserved.cost_usd += sign * spend.cost_usd;
  if (l.reserved.tokens <= 0 && l.reserved.cost_usd < 1e-12) l.reserved = Spend();  // no drift below zero
  // Released budget: the tenant's waiting calls try again at the next Tick.
  if (sign < 0 && tenant_waiters_.count(key)) tenant_wakes_.insert(key);
}

void TaskEngine::WakeTenantWaiters(Outbox* out) {
  auto wakes = std::move(tenant_wakes_);
  tenant_wakes_.clear();
  for (const auto& key : wakes) {
    auto it = tenant_waiters_.find(key);
    if (it == tenant_waiters_.end()) continue;
    auto waiters = std::move(it->second);
    tenant_waiters_.erase(it);
    for (const auto& [id, step, fan] : waiters) {
      auto task = active_.find(id);
      if (task == active_.end() || step >= task->second->steps.size() || !task->second->steps[step].ValidFan(fan)) {
        continue;
      }
      Task& t = *task->second;
      if (!t.steps[step].instances[t.steps[step].Index(fan)].waiting(Instance::Wait::kTenant)) continue;
      Dispatch(t, step, fan, out);
      if (!t.finished) Touch(t);
    }
  }
}

bool TaskEngine::Unreserve(const Task& task, const std::optional<Spend>& released) {
  if (!released) return false;
  AddReserved(task, *released, -1);
  return true;
}

bool TaskEngine::TenantExhausted(const v1::TaskSubmission& submission, int32_t partition) {
  const TenantConfig* tenant = config_->FindTenant(submission.tenant());
  if (tenant == nullptr) return false;
  auto it = ledgers_.find({submission.tenant(), partition});
  if (it == ledgers_.end() || it->second.period_start < PeriodStart(tenant->period, clock_->Now())) return false;
  // What was spent, not what is reserved: calls in flight may settle for less.
  const Ledger& l = it->second;
  double cost = l.settled.cost_usd;
  int64_t tokens = l.settled.tokens;
  return (tenant->max_cost_usd > 0 && cost >= tenant->max_cost_usd / config_->kafka.partitions) ||
         (tenant->max_tokens > 0 && tokens >= tenant->max_tokens / config_->kafka.partitions);
}

}  // namespace agentfleet
