// Prompt templates: an agent's system and user prompts, filled from the work
// item's input. "{{ticket.subject}}" is the value at that path of the input
// (a string as it is, anything else as compact JSON); "{{.}}" is the whole
// input as JSON. A path that is missing from the input is an error, never an
// empty string: the config loader reports the ones it can see from the
// workflow's input templates, the worker fails the item for the rest.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

// Immutable once parsed: thread-safe.
class PromptTemplate {
 public:
  // InvalidArgument for an unclosed "{{" or an empty or malformed placeholder.
  [[nodiscard]] static absl::StatusOr<PromptTemplate> Parse(absl::string_view text);

  [[nodiscard]] absl::StatusOr<std::string> Render(const nlohmann::json& input) const;

  // The paths the template reads, e.g. {"ticket", "subject"}; "{{.}}" is an
  // empty path.
  std::vector<std::vector<std::string>> Fields() const;

  const std::string& text() const { return text_; }

 private:
  struct Part {
    std::string literal;            // when !is_field
    std::vector<std::string> path;  // when is_field
    bool is_field = false;
  };
  std::string text_;
  std::vector<Part> parts_;
};

}  // namespace agentfleet
