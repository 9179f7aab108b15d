#include "provider/action_provider.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "common/digest.h"
#include "common/error_codes.h"
#include "common/log.h"
#include "provider/http_template.h"
#include "safety/sanitize.h"

namespace agentfleet {

struct ActionProvider::Prepared {
  const ActionConfig* config = nullptr;
  std::vector<std::string> headers;  // "Name: value", secrets resolved
  SanitizePolicy policy;             // with the secrets, and the action's own host allowed
};

struct ActionCallState {
  ModelRequest request;
  std::shared_ptr<const ActionProvider::Prepared> action;
  std::function<void(ModelResponse)> done;
  absl::Time started;
  std::string url;
  std::string body;
  ModelResponse response;
};

namespace {

using Json = nlohmann::json;

void Fail(ModelResponse& r, const std::string& code, std::string message, bool retryable, int http_status = 0) {
  r.ok = false;
  r.error.code = code;
  r.error.message = std::move(message);
  r.error.retryable = retryable;
  r.error.http_status = http_status;
}

bool RetrySafeStatus(long status) {
  return status == 408 || status == 409 || status == 425 || status == 429 || status >= 500;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ActionProvider>> ActionProvider::Create(
    const FleetConfig* config, HttpClient* http, std::function<const char*(const char*)> env) {
  std::unique_ptr<ActionProvider> p(new ActionProvider(http));
  for (const auto& [name, agent] : config->agents) {
    if (!agent.action) continue;
    auto prepared = std::make_shared<Prepared>();
    prepared->config = agent.action.get();
    prepared->policy = agent.action->policy;
    for (const auto& [header, value] : agent.action->headers) prepared->headers.push_back(header + ": " + value);
    for (const auto& [header, value] : agent.action->secret_headers) {
      auto resolved = ResolveEnvRefs(value, absl::StrCat("actions.", name, ".secret_headers.", header), env);
      if (!resolved.ok()) return resolved.status();
      prepared->headers.push_back(header + ": " + *resolved);
      prepared->policy.secrets[absl::StrCat(name, ".", header)] = *resolved;
      RedactInLogs(*resolved);
      // The bare token too, without a scheme such as "Bearer ".
      if (size_t space = resolved->rfind(' '); space != std::string::npos) {
        prepared->policy.secrets[absl::StrCat(name, ".", header, ".token")] = resolved->substr(space + 1);
      }
    }
    prepared->headers.push_back("Content-Type: application/json");
    p->actions_[name] = std::move(prepared);
  }
  return p;
}

void ActionProvider::Call(ModelRequest request, std::function<void(ModelResponse)> done) {
  auto call = std::make_shared<ActionCallState>();
  call->started = absl::Now();
  call->done = std::move(done);
  auto found = actions_.find(request.agent);
  call->request = std::move(request);
  ModelResponse& r = call->response;
  r.model = "@action";
  r.action.emplace();
  ActionOutcome& o = *r.action;
  o.effect_id = call->request.effect_id;
  if (found == actions_.end()) {
    o.outcome = "refused";
    Fail(r, kInvalidWorkItem, absl::StrCat("'", call->request.agent, "' is not an action"), false);
    return Finish(call);
  }
  call->action = found->second;
  const ActionConfig& action = *found->second->config;
  o.method = action.method;
  auto [host, path] = SplitUrl(action.url);
  o.host = host;
  o.path = path;
  if (o.effect_id.empty()) {
    o.outcome = "refused";
    Fail(r, kInvalidWorkItem, "the work item carries no effect id", false);
    return Finish(call);
  }
  const Json& payload = call->request.input;
  if (action.schema) {
    if (absl::Status valid = ValidateJson(*action.schema, payload); !valid.ok()) {
      o.outcome = "refused";
      Fail(r, kActionInvalidPayload, std::string(valid.message()), false);
      return Finish(call);
    }
  }
  SanitizeResult clean = Sanitize(call->action->policy, payload);
  auto url = FillUrl(action.url, clean.payload);
  SanitizePolicy url_policy = call->action->policy;
  url_policy.allowed_hosts.push_back(action.host);
  absl::Status url_ok = url.ok() ? CheckUrl(url_policy, *url) : url.status();
  if (!url_ok.ok()) clean.violations.push_back({"url", "$url", std::string(url_ok.message())});
  if (!clean.violations.empty()) {
    o.outcome = "refused";
    std::vector<std::string> why;
    for (const Violation& v : clean.violations) {
      o.violations.push_back(absl::StrCat(v.kind, " at ", v.path, v.detail.empty() ? "" : ": ", v.detail));
      why.push_back(o.violations.back());
    }
    Fail(r, kActionPolicyViolation, absl::StrCat("the payload breaks the action's policy: ", absl::StrJoin(why, "; ")),
         false);
    return Finish(call);
  }
  call->url = *url;
  std::tie(o.host, o.path) = SplitUrl(call->url);
  if (action.method != "DELETE") call->body = clean.payload.dump();
  o.payload_sha256 = call->body.empty() ? "" : Sha256Hex(call->body);
  if (action.record_payload) {
    SanitizePolicy redact = call->action->policy;
    redact.redact_pii = true;
    o.payload = Sanitize(redact, clean.payload).payload.dump();
  }
  // A later attempt may follow one whose outcome nobody saw (a worker that
  // died, a timeout): the status endpoint says whether it was applied.
  if (action.on_unknown == ActionConfig::OnUnknown::kStatus && call->request.attempt > 1) {
    return AskStatus(call, /*then_send=*/true);
  }
  Send(call);
}

void ActionProvider::Send(std::shared_ptr<ActionCallState> call) {
  const ActionConfig& action = *call->action->config;
  HttpRequest req;
  req.url = call->url;
  req.method = action.method;
  req.body = call->body;
  req.headers = call->action->headers;
  req.headers.push_back("Idempotency-Key: " + call->request.effect_id);
  req.timeout = call->request.timeout;
  req.max_response_bytes = action.max_response_bytes;
  http_->Send(std::move(req), [this, call](HttpResponse resp) {
    ModelResponse& r = call->response;
    ActionOutcome& o = *r.action;
    o.http_status = static_cast<int>(resp.status);
    o.bytes_sent = resp.sent ? static_cast<int64_t>(call->body.size()) : 0;
    r.error.retry_after = resp.retry_after;
    if (resp.transport == HttpResponse::Transport::kOk) {
      if (resp.status >= 200 && resp.status < 300) {
        o.outcome = "applied";
        r.ok = true;
        Json body = Json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
        r.output = {{"status", resp.status}, {"body", body.is_discarded() ? Json(resp.body) : body}};
      } else if (RetrySafeStatus(resp.status)) {
        o.outcome = "failed";
        Fail(r, kActionFailed, absl::StrCat("HTTP ", resp.status, " from ", o.host, "; retried under the same effect id"),
             true, o.http_status);
      } else {
        o.outcome = "rejected";
        Fail(r, kActionRejected, absl::StrCat("HTTP ", resp.status, " from ", o.host, ": ", resp.body.substr(0, 300)),
             false, o.http_status);
      }
      return Finish(call);
    }
    if (!resp.sent) {
      o.outcome = "not_sent";
      Fail(r, kActionUnreachable, absl::StrCat("no connection to ", o.host, ": ", resp.transport_error), true);
      return Finish(call);
    }
    // Sent, no complete answer: whether the effect happened is unknown.
    o.outcome = "unknown";
    std::string why = absl::StrCat("sent to ", o.host, ", no answer: ", resp.transport_error);
    switch (call->action->config->on_unknown) {
      case ActionConfig::OnUnknown::kRetry:
        Fail(r, kOutcomeUnknown, why + "; retried under the same effect id", true);
        return Finish(call);
      case ActionConfig::OnUnknown::kStop:
        Fail(r, kOutcomeUnknown, why + "; stopped for a human (on_unknown: stop)", false);
        return Finish(call);
      case ActionConfig::OnUnknown::kStatus:
        r.error.message = why;
        return AskStatus(call, /*then_send=*/false);
    }
  });
}

void ActionProvider::AskStatus(std::shared_ptr<ActionCallState> call, bool then_send) {
  const ActionConfig& action = *call->action->config;
  HttpRequest req;
  req.url = absl::StrReplaceAll(action.status_url, {{"{effect_id}", UrlEscape(call->request.effect_id)}});
  req.method = "GET";
  req.headers = call->action->headers;
  req.timeout = std::min(call->request.timeout, absl::Seconds(30));
  req.max_response_bytes = action.max_response_bytes;
  http_->Send(std::move(req), [this, call, then_send](HttpResponse resp) {
    ModelResponse& r = call->response;
    ActionOutcome& o = *r.action;
    bool answered = resp.transport == HttpResponse::Transport::kOk;
    if (answered && resp.status >= 200 && resp.status < 300) {
      o.outcome = "confirmed";
      o.http_status = static_cast<int>(resp.status);
      r.ok = true;
      r.error = ProviderError();
      Json body = Json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
      r.output = {{"status", resp.status}, {"body", body.is_discarded() ? Json(resp.body) : body}};
      return Finish(call);
    }
    if (answered && resp.status == 404) {
      if (then_send) return Send(call);  // not applied: make it now, same key
      o.outcome = "failed";
      Fail(r, kActionFailed, r.error.message + "; the status endpoint says it was not applied: retried", true);
      return Finish(call);
    }
    std::string status_why = answered ? absl::StrCat("HTTP ", resp.status) : resp.transport_error;
    if (then_send) o.outcome = "unknown";
    Fail(r, kOutcomeUnknown,
         absl::StrCat(then_send ? "a previous attempt's outcome" : r.error.message,
                      then_send ? " is unknown" : "", "; the status endpoint did not say (", status_why, "): retried"),
         true);
    Finish(call);
  });
}

void ActionProvider::Finish(std::shared_ptr<ActionCallState> call) {
  call->response.latency = absl::Now() - call->started;
  auto done = std::move(call->done);
  done(std::move(call->response));
}

}  // namespace agentfleet
