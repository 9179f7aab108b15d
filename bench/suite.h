// The end-to-end benchmark suite behind `agentfleet bench`: on one broker,
// the raw librdkafka limit first, then the fleet (real coordinator and worker
// processes, simulated agents) — step overhead, throughput, memory per task in
// flight, a worker holding thousands of calls, the scale-out curve, and how
// latency and memory grow with workflow width and tenants.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kafka/raw_kafka.h"

namespace agentfleet {

// The parts `--only` may name (`routing`: the old name of `features`).
inline constexpr const char* kBenchParts[] = {"modes",     "inflight", "worker",   "scale",   "growth", "failover",
                                              "rebalance", "lookup",   "features", "routing", "steady"};

struct BenchOptions {
  std::string broker_name;  // as the report names it
  std::string bootstrap;    // a running broker; empty: the development broker, hosted in this process
  bool quick = false;       // small counts: checks the suite works, measures nothing worth quoting
  std::string work_dir;     // fleet configs and process logs
  int linger_ms = -1;       // the producers' linger.ms, fleet and raw baseline alike (-1: the fleet's default)
  bool kip848 = false;      // rebalance: also with KIP-848's group.protocol=consumer (librdkafka 2.12+, Kafka 4)
  // Parts to run besides the raw baseline (empty: all): modes (step latency
  // and throughput), inflight, worker, scale, growth. The group-membership
  // parts, failover and rebalance, run only when named (they take minutes
  // of mostly waiting), and so do features (chain4 against the same 4 calls
  // with routing, a result cache, a child workflow, a wait step and its
  // signal, an agent's question, an agent's re-plan; `routing`, its old
  // name, runs it too), steady (exactly_once against at_least_once over
  // longer alternating rounds) and lookup (one task's records among a
  // million others).
  std::set<std::string> only;
  // `part`: one of kBenchParts (`agentfleet bench` refuses any other).
  bool Runs(const std::string& part) const {
    if (part == "features") return only.count("features") > 0 || only.count("routing") > 0;
    if (part == "failover" || part == "rebalance" || part == "lookup" || part == "steady") {
      return only.count(part) > 0;
    }
    return only.empty() || only.count(part) > 0;
  }
};

struct Percentiles {
  double p50 = 0, p99 = 0;
  size_t n = 0;
};
Percentiles PercentilesOf(std::vector<double> values);

struct BrokerResults {
  std::string broker;
  RawKafkaResult raw;
  Percentiles raw_round_trip;

  // A set of client settings the modes are measured with, each against the
  // raw round trip with the same settings: "default" (the fleet's
  // defaults; the raw figures above) and "low_latency" (docs/configuration.md).
  struct Profile {
    std::string name;
    std::string settings;  // what it changes, as the report shows it
    Percentiles raw_round_trip;
    double raw_messages_per_s = 0;
  };
  std::vector<Profile> profiles;

  struct Step {
    std::string mode;    // at_least_once, exactly_once, exactly_once (interval)
    Percentiles step;    // one step: dispatch → worker → result → state (coordinator's clock)
    Percentiles task;    // the client's submit → result of the same one-step task
    std::string profile = "default";
  };
  std::vector<Step> steps;

  struct Throughput {
    std::string mode;
    int64_t tasks = 0, steps = 0;
    double seconds = 0, steps_per_s = 0;
    double coordinator_cpu_s = 0, workers_cpu_s = 0, machine_busy = 0;  // busy: share of all cores
    std::string profile = "default";
    int64_t calls = 0;  // model calls, as the results' usage counts them
    // The raw pipelined rate with the profile's settings, measured right
    // before and after this run (0: not measured; the broker's is used):
    // the median of those passes, and their range.
    double raw_messages_per_s = 0, raw_min_per_s = 0, raw_max_per_s = 0;
  };
  std::vector<Throughput> throughput;

  struct InFlight {
    int64_t tasks = 0;
    int64_t rss_before = 0, rss_loaded = 0;
    double bytes_per_task = 0;
  } in_flight;

  struct WorkerLoad {
    int64_t calls = 0, max_in_flight = 0;
    double agent_latency_s = 0;
    int64_t peak_rss = 0;
    double cpu_ms_per_call = 0;
    double calls_per_s = 0;
  } worker;

  struct ScalePoint {
    int coordinators = 0, workers = 0;
    double steps_per_s = 0, machine_busy = 0;
  };
  std::vector<ScalePoint> scale;

  struct Width {
    int fan_out = 0;
    Percentiles task;  // accepted → finished of a task that is one fan-out step
    int64_t in_flight_tasks = 0;
    double bytes_per_task = 0;
  };
  std::vector<Width> widths;

  struct Tenants {
    int tenants = 0;
    double steps_per_s = 0;
    int64_t coordinator_rss = 0;
  };
  std::vector<Tenants> tenants;

  // A member of a consumer group SIGKILLed under a steady load of one-step
  // tasks (0 ms agents): how long the work on its partitions waited.
  struct Failover {
    std::string scenario;
    std::string settings;        // session / heartbeat, membership
    double baseline_p50_ms = 0;  // task latency before the kill
    double kill_to_first_ms = 0;  // SIGKILL → the first stalled task finished by a survivor
    double longest_wait_ms = 0;  // the longest any task waited, submit → result
    int64_t stalled = 0;         // tasks that waited more than max(1 s, 10 × baseline)
  };
  std::vector<Failover> failover;

