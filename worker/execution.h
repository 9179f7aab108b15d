// What a worker does with one work item, as pure functions: the model request
// it makes, and the result event it reports (output validated against the
// agent's schema first, so garbage never leaves the worker).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "agentfleet/v1/work.pb.h"
#include "codec/codec.h"  // MakeFailure
#include "config/config.h"
#include "provider/model_provider.h"

namespace agentfleet {

// The request for `item`, with its prompts rendered. FailedPrecondition if
// the worker cannot run it (unknown agent or model tier: the item is
// misrouted); InvalidArgument if the input cannot fill the agent's prompts.
// Both are non-retryable errors for the item.
//
// Prompt-injection containment (issue 19), for an agent (not an action)
// whose item carries untrusted fields or that has tools: a random boundary
// per call (`untrusted_nonce`) delimits each untrusted field where the user
// prompt (or the input sent as JSON) shows it, the system prompt gets a
// notice saying so and a random `canary`, and a system prompt that would
// read an untrusted field is InvalidArgument.
[[nodiscard]] absl::StatusOr<ModelRequest> MakeRequest(const FleetConfig& config,
                                                       const v1::WorkItem& item);

// What the coordinator added to an input for agent signals, as text for a
// user prompt (which otherwise reads only the fields it names): the answers
// to the agent's questions (`_info`) and the reasons to plan again
// (`_rescope`). Empty when there are none.
std::string SignalContext(const nlohmann::json& input);

// A receipt event for `item`.
v1::WorkEvent MakeReceipt(const v1::WorkItem& item, const std::string& worker, absl::Time at);

// The result event for `item` given the provider's response. An OK response
// whose output fails the agent's schema becomes a retryable
// "schema_violation" error; an output with a "_signal" member is an agent
// signal, passed on unchecked (the coordinator checks it against the step).
// Cost comes from the pricing table.
//
// `canary` is the call's (ModelRequest::canary): an output holding it is the
// non-retryable prompt_injection — the model followed instructions it read.
v1::WorkEvent MakeResult(const FleetConfig& config, const v1::WorkItem& item,
                         const ModelResponse& response, const std::string& worker, absl::Time at,
                         const std::string& canary = "");


// A heartbeat event for `item`.
v1::WorkEvent MakeHeartbeat(const v1::WorkItem& item, const std::string& worker, absl::Time at);

// The events partition the item's events go to (-1: by key).
inline int32_t EventPartition(const v1::WorkItem& item) {
  return item.has_event_partition() ? item.event_partition() : -1;
}

}  // namespace agentfleet
