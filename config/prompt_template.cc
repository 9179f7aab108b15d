#include "config/prompt_template.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace agentfleet {

absl::StatusOr<PromptTemplate> PromptTemplate::Parse(absl::string_view text) {
  PromptTemplate t;
  t.text_ = std::string(text);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t open = text.find("{{", pos);
    if (open == absl::string_view::npos) {
      t.parts_.push_back({std::string(text.substr(pos)), {}, false});
      break;
    }
    if (open > pos) t.parts_.push_back({std::string(text.substr(pos, open - pos)), {}, false});
    size_t close = text.find("}}", open + 2);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("unclosed '{{' at character ", open + 1));
    }
    absl::string_view name = absl::StripAsciiWhitespace(text.substr(open + 2, close - open - 2));
    if (absl::StrContains(name, "{{") || absl::StrContains(name, "\n")) {
      return absl::InvalidArgumentError(absl::StrCat("unclosed '{{' at character ", open + 1));
    }
    Part field;
    field.is_field = true;
    if (name != ".") {
      for (absl::string_view key : absl::StrSplit(name, '.')) {
        bool valid = !key.empty();
        for (char c : key) valid = valid && (absl::ascii_isalnum(c) || c == '_' || c == '-');
        if (!valid) {
          return absl::InvalidArgumentError(
              absl::StrCat("placeholder '{{", name, "}}' is not a field path such as {{ticket.subject}} or {{.}}"));
        }
        field.path.emplace_back(key);
      }
    }
    t.parts_.push_back(std::move(field));
    pos = close + 2;
  }
  return t;
}

absl::StatusOr<std::string> PromptTemplate::Render(const nlohmann::json& input) const {
  std::string out;
  for (const Part& p : parts_) {
    if (!p.is_field) {
      out += p.literal;
      continue;
    }
    const nlohmann::json* v = &input;
    for (const std::string& key : p.path) {
      if (!v->is_object() || !v->contains(key)) {
        return absl::InvalidArgumentError(
            absl::StrCat("the prompt reads {{", absl::StrJoin(p.path, "."), "}}, which the input does not have"));
      }
      v = &(*v)[key];
    }
    out += v->is_string() ? v->get<std::string>() : v->dump();
  }
  return out;
}

std::vector<std::vector<std::string>> PromptTemplate::Fields() const {
  std::vector<std::vector<std::string>> fields;
  for (const Part& p : parts_) {
    if (p.is_field) fields.push_back(p.path);
  }
  return fields;
}

}  // namespace agentfleet
