// The `agentfleet` subcommands. Each returns the process exit code:
// 0 success, 1 the run went wrong (lost or failed tasks, Kafka errors),
// 2 bad usage or bad input.
#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "audit/task_records.h"
#include "cli/lag.h"
#include "config/config.h"

namespace agentfleet {

struct CliOptions {
  std::string config_path;
  std::string bootstrap;
  bool dev_broker = false;
  bool json = false;
  bool wait = false;
  int tasks = 1000;
  int workers = 2;
  int brokers = 1;
  int count = 0;
  bool from_beginning = false;
  bool verify = false;
  RecordsLookup lookup;  // trace, replay, fork, diff: how a task's records are found
  std::string bootstrap_file;
  std::string control_address;  // broker: where fault injection listens / is sent
  absl::Duration timeout = absl::Minutes(5);
  KedaTrigger keda;  // lag: the trigger to estimate replicas for
};

// Hosts the development broker; with options.control_address, also serves
// fault injection (POST /faults) there.
int RunBroker(const FleetConfig& config, const CliOptions& options);
// Sends one fault line to a development broker's control address.
int RunBrokerFault(const CliOptions& options, const std::string& fault);
int RunTopicsCreate(const FleetConfig& config);
int RunSubmit(const FleetConfig& config, const std::string& path, const CliOptions& options);
int RunResults(const FleetConfig& config, const CliOptions& options);
int RunDemo(const CliOptions& options);
int RunAudit(const FleetConfig& config, const CliOptions& options);
// Each tenant's spending this period against its limit.
int RunTenants(const FleetConfig& config, const CliOptions& options);

// One task's timeline from the fleet's topics (cli/trace.h); exit 1 if
// nothing about it was found.
int RunTrace(const FleetConfig& config, const std::string& task_id, const CliOptions& options);

// Replays the task's records (read from Kafka, or from `records_path`)
// through the engine (audit/replay.h); writes them to `save_path` if set.
// Exit 0 if every decision is the recorded one, 1 if one diverged or the
// records could not be read.
int RunReplay(const FleetConfig& config, const std::string& task_id, const std::string& save_path,
              const std::string& records_path, const CliOptions& options);

// Forks `task_id` from `from_step` (cli/fork.h) with the `sets`
// (agents.X.models.T=M) and `tenant`, submits the fork and, with --wait,
// waits for its result. Exit 1 if the fork is refused or its result is not
// COMPLETED or PARTIAL, 2 for a bad --set.
int RunFork(const FleetConfig& config, const std::string& task_id, const std::string& from_step,
            const std::vector<std::string>& sets, const std::string& tenant, const CliOptions& options);

// Two tasks' runs side by side, step by step (cli/diff.h). Exit 1 if either
// has no result.
int RunDiffCommand(const FleetConfig& config, const std::string& task_a, const std::string& task_b,
                   const CliOptions& options);

// Each group's lag per topic and the replicas KEDA would ask for (cli/lag.h).
int RunLag(const FleetConfig& config, const CliOptions& options);

// The example config shipped with agentfleet (installed or in the source tree).
std::string DefaultConfigPath();

}  // namespace agentfleet
