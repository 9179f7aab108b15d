#include "cli/tasks_input.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "codec/codec.h"
#include "codec/json_value.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

namespace {

absl::Status ParseOne(const std::string& json, v1::TaskSubmission* out) {
  google::protobuf::util::JsonParseOptions options;
  auto status = google::protobuf::util::JsonStringToMessage(json, out, options);
  if (!status.ok()) return absl::InvalidArgumentError(std::string(status.message()));
  return Validate(*out);
}

}  // namespace

absl::StatusOr<std::vector<v1::TaskSubmission>> ParseTasks(const std::string& text,
                                                           const std::string& source) {
  std::vector<v1::TaskSubmission> tasks;
  std::vector<std::string> errors;
  absl::string_view trimmed = absl::StripLeadingAsciiWhitespace(text);
  if (!trimmed.empty() && trimmed[0] == '[') {
    nlohmann::json array = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (array.is_discarded() || !array.is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": not a valid JSON array"));
    }
    for (size_t i = 0; i < array.size(); ++i) {
      v1::TaskSubmission t;
      absl::Status s = ParseOne(array[i].dump(), &t);
      if (!s.ok()) {
        errors.push_back(absl::StrCat(source, ": element ", i, ": ", s.message()));
      } else {
        tasks.push_back(std::move(t));
      }
    }
  } else {
    std::istringstream in(text);
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      if (absl::StripAsciiWhitespace(line).empty()) continue;
      v1::TaskSubmission t;
      absl::Status s = ParseOne(line, &t);
      if (!s.ok()) {
        errors.push_back(absl::StrCat(source, ":", n, ": ", s.message()));
      } else {
        tasks.push_back(std::move(t));
      }
    }
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  return tasks;
}

std::vector<v1::TaskSubmission> SampleTasks(int count, const std::string& prefix, uint64_t seed) {
  static const char* kSubjects[] = {"Charged twice this month", "Cannot log in after password reset",
                                    "API returns 502 since this morning", "How do I export my data?",
                                    "Invoice shows the wrong VAT number", "Webhook deliveries delayed"};
  static const char* kSources[] = {"billing-kb", "account-kb", "docs", "forum", "status-page", "runbooks"};
  std::vector<v1::TaskSubmission> tasks;
  uint64_t state = seed;
  auto next = [&state]() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33;
  };
  for (int i = 0; i < count; ++i) {
    nlohmann::json sources = nlohmann::json::array();
    size_t n_sources = 2 + next() % 3;
    size_t first = next() % std::size(kSources);
    for (size_t k = 0; k < n_sources; ++k) sources.push_back(kSources[(first + k) % std::size(kSources)]);
    nlohmann::json input = {
        {"ticket",
         {{"id", i},
          {"subject", kSubjects[next() % std::size(kSubjects)]},
          {"body", absl::StrCat("Customer report #", i, ": details ", next() % 100000)},
          {"customer", absl::StrCat("c-", next() % 500)}}},
        {"sources", sources}};
    v1::TaskSubmission t;
    t.set_task_id(absl::StrCat(prefix, "-", i));
    t.set_tenant(absl::StrCat("tenant-", next() % 4));
    t.set_workflow("support");
    t.set_priority(i % 5 == 0 ? v1::PRIORITY_INTERACTIVE : v1::PRIORITY_BATCH);
    *t.mutable_input() = ToStruct(input);
    tasks.push_back(std::move(t));
  }
  return tasks;
}

}  // namespace agentfleet
