// The golden replay logs (tests/golden/replay/): their folder, and reading
// a file or a log's records, for the tests of replay, fork and diff.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

#include "audit/task_records.h"
#include "gtest/gtest.h"

namespace agentfleet::golden {

inline const std::string kReplayDir = std::string(AGENTFLEET_SOURCE_DIR) + "/tests/golden/replay/";

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The records of tests/golden/replay/NAME.jsonl.
inline TaskRecords Records(const std::string& name) {
  auto records = LoadTaskRecords(ReadFile(kReplayDir + name + ".jsonl"), name);
  EXPECT_TRUE(records.ok()) << records.status();
  return records.ok() ? *records : TaskRecords();
}

}  // namespace agentfleet::golden
