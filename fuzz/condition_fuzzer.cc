// when: conditions on arbitrary text (issue 18): a parsed condition, which
// then evaluates on arbitrary JSON task data to true, false or an error; or
// an error naming a column inside the text. Never a crash, never unbounded
// recursion.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/condition.h"
#include "workflow/condition_eval.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first line is the condition, the rest the task's input (JSON, if it parses).
  std::string text(reinterpret_cast<const char*>(data), size);
  size_t newline = text.find('\n');
  std::string expression = text.substr(0, newline);
  auto condition = agentfleet::ParseCondition(expression);
  if (!condition.ok()) {
    if (condition.status().message().rfind("column ", 0) != 0) __builtin_trap();  // every error names a column
    return 0;
  }
  nlohmann::json task = nlohmann::json::object();
  if (newline != std::string::npos) {
    nlohmann::json parsed = nlohmann::json::parse(text.substr(newline + 1), nullptr, false);
    if (!parsed.is_discarded()) task = std::move(parsed);
  }
  agentfleet::InputContext ctx;
  ctx.task_input = &task;
  ctx.step_output = [&task](const std::string&) -> const nlohmann::json* { return &task; };
  ctx.step_failed = [](const std::string&) { return false; };
  (void)agentfleet::EvaluateCondition(**condition, ctx);
  return 0;
}
