// Evaluating a step's `when:` condition (config/condition.h) on a task's data.
#pragma once

#include "absl/status/statusor.h"
#include "config/condition.h"
#include "workflow/input.h"

namespace agentfleet {

// True or false. A reference to a field that is missing, or into a step that
// was skipped or failed optionally, reads as null. Values of different types
// are never equal and never ordered (the comparison is false; `!=` true);
// numbers compare as numbers (1 == 1.0). InvalidArgument when a reference
// used as a condition by itself holds something other than true, false or
// null, naming it.
[[nodiscard]] absl::StatusOr<bool> EvaluateCondition(const Condition& condition, const InputContext& context);

}  // namespace agentfleet
