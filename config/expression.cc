#include "config/expression.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace agentfleet {

bool IsReference(absl::string_view text) {
  return !text.empty() && text[0] == '$' && (text.size() < 2 || text[1] != '$');
}

std::string UnescapeLiteral(absl::string_view text) {
  if (text.size() >= 2 && text[0] == '$' && text[1] == '$') return std::string(text.substr(1));
  return std::string(text);
}

absl::StatusOr<Reference> ParseReference(absl::string_view text) {
  if (!IsReference(text)) return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a reference"));
  std::vector<std::string> parts = absl::StrSplit(text.substr(1), '.');
  for (const auto& p : parts) {
    if (p.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("reference '", text, "' has an empty path segment"));
    }
  }
  Reference ref;
  size_t first_field = 1;
  if (parts[0] == "task") {
    ref.root = Reference::Root::kTask;
  } else if (parts[0] == "item") {
    ref.root = Reference::Root::kItem;
  } else if (parts[0] == "steps") {
    if (parts.size() < 2) {
      return absl::InvalidArgumentError(absl::StrCat("reference '", text, "' names no step ($steps.<step>)"));
    }
    ref.root = Reference::Root::kStep;
    ref.step = parts[1];
    first_field = 2;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("reference '", text,
                                                   "' must start with $task, $steps.<step> or $item"));
  }
  ref.path.assign(parts.begin() + first_field, parts.end());
  return ref;
}

}  // namespace agentfleet
