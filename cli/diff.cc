#include "cli/diff.h"

#include <cmath>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agentfleet/v1/work.pb.h"
#include "codec/codec.h"
#include "codec/json_value.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;

std::string Label(const std::string& step, int fan) {
  return fan < 0 ? step : absl::StrCat(step, "[", fan, "]");
}

std::string StatusName(int status) {
  std::string name = v1::StepStatus_Name(static_cast<v1::StepStatus>(status));
  const std::string prefix = "STEP_STATUS_";
  return name.rfind(prefix, 0) == 0 ? absl::AsciiStrToLower(name.substr(prefix.size())) : name;
}

struct Run {
  v1::TaskResult result;
  std::map<std::pair<std::string, int>, Json> outputs;  // StepOutputs
};

absl::StatusOr<Run> ReadRun(const FleetConfig& config, const std::string& id, const TaskRecords& records) {
  const size_t limit = std::max(config.coordinator.max_payload_bytes, config.worker.max_payload_bytes);
  if (auto result = FindResult(records, id, limit)) {
    Run run{*std::move(result), {}};
    run.outputs = StepOutputs(records, run.result, limit);
    return run;
  }
  return absl::InvalidArgumentError(absl::StrCat("task '", id, "' has no result on the results topic"));
}

Json OutputOf(const Run& run, const v1::StepSummary& s) {
  auto it = run.outputs.find({s.step(), s.fan_index()});
  return it == run.outputs.end() ? Json() : it->second;
}

}  // namespace

int RunDiff::changed_steps() const {
  int n = 0;
  for (const StepDiff& s : steps) n += !s.changed.empty();
  return n;
}

absl::StatusOr<RunDiff> DiffRuns(const FleetConfig& config, const std::string& task_a, const TaskRecords& records_a,
                                 const std::string& task_b, const TaskRecords& records_b) {
  auto a = ReadRun(config, task_a, records_a);
  if (!a.ok()) return a.status();
  auto b = ReadRun(config, task_b, records_b);
  if (!b.ok()) return b.status();
  RunDiff diff;
  diff.task_a = task_a;
  diff.task_b = task_b;
  diff.a = a->result;
  diff.b = b->result;
  std::map<std::pair<std::string, int>, size_t> index;
  auto entry = [&](const v1::StepSummary& s) -> StepDiff& {
    auto [it, added] = index.try_emplace({s.step(), s.fan_index()}, diff.steps.size());
    if (added) {
      diff.steps.emplace_back();
      diff.steps.back().step = s.step();
      diff.steps.back().fan_index = s.fan_index();
    }
    return diff.steps[it->second];
  };
  for (const v1::StepSummary& s : diff.a.steps()) {
    StepDiff& d = entry(s);
    d.a = s;
    d.output_a = OutputOf(*a, s);
  }
  for (const v1::StepSummary& s : diff.b.steps()) {
    StepDiff& d = entry(s);
    d.b = s;
    d.output_b = OutputOf(*b, s);
  }
  for (StepDiff& d : diff.steps) {
    if (!d.a || !d.b) {
      d.changed.push_back(d.a ? "only in a" : "only in b");
      continue;
    }
    if (d.a->status() != d.b->status()) d.changed.push_back("status");
    if (d.a->model() != d.b->model() || d.a->agent() != d.b->agent()) d.changed.push_back("model");
    d.patch = Json::diff(d.output_a, d.output_b);
    if (!d.patch.empty()) d.changed.push_back("output");
    // A fork's reused instance paid nothing for the same output: no change.
    if (d.a->reused() || d.b->reused()) continue;
    if (d.a->usage().input_tokens() != d.b->usage().input_tokens() ||
        d.a->usage().output_tokens() != d.b->usage().output_tokens()) {
      d.changed.push_back("tokens");
    }
    if (std::abs(d.a->usage().cost_usd() - d.b->usage().cost_usd()) > 1e-12) d.changed.push_back("cost");
  }
  diff.output_patch = Json::diff(FromValue(diff.a.output()), FromValue(diff.b.output()));
  return diff;
}

