// The config loader on arbitrary YAML: a config or an error naming the file,
// line and field; never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto config = agentfleet::LoadConfigString(text, "fuzz.yaml");
  if (!config.ok() && config.status().message().find("fuzz.yaml") == std::string::npos) {
    __builtin_trap();  // every error names the file
  }
  return 0;
}