  // A worker pool scaled 2 → 4 → 2 under a steady load (200 ms agents): how
  // far throughput fell and how long tasks waited around each scale event.
  struct Rebalance {
    std::string assignor;
    std::string event;           // "2 → 4 (start)", "4 → 2 (SIGTERM)"
    double rate = 0;             // tasks/s submitted
    double min_share = 0;        // the lowest 250 ms bucket of results / the submitted rate, in the 8 s after
    double longest_gap_ms = 0;   // the longest time without any result in those 8 s
    Percentiles latency;         // of the tasks submitted in those 8 s
    double max_ms = 0;
    double baseline_p50_ms = 0;  // before the first event
    int64_t calls_redone = 0;    // calls the workers started beyond one per task, over both events
  };
  std::vector<Rebalance> rebalance;

  // What a feature costs the 4 calls of chain4 when a workflow uses it
  // (`--only features`): routed4; cached4 (an agent with a result cache,
  // every input new: a lookup, a miss and an insert per call); child4 (the
  // middle 2 calls as a child workflow: a child task through the tasks
  // topic, its result back to the parent); waited4 (a wait step before the
  // third call, its signal sent by the client right after the submission);
  // asked4 (the second agent asks a question, another agent's call answers
  // it, the asker runs again: 6 calls); rescoped4 (the second agent sends its
  // plan back once and runs again: 5 calls).
  struct Feature {
    std::string mode;
    std::string workflow;      // chain4, routed4, cached4, child4, waited4, asked4, rescoped4, acted4
    Percentiles per_call;      // accepted → finished of one task at a time, / its calls
    double calls_per_s = 0;    // tasks submitted at once
    double coordinator_cpu_us_per_call = 0;
  };
  std::vector<Feature> features;

  // exactly_once against at_least_once under sustained load (`--only
  // steady`, real Kafka): one fleet per mode (and exactly_once with a
  // commit_interval of 300 ms), all started first, then rounds of many
  // chain4 tasks submitted at once, the modes in turn (rotated by round),
  // so the machine's drift hits them alike and each run is long enough to
  // be steady.
  struct SteadyRun {
    int round = 0;
    std::string mode;  // at_least_once, exactly_once, exactly_once (commit_interval 300ms)
    int64_t steps = 0;
    double steps_per_s = 0;
    double coordinator_cpu_us_per_step = 0;
    // exactly_once: the transactions committed in the run, the inputs each
    // took on average, the share of the run's wall time spent committing, and
    // the share the coordinator's loop stood still for commits.
    double commits = 0, inputs_per_commit = 0, commit_share = 0, wait_share = 0;
  };
  std::vector<SteadyRun> steady;

  // Reading one task's records, as trace, replay, fork and diff do, with a
  // million other tasks' records on the topics (`--only lookup`, real Kafka).
  struct Lookup {
    std::string task;            // which task
    std::string how;             // whole topics, or its partitions and window (with what margin)
    Percentiles ms;              // wall time of the read
    int64_t scanned = 0;         // records read, kept or not
    int result_rounds = 0;       // chunks of the results partition read to find its result
    bool identical = false;      // the replay of what was read decides as recorded
  };
  std::vector<Lookup> lookup;
  int64_t lookup_events = 0;     // records on the events topic when measured
  int64_t lookup_records = 0;    // on all the fleet's topics
};

// The fleet config every run uses: simulated agents (echo: 0 ms, slow:
// 200 ms, slow2s: 2 s, parked: 2 h) and workflows one, chain4, slow_chain4,
// slow2s_one, parked_one, fan and parked_fan (one step over $task.items), and
// routed4: the 4 calls of chain4 behind when: conditions, beside 2 branches
// that are skipped; cached4: chain4 on an agent with a result cache; child4:
// a call, a child workflow of 2 calls (chain2), a call; waited4: chain4 with
// a wait step before its third call (Submit sends its signal); asked4 and
// rescoped4: chain4 whose second agent signals once (needs_info, answered by
// another agent's call; rescope, itself the planner); acted4: chain4 with an
// action (one HTTP request, a side effect) between its second and third calls.
// `kafka_extra`: more lines of the kafka section (`  producer: {...}`);
// `action_url`: where acted4's action sends its request (the bench's own
// tool server; by default a closed port, for runs that do not run acted4).
inline constexpr char kNoActionUrl[] = "http://127.0.0.1:9/effect";
std::string BenchConfig(const std::string& topic_prefix, const std::string& processing, const std::string& extra,
                        const std::string& kafka_extra = "", bool static_membership = false,
                        const std::string& action_url = kNoActionUrl);

// The workflows `--only features` runs against chain4, and the model calls
// each makes per task: the asker and the re-planner run twice, a question's
// answer is one more call. `own_calls`: all of them count in the task's own
// result (a child workflow's count in the child's).
// `effects`: the actions' side effects per task (requests under distinct
// Idempotency-Keys that the bench's tool server receives).
struct FeatureWorkflow {
  const char* name;
  int calls;
  bool own_calls;
  int effects = 0;
};
inline constexpr FeatureWorkflow kFeatureWorkflows[] = {
    {"chain4", 4, true},  {"routed4", 4, true}, {"cached4", 4, true},   {"child4", 4, false},
    {"waited4", 4, true}, {"asked4", 6, true},  {"rescoped4", 5, true}, {"acted4", 4, true, 1},
};

// An error unless `tasks` of `w` counted `calls` model calls, each made once:
// a result cache that hit, or a signal not acted on, makes the per-call
// figures wrong.
absl::Status CheckFeatureCalls(const FeatureWorkflow& w, int64_t tasks, int64_t calls);
// An error unless `tasks` of `w` made `effects` side effects (distinct
// Idempotency-Keys): an action lost, or one applied twice under two keys.
absl::Status CheckFeatureEffects(const FeatureWorkflow& w, int64_t tasks, int64_t effects);

// Runs the whole suite on one broker; progress lines go to stderr.
[[nodiscard]] absl::StatusOr<BrokerResults> RunBenchSuite(const BenchOptions& options);

}  // namespace agentfleet
