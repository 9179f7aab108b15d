// agentfleet: the command line. Parses the subcommand and flags, loads the
// config, and hands over to cli/commands.cc.
#include <algorithm>
#include <iostream>
#include <string>

#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "bench/bench_command.h"
#include "cli/audit_log.h"
#include "cli/commands.h"
#include "cli/console.h"
#include "cli/cost.h"
#include "cli/dlq.h"
#include "cli/signal.h"
#include "cli/schemas.h"
#include "common/signals.h"
#include "kafka/topics.h"

ABSL_FLAG(std::string, config, "", "Fleet config YAML (default: the shipped examples/support.yaml)");
ABSL_FLAG(std::string, bootstrap, "", "Kafka bootstrap servers; overrides the config");
ABSL_FLAG(bool, dev_broker, false, "The bootstrap is the development broker");
ABSL_FLAG(bool, json, false, "Machine-readable output (JSON)");
ABSL_FLAG(bool, wait, false, "submit: wait for every result, with a progress bar");
ABSL_FLAG(int, tasks, 1000, "demo: number of sample tasks");
ABSL_FLAG(int, workers, 2, "demo: number of worker processes");
ABSL_FLAG(int, brokers, 1, "broker: number of mock brokers");
ABSL_FLAG(int, count, 0, "results: stop after this many results (0 = follow); dlq: the newest per partition (0 = 1,000)");
ABSL_FLAG(bool, from_beginning, false, "results: read from the start of the topic");
ABSL_FLAG(bool, verify, false,
          "audit: recompute outputs of simulated workflows and compare; audit-log: check the hash chains");
ABSL_FLAG(std::string, task, "", "audit-log: only this task's records");
ABSL_FLAG(std::string, from, "",
          "cost: the first day (2026-11-01, UTC; default 30 days before --to); fork: the step to run from");
ABSL_FLAG(std::vector<std::string>, set, {},
          "fork: models to run instead of the config's, agents.AGENT.models.TIER=MODEL (comma-separated)");
ABSL_FLAG(std::string, tenant, "", "fork: the fork's tenant (default: the original's)");
ABSL_FLAG(std::string, to, "", "cost: the last day, included (default today, UTC)");
ABSL_FLAG(std::string, by, "", "cost: group by any of tenant,workflow,agent,model");
ABSL_FLAG(bool, csv, false, "cost: CSV output");
ABSL_FLAG(std::string, bootstrap_file, "", "broker: also write the bootstrap address to this file");
ABSL_FLAG(std::string, control_address, "",
          "broker: serve fault injection on HOST:PORT (port 0: a free one); broker fault: send it there");
ABSL_FLAG(int64_t, lag_threshold, 10, "lag: KEDA lagThreshold (target lag per replica)");
ABSL_FLAG(int64_t, activation_lag_threshold, 0, "lag: KEDA activationLagThreshold");
ABSL_FLAG(bool, allow_idle_consumers, false, "lag: KEDA allowIdleConsumers (no cap at the partition count)");
ABSL_FLAG(bool, limit_to_partitions_with_lag, false, "lag: KEDA limitToPartitionsWithLag");
ABSL_FLAG(bool, scale_to_zero_on_invalid_offset, false, "lag: KEDA scaleToZeroOnInvalidOffset");
ABSL_FLAG(std::string, offset_reset_policy, "earliest",
          "lag: KEDA offsetResetPolicy (earliest, as the chart's triggers and the workers use, or latest)");
ABSL_FLAG(int, min_replicas, 0, "lag: the ScaledObject's minReplicaCount");
ABSL_FLAG(int, max_replicas, 100, "lag: the ScaledObject's maxReplicaCount");
ABSL_FLAG(std::string, kafka, "", "bench: also measure on this real Kafka broker (bootstrap servers)");
ABSL_FLAG(std::string, kafka_name, "Apache Kafka", "bench: the real broker's name in the report");
ABSL_FLAG(bool, quick, false, "bench: small counts (checks the suite runs; nothing worth quoting)");
ABSL_FLAG(std::string, only, "",
          "bench: run only these parts besides the raw baseline: modes,inflight,worker,scale,growth; failover and "
          "rebalance (real Kafka only), lookup (real Kafka only), and features (routed4, cached4, child4 against "
          "chain4; routing is its old name) and steady (real Kafka only: exactly_once against at_least_once, rounds of "
          "50,000 chain4 tasks), run only when named");