std::string RunDiffText(const RunDiff& diff) {
  auto side = [](const std::optional<v1::StepSummary>& s, auto field) { return s ? field(*s) : std::string("-"); };
  auto status = [](const v1::StepSummary& s) { return StatusName(s.status()) + (s.reused() ? " (reused)" : ""); };
  auto model = [](const v1::StepSummary& s) { return s.model().empty() ? s.agent() : s.model(); };
  auto tokens = [](const v1::StepSummary& s) {
    return absl::StrCat(s.usage().input_tokens(), "/", s.usage().output_tokens());
  };
  auto cost = [](const v1::StepSummary& s) { return absl::StrFormat("$%.6f", s.usage().cost_usd()); };
  auto latency = [](const v1::StepSummary& s) { return absl::StrCat(s.latency_ms(), " ms"); };
  auto pair = [&](const StepDiff& d, auto field) {
    std::string l = side(d.a, field), r = side(d.b, field);
    return l == r ? l : absl::StrCat(l, " → ", r);
  };
  std::string out = absl::StrCat("diff ", diff.task_a, " → ", diff.task_b, " (workflow ", diff.a.workflow(),
                                 diff.b.workflow() != diff.a.workflow() ? absl::StrCat(" → ", diff.b.workflow()) : "",
                                 ")\n");
  absl::StrAppend(&out, absl::StrFormat("  %-16s %-32s %-28s %-16s %-24s %-14s %s\n", "step", "status", "model",
                                        "tokens in/out", "cost", "latency", "output"));
  for (const StepDiff& d : diff.steps) {
    std::string output = d.changed.empty() ? "same" : absl::StrJoin(d.changed, ", ");
    absl::StrAppend(&out, absl::StrFormat("  %-16s %-32s %-28s %-16s %-24s %-14s %s\n", Label(d.step, d.fan_index),
                                          pair(d, status), pair(d, model), pair(d, tokens), pair(d, cost),
                                          pair(d, latency), d.changed.empty() ? "same" : "CHANGED: " + output));
    if (!d.patch.empty()) absl::StrAppend(&out, "      output patch: ", d.patch.dump(), "\n");
  }
  auto task_status = [](const v1::TaskResult& r) {
    std::string n = v1::TaskStatus_Name(r.status());
    return n.substr(n.rfind('_') + 1);
  };
  absl::StrAppend(&out, absl::StrFormat("total: %s → %s · %d/%d → %d/%d tokens · $%.6f → $%.6f · %d of %d steps changed\n",
                                        task_status(diff.a), task_status(diff.b), diff.a.usage().input_tokens(),
                                        diff.a.usage().output_tokens(), diff.b.usage().input_tokens(),
                                        diff.b.usage().output_tokens(), diff.a.usage().cost_usd(),
                                        diff.b.usage().cost_usd(), diff.changed_steps(), diff.steps.size()));
  if (!diff.output_patch.empty()) absl::StrAppend(&out, "output patch: ", diff.output_patch.dump(), "\n");
  return out;
}

std::string RunDiffJson(const RunDiff& diff) {
  Json steps = Json::array();
  auto summary = [](const std::optional<v1::StepSummary>& s) -> Json {
    if (!s) return Json();
    return {{"status", StatusName(s->status())}, {"reused", s->reused()}, {"agent", s->agent()},
            {"model", s->model()},               {"input_tokens", s->usage().input_tokens()},
            {"output_tokens", s->usage().output_tokens()}, {"cost_usd", s->usage().cost_usd()},
            {"latency_ms", s->latency_ms()},     {"attempts", s->attempts()}};
  };
  for (const StepDiff& d : diff.steps) {
    steps.push_back({{"step", d.step},
                     {"fan_index", d.fan_index},
                     {"a", summary(d.a)},
                     {"b", summary(d.b)},
                     {"output_a", d.output_a},
                     {"output_b", d.output_b},
                     {"output_patch", d.patch},
                     {"changed", d.changed}});
  }
  Json j = {{"a", diff.task_a},
            {"b", diff.task_b},
            {"status", {{"a", v1::TaskStatus_Name(diff.a.status())}, {"b", v1::TaskStatus_Name(diff.b.status())}}},
            {"cost_usd", {{"a", diff.a.usage().cost_usd()}, {"b", diff.b.usage().cost_usd()}}},
            {"steps", std::move(steps)},
            {"changed_steps", diff.changed_steps()},
            {"output_patch", diff.output_patch}};
  return j.dump();
}

}  // namespace agentfleet
