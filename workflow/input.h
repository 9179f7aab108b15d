// Building a step's input: the step's template from the config with every
// reference ($task..., $steps.<id>..., $item...) replaced by its value.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "config/expression.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

struct InputContext {
  const nlohmann::json* task_input = nullptr;
  // The output of a finished step (a list, in fan-out order, for a fanned-out
  // step), or null if it has none.
  std::function<const nlohmann::json*(const std::string& step)> step_output;
  // Whether a step is an optional one that failed: a reference into it (any
  // path) is null.
  std::function<bool(const std::string& step)> step_failed;
  // The current fan-out element; null outside a fan-out.
  const nlohmann::json* item = nullptr;
};

// The value `ref` points at. InvalidArgument names the missing field, e.g.
// "$task.customer.email: no field 'email'".
[[nodiscard]] absl::StatusOr<nlohmann::json> Resolve(const Reference& ref,
                                                     const InputContext& context);

// The template with every reference resolved; literals ("$$..." unescaped) kept.
[[nodiscard]] absl::StatusOr<nlohmann::json> BuildInput(const nlohmann::json& input_template,
                                                        const InputContext& context);

}  // namespace agentfleet
