// Per-task budgets, as pure functions the TaskEngine calls before every
// dispatch. The rule: before an attempt is dispatched, its worst case (an
// upper bound of its input tokens plus its max_tokens, priced by the model)
// is reserved against the task's limits, and max_tokens is capped to what the
// budget can still pay; the reservation is replaced by the actual usage when
// the attempt's result arrives. So the spend plus everything that may still
// be spent never passes a limit, retries and late answers included.
#pragma once

#include <cstdint>
#include <string>

#include "agentfleet/v1/common.pb.h"
#include "config/config.h"

namespace agentfleet {

// A task's effective limits: the workflow's budget, tightened by the
// submission's (zero: no limit of that kind).
struct Limits {
  int64_t max_tokens = 0;
  double max_cost_usd = 0;
  int64_t max_steps = 0;
  double downgrade_at = 0.8;

  static Limits For(const BudgetConfig& workflow, const v1::Budget& submission);
};

struct Spend {
  int64_t tokens = 0;
  double cost_usd = 0;
};

// An upper bound of the input tokens of one call: every token a byte-level
// tokenizer makes covers at least one byte, so the bytes of what is sent
// (prompt templates, each placeholder at most the whole input, the output
// schema) plus a per-request allowance bound it.
int64_t InputTokenBound(const AgentConfig& agent, size_t input_json_bytes);

// The agent's tier with the lowest price (output, then input), for steps
// past the downgrade share.
std::string CheapestTier(const FleetConfig& config, const AgentConfig& agent);

struct AttemptPlan {
  bool affordable = false;
  std::string tier;
  std::string model;
  int max_tokens = 0;      // the cap sent to the worker
  // An agent with tools: the tokens every turn of its tool loop together may
  // spend (the reservation); 0 otherwise.
  int64_t max_total_tokens = 0;
  Spend reserve;           // held until the result is settled
  std::string why_not;     // when !affordable: the limit that cannot pay
};

// What one attempt of `agent` may cost and run as, given what the task has
// spent (settled) and committed (settled plus reserved). Attempts below
// kMinOutputTokens of affordable output are not worth dispatching. An agent
// with tools reserves its whole tool loop (tool_max_tokens, or what the
// budget has left), priced at the dearer of its model's input and output
// rates.
inline constexpr int kMinOutputTokens = 16;
AttemptPlan PlanAttempt(const FleetConfig& config, const AgentConfig& agent, const std::string& tier,
                        size_t input_json_bytes, const Limits& limits, const Spend& spent, const Spend& committed);

}  // namespace agentfleet
