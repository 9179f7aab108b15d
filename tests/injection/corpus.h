// The prompt-injection corpus (corpus.jsonl beside this file), for the
// detector's unit test and the fleet's injection test.
#pragma once

#include <fstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace agentfleet::testing {

// One JSON object per entry: id, kind (direct, indirect, encoded, multilang,
// benign), lang, goal, message, and tool_answer for the indirect ones.
inline std::vector<nlohmann::json> InjectionCorpus() {
  std::ifstream in(std::string(AGENTFLEET_SOURCE_DIR) + "/tests/injection/corpus.jsonl");
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

}  // namespace agentfleet::testing