ABSL_FLAG(int, linger_ms, -1, "bench: the producers' linger.ms, for the fleet and the raw baseline (-1: the default, 2)");
ABSL_FLAG(bool, kafka_only, false, "bench: with --kafka, measure there only (skip the development broker)");
ABSL_FLAG(bool, kip848, false,
          "bench: rebalance also with KIP-848's group.protocol=consumer (librdkafka 2.12+ and Kafka 4)");
ABSL_FLAG(std::string, output, "docs/benchmarks.md", "bench: the Markdown file whose bench section is replaced");
ABSL_FLAG(std::string, plot, "", "bench: the scale-out plot (SVG; default benchmarks-scaleout.svg beside --output)");
ABSL_FLAG(bool, scan_all, false,
          "trace, replay, fork, diff: read every partition of every topic for the task's records, not only its "
          "partition and time window (records written with a partitioner other than murmur2)");
ABSL_FLAG(absl::Duration, lookup_margin, agentfleet::RecordsLookup().margin,
          "trace, replay, fork, diff: how much wider than the task's lifetime the time window read is (covers the "
          "skew between producers' clocks)");
ABSL_FLAG(std::string, save, "", "replay: also write the task's records to this file (JSON Lines)");
ABSL_FLAG(std::string, records, "", "replay: read the task's records from this file (saved with --save), not from Kafka");
ABSL_FLAG(std::string, reason, "",
          "cancel: why (the cancelled result's error message); dlq: only reasons containing this; dlq replay, "
          "discard: a note kept with the action");
ABSL_FLAG(std::string, sender, "",
          "signal, cancel: who sends it (a user, a service); echoed into the task; dlq replay, discard: who acts "
          "(default $USER)");
ABSL_FLAG(std::string, component, "", "dlq: only dead letters from this component (coordinator, worker, cli)");
ABSL_FLAG(bool, all, false, "dlq: also the dead letters already replayed or discarded");
ABSL_FLAG(std::string, http_address, "127.0.0.1:8080",
          "console: where to serve (HOST:PORT; a non-loopback address needs a token or --allow_unauthenticated)");
ABSL_FLAG(std::string, token_file, "",
          "console: a file holding the bearer token every request must carry (default: $AGENTFLEET_CONSOLE_TOKEN)");
ABSL_FLAG(bool, allow_unauthenticated, false,
          "console: serve without a token off loopback (an authenticating ingress is in front)");
ABSL_FLAG(bool, enable_writes, false, "console: allow replaying and discarding dead letters");
ABSL_FLAG(std::string, operator_name, "console",
          "console: who DLQ actions are recorded as (an ingress's X-Forwarded-User takes precedence)");
ABSL_FLAG(std::string, trace_url, "", "console: link for a task's trace id, e.g. https://jaeger/trace/{trace_id}");
ABSL_FLAG(int, max_tasks, 100000, "console: the newest tasks kept in its index");
ABSL_FLAG(std::string, registry, "", "schemas register: the Schema Registry's URL (http://host:8081)");
ABSL_FLAG(absl::Duration, timeout, absl::Minutes(5),
          "submit --wait, demo, results: give up after this long; lag: the whole read (at most 30 s)");

