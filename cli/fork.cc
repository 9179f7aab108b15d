#include "cli/fork.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "audit/replay.h"
#include "codec/codec.h"
#include "codec/json_value.h"

namespace agentfleet {
namespace {

std::string Label(const std::string& step, int fan) {
  return fan < 0 ? step : absl::StrCat(step, "[", fan, "]");
}

// Whether `reported` (what the provider said it ran) is `configured`, or a
// dated snapshot of it (gpt-4o → gpt-4o-2024-08-06).
bool SameModel(const std::string& configured, const std::string& reported) {
  return reported == configured || absl::StartsWith(reported, configured + "-");
}

}  // namespace

absl::StatusOr<v1::ModelOverride> ParseModelOverride(const std::string& set) {
  std::vector<std::string> kv = absl::StrSplit(set, absl::MaxSplits('=', 1));
  std::vector<std::string> path = absl::StrSplit(kv[0], '.');
  if (kv.size() != 2 || kv[1].empty() || path.size() != 4 || path[0] != "agents" || path[2] != "models" ||
      path[1].empty() || path[3].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--set ", set, ": expected agents.AGENT.models.TIER=MODEL (the model an agent's tier runs)"));
  }
  v1::ModelOverride m;
  m.set_agent(path[1]);
  m.set_tier(path[3]);
  m.set_model(kv[1]);
  return m;
}

absl::StatusOr<FleetConfig> WithOverrides(const FleetConfig& config, const std::vector<v1::ModelOverride>& overrides) {
  FleetConfig out = config;
  for (const v1::ModelOverride& m : overrides) {
    auto agent = out.agents.find(m.agent());
    std::string where = absl::StrCat("--set agents.", m.agent(), ".models.", m.tier(), "=", m.model(), ": ");
    if (agent == out.agents.end()) return absl::InvalidArgumentError(absl::StrCat(where, "no such agent"));
    if (agent->second.models.count(m.tier()) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, "agent '", m.agent(), "' has no model tier '", m.tier(), "'"));
    }
    if (config.pricing.count(m.model()) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, "the model has no price in the config's pricing table"));
    }
    agent->second.models[m.tier()] = m.model();
  }
  return out;
}

absl::StatusOr<ForkPlan> PlanFork(const FleetConfig& config, const std::string& task_id, const TaskRecords& records,
                                  const std::string& from_step, const std::vector<v1::ModelOverride>& overrides,
                                  const std::string& tenant, const std::string& new_id) {
  const size_t limit = std::max(config.coordinator.max_payload_bytes, config.worker.max_payload_bytes);
  std::optional<v1::TaskSubmission> original = FindSubmission(records, task_id, limit);
  std::optional<v1::TaskResult> result = FindResult(records, task_id, limit);
  if (!original) return absl::NotFoundError(absl::StrCat("no readable submission of task '", task_id, "'"));
  if (!result) {
    return absl::FailedPreconditionError(absl::StrCat("task '", task_id, "' has no result yet: fork a finished task"));
  }
  auto effective = WithOverrides(config, overrides);
  if (!effective.ok()) return effective.status();
  const WorkflowConfig* wf = effective->FindWorkflow(original->workflow());
  if (wf == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("the config has no workflow '", original->workflow(), "' (the task's)"));
  }
  std::map<std::string, size_t> order;
  for (size_t i = 0; i < wf->steps.size(); ++i) order[wf->steps[i].id] = i;
  auto from = order.find(from_step);
  if (from == order.end()) {
    return absl::InvalidArgumentError(absl::StrCat("workflow '", wf->name, "' has no step '", from_step,
                                                   "' (its steps: ",
                                                   absl::StrJoin(wf->steps, ", ",
                                                                 [](std::string* out, const StepConfig& s) {
                                                                   out->append(s.id);
                                                                 }),
                                                   ")"));
  }
  auto before = [&](const std::string& step) {
    auto it = order.find(step);
    return it != order.end() && it->second < from->second;
  };
  auto refuse = [&](const std::string& why) {
    return absl::FailedPreconditionError(absl::StrCat("cannot fork ", task_id, " from '", from_step, "': ", why));
  };

  // The original's decisions before the step, replayed under the new config.
  auto replay = Replay(*effective, task_id, records);
  if (!replay.ok()) return replay.status();
  for (const ReplayDecision& d : replay->decisions) {
    const nlohmann::json& side = d.recorded.is_null() ? d.replayed : d.recorded;
    if (d.same() || !side.is_object() || !before(side.value("step", ""))) continue;
    if (d.recorded.is_null()) return refuse(absl::StrCat("under the new config the original would make another call (",
                                                         d.what, ") before it"));
    if (d.replayed.is_null()) return refuse(absl::StrCat("under the new config the original's ", d.what,
                                                         " would not be made"));
    return refuse(absl::StrCat("under the new config ", d.what, " would change (", absl::StrJoin(d.differing, ", "),
                               "), so its recorded output no longer applies"));
  }

  ForkPlan plan;
  auto outputs = StepOutputs(records, *result, limit);
  v1::Fork& fork = *plan.submission.mutable_fork();
  for (const v1::StepSummary& s : result->steps()) {
    std::string label = Label(s.step(), s.fan_index());
    if (!before(s.step())) {
      plan.rerun.push_back(label);
      continue;
    }
    if (s.status() == v1::STEP_STATUS_SKIPPED) continue;  // decided again, from the same inputs
    if (s.status() != v1::STEP_STATUS_SUCCEEDED) {
      plan.rerun.push_back(label);  // no output to reuse: it runs again
      continue;
    }
    const AgentConfig* agent = effective->FindAgent(s.agent());
    if (agent != nullptr && !s.model().empty()) {
      bool runs_it = false;
      for (const auto& [tier, model] : agent->models) runs_it |= SameModel(model, s.model());
      if (!runs_it) {
        return refuse(absl::StrCat("step ", label, " ran on model '", s.model(), "', which agent '", s.agent(),
                                   "' no longer runs under the new config, so its recorded output no longer applies"));
      }
    }
    auto output = outputs.find({s.step(), s.fan_index()});
    if (output == outputs.end()) {
      return refuse(absl::StrCat("step ", label, "'s output is not on the events topic (served from a cache, a "
                                 "wait or a child task, or past the topic's retention), so it cannot be reused"));
    }
    v1::ReusedOutput* r = fork.add_reused();
    r->set_step(s.step());
    r->set_fan_index(s.fan_index());
    *r->mutable_output() = ToValue(output->second);
    r->set_model(s.model());
    plan.reused.push_back(label);
  }
  v1::TaskSubmission& sub = plan.submission;
  v1::Fork kept = fork;
  sub = *original;
  *sub.mutable_fork() = std::move(kept);
  sub.set_task_id(new_id);
  if (!tenant.empty()) sub.set_tenant(tenant);
  sub.clear_deadline();  // the original's would have passed; the workflow's applies
  sub.clear_submitted_at();
  sub.clear_parent_task_id();
  sub.set_depth(0);
  (*sub.mutable_labels())["forked_from"] = task_id;
  (*sub.mutable_labels())["fork_from_step"] = from_step;
  sub.mutable_fork()->set_task_id(task_id);
  sub.mutable_fork()->set_from_step(from_step);
  for (const v1::ModelOverride& m : overrides) *sub.mutable_fork()->add_models() = m;
  return plan;
}

}  // namespace agentfleet
