// SemanticCache: the semantic result cache of the agents that declare
// `semantic_cache` (config.h, SemanticCacheConfig). An entry is the
// embedding of a call's compared text with the call's output; a later call
// in the same scope whose embedding has cosine similarity >= the agent's
// threshold with it is served its output. Exact nearest-neighbour search
// over the scope's entries (contiguous, L2-normalised vectors: one dot
// product per entry; docs/benchmarks.md has the cost per lookup). Entries
// live for the agent's ttl, at most max_entries per agent (the oldest go
// first). Inserts leave through TakeInserts() for the compacted cache topic;
// other replicas' come back through Apply(). Pure: time is passed in.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "agentfleet/v1/state.pb.h"
#include "config/config.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

// Not thread-safe: the coordinator's loop thread drives it, through TaskEngine.
class SemanticCache {
 public:
  explicit SemanticCache(const FleetConfig* config) : config_(config) {}

  // The text a call is compared on: the input's `field` (a string), or the
  // whole input as canonical JSON; nullopt when the field is missing or not
  // a string (the call is not looked up).
  static std::optional<std::string> Text(const SemanticCacheConfig& cache, const nlohmann::json& input);
  // The scope a call may be served within (a hash): agent, model, the
  // agent's template version, the embedding model, the tenant (unless the
  // cache is shared), and the input without the compared field.
  static std::string Scope(const AgentConfig& agent, const std::string& model, const std::string& tenant,
                           const nlohmann::json& input);

  // The entry's key on the cache topic ("\x1es/...": never an exact-cache
  // key, which starts with an agent name).
  static std::string Key(const std::string& agent, const std::string& model, const std::string& scope,
                         const std::string& text);

  struct Hit {
    const nlohmann::json* output;
    double similarity;
    double cost_usd;  // what the call that made the entry cost
  };
  // The most similar fresh entry of `scope` at or above the agent's
  // threshold whose output still validates against the agent's schema.
  std::optional<Hit> Find(const AgentConfig& agent, const std::string& scope, const std::vector<float>& embedding,
                          absl::Time now) const;
  // Caches a successful output under its text's embedding, and queues it
  // for the topic.
  void Insert(const AgentConfig& agent, const std::string& model, const std::string& scope, const std::string& text,
              std::vector<float> embedding, const nlohmann::json& output, absl::Time now, double cost_usd);
  // An entry from the cache topic (one with an embedding).
  void Apply(const v1::CacheEntry& entry);
  std::vector<std::pair<std::string, v1::CacheEntry>> TakeInserts();

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string agent, scope;
    nlohmann::json output;
    absl::Time expires;
    double cost_usd = 0;
  };
  // A scope's entries: keys and their vectors, row by row.
  struct Bucket {
    std::vector<std::string> keys;
    std::vector<float> vectors;
    size_t dim = 0;
  };
  void Put(const std::string& key, Entry entry, std::vector<float> embedding);
  void Remove(const std::string& key);

  const FleetConfig* config_;
  absl::flat_hash_map<std::string, Entry> entries_;
  absl::flat_hash_map<std::string, Bucket> buckets_;
  std::map<std::string, std::deque<std::string>> order_;  // per agent, oldest first
  std::vector<std::pair<std::string, v1::CacheEntry>> inserts_;
};

}  // namespace agentfleet
