#include "cost/ledger.h"

#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "codec/codec.h"

namespace agentfleet {
namespace {

// A difference of sums of doubles: what rounding left is zero.
double Clean(double usd) { return std::fabs(usd) < 1e-12 ? 0 : usd; }

}  // namespace

v1::CostEntry CostEntryOf(const v1::TaskResult& result, const v1::Usage& children) {
  v1::CostEntry e;
  e.set_task_id(result.task_id());
  e.set_tenant(result.tenant());
  e.set_workflow(result.workflow());
  e.set_status(result.status());
  *e.mutable_finished_at() = result.finished_at();
  e.set_parent_task_id(result.parent_task_id());
  v1::Usage own = result.usage();
  own.set_input_tokens(own.input_tokens() - children.input_tokens());
  own.set_output_tokens(own.output_tokens() - children.output_tokens());
  own.set_cost_usd(Clean(own.cost_usd() - children.cost_usd()));
  own.set_calls(own.calls() - children.calls());
  *e.mutable_usage() = own;
  // In step order, so the entry is the same bytes for the same result.
  std::map<std::pair<std::string, std::string>, v1::CostLine> lines;
  std::vector<std::pair<std::string, std::string>> order;
  v1::Usage in_lines;
  for (const v1::StepSummary& s : result.steps()) {
    // No agent: a child workflow's step (the child's own entry counts it),
    // a wait or a screen (no call).
    if (s.agent().empty()) continue;
    auto key = std::make_pair(s.agent(), s.model());
    auto [it, added] = lines.try_emplace(key);
    if (added) {
      order.push_back(key);
      it->second.set_agent(s.agent());
      it->second.set_model(s.model());
    }
    AddUsage(s.usage(), it->second.mutable_usage());
    AddUsage(s.usage(), &in_lines);
    if (s.cached()) it->second.set_cache_saved_usd(it->second.cache_saved_usd() + s.saved_cost_usd());
    it->second.set_batch_saved_usd(it->second.batch_saved_usd() + s.batch_saved_usd());
  }
  for (const auto& key : order) {
    const v1::CostLine& line = lines[key];
    e.set_cache_saved_usd(e.cache_saved_usd() + line.cache_saved_usd());
    e.set_batch_saved_usd(e.batch_saved_usd() + line.batch_saved_usd());
    *e.add_lines() = line;
  }
  v1::CostLine rest;
  rest.set_agent(kUnattributedLine);
  rest.mutable_usage()->set_input_tokens(own.input_tokens() - in_lines.input_tokens());
  rest.mutable_usage()->set_output_tokens(own.output_tokens() - in_lines.output_tokens());
  rest.mutable_usage()->set_cost_usd(Clean(own.cost_usd() - in_lines.cost_usd()));
  rest.mutable_usage()->set_calls(own.calls() - in_lines.calls());
  if (rest.usage().calls() != 0 || rest.usage().cost_usd() != 0 || rest.usage().input_tokens() != 0 ||
      rest.usage().output_tokens() != 0) {
    *e.add_lines() = rest;
  }
  return e;
}

}  // namespace agentfleet
