#include "coordinator/tenant_ledgers.h"

#include "codec/codec.h"

namespace agentfleet {

std::string TenantLedgers::LedgerKey(const std::string& tenant) { return "\x1ftenant/" + tenant; }

absl::Time TenantLedgers::PeriodStart(TenantConfig::Period period, absl::Time now) {
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

absl::Time TenantLedgers::PeriodEnd(TenantConfig::Period period, absl::Time now) {
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

const char* TenantLedgers::PeriodName(TenantConfig::Period period) {
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

Limits TenantLedgers::Slice(const TenantConfig& tenant) const {
  Limits slice;
  slice.max_cost_usd = tenant.max_cost_usd / config_->kafka.partitions;
  slice.max_tokens = tenant.max_tokens / config_->kafka.partitions;
  slice.downgrade_at = 2;  // the tenant's budget does not change tiers
  return slice;
}

TenantLedgers::Ledger& TenantLedgers::Current(const std::string& tenant, int32_t partition,
                                              const TenantConfig& config, absl::Time now) {
  Ledger& l = ledgers_[{tenant, partition}];
  absl::Time start = PeriodStart(config.period, now);
  if (l.period_start < start) {  // a new period: what was spent before no longer counts
    l.period_start = start;
    l.settled = Spend();
    changed_.insert({tenant, partition});
  }
  return l;
}

void TenantLedgers::Settle(const std::string& tenant, int32_t partition, const TenantConfig& config,
                           const Spend& spend, absl::Time now) {
  Ledger& l = Current(tenant, partition, config, now);
  l.settled.tokens += spend.tokens;
  l.settled.cost_usd += spend.cost_usd;
  changed_.insert({tenant, partition});
}

void TenantLedgers::Reserve(const std::string& tenant, int32_t partition, const Spend& spend, int sign) {
  if (config_->FindTenant(tenant) == nullptr) return;
  Key key{tenant, partition};
  Ledger& l = ledgers_[key];
  l.reserved.tokens += sign * spend.tokens;
  l.reserved.cost_usd += sign * spend.cost_usd;
  if (l.reserved.tokens <= 0 && l.reserved.cost_usd < 1e-12) l.reserved = Spend();  // no drift below zero
  // Released budget: the tenant's held calls try again.
  if (sign < 0 && held_.count(key)) wakes_.insert(key);
}

bool TenantLedgers::Exhausted(const std::string& tenant, int32_t partition, absl::Time now) const {
  const TenantConfig* tc = config_->FindTenant(tenant);
  if (tc == nullptr) return false;
  auto it = ledgers_.find(Key{tenant, partition});
  if (it == ledgers_.end() || it->second.period_start < PeriodStart(tc->period, now)) return false;
  const Ledger& l = it->second;
  return (tc->max_cost_usd > 0 && l.settled.cost_usd >= tc->max_cost_usd / config_->kafka.partitions) ||
         (tc->max_tokens > 0 && l.settled.tokens >= tc->max_tokens / config_->kafka.partitions);
}

void TenantLedgers::Hold(const std::string& tenant, int32_t partition, Waiter waiter) {
  held_[{tenant, partition}].insert(std::move(waiter));
}

void TenantLedgers::Wake(const std::string& tenant, int32_t partition) { wakes_.insert({tenant, partition}); }

void TenantLedgers::WakeAll() {
  for (const auto& [key, held] : held_) wakes_.insert(key);
}

std::vector<TenantLedgers::Waiter> TenantLedgers::TakeWoken() {
  std::vector<Waiter> out;
  std::set<Key> wakes;
  wakes.swap(wakes_);
  for (const Key& key : wakes) {
    auto it = held_.find(key);
    if (it == held_.end()) continue;
    out.insert(out.end(), it->second.begin(), it->second.end());
    held_.erase(it);
  }
  return out;
}

void TenantLedgers::Restore(const v1::TenantLedger& ledger, int32_t partition) {
  Ledger& l = ledgers_[{ledger.tenant(), partition}];
  l.period_start = FromTimestamp(ledger.period_start());
  l.settled = {ledger.tokens(), ledger.cost_usd()};
}

void TenantLedgers::RestoreUnreadable(const std::string& tenant, int32_t partition, absl::Time now) {
  const TenantConfig* tc = config_->FindTenant(tenant);
  if (tc == nullptr) return;
  Ledger& l = ledgers_[{tenant, partition}];
  l.period_start = PeriodStart(tc->period, now);
  l.settled = {tc->max_tokens / config_->kafka.partitions, tc->max_cost_usd / config_->kafka.partitions};
  changed_.insert({tenant, partition});
}

std::vector<std::pair<int32_t, v1::TenantLedger>> TenantLedgers::TakeChanged() {
  std::vector<std::pair<int32_t, v1::TenantLedger>> out;
  for (const Key& key : changed_) {
    auto it = ledgers_.find(key);
    if (it == ledgers_.end()) continue;
    v1::TenantLedger l;
    l.set_tenant(key.first);
    *l.mutable_period_start() = ToTimestamp(it->second.period_start);
    l.set_cost_usd(it->second.settled.cost_usd);
    l.set_tokens(it->second.settled.tokens);
    out.emplace_back(key.second, std::move(l));
  }
  changed_.clear();
  return out;
}

void TenantLedgers::DropPartitions(const std::set<int32_t>& partitions) {
  for (auto it = ledgers_.begin(); it != ledgers_.end();) {
    if (partitions.count(it->first.second)) {
      changed_.erase(it->first);
      ledgers_.erase(it++);
    } else {
      ++it;
    }
  }
  for (auto it = held_.begin(); it != held_.end();) {
    if (partitions.count(it->first.second)) {
      wakes_.erase(it->first);
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace agentfleet
