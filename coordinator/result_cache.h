// ResultCache: the exact result cache of the agents that declare `cache`.
// Keyed by agent, model and the normalised (canonical JSON) input; a hit is
// compared on the whole input, not only its hash, and completes a step
// without a model call. Entries live for the agent's ttl and at most
// max_entries per agent are kept (the oldest go first). Inserts leave
// through TakeInserts() for the compacted cache topic; other replicas'
// come back through Apply(). Pure: time is passed in.
#pragma once

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "agentfleet/v1/state.pb.h"
#include "config/config.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

// Not thread-safe: the coordinator's loop thread drives it, through TaskEngine.
class ResultCache {
 public:
  explicit ResultCache(const FleetConfig* config) : config_(config) {}

  static std::string Key(const std::string& agent, const std::string& model, const std::string& input);

  // The fresh output cached for this call, or null; `cost_usd` (if given)
  // gets what the call that made the entry cost.
  const nlohmann::json* Find(const AgentConfig& agent, const std::string& model, const std::string& input,
                             absl::Time now, double* cost_usd = nullptr) const;
  // Caches a successful output (if the agent caches), which cost `cost_usd`
  // to make, and queues it for the topic.
  void Insert(const AgentConfig& agent, const std::string& model, const std::string& input,
              const nlohmann::json& output, absl::Time now, double cost_usd = 0);
  // An entry from the cache topic.
  void Apply(const v1::CacheEntry& entry);
  std::vector<std::pair<std::string, v1::CacheEntry>> TakeInserts();

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string input;
    nlohmann::json output;
    absl::Time expires;
    double cost_usd = 0;
  };
  void Put(const std::string& agent, const std::string& key, Entry entry);

  const FleetConfig* config_;
  absl::flat_hash_map<std::string, Entry> entries_;
  std::map<std::string, std::deque<std::string>> order_;  // per agent, oldest first
  std::vector<std::pair<std::string, v1::CacheEntry>> inserts_;
};

}  // namespace agentfleet
