// Starting and stopping child processes by PID: used by `agentfleet demo`,
// `agentfleet dev` and the integration tests, which must clean up everything
// they start.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace agentfleet {

struct SpawnOptions {
  // Output of the child to `log_file`, everything else default.
  static SpawnOptions LogTo(std::string log_file) {
    SpawnOptions o;
    o.log_file = std::move(log_file);
    return o;
  }
  // stdout and stderr of the child go to this file (appended); empty = inherit.
  std::string log_file;
  // Extra environment entries "NAME=value", added to the parent's.
  std::vector<std::string> env;
  // The child gets SIGKILL when the parent dies (Linux PR_SET_PDEATHSIG), so a
  // crashed demo or test never leaves processes behind.
  bool die_with_parent = true;
};

// Starts argv[0] (a path) with the arguments. Does not block.
[[nodiscard]] absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv,
                                          const SpawnOptions& options = {});

// True while the process runs (reaps it if it has exited).
bool IsRunning(pid_t pid);

// Sends `signal` to the process.
void Signal(pid_t pid, int signal);

// SIGTERM, wait up to `grace`, then SIGKILL; reaps the child. Returns the
// exit status as waitpid reports it, or -1 if it was not our child.
int Stop(pid_t pid, absl::Duration grace);

// Waits up to `timeout` for the process to exit by itself. Returns its exit
// code (128+signal if killed), or an error on timeout.
[[nodiscard]] absl::StatusOr<int> WaitExit(pid_t pid, absl::Duration timeout);

// What /proc says of a running process: resident memory now and at its peak
// (VmRSS, VmHWM) and CPU time used (user + system).
struct ProcessStats {
  int64_t rss_bytes = 0;
  int64_t peak_rss_bytes = 0;
  double cpu_seconds = 0;
};
[[nodiscard]] absl::StatusOr<ProcessStats> ReadProcessStats(pid_t pid);

// The directory holding the running executable (from /proc/self/exe).
std::string ExecutableDir();

}  // namespace agentfleet
