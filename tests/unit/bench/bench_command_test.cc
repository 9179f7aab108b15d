// `agentfleet bench` refuses a part it does not know before it starts
// anything: a misspelt `--only` used to run the raw baseline alone and write
// a report with nothing asked for in it.
#include "bench/bench_command.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet {
namespace {

TEST(BenchCommandTest, AnUnknownPartIsRefusedNamingItAndTheKnownOnes) {
  BenchCommandOptions options;
  options.only = "modes,stedy";
  options.output = "/nonexistent/benchmarks.md";
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunBench(options), 2);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, ::testing::HasSubstr("--only: unknown part 'stedy'"));
  EXPECT_THAT(err, ::testing::HasSubstr("steady"));
  EXPECT_THAT(err, ::testing::Not(::testing::HasSubstr("logs and configs in"))) << "nothing was started";
}

}  // namespace
}  // namespace agentfleet
