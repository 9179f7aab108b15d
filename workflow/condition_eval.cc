#include "workflow/condition_eval.h"

#include <algorithm>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;
using Kind = Condition::Kind;

Json ValueOf(const Condition& c, const InputContext& context) {
  if (c.kind == Kind::kLiteral) return c.literal;
  auto v = Resolve(c.ref, context);
  return v.ok() ? *v : Json(nullptr);  // a missing field reads as null
}

bool Same(const Json& a, const Json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  return a.type() == b.type() && a == b;
}

// -1, 0, 1; nullopt when the two cannot be ordered.
std::optional<int> Order(const Json& a, const Json& b) {
  if (a.is_number() && b.is_number()) {
    double x = a.get<double>(), y = b.get<double>();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    const auto& x = a.get_ref<const std::string&>();
    const auto& y = b.get_ref<const std::string&>();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return std::nullopt;
}

std::string Describe(const Reference& ref) {
  std::string out = ref.root == Reference::Root::kTask   ? "$task"
                    : ref.root == Reference::Root::kItem ? "$item"
                                                         : "$steps." + ref.step;
  for (const auto& p : ref.path) absl::StrAppend(&out, ".", p);
  return out;
}

absl::StatusOr<bool> Eval(const Condition& c, const InputContext& context) {
  switch (c.kind) {
    case Kind::kOr:
      for (const auto& child : c.children) {
        auto v = Eval(*child, context);
        if (!v.ok() || *v) return v;
      }
      return false;
    case Kind::kAnd:
      for (const auto& child : c.children) {
        auto v = Eval(*child, context);
        if (!v.ok() || !*v) return v;
      }
      return true;
    case Kind::kNot: {
      auto v = Eval(*c.children[0], context);
      if (!v.ok()) return v;
      return !*v;
    }
    case Kind::kExists:
      return !ValueOf(c, context).is_null();
    case Kind::kRef:
    case Kind::kLiteral: {
      Json v = ValueOf(c, context);
      if (v.is_boolean()) return v.get<bool>();
      if (v.is_null()) return false;
      return absl::InvalidArgumentError(absl::StrCat(
          c.kind == Kind::kRef ? Describe(c.ref) : v.dump(), " is ", v.type_name(), ", not true or false"));
    }
    case Kind::kEq:
    case Kind::kNe: {
      bool same = Same(ValueOf(*c.children[0], context), ValueOf(*c.children[1], context));
      return c.kind == Kind::kEq ? same : !same;
    }
    case Kind::kIn:
    case Kind::kNotIn: {
      Json needle = ValueOf(*c.children[0], context);
      Json list = ValueOf(*c.children[1], context);
      bool found = list.is_array() &&
                   std::any_of(list.begin(), list.end(), [&](const Json& e) { return Same(needle, e); });
      return c.kind == Kind::kIn ? found : !found;
    }
    case Kind::kLt:
    case Kind::kLe:
    case Kind::kGt:
    case Kind::kGe: {
      auto o = Order(ValueOf(*c.children[0], context), ValueOf(*c.children[1], context));
      if (!o) return false;
      switch (c.kind) {
        case Kind::kLt: return *o < 0;
        case Kind::kLe: return *o <= 0;
        case Kind::kGt: return *o > 0;
        default: return *o >= 0;
      }
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<bool> EvaluateCondition(const Condition& condition, const InputContext& context) {
  return Eval(condition, context);
}

}  // namespace agentfleet
