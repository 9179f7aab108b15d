// TenantLedgers: tenant budgets on one coordinator replica. A tenant's limit
// (tenants.<name> in the config) is split evenly over the task partitions;
// the replica keeps one ledger per tenant and partition it owns, holding
// that slice's spend for the current period (settled: what calls cost;
// reserved: the worst case of calls in flight), the calls held because the
// slice is spent, and which ledgers changed (for the state topic, where a
// ledger travels with its partition). Time comes from the caller.
//
// Not thread-safe: the coordinator's loop thread drives it, through TaskEngine.
#pragma once

#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "agentfleet/v1/state.pb.h"
#include "config/config.h"
#include "coordinator/budget.h"

namespace agentfleet {

class TenantLedgers {
 public:
  struct Ledger {
    absl::Time period_start = absl::InfinitePast();
    Spend settled;
    Spend reserved;
  };
  // A call held for its tenant's budget: task id, step index, fan index.
  using Waiter = std::tuple<std::string, size_t, int>;

  // `config` must outlive the ledgers.
  explicit TenantLedgers(const FleetConfig* config) : config_(config) {}

  // The state-topic key of a tenant's ledger (it cannot be a task id).
  static std::string LedgerKey(const std::string& tenant);
  // The start and end (UTC) of the period `now` is in, and its name.
  static absl::Time PeriodStart(TenantConfig::Period period, absl::Time now);
  static absl::Time PeriodEnd(TenantConfig::Period period, absl::Time now);
  static const char* PeriodName(TenantConfig::Period period);

  // The partition's slice of the tenant's limits (tiers never change for it).
  Limits Slice(const TenantConfig& tenant) const;
  // The ledger of the period `now` is in: a new period starts it over (what
  // was spent before no longer counts).
  Ledger& Current(const std::string& tenant, int32_t partition, const TenantConfig& config, absl::Time now);
  // A call's cost, settled.
  void Settle(const std::string& tenant, int32_t partition, const TenantConfig& config, const Spend& spend,
              absl::Time now);
  // Adds (sign +1) or releases (-1) a call's worst case. Releasing wakes the
  // calls held for that ledger (TakeWoken). Tenants without a budget: nothing.
  void Reserve(const std::string& tenant, int32_t partition, const Spend& spend, int sign);
  // Whether the slice is spent for the period `now` is in: settled spend
  // only, since calls in flight may settle for less than their worst case.
  bool Exhausted(const std::string& tenant, int32_t partition, absl::Time now) const;

  // Holds a call until budget is released on its ledger, or Wake().
  void Hold(const std::string& tenant, int32_t partition, Waiter waiter);
  // Marks a ledger's held calls to try again.
  void Wake(const std::string& tenant, int32_t partition);
  // Marks every ledger's held calls to try again (the limits changed).
  void WakeAll();
  bool has_woken() const { return !wakes_.empty(); }
  // The held calls of every woken ledger, no longer held.
  std::vector<Waiter> TakeWoken();

  // A ledger read back from the state topic.
  void Restore(const v1::TenantLedger& ledger, int32_t partition);
  // A ledger record that could not be decoded: what was spent is unknown, so
  // the slice counts as spent for the current period rather than untouched.
  void RestoreUnreadable(const std::string& tenant, int32_t partition, absl::Time now);
  // The ledgers changed since the last call, as state-topic records.
  std::vector<std::pair<int32_t, v1::TenantLedger>> TakeChanged();
  // Forgets the ledgers and held calls of these partitions.
  void DropPartitions(const std::set<int32_t>& partitions);

 private:
  using Key = std::pair<std::string, int32_t>;  // tenant, partition
  const FleetConfig* config_;
  absl::flat_hash_map<Key, Ledger> ledgers_;
  absl::flat_hash_set<Key> changed_;
  std::map<Key, std::set<Waiter>> held_;
  std::set<Key> wakes_;
};

}  // namespace agentfleet
