// Test harness for integration tests: real agentfleet processes on
// 127.0.0.1, each with a log file, every one stopped by PID when the Fleet is
// destroyed. Each Fleet gets its own topic prefix and consumer groups, so
// tests share one Kafka broker without seeing each other's messages.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "config/config.h"
#include "gtest/gtest.h"

namespace agentfleet::testing {

// The Kafka cluster the tests use: $AGENTFLEET_TEST_BOOTSTRAP, or the address
// the CTest fixture (tests/kafka/kafka.sh) wrote to
// $AGENTFLEET_TEST_BOOTSTRAP_FILE. Empty if neither is available.
std::string KafkaBootstrap();

// Directory of the agentfleet binaries ($AGENTFLEET_BIN_DIR).
std::string BinDir();

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

// A test that needs the Kafka cluster: skipped when there is none.
class KafkaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bootstrap_ = KafkaBootstrap();
    if (bootstrap_.empty()) GTEST_SKIP() << "no Kafka: set AGENTFLEET_TEST_BOOTSTRAP or run through ctest";
  }
  std::string bootstrap_;
};

class Fleet {
 public:
  explicit Fleet(const std::string& name);
  ~Fleet();  // stops every process it started

  // Writes the example config with this fleet's topic prefix, consumer groups
  // and `bootstrap`, applying `edits` (from -> to, every occurrence). The
  // optional `coordinator_yaml` / `worker_yaml` add keys to those sections
  // ("processing: at_least_once, commit_interval: 50ms").
  std::string WriteConfig(const std::string& bootstrap,
                          const std::vector<std::pair<std::string, std::string>>& edits = {},
                          const std::string& coordinator_yaml = "", const std::string& worker_yaml = "");
  const std::string& config_path() const { return config_path_; }
  // The config WriteConfig starts from, relative to the source tree
  // (default examples/support.yaml).
  void set_example(const std::string& file) { example_ = file; }
  absl::StatusOr<FleetConfig> LoadConfig() const;

  // Starts `agentfleet broker` (with `brokers` mock brokers and fault
  // injection on a free port) and returns its bootstrap address.
  absl::StatusOr<std::string> StartDevBroker(int brokers = 1);
  // Injects a fault into that broker (`agentfleet broker fault`).
  absl::Status BrokerFault(const std::string& fault);
  // Runs `agentfleet topics create` to completion.
  absl::Status CreateTopics();
  // A command prefix for the processes started from now on (e.g. `ip netns
  // exec NS`, which execs in place: the PID is the process's); empty: none.
  void set_launcher(std::vector<std::string> launcher) { launcher_ = std::move(launcher); }
  pid_t StartCoordinator(const std::vector<std::string>& extra = {});
  pid_t StartWorker(const std::string& id, const std::vector<std::string>& extra = {});
  // Runs a binary from BinDir() (or argv[0] itself, when it is a path) to
  // completion; returns exit code and output.
  absl::StatusOr<std::pair<int, std::string>> Run(const std::vector<std::string>& argv,
                                                  absl::Duration timeout);

  bool AllRunning() const;
  bool IsAlive(pid_t pid) const;
  // SIGKILL, reaped; the process is no longer the fleet's.
  void Kill(pid_t pid);
  // Sends a signal (SIGSTOP, SIGCONT, ...).
  void Signal(pid_t pid, int signal);
  // Stops one process (SIGTERM, then SIGKILL after `grace`); returns its exit code.
  int StopProcess(pid_t pid, absl::Duration grace = absl::Seconds(20));
  // Waits for one process to exit by itself; its exit code, or
  // DeadlineExceeded (it keeps running, and is stopped with the fleet).
  absl::StatusOr<int> WaitProcess(pid_t pid, absl::Duration timeout);
  // The last lines of every process log, for failure messages.
  std::string LogTails() const;
  // Why a task has no result, for a failure message: its `agentfleet trace`
  // and every log line that names it, before the tails (CI shows the start
  // of a failure's output).
  std::string WhereIs(const std::string& task_id);
  // One process's whole log.
  std::string LogOf(pid_t pid) const;
  // Lines containing `text` in every process log.
  int CountInLogs(const std::string& text) const;
  // The port a process started by this fleet serves HTTP on (health,
  // metrics), read from its log; 0 if it did not say within 20 s.
  int HttpPort(pid_t pid) const;
  // Starts a program that is not agentfleet's (an absolute path or a name
  // on PATH), logged and stopped like the fleet's own processes.
  pid_t StartProgram(const std::string& program, const std::vector<std::string>& args, const std::string& log);
  // The last `lines` lines of one process's log.
  std::string LogTailOf(pid_t pid, size_t lines = 5) const;
  const std::string& dir() const { return dir_; }
  const std::string& prefix() const { return prefix_; }

 private:
  pid_t Start(const std::string& binary, const std::vector<std::string>& args, const std::string& log);

  std::vector<std::string> launcher_;
  std::string name_;
  std::string dir_;
  std::string prefix_;
  std::string bootstrap_;
  std::string config_path_;
  std::string example_ = "examples/support.yaml";
  bool dev_broker_ = false;
  std::string broker_control_;
  std::vector<pid_t> pids_;
  std::vector<std::string> logs_;
  std::map<pid_t, std::string> log_of_;
};

// Runs `agentfleet audit --json` on the fleet's topics and expects what a
// user checks: exit 0, clean (nothing lost, duplicated or unexpected) and
// nothing over budget.
void ExpectCleanAudit(Fleet& fleet);

}  // namespace agentfleet::testing
