// SimulatedProvider: a deterministic stand-in for an LLM, for development,
// tests and benchmarks (a documented feature, never a substitute for the HTTP
// providers, which are tested against a local server).
//
// - Output: generated from the agent's output schema, derived from a hash of
//   (seed, agent, model, canonical input) — the same input always gives the
//   same output, different inputs give different outputs.
// - Latency: drawn from the configured distribution, seeded per attempt.
// - Failures: a configured share of attempts fail with a retryable
//   "provider_unavailable" error, decided by a hash of (seed, idempotency key),
//   so a run is reproducible and retries can succeed.
// - Tokens: input tokens = input JSON bytes / 4, output tokens likewise; an
//   output longer than max_tokens fails with "max_tokens_exceeded".
#pragma once

#include "absl/strings/string_view.h"
#include "common/scheduler.h"
#include "config/config.h"
#include "provider/model_provider.h"

namespace agentfleet {

// Thread-safe, as every ModelProvider.
class SimulatedProvider : public ModelProvider {
 public:
  // `scheduler` delivers the responses after their latency; it must outlive this.
  SimulatedProvider(const ProviderConfig& config, Scheduler* scheduler);
  void Call(ModelRequest request, std::function<void(ModelResponse)> done) override;
  void CallAll(std::vector<Pending> calls) override;

  // The response Call() will deliver, computed synchronously (no latency wait).
  ModelResponse Respond(const ModelRequest& request) const;

 private:
  ProviderConfig config_;
  Scheduler* scheduler_;
};

// A value satisfying `schema` derived deterministically from `seed`.
nlohmann::json GenerateFromSchema(const JsonSchema* schema, uint64_t seed);
// The simulated provider's embedding of `text` (hashed word counts; see
// simulated_provider.cc): for development and benchmarks, not meaning.
std::vector<float> SimulatedEmbedding(const std::string& text);

// FNV-1a, 64 bit: stable across processes and builds (absl::Hash is not).
uint64_t StableHash(absl::string_view data, uint64_t seed = 0);

}  // namespace agentfleet
