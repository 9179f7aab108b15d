// ActionProvider: runs actions (issue 19), the steps whose work is an HTTP
// request with a side effect on an external system. It sits behind the
// model-provider seam so that actions share the worker's whole pipeline
// (receipts, heartbeats, deadlines, results, dead letters); it makes no
// model call and spends no tokens.
//
// For each attempt it:
//  1. validates the payload (the step's input) against the action's schema
//     and sanitizes it (safety/sanitize.h): host allowlist, size, secrets
//     scan (the secret headers' values among them), PII redaction, markup
//     stripping. A violation refuses the attempt (non-retryable), nothing sent;
//  2. on a later attempt of an action reconciled by a status endpoint, asks
//     it first: an effect already applied is not made again;
//  3. sends the request with `Idempotency-Key: <effect id>`, the same for
//     every attempt of the step instance, so a system that honours the
//     header applies it once however often the fleet retries;
//  4. classifies the outcome: 2xx applied; 408/409/425/429/5xx failed but
//     safe to retry under the same key; other 4xx rejected; no answer after
//     the request left (timeout, reset, truncated) unknown, reconciled by the
//     action's on_unknown rule (retry under the same key, the status
//     endpoint, or stop: the non-retryable outcome_unknown).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "config/config.h"
#include "provider/http_client.h"
#include "provider/model_provider.h"

namespace agentfleet {

class ActionProvider : public ModelProvider {
 public:
  // Reads every secret header's ${ENV} references through `env` (getenv by
  // default); InvalidArgument naming the action, header and variable if one
  // is unset. `config` and `http` must outlive the provider.
  static absl::StatusOr<std::unique_ptr<ActionProvider>> Create(
      const FleetConfig* config, HttpClient* http,
      std::function<const char*(const char*)> env = nullptr);

  void Call(ModelRequest request, std::function<void(ModelResponse)> done) override;

  struct Prepared;  // one action's resolved headers and policy (internal)

 private:
  explicit ActionProvider(HttpClient* http) : http_(http) {}
  void Send(std::shared_ptr<struct ActionCallState> call);
  void AskStatus(std::shared_ptr<struct ActionCallState> call, bool then_send);
  void Finish(std::shared_ptr<struct ActionCallState> call);

  HttpClient* http_;
  std::map<std::string, std::shared_ptr<const Prepared>> actions_;  // by action name
};

}  // namespace agentfleet
