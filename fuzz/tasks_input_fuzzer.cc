// The task files `agentfleet submit` reads (a JSON array or JSON Lines).
#include <cstddef>
#include <cstdint>
#include <string>

#include "cli/tasks_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)agentfleet::ParseTasks(text, "fuzz.jsonl");
  return 0;
}