namespace {

constexpr char kUsage[] = R"(agentfleet — multi-agent workflows on Kafka

usage: agentfleet COMMAND [flags]

commands:
  validate --config FILE                    check a fleet config without connecting to anything
  demo [--tasks N] [--workers N] [--json]   start a development broker, a coordinator and workers,
                                            run N sample tasks, print a summary, stop everything
  broker [--bootstrap_file F]               host the development broker (librdkafka mock cluster);
         [--control_address HOST:PORT]      with fault injection served there
  broker fault --control_address HOST:PORT 'FAULT'   inject a fault into that development broker:
                                            errors API ERROR [COUNT] | clear API | rtt BROKER MS |
                                            down BROKER | up BROKER | leader TOPIC PARTITION BROKER
  topics create                             create the fleet's topics on --bootstrap
  schemas register --registry URL [--json]  register the agentfleet.v1 schemas in a Schema Registry
                                            (subjects <topic>-value; imports by import path)
  submit FILE|- [--wait] [--json]           submit tasks (JSON array or JSON Lines)
  results [--json] [--from_beginning] [--count N]   print results as they arrive
  audit [--verify] [--json]                 every submitted task against every result: lost,
                                            duplicated, unexpected, mismatched, overspent (exit 1 if any)
  tenants [--json]                          each tenant's spending this period against its budget, and the
                                            fleet's against its spend_limit
  lag [--json] [--lag_threshold N] ...      each group's lag per topic, and the replicas KEDA's Kafka
                                            scaler would ask for (--activation_lag_threshold,
                                            --limit_to_partitions_with_lag, --allow_idle_consumers,
                                            --offset_reset_policy, --min_replicas, --max_replicas)
  bench [--kafka HOST:PORT] [--quick]        the end-to-end benchmarks on the development broker (and
                                            a real Kafka broker) against the raw librdkafka round trip;
                                            writes --output (docs/benchmarks.md) and a plot
  cost [--from D] [--to D] [--by tenant,workflow,agent,model] [--json|--csv]
                                            spend, tokens, tasks, cost per task, cache and batch savings
                                            day by day from the cost ledger, with the change from the
                                            day before, the 7-day average and days off it by over 2σ
  audit-log [--task T] [--verify] [--json]  the actions' audit log (who, what, effect id, outcome);
                                            --verify checks every partition's hash chain (exit 1 if broken)
  trace TASK_ID [--json]                    the task's timeline: every step and attempt with agent,
                                            model, worker, wait and run time, tokens, cost, outcome
  replay TASK_ID [--save F | --records F]   feed the task's recorded submission, events and signals
         [--json]                           through the coordinator's engine (no Kafka writes, no model
                                            calls) and compare every decision with the recorded one;
                                            exit 1 at the first divergence, printed with both sides
  fork TASK_ID --from STEP [--wait]         re-run a finished task from STEP as a new task: the steps
       [--set agents.X.models.T=M]          before it reuse the recorded outputs (no call, no cost),
       [--tenant T]                         STEP and after run for real under the fleet's config and
                                            --set's models; refused, saying why, if a reused output
                                            would no longer apply
  diff TASK_A TASK_B [--json]               two runs step by step: status, model, tokens, cost, latency
                                            and the output's change (a JSON Patch), then the totals
  console [--http_address H:P]              the web console: tasks and their timelines, the dead-letter
          [--token_file F] [--enable_writes]  queue (replay, discard with --enable_writes, recorded on
                                            dlq.actions); loopback by default, a bearer token off it
  dlq [--reason R] [--component C] [--all]  the newest --count dead letters per partition (1,000), newest
      [--json]                              first: where, when, component, origin, size, reason
  dlq replay|discard PARTITION/OFFSET       replay a dead letter to its origin topic, or mark it handled;
      [--sender WHO] [--reason NOTE]        one transaction with its record on dlq.actions (once only,
                                            as the console does it)
  signal TASK_ID NAME [JSON] [--sender S]   send a named signal (an approval, an answer) to a task;
                                            a wait step of its workflow waiting for NAME takes it
  cancel TASK_ID [--reason R] [--sender S]  cancel a running task and print its CANCELLED result
                                            (says so when the task has finished or is unknown)

common flags: --config FILE, --bootstrap HOST:PORT, --dev_broker; --helpfull lists all.
)";

}  // namespace

