#include "coordinator/trigger.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "nlohmann/json.hpp"

namespace agentfleet {
namespace {

using Json = nlohmann::json;

// The field at `path` of `event`, or null.
Json Field(const Json& event, const std::vector<std::string>& path) {
  const Json* at = &event;
  for (const std::string& name : path) {
    if (!at->is_object()) return Json();
    auto it = at->find(name);
    if (it == at->end()) return Json();
    at = &*it;
  }
  return *at;
}

Json Fill(const Json& tmpl, const Json& event, absl::string_view key) {
  if (tmpl.is_object()) {
    Json out = Json::object();
    for (auto it = tmpl.begin(); it != tmpl.end(); ++it) out[it.key()] = Fill(it.value(), event, key);
    return out;
  }
  if (tmpl.is_array()) {
    Json out = Json::array();
    for (const Json& e : tmpl) out.push_back(Fill(e, event, key));
    return out;
  }
  if (!tmpl.is_string()) return tmpl;
  const std::string& s = tmpl.get_ref<const std::string&>();
  if (absl::StartsWith(s, "$$")) return s.substr(1);
  if (s == "$key") return std::string(key);
  if (s == "$event") return event;
  if (absl::StartsWith(s, "$event.")) return Field(event, absl::StrSplit(s.substr(7), '.'));
  return tmpl;
}

}  // namespace

absl::StatusOr<v1::TaskSubmission> TriggeredSubmission(const TriggerConfig& trigger, absl::string_view key,
                                                       absl::string_view payload) {
  Json event = Json::parse(payload.begin(), payload.end(), nullptr, /*allow_exceptions=*/false);
  if (event.is_discarded()) return absl::InvalidArgumentError("the event is not JSON");
  std::string value;
  if (trigger.id_field.empty()) {
    if (key.empty()) return absl::InvalidArgumentError("the event has no key to make its task id from");
    value = std::string(key);
  } else {
    Json v = Field(event, trigger.id_field);
    std::string where = "$event." + absl::StrJoin(trigger.id_field, ".");
    if (v.is_string() && !v.get_ref<const std::string&>().empty()) {
      value = v.get<std::string>();
    } else if (v.is_number_integer()) {
      value = v.dump();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(where, " (the task id) is ", v.is_null() ? "missing" : "not a string or an integer"));
    }
  }
  Json input = Fill(trigger.input, event, key);
  if (!input.is_object()) return absl::InvalidArgumentError("the task's input is not a JSON object");
  v1::TaskSubmission s;
  s.set_task_id(absl::StrCat(trigger.name, "/", value));
  s.set_workflow(trigger.workflow);
  s.set_tenant(trigger.tenant);
  *s.mutable_input() = ToStruct(input);
  (*s.mutable_labels())["trigger"] = trigger.name;
  if (absl::Status valid = Validate(s); !valid.ok()) return valid;
  if (absl::Status deep = CheckNesting("input", s.input()); !deep.ok()) return deep;
  return s;
}

}  // namespace agentfleet
