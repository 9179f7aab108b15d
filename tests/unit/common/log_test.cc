// Structured logs: one JSON object per line with level and component, fields
// escaped, registered secrets never written.
#include "common/log.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace agentfleet {
namespace {

TEST(LogTest, OneJsonObjectPerLineWithFieldsAndRedactedSecrets) {
  RedactInLogs("sk-live-0123456789");
  RedactInLogs("abc");  // too short to redact safely: ignored
  ::testing::internal::CaptureStderr();
  Log(LogLevel::kWarning, "worker", "call failed: key sk-live-0123456789 refused",
      {{"task_id", "t-1"}, {"trace_id", "0af7651916cd43dd8448eb211c80319c"}, {"error", "bad \"key\" sk-live-0123456789\n"}});
  std::string out = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["level"], "warning");
  EXPECT_EQ(j["component"], "worker");
  EXPECT_EQ(j["task_id"], "t-1");
  EXPECT_EQ(j["trace_id"], "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(j["msg"], "call failed: key [REDACTED] refused");
  EXPECT_EQ(j["error"], "bad \"key\" [REDACTED]\n");
  EXPECT_THAT(out, ::testing::Not(::testing::HasSubstr("sk-live")));
  EXPECT_TRUE(j.contains("ts"));
}

}  // namespace
}  // namespace agentfleet
