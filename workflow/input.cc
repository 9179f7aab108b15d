#include "workflow/input.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace agentfleet {

using Json = nlohmann::json;

absl::StatusOr<Json> Resolve(const Reference& ref, const InputContext& context) {
  const Json* node = nullptr;
  std::string where;
  switch (ref.root) {
    case Reference::Root::kTask:
      node = context.task_input;
      where = "$task";
      break;
    case Reference::Root::kItem:
      node = context.item;
      where = "$item";
      break;
    case Reference::Root::kStep:
      if (context.step_failed && context.step_failed(ref.step)) return Json();
      node = context.step_output ? context.step_output(ref.step) : nullptr;
      where = "$steps." + ref.step;
      break;
  }
  if (node == nullptr) return absl::InvalidArgumentError(absl::StrCat(where, " has no value here"));
  for (const auto& field : ref.path) {
    if (!node->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": is not an object, cannot read '", field, "'"));
    }
    auto it = node->find(field);
    if (it == node->end()) return absl::InvalidArgumentError(absl::StrCat(where, ": no field '", field, "'"));
    node = &*it;
    where = absl::StrCat(where, ".", field);
  }
  return *node;
}

absl::StatusOr<Json> BuildInput(const Json& tmpl, const InputContext& context) {
  if (tmpl.is_object()) {
    Json out = Json::object();
    for (const auto& [k, v] : tmpl.items()) {
      auto built = BuildInput(v, context);
      if (!built.ok()) return built.status();
      out[k] = std::move(*built);
    }
    return out;
  }
  if (tmpl.is_array()) {
    Json out = Json::array();
    for (const auto& v : tmpl) {
      auto built = BuildInput(v, context);
      if (!built.ok()) return built.status();
      out.push_back(std::move(*built));
    }
    return out;
  }
  if (tmpl.is_string()) {
    const std::string& s = tmpl.get_ref<const std::string&>();
    if (IsReference(s)) {
      auto ref = ParseReference(s);
      if (!ref.ok()) return ref.status();
      return Resolve(*ref, context);
    }
    return UnescapeLiteral(s);
  }
  return tmpl;
}

}  // namespace agentfleet
