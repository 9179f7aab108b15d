#include "coordinator/budget.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace agentfleet {
namespace {

// Message framing, role names and the like, per request.
constexpr int64_t kRequestOverheadTokens = 64;

template <typename T>
T Tighter(T a, T b) {
  if (a <= 0) return b;
  if (b <= 0) return a;
  return std::min(a, b);
}

}  // namespace

Limits Limits::For(const BudgetConfig& workflow, const v1::Budget& submission) {
  Limits l;
  l.max_tokens = Tighter(workflow.max_tokens, submission.max_tokens());
  l.max_cost_usd = Tighter(workflow.max_cost_usd, submission.max_cost_usd());
  l.max_steps = Tighter(workflow.max_steps, submission.max_steps());
  l.downgrade_at = workflow.downgrade_at;
  return l;
}

int64_t InputTokenBound(const AgentConfig& agent, size_t input_json_bytes) {
  int64_t bound = kRequestOverheadTokens;
  int placeholders = 0;
  for (const auto* t : {&agent.system_prompt, &agent.prompt}) {
    if (!*t) continue;
    bound += static_cast<int64_t>((*t)->text().size());
    placeholders += static_cast<int>((*t)->Fields().size());
  }
  if (!agent.prompt) ++placeholders;  // the input itself is the user message
  bound += static_cast<int64_t>(placeholders) * static_cast<int64_t>(input_json_bytes);
  if (agent.output_schema) bound += static_cast<int64_t>(agent.output_schema_bytes);
  return bound;
}

std::string CheapestTier(const FleetConfig& config, const AgentConfig& agent) {
  std::string best;
  ModelPrice best_price;
  for (const auto& [tier, model] : agent.models) {
    ModelPrice p = config.Price(model);
    if (best.empty() || p.output_per_mtok < best_price.output_per_mtok ||
        (p.output_per_mtok == best_price.output_per_mtok && p.input_per_mtok < best_price.input_per_mtok)) {
      best = tier;
      best_price = p;
    }
  }
  return best;
}

AttemptPlan PlanAttempt(const FleetConfig& config, const AgentConfig& agent, const std::string& tier,
                        size_t input_json_bytes, const Limits& limits, const Spend& spent, const Spend& committed) {
  AttemptPlan plan;
  plan.tier = tier;
  if (agent.action) {
    // An action spends nothing, but never runs for a task past its budget.
    plan.model = agent.models.at("default");
    plan.tier = "default";
    if ((limits.max_tokens > 0 && spent.tokens >= limits.max_tokens) ||
        (limits.max_cost_usd > 0 && spent.cost_usd >= limits.max_cost_usd)) {
      plan.why_not = absl::StrCat("the task has spent its budget; action '", agent.name, "' does not run");
      return plan;
    }
    plan.affordable = true;
    return plan;
  }
  // (The tolerance keeps 0.08 of 0.1 at 80% despite binary fractions.)
  constexpr double kTolerance = 1 - 1e-9;
  bool past_share =
      (limits.max_cost_usd > 0 && spent.cost_usd >= limits.downgrade_at * limits.max_cost_usd * kTolerance) ||
      (limits.max_tokens > 0 && spent.tokens >= limits.downgrade_at * limits.max_tokens * kTolerance);
  if (past_share) plan.tier = CheapestTier(config, agent);
  plan.model = agent.models.at(plan.tier);
  ModelPrice price = config.Price(plan.model);
  int64_t input = InputTokenBound(agent, input_json_bytes);
  int64_t cap = agent.max_tokens;
  const int64_t min_useful = std::min<int64_t>(kMinOutputTokens, agent.max_tokens);
  if (limits.max_tokens > 0) {
    cap = std::min(cap, limits.max_tokens - committed.tokens - input);
    if (cap < min_useful) {
      plan.why_not = absl::StrCat("max_tokens ", limits.max_tokens, ": ", committed.tokens,
                                  " spent or reserved, and a call of agent '", agent.name, "' needs up to ", input,
                                  " input tokens plus at least ", min_useful, " output tokens");
      return plan;
    }
  }
  if (limits.max_cost_usd > 0) {
    double left = limits.max_cost_usd - committed.cost_usd - input * price.input_per_mtok / 1e6;
    if (price.output_per_mtok > 0) {
      double affordable = std::floor(left * 1e6 / price.output_per_mtok);
      cap = static_cast<int64_t>(std::min<double>(static_cast<double>(cap), affordable));
    } else if (left < 0) {
      cap = 0;
    }
    if (cap < min_useful) {
      plan.why_not = absl::StrFormat(
          "max_cost_usd %.6g: $%.6g spent or reserved, and a call of agent '%s' on %s costs up to $%.6g for its "
          "input plus its output",
          limits.max_cost_usd, committed.cost_usd, agent.name, plan.model, input * price.input_per_mtok / 1e6);
      return plan;
    }
  }
  plan.affordable = true;
  plan.max_tokens = static_cast<int>(cap);
  plan.reserve.tokens = input + cap;
  plan.reserve.cost_usd = (input * price.input_per_mtok + cap * price.output_per_mtok) / 1e6;
  if (!agent.tools.empty()) {
    // The tool loop: several turns, each input growing with what came back.
    const double rate = std::max(price.input_per_mtok, price.output_per_mtok);
    int64_t total = std::max<int64_t>(agent.tool_max_tokens, input + cap);
    if (limits.max_tokens > 0) total = std::min(total, limits.max_tokens - committed.tokens);
    if (limits.max_cost_usd > 0 && rate > 0) {
      total = std::min<int64_t>(total, static_cast<int64_t>(std::floor((limits.max_cost_usd - committed.cost_usd) * 1e6 / rate)));
    }
    if (total > plan.reserve.tokens) {
      plan.reserve.tokens = total;
      plan.reserve.cost_usd = total * rate / 1e6;
    }  // else one turn, as checked above, is all the budget pays for
    plan.max_total_tokens = plan.reserve.tokens;
  }
  return plan;
}

}  // namespace agentfleet
