// Conditions on task data, written in a workflow step's `when:`:
//
//   $steps.classify.intent == 'billing'
//   $steps.classify.confidence >= 0.8 and not exists($task.customer.vip)
//   $task.region in ['eu', 'uk'] or $steps.triage.urgent
//
// Operands: references ($task..., $steps.<id>..., $item...; config/expression.h),
// literals ('text' or "text", numbers, true, false, null) and lists of
// literals. Operators, loosest first: `or`, `and`, `not`, then one
// comparison (== != < <= > >= in, not in) or `exists(REF)`; parentheses
// group. Parsed and type-checked when the config loads; errors give the
// column in the expression. Evaluated by workflow/condition_eval.h.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "config/expression.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

struct Condition {
  enum class Kind {
    kOr, kAnd, kNot,                    // children
    kEq, kNe, kLt, kLe, kGt, kGe,       // children[0] op children[1]
    kIn, kNotIn,                        // children[0] in children[1] (a list)
    kExists,                            // ref
    kRef,                               // ref: its value
    kLiteral,                           // literal: a scalar or a list of scalars
  };
  Kind kind = Kind::kLiteral;
  std::vector<std::unique_ptr<Condition>> children;
  Reference ref;
  nlohmann::json literal;
  int column = 1;  // 1-based, in the expression text

  // The steps the condition reads ($steps.<id>...), in order of appearance.
  std::vector<std::string> Steps() const;
};

// Parses and type-checks `text`. InvalidArgument reads "column N: what is
// wrong", e.g. "column 14: expected a value after '=='".
[[nodiscard]] absl::StatusOr<std::unique_ptr<Condition>> ParseCondition(absl::string_view text);

}  // namespace agentfleet
