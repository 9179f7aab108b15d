// The clients of docs/protocol.md against a real fleet: the Python package
// (clients/python, installed with pip into a fresh virtual environment, its
// own pytest suite run there) and the Java flow (clients/java/run.sh).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/fake_llm.h"
#include "tests/integration/fleet_harness.h"

namespace agentfleet::testing {
namespace {

using ::testing::HasSubstr;

const std::string kSource = AGENTFLEET_SOURCE_DIR;

std::string Slurp(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class ClientsTest : public KafkaTest {
 protected:
  // A coordinator and two workers on the example config; null on failure.
  std::optional<FleetConfig> StartFleet(Fleet& fleet) {
    fleet.WriteConfig(bootstrap_);
    absl::Status created = fleet.CreateTopics();
    EXPECT_TRUE(created.ok()) << created << fleet.LogTails();
    auto config = fleet.LoadConfig();
    EXPECT_TRUE(config.ok()) << config.status();
    if (!created.ok() || !config.ok()) return std::nullopt;
    fleet.StartCoordinator();
    fleet.StartWorker("worker-1");
    fleet.StartWorker("worker-2");
    return *config;
  }
  // What a user of the fleet checks afterwards: the audit is clean.
  void ExpectCleanAudit(Fleet& fleet, int submitted) {
    auto audit = fleet.Run({"agentfleet", "audit", "--verify", "--json", "--config", fleet.config_path()},
                           absl::Seconds(120));
    ASSERT_TRUE(audit.ok()) << audit.status();
    EXPECT_EQ(audit->first, 0) << audit->second;
    EXPECT_THAT(audit->second, HasSubstr(R"("clean":true)"));
    EXPECT_THAT(audit->second, HasSubstr(absl::StrCat(R"("submitted":)", submitted)));
  }
};

TEST_F(ClientsTest, ThePythonClientInstalledWithPipPassesItsTestsAgainstAFleet) {
  Fleet fleet("python-client");
  auto config = StartFleet(fleet);
  ASSERT_TRUE(config.has_value());
  // A fresh environment that sees Debian's confluent-kafka and protobuf; the
  // client comes from the repository, as `pip install ./clients/python`.
  std::string venv = fleet.dir() + "/venv";
  auto made = fleet.Run({"/usr/bin/python3", "-m", "venv", "--system-site-packages", venv}, absl::Seconds(120));
  ASSERT_TRUE(made.ok() && made->first == 0) << (made.ok() ? made->second : made.status().ToString());
  // From a copy: pip builds in the directory it installs from.
  std::string copy = fleet.dir() + "/clients-python";
  std::filesystem::copy(kSource + "/clients/python", copy, std::filesystem::copy_options::recursive);
  auto pip = fleet.Run({venv + "/bin/pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", copy},
                       absl::Seconds(300));
  ASSERT_TRUE(pip.ok() && pip->first == 0) << (pip.ok() ? pip->second : pip.status().ToString());
  // Run from elsewhere, so the package imported is the installed one.
  auto tests = fleet.Run({"/usr/bin/env", "PYTHONDONTWRITEBYTECODE=1", "AGENTFLEET_BOOTSTRAP=" + bootstrap_,
                          "AGENTFLEET_TOPIC_PREFIX=" + config->kafka.topic_prefix, "AGENTFLEET_WORKFLOW=support",
                          venv + "/bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", fleet.dir(),
                          kSource + "/clients/python/tests"},
                         absl::Seconds(600));
  ASSERT_TRUE(tests.ok()) << tests.status();
  EXPECT_EQ(tests->first, 0) << tests->second << fleet.LogTails();
  EXPECT_THAT(tests->second, HasSubstr("9 passed"));
  EXPECT_THAT(tests->second, ::testing::Not(HasSubstr("skipped")));
  auto shown = fleet.Run({venv + "/bin/python", "-c", "import agentfleet_client; print(agentfleet_client.__file__)"},
                         absl::Seconds(60));
  ASSERT_TRUE(shown.ok());
  EXPECT_THAT(shown->second, HasSubstr(venv)) << "the tests did not use the installed package";
  // Task ids: 1 + 200 + 1 (submitted twice) + 1 rejected + 1 (headers) + 1 cancelled = 205.
  ExpectCleanAudit(fleet, 205);
}

TEST_F(ClientsTest, TheJavaFlowOfTheProtocolDocSubmitsAndReadsEveryResult) {
  Fleet fleet("java-client");
  auto config = StartFleet(fleet);
  ASSERT_TRUE(config.has_value());
  auto run = fleet.Run({"/usr/bin/env", "bash", kSource + "/clients/java/run.sh", bootstrap_,
                        config->kafka.topic_prefix, "support", "50"},
                       absl::Seconds(600));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->first, 0) << run->second << fleet.LogTails();
  EXPECT_THAT(run->second, HasSubstr("50 submitted, 50 results, 50 completed, 0 missing"));
  ExpectCleanAudit(fleet, 50);
}

// Issue 17, item 4: a Kafka shop's producer using Confluent's Protobuf
// serializer (Debian's python3-confluent-kafka) frames tasks in the Schema
// Registry wire format; the fleet processes them like plain ones. The
// registry is the minimal one of tests/schema_registry (Confluent's REST
// shape), where `agentfleet schemas register` first put our schemas.
TEST_F(ClientsTest, TasksFramedByConfluentsProtobufSerializerAreProcessed) {
  Fleet fleet("schema-registry");
  int port = FreePort();
  fleet.StartProgram("/usr/bin/python3",
                     {kSource + "/tests/schema_registry/registry.py", "--port", absl::StrCat(port)}, "registry");
  std::string url = absl::StrCat("http://127.0.0.1:", port);
  bool up = false;
  for (absl::Time until = absl::Now() + absl::Seconds(20); !up && absl::Now() < until;) {
    up = HttpGet(url + "/subjects").first == 200;
    if (!up) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(up) << fleet.LogTails();
  auto config = StartFleet(fleet);
  ASSERT_TRUE(config.has_value());
  auto registered = fleet.Run({"agentfleet", "schemas", "register", "--registry", url, "--json", "--config",
                               fleet.config_path()},
                              absl::Seconds(60));
  ASSERT_TRUE(registered.ok()) << registered.status();
  ASSERT_EQ(registered->first, 0) << registered->second;
  const std::string& prefix = config->kafka.topic_prefix;
  for (const std::string& subject :
       {prefix + "tasks-value", prefix + "results-value", prefix + "costs-value", prefix + "work.classifier-value",
        std::string("agentfleet/v1/common.proto"), std::string("google/protobuf/struct.proto")}) {
    EXPECT_THAT(registered->second, HasSubstr("\"subject\":\"" + subject + "\"")) << registered->second;
  }
  auto framed = fleet.Run({"/usr/bin/env", "PYTHONDONTWRITEBYTECODE=1", "PYTHONPATH=" + kSource + "/clients/python",
                           "/usr/bin/python3",
                           kSource + "/tests/schema_registry/produce_framed.py", bootstrap_, prefix, url, "support",
                           "40"},
                          absl::Seconds(300));
  ASSERT_TRUE(framed.ok()) << framed.status();
  EXPECT_EQ(framed->first, 0) << framed->second << fleet.LogTails();
  EXPECT_THAT(framed->second, HasSubstr("framed: 40 submitted, 40 results, 40 completed"));
  // The serializer registered its own rendering of task.proto under the same subject.
  auto versions = HttpGet(url + "/subjects/" + prefix + "tasks-value/versions");
  EXPECT_EQ(versions.second, "[1, 2]");
  ExpectCleanAudit(fleet, 40);
}

// The classes shipped in clients/python are what protoc generates from
// proto/ today: a change to the protocol must regenerate them.
TEST(GeneratedClassesTest, ThePythonClassesShippedAreCurrent) {
  std::string out = ::testing::TempDir() + "/generated-python";
  std::filesystem::remove_all(out);
  int rc = std::system(("bash " + kSource + "/clients/python/generate.sh " + out).c_str());
  ASSERT_EQ(rc, 0);
  int compared = 0;
  for (const auto& entry : std::filesystem::directory_iterator(out + "/agentfleet/v1")) {
    std::filesystem::path shipped = kSource + "/clients/python/agentfleet/v1/" + entry.path().filename().string();
    ASSERT_TRUE(std::filesystem::exists(shipped)) << shipped << " is not shipped";
    EXPECT_EQ(Slurp(entry.path()), Slurp(shipped))
        << shipped << " is out of date: run clients/python/generate.sh";
    ++compared;
  }
  EXPECT_EQ(compared, 11);  // five modules and their stubs, and the package's __init__.py
}

}  // namespace
}  // namespace agentfleet::testing
