#include "coordinator/result_cache.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "codec/codec.h"
#include "codec/json_value.h"

namespace agentfleet {
namespace {


// FNV-1a, 64 bit: stable across processes, so every replica computes the same key.
uint64_t Fnv(const std::string& data) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

std::string ResultCache::Key(const std::string& agent, const std::string& model, const std::string& input) {
  return absl::StrCat(agent, "/", model, "/", absl::StrFormat("%016x", Fnv(input)));
}

const nlohmann::json* ResultCache::Find(const AgentConfig& agent, const std::string& model, const std::string& input,
                                        absl::Time now, double* cost_usd) const {
  if (agent.cache_ttl <= absl::ZeroDuration()) return nullptr;
  auto it = entries_.find(Key(agent.name, model, input));
  if (it == entries_.end() || it->second.expires <= now || it->second.input != input) return nullptr;
  if (cost_usd) *cost_usd = it->second.cost_usd;
  return &it->second.output;
}

void ResultCache::Put(const std::string& agent, const std::string& key, Entry entry) {
  const AgentConfig* a = config_->FindAgent(agent);
  if (a == nullptr || a->cache_ttl <= absl::ZeroDuration()) return;
  auto existing = entries_.find(key);
  if (existing != entries_.end()) {
    if (existing->second.expires < entry.expires) existing->second = std::move(entry);
    return;
  }
  entries_.emplace(key, std::move(entry));
  std::deque<std::string>& order = order_[agent];
  order.push_back(key);
  while (order.size() > static_cast<size_t>(a->cache_max_entries)) {
    entries_.erase(order.front());
    order.pop_front();
  }
}

void ResultCache::Insert(const AgentConfig& agent, const std::string& model, const std::string& input,
                         const nlohmann::json& output, absl::Time now, double cost_usd) {
  if (agent.cache_ttl <= absl::ZeroDuration()) return;
  std::string key = Key(agent.name, model, input);
  absl::Time expires = now + agent.cache_ttl;
  Put(agent.name, key, {input, output, expires, cost_usd});
  v1::CacheEntry e;
  e.set_agent(agent.name);
  e.set_model(model);
  e.set_input(input);
  *e.mutable_output() = ToStruct(output);
  *e.mutable_expires() = ToTimestamp(expires);
  e.set_cost_usd(cost_usd);
  inserts_.emplace_back(std::move(key), std::move(e));
}

void ResultCache::Apply(const v1::CacheEntry& entry) {
  absl::Time expires = FromTimestamp(entry.expires());
  Put(entry.agent(), Key(entry.agent(), entry.model(), entry.input()),
      {entry.input(), FromStruct(entry.output()), expires, entry.cost_usd()});
}

std::vector<std::pair<std::string, v1::CacheEntry>> ResultCache::TakeInserts() {
  std::vector<std::pair<std::string, v1::CacheEntry>> out;
  out.swap(inserts_);
  return out;
}

}  // namespace agentfleet
