#include "fleet/local_fleet.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/subprocess.h"
#include "nlohmann/json.hpp"

namespace agentfleet {

LocalFleet::LocalFleet(std::string dir, std::string config_path)
    : dir_(std::move(dir)), config_path_(std::move(config_path)), bin_(ExecutableDir()) {}

absl::StatusOr<std::string> LocalFleet::StartDevBroker() {
  std::string file = dir_ + "/bootstrap";
  auto broker = Spawn({bin_ + "/agentfleet", "broker", "--config", config_path_, "--bootstrap_file", file},
                      SpawnOptions::LogTo(dir_ + "/broker.log"));
  if (!broker.ok()) return broker.status();
  started_.push_back(*broker);
  std::string bootstrap;
  for (absl::Time until = absl::Now() + absl::Seconds(15); bootstrap.empty() && absl::Now() < until;) {
    std::ifstream in(file);
    if (!(in >> bootstrap)) absl::SleepFor(absl::Milliseconds(20));
  }
  if (bootstrap.empty()) return absl::DeadlineExceededError("the development broker did not start");
  UseBroker(bootstrap, true);
  return bootstrap;
}

absl::StatusOr<pid_t> LocalFleet::Start(const std::string& binary, const std::string& log,
                                        std::vector<std::string> flags) {
  std::vector<std::string> argv = {bin_ + "/" + binary, "--config", config_path_, "--bootstrap", bootstrap_,
                                   "--http_address", "127.0.0.1:0"};
  if (dev_broker_) argv.push_back("--dev_broker");
  argv.insert(argv.end(), flags.begin(), flags.end());
  std::string log_file = dir_ + "/" + log + ".log";
  auto pid = Spawn(argv, SpawnOptions::LogTo(log_file));
  if (pid.ok()) {
    started_.push_back(*pid);
    service_logs_.push_back(log_file);
  }
  return pid;
}

absl::StatusOr<pid_t> LocalFleet::StartCoordinator(const std::string& instance, std::vector<std::string> flags) {
  flags.insert(flags.begin(), {"--instance", instance});
  return Start("agentfleet-coordinator", "coordinator-" + instance, std::move(flags));
}

absl::StatusOr<pid_t> LocalFleet::StartWorker(const std::string& id, std::vector<std::string> flags) {
  flags.insert(flags.begin(), {"--id", id});
  return Start("agentfleet-worker", id, std::move(flags));
}

absl::Status LocalFleet::WaitAllLogged(const std::string& message, absl::Duration timeout) const {
  absl::Time deadline = absl::Now() + timeout;
  for (const std::string& file : service_logs_) {
    bool found = false;
    while (!found) {
      std::ifstream in(file);
      for (std::string line; !found && std::getline(in, line);) {
        nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        found = j.is_object() && j.value("msg", "") == message;
      }
      if (found) break;
      if (absl::Now() >= deadline) return absl::DeadlineExceededError(absl::StrCat(file, ": no \"", message, "\""));
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  return absl::OkStatus();
}

bool LocalFleet::AllRunning() const {
  for (pid_t p : started_) {
    if (!IsRunning(p)) return false;
  }
  return true;
}

void LocalFleet::Stop(absl::Duration grace) {
  for (auto it = started_.rbegin(); it != started_.rend(); ++it) agentfleet::Stop(*it, grace);
  started_.clear();
}

}  // namespace agentfleet
