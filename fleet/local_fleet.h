// LocalFleet: a fleet as separate local processes — the development broker
// (optional), coordinator replicas and workers — each logging to a file in one
// directory, all stopped by PID (workers and coordinators first, the broker
// last) by Stop() or the destructor. `agentfleet demo` and `agentfleet bench`
// run on it.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace agentfleet {

class LocalFleet {
 public:
  // Binaries are taken from the directory of the running executable.
  LocalFleet(std::string dir, std::string config_path);
  ~LocalFleet() { Stop(); }
  LocalFleet(const LocalFleet&) = delete;
  LocalFleet& operator=(const LocalFleet&) = delete;

  // Starts `agentfleet broker` for the config, waits for its address and
  // connects every later process to it.
  [[nodiscard]] absl::StatusOr<std::string> StartDevBroker();
  // Every later process connects to `bootstrap`, with the development
  // broker's settings if `dev_broker`.
  void UseBroker(std::string bootstrap, bool dev_broker) {
    bootstrap_ = std::move(bootstrap);
    dev_broker_ = dev_broker;
  }
  const std::string& bootstrap() const { return bootstrap_; }

  // Health endpoints on free ports; `flags` are appended to the command line.
  [[nodiscard]] absl::StatusOr<pid_t> StartCoordinator(const std::string& instance,
                                                       std::vector<std::string> flags = {});
  [[nodiscard]] absl::StatusOr<pid_t> StartWorker(const std::string& id,
                                                  std::vector<std::string> flags = {});

  // Waits until the log of every coordinator and worker started so far has a
  // line whose "msg" is `message` ("partitions assigned": each has joined its groups).
  [[nodiscard]] absl::Status WaitAllLogged(const std::string& message,
                                           absl::Duration timeout) const;

  const std::vector<pid_t>& pids() const { return started_; }
  bool AllRunning() const;
  const std::string& dir() const { return dir_; }
  // SIGTERM to each (workers and coordinators first, the broker last), SIGKILL
  // after `grace`.
  void Stop(absl::Duration grace = absl::Seconds(15));

 private:
  [[nodiscard]] absl::StatusOr<pid_t> Start(const std::string& binary, const std::string& log,
                                            std::vector<std::string> flags);

  std::string dir_;
  std::string config_path_;
  std::string bin_;
  std::string bootstrap_;
  bool dev_broker_ = false;
  std::vector<pid_t> started_;
  std::vector<std::string> service_logs_;
};

}  // namespace agentfleet
