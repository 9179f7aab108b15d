// The stable error classes carried in v1.Error.code. Users alert and filter on
// them, so they never change meaning; docs/protocol.md lists them.
#pragma once

namespace agentfleet {

// The member of an agent's output that carries a signal instead of an
// output: {"_signal": {"type": "needs_info", "question": "..."}} or
// {"_signal": {"type": "rescope", "reason": "..."}}.
inline constexpr char kAgentSignalField[] = "_signal";

// Retryable: the same attempt may succeed later.
inline constexpr char kTimeout[] = "timeout";                         // the call took too long
inline constexpr char kRateLimited[] = "rate_limited";                // HTTP 429
inline constexpr char kProviderUnavailable[] = "provider_unavailable";  // HTTP 5xx, 529
inline constexpr char kConnectionFailed[] = "connection_failed";      // refused, reset, DNS
inline constexpr char kTruncatedResponse[] = "truncated_response";    // body shorter than announced
inline constexpr char kInvalidResponse[] = "invalid_response";        // not JSON, or not the wire format
inline constexpr char kSchemaViolation[] = "schema_violation";        // output fails the agent's schema
inline constexpr char kWorkerShutdown[] = "worker_shutdown";          // the worker stopped before finishing
// An agent signal ({"_signal": ...}) the step does not allow, or malformed.
inline constexpr char kInvalidSignal[] = "invalid_signal";

// Not retryable: trying again gives the same answer.
inline constexpr char kProviderRejected[] = "provider_rejected";      // HTTP 4xx other than 429
inline constexpr char kMaxTokensExceeded[] = "max_tokens_exceeded";   // output cut at max_tokens
inline constexpr char kInvalidInput[] = "invalid_input";              // the item cannot make a prompt
inline constexpr char kInvalidWorkItem[] = "invalid_work_item";       // unknown agent or tier
inline constexpr char kInvalidCondition[] = "invalid_condition";      // a step's when: on a value not true or false
// The task was cancelled (agentfleet cancel, a TaskSignal with cancel set);
// the message is the reason given.
inline constexpr char kCancelled[] = "cancelled";
// A wait step with on_timeout: fail got no signal within its timeout.
inline constexpr char kWaitTimeout[] = "wait_timeout";
// An instance asked more needs_info questions than max_questions allows.
inline constexpr char kNeedsInfoExhausted[] = "needs_info_exhausted";
// The agent asked to answer a needs_info question could not (its attempts ran out).
inline constexpr char kNeedsInfoFailed[] = "needs_info_failed";
// An agent asked for a rescope after the workflow's max_replans re-plans.
inline constexpr char kReplansExhausted[] = "replans_exhausted";
// A work item, result or task state that would exceed kafka.max_message_bytes:
// never produced; the attempt or the task fails with this code instead.
inline constexpr char kMessageTooLarge[] = "message_too_large";

// An agent's tool loop (issue 19). Not retryable: the same model would loop again.
inline constexpr char kToolTurnsExceeded[] = "tool_turns_exceeded";    // still calling tools after max_tool_turns
inline constexpr char kToolBudgetExceeded[] = "tool_budget_exceeded";  // the next turn could pass the attempt's tokens

// An output that contains its call's canary: the model followed instructions
// from untrusted text (issue 19). Not retryable: the same input would do it again.
inline constexpr char kPromptInjection[] = "prompt_injection";

// Actions (issue 19). Retryable, always under the same effect id:
inline constexpr char kActionFailed[] = "action_failed";            // HTTP 408/409/425/429/5xx
inline constexpr char kActionUnreachable[] = "action_unreachable";  // no connection: nothing was sent
// Sent, and no answer (a timeout, a reset, a worker that died): retryable
// under on_unknown: retry or status; with on_unknown: stop it is not, and the
// task stops for a human.
inline constexpr char kOutcomeUnknown[] = "outcome_unknown";
// Not retryable: nothing was sent.
inline constexpr char kActionInvalidPayload[] = "action_invalid_payload";    // fails the action's schema
inline constexpr char kActionPolicyViolation[] = "action_policy_violation";  // host, secret, size, depth
inline constexpr char kActionRejected[] = "action_rejected";                  // HTTP 4xx (other than the above)

}  // namespace agentfleet