// jemalloc's options (the binary links it): return freed memory to the
// system from a background thread, so a long-running `agentfleet console`
// that read a large history does not keep the peak (bench/console.sh:
// 205 MiB resident when idle without it, 70 MiB with it). $MALLOC_CONF
// still overrides it.
extern "C" {
// NOLINTNEXTLINE: the name jemalloc reads.
const char* malloc_conf = "background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:0";
}

int main(int argc, char** argv) {
  using namespace agentfleet;
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  InstallShutdownHandlers();
  if (positional.size() < 2) {
    std::cerr << kUsage;
    return 2;
  }
  std::string command = positional[1];
  CliOptions options;
  options.config_path = absl::GetFlag(FLAGS_config);
  options.bootstrap = absl::GetFlag(FLAGS_bootstrap);
  options.dev_broker = absl::GetFlag(FLAGS_dev_broker);
  options.json = absl::GetFlag(FLAGS_json);
  options.wait = absl::GetFlag(FLAGS_wait);
  options.lookup.scan_all = absl::GetFlag(FLAGS_scan_all);
  options.lookup.margin = absl::GetFlag(FLAGS_lookup_margin);
  if (options.lookup.margin < absl::ZeroDuration()) {
    std::cerr << "agentfleet: --lookup_margin must not be negative (got "
              << absl::FormatDuration(options.lookup.margin) << ")\n";
    return 2;
  }
  options.tasks = absl::GetFlag(FLAGS_tasks);
  options.workers = absl::GetFlag(FLAGS_workers);
  options.brokers = absl::GetFlag(FLAGS_brokers);
  options.count = absl::GetFlag(FLAGS_count);
  options.from_beginning = absl::GetFlag(FLAGS_from_beginning);
  options.verify = absl::GetFlag(FLAGS_verify);
  options.bootstrap_file = absl::GetFlag(FLAGS_bootstrap_file);
  options.control_address = absl::GetFlag(FLAGS_control_address);
  options.timeout = absl::GetFlag(FLAGS_timeout);
  if (command == "demo") return RunDemo(options);
  if (command == "broker" && positional.size() > 2 && std::string(positional[2]) == "fault") {
    std::string fault;
    for (size_t i = 3; i < positional.size(); ++i) fault += (i > 3 ? " " : "") + std::string(positional[i]);
    return RunBrokerFault(options, fault);
  }
  if (command == "bench") {
    BenchCommandOptions b;
    b.kafka = absl::GetFlag(FLAGS_kafka);
    b.kafka_name = absl::GetFlag(FLAGS_kafka_name);
    b.quick = absl::GetFlag(FLAGS_quick);
    b.output = absl::GetFlag(FLAGS_output);
    b.plot = absl::GetFlag(FLAGS_plot);
    b.only = absl::GetFlag(FLAGS_only);
    b.linger_ms = absl::GetFlag(FLAGS_linger_ms);
    b.kip848 = absl::GetFlag(FLAGS_kip848);
    b.kafka_only = absl::GetFlag(FLAGS_kafka_only);
    b.command = "agentfleet bench";
    if (!b.kafka.empty()) b.command += " --kafka " + b.kafka + " --kafka_name '" + b.kafka_name + "'";
    if (b.quick) b.command += " --quick";
    if (!b.only.empty()) b.command += " --only " + b.only;
    if (b.linger_ms >= 0) b.command += " --linger_ms " + std::to_string(b.linger_ms);
    if (b.kip848) b.command += " --kip848";
    if (b.kafka_only) b.command += " --kafka_only";
    return RunBench(b);
  }

  std::string config_path = options.config_path.empty() ? DefaultConfigPath() : options.config_path;
  if (command == "validate") {
    // The file alone: no Kafka, no environment (properties_env is resolved at start).
    auto checked = LoadConfigFile(config_path);
    if (!checked.ok()) {
      std::cerr << checked.status().message() << "\n";
      return 2;
    }
    size_t actions = 0;
    for (const auto& [name, agent] : checked->agents) actions += agent.action ? 1 : 0;
    std::cout << config_path << ": valid (" << checked->agents.size() - actions << " agents, "
              << (actions > 0 ? absl::StrCat(actions, " actions, ") : "") << checked->workflows.size()
              << " workflows, " << checked->providers.size() << " providers)\n";
    return 0;
  }
  auto config = LoadProcessConfig(config_path, options.bootstrap, options.dev_broker);
  if (!config.ok()) {
    std::cerr << config.status().message() << "\n";
    return 2;
  }
  if (command == "broker") return RunBroker(*config, options);
  if (command == "topics" && positional.size() > 2 && std::string(positional[2]) == "create") {
    return RunTopicsCreate(*config);
  }
  if (command == "schemas" && positional.size() > 2 && std::string(positional[2]) == "register") {
    return RunSchemasRegister(*config, absl::GetFlag(FLAGS_registry), options.json);
  }
  if (command == "submit") return RunSubmit(*config, positional.size() > 2 ? positional[2] : "-", options);
  if (command == "results") return RunResults(*config, options);
  if (command == "audit") return RunAudit(*config, options);
  if (command == "tenants") return RunTenants(*config, options);
  if (command == "lag" || command == "console") {
    // The KEDA trigger the replica estimate is for (lag, the console's fleet page).
    KedaTrigger& k = options.keda;
    k.lag_threshold = absl::GetFlag(FLAGS_lag_threshold);
    k.activation_lag_threshold = absl::GetFlag(FLAGS_activation_lag_threshold);
    k.allow_idle_consumers = absl::GetFlag(FLAGS_allow_idle_consumers);
    k.limit_to_partitions_with_lag = absl::GetFlag(FLAGS_limit_to_partitions_with_lag);
    k.scale_to_zero_on_invalid_offset = absl::GetFlag(FLAGS_scale_to_zero_on_invalid_offset);
    k.min_replicas = absl::GetFlag(FLAGS_min_replicas);
    k.max_replicas = absl::GetFlag(FLAGS_max_replicas);
    std::string reset = absl::GetFlag(FLAGS_offset_reset_policy);
    if ((reset != "latest" && reset != "earliest") || k.lag_threshold < 1 || k.min_replicas < 0 ||
        k.max_replicas < k.min_replicas) {
      std::cerr << "agentfleet " << command << ": --offset_reset_policy must be latest or earliest, --lag_threshold >= 1, "
                   "0 <= --min_replicas <= --max_replicas\n";
      return 2;
    }
    k.offset_reset = reset == "earliest" ? KedaTrigger::OffsetReset::kEarliest : KedaTrigger::OffsetReset::kLatest;
  }
  if (command == "lag") return RunLag(*config, options);
  if (command == "console") {
    ConsoleOptions c;
    c.http_address = absl::GetFlag(FLAGS_http_address);
    c.allow_unauthenticated = absl::GetFlag(FLAGS_allow_unauthenticated);
    c.enable_writes = absl::GetFlag(FLAGS_enable_writes);
    c.operator_name = absl::GetFlag(FLAGS_operator_name);
    c.trace_url = absl::GetFlag(FLAGS_trace_url);
    c.max_tasks = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_max_tasks)));
    c.lookup = options.lookup;
    c.keda = options.keda;
    c.timeout = std::min(options.timeout, absl::Seconds(30));
    auto token = ReadConsoleToken(absl::GetFlag(FLAGS_token_file));
    if (!token.ok()) {
      std::cerr << "agentfleet console: " << token.status().message() << "\n";
      return 2;
    }
    c.token = *token;
    return RunConsole(*config, c);
  }
  if (command == "cost") {
    auto query = CostQueryOf(absl::GetFlag(FLAGS_from), absl::GetFlag(FLAGS_to), absl::GetFlag(FLAGS_by), absl::Now());
    if (!query.ok()) {
      std::cerr << "agentfleet cost: " << query.status().message() << "\n";
      return 2;
    }
    auto report = ReadCostReport(*config, *query, options.timeout);
    if (!report.ok()) {
      std::cerr << "agentfleet cost: " << report.status().message() << "\n";
      return 1;
    }
    std::cout << (options.json             ? FormatCostJson(*report)
                  : absl::GetFlag(FLAGS_csv) ? FormatCostCsv(*report)
                                             : FormatCostText(*report));
    return 0;
  }
  if (command == "audit-log") {
    auto log = ReadAuditLog(*config, options.timeout);
    if (!log.ok()) {
      std::cerr << "agentfleet audit-log: " << log.status().message() << "\n";
      return 1;
    }
    std::string task = absl::GetFlag(FLAGS_task);
    std::cout << (options.json ? AuditLogJson(*log, task) + "\n" : AuditLogText(*log, task));
    return options.verify && !log->verification.ok() ? 1 : 0;
  }
  if (command == "trace") {
    if (positional.size() < 3) {
      std::cerr << "agentfleet trace: which task? agentfleet trace TASK_ID\n";
      return 2;
    }
    return RunTrace(*config, positional[2], options);
  }
  if (command == "replay") {
    if (positional.size() != 3) {
      std::cerr << "agentfleet replay: which task? agentfleet replay TASK_ID [--save FILE | --records FILE]\n";
      return 2;
    }
    return RunReplay(*config, positional[2], absl::GetFlag(FLAGS_save), absl::GetFlag(FLAGS_records), options);
  }
  if (command == "fork") {
    if (positional.size() != 3 || absl::GetFlag(FLAGS_from).empty()) {
      std::cerr << "agentfleet fork: agentfleet fork TASK_ID --from STEP [--set agents.X.models.T=M] [--tenant T]\n";
      return 2;
    }
    return RunFork(*config, positional[2], absl::GetFlag(FLAGS_from), absl::GetFlag(FLAGS_set),
                   absl::GetFlag(FLAGS_tenant), options);
  }
  if (command == "diff") {
    if (positional.size() != 4) {
      std::cerr << "agentfleet diff: agentfleet diff TASK_A TASK_B [--json]\n";
      return 2;
    }
    return RunDiffCommand(*config, positional[2], positional[3], options);
  }
  if (command == "signal") {
    if (positional.size() < 4 || positional.size() > 5) {
      std::cerr << "agentfleet signal: agentfleet signal TASK_ID NAME [JSON]\n";
      return 2;
    }
    return RunSignal(*config, positional[2], positional[3], positional.size() > 4 ? positional[4] : "",
                     absl::GetFlag(FLAGS_sender), options);
  }
  if (command == "cancel") {
    if (positional.size() != 3) {
      std::cerr << "agentfleet cancel: agentfleet cancel TASK_ID [--reason R]\n";
      return 2;
    }
    return RunCancel(*config, positional[2], absl::GetFlag(FLAGS_reason), absl::GetFlag(FLAGS_sender), options);
  }
  if (command == "dlq") {
    std::string verb = positional.size() > 2 ? positional[2] : "list";
    if (verb == "list" && positional.size() <= 3) {
      return RunDlqList(*config, {absl::GetFlag(FLAGS_reason), absl::GetFlag(FLAGS_component), absl::GetFlag(FLAGS_all)},
                        options);
    }
    if ((verb == "replay" || verb == "discard") && positional.size() == 4) {
      return RunDlqAction(*config, verb, positional[3], absl::GetFlag(FLAGS_sender), absl::GetFlag(FLAGS_reason),
                          options);
    }
    std::cerr << "agentfleet dlq: agentfleet dlq [list] [--reason R] [--component C] [--all] [--count N] [--json] | "
                 "dlq replay|discard PARTITION/OFFSET [--sender WHO] [--reason NOTE]\n";
    return 2;
  }
  std::cerr << "agentfleet: unknown command '" << command << "'\n\n" << kUsage;
  return 2;
}
