// References inside a workflow step's input template:
//
//   $task            the task's whole input        $task.customer.name   a field of it
//   $steps.classify  the output of step classify   $steps.classify.label a field of it
//   $item            the current fan-out element   $item.url             a field of it
//
// A string that starts with "$$" is the literal text with one "$" removed.
#pragma once

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"

namespace agentfleet {

struct Reference {
  enum class Root { kTask, kStep, kItem };
  Root root = Root::kTask;
  std::string step;               // set when root == kStep
  std::vector<std::string> path;  // field names below the root
};

// True if `text` is a reference (starts with one "$").
bool IsReference(absl::string_view text);

// Parses a reference; InvalidArgument says what is wrong with it.
[[nodiscard]] absl::StatusOr<Reference> ParseReference(absl::string_view text);

// The literal a non-reference string stands for ("$$x" -> "$x").
std::string UnescapeLiteral(absl::string_view text);

}  // namespace agentfleet
