#include "coordinator/semantic_cache.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "common/digest.h"
#include "config/json_schema.h"

namespace agentfleet {
namespace {

// Scaled to unit length (a zero vector stays zero: it matches nothing).
void Normalize(std::vector<float>* v) {
  double norm = 0;
  for (float x : *v) norm += static_cast<double>(x) * x;
  if (norm <= 0) return;
  const float scale = static_cast<float>(1.0 / std::sqrt(norm));
  for (float& x : *v) x *= scale;
}

// The dot product in eight independent sums, which the compiler turns into
// SIMD lanes (one running sum would be a chain of dependent additions,
// about 8x slower: docs/benchmarks.md, "Semantic cache").
float Dot(const float* a, const float* b, size_t n) {
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t k = 0; k < 8; ++k) lanes[k] += a[i + k] * b[i + k];
  }
  float dot = 0;
  for (; i < n; ++i) dot += a[i] * b[i];
  for (float lane : lanes) dot += lane;
  return dot;
}

}  // namespace

std::optional<std::string> SemanticCache::Text(const SemanticCacheConfig& cache, const nlohmann::json& input) {
  if (cache.field.empty()) return CanonicalJson(input);
  if (!input.is_object()) return std::nullopt;
  auto it = input.find(cache.field);
  if (it == input.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) return std::nullopt;
  return it->get<std::string>();
}

std::string SemanticCache::Scope(const AgentConfig& agent, const std::string& model, const std::string& tenant,
                                 const nlohmann::json& input) {
  const SemanticCacheConfig& cache = *agent.semantic_cache;
  nlohmann::json rest = input;
  if (!cache.field.empty() && rest.is_object()) rest.erase(cache.field);
  // Fields never hold \x1f (canonical JSON escapes control characters).
  return Sha256Hex(absl::StrCat(agent.name, "\x1f", model, "\x1f", agent.template_version, "\x1f", cache.model, "\x1f",
                                cache.shared ? std::string("\x1e*") : tenant, "\x1f",
                                cache.field.empty() ? std::string() : CanonicalJson(rest)))
      .substr(0, 32);
}

std::string SemanticCache::Key(const std::string& agent, const std::string& model, const std::string& scope,
                               const std::string& text) {
  return absl::StrCat("\x1es/", agent, "/", model, "/", Sha256Hex(absl::StrCat(scope, "\x1f", text)).substr(0, 32));
}

std::optional<SemanticCache::Hit> SemanticCache::Find(const AgentConfig& agent, const std::string& scope,
                                                      const std::vector<float>& embedding, absl::Time now) const {
  if (!agent.semantic_cache) return std::nullopt;
  auto b = buckets_.find(scope);
  if (b == buckets_.end() || b->second.dim != embedding.size() || embedding.empty()) return std::nullopt;
  std::vector<float> query = embedding;
  Normalize(&query);
  const Bucket& bucket = b->second;
  const size_t dim = bucket.dim;
  // Best first: a stale or no-longer-valid best gives way to the next.
  std::vector<std::pair<float, size_t>> candidates;
  for (size_t row = 0; row < bucket.keys.size(); ++row) {
    float dot = Dot(&bucket.vectors[row * dim], query.data(), dim);
    if (dot >= agent.semantic_cache->threshold) candidates.emplace_back(dot, row);
  }
  std::sort(candidates.begin(), candidates.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
  for (const auto& [similarity, row] : candidates) {
    const Entry& e = entries_.at(bucket.keys[row]);
    if (e.expires <= now) continue;
    if (agent.output_schema && !ValidateJson(*agent.output_schema, e.output).ok()) continue;
    return Hit{&e.output, std::min(1.0, static_cast<double>(similarity)), e.cost_usd};
  }
  return std::nullopt;
}

void SemanticCache::Remove(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  auto b = buckets_.find(it->second.scope);
  if (b != buckets_.end()) {
    Bucket& bucket = b->second;
    for (size_t row = 0; row < bucket.keys.size(); ++row) {
      if (bucket.keys[row] != key) continue;
      // The last row moves into the removed one.
      const size_t last = bucket.keys.size() - 1;
      bucket.keys[row] = std::move(bucket.keys[last]);
      std::copy_n(&bucket.vectors[last * bucket.dim], bucket.dim, &bucket.vectors[row * bucket.dim]);
      bucket.keys.pop_back();
      bucket.vectors.resize(last * bucket.dim);
      break;
    }
    if (bucket.keys.empty()) buckets_.erase(b);
  }
  entries_.erase(it);
}

void SemanticCache::Put(const std::string& key, Entry entry, std::vector<float> embedding) {
  const AgentConfig* a = config_->FindAgent(entry.agent);
  if (a == nullptr || !a->semantic_cache || embedding.empty()) return;
  if (auto existing = entries_.find(key); existing != entries_.end()) {
    if (existing->second.expires < entry.expires) {
      existing->second.output = std::move(entry.output);
      existing->second.expires = entry.expires;
      existing->second.cost_usd = entry.cost_usd;
    }
    return;
  }
  Normalize(&embedding);
  Bucket& bucket = buckets_[entry.scope];
  if (bucket.keys.empty()) bucket.dim = embedding.size();
  if (bucket.dim != embedding.size()) return;  // another embedding model's: never comparable
  bucket.keys.push_back(key);
  bucket.vectors.insert(bucket.vectors.end(), embedding.begin(), embedding.end());
  std::deque<std::string>& order = order_[entry.agent];
  entries_.emplace(key, std::move(entry));
  order.push_back(key);
  while (order.size() > static_cast<size_t>(a->semantic_cache->max_entries)) {
    Remove(order.front());
    order.pop_front();
  }
}

void SemanticCache::Insert(const AgentConfig& agent, const std::string& model, const std::string& scope,
                           const std::string& text, std::vector<float> embedding, const nlohmann::json& output,
                           absl::Time now, double cost_usd) {
  if (!agent.semantic_cache || embedding.empty()) return;
  std::string key = Key(agent.name, model, scope, text);
  absl::Time expires = now + agent.semantic_cache->ttl;
  v1::CacheEntry e;
  e.set_agent(agent.name);
  e.set_model(model);
  *e.mutable_output() = ToStruct(output);
  *e.mutable_expires() = ToTimestamp(expires);
  e.set_cost_usd(cost_usd);
  e.mutable_embedding()->Add(embedding.begin(), embedding.end());
  e.set_scope(scope);
  e.set_text(text);
  Put(key, {agent.name, scope, output, expires, cost_usd}, std::move(embedding));
  inserts_.emplace_back(std::move(key), std::move(e));
}

void SemanticCache::Apply(const v1::CacheEntry& entry) {
  Put(Key(entry.agent(), entry.model(), entry.scope(), entry.text()), {entry.agent(), entry.scope(), FromStruct(entry.output()), FromTimestamp(entry.expires()), entry.cost_usd()},
      std::vector<float>(entry.embedding().begin(), entry.embedding().end()));
}

std::vector<std::pair<std::string, v1::CacheEntry>> SemanticCache::TakeInserts() {
  std::vector<std::pair<std::string, v1::CacheEntry>> out;
  out.swap(inserts_);
  return out;
}

}  // namespace agentfleet
