#include "bench/suite.h"

#include <signal.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "audit/replay.h"
#include "audit/task_records.h"
#include "codec/codec.h"
#include "codec/trace.h"
#include "common/signals.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "config/config.h"
#include "fleet/local_fleet.h"
#include "fleet/run_summary.h"
#include "http/http_server.h"
#include "google/protobuf/util/time_util.h"
#include "kafka/kafka.h"
#include "kafka/mock_cluster.h"
#include "kafka/topics.h"
#include "nlohmann/json.hpp"
#include "provider/http_client.h"

namespace agentfleet {

Percentiles PercentilesOf(std::vector<double> values) {
  Percentiles p;
  p.n = values.size();
  if (values.empty()) return p;
  std::sort(values.begin(), values.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(std::ceil(q * values.size()));
    return values[std::clamp<size_t>(i, 1, values.size()) - 1];
  };
  p.p50 = at(0.50);
  p.p99 = at(0.99);
  return p;
}

namespace {

using google::protobuf::util::TimeUtil;

void Say(const std::string& line) {
  std::cerr << absl::FormatTime("%H:%M:%S ", absl::Now(), absl::LocalTimeZone()) << "agentfleet bench: " << line << "\n"
            << std::flush;
}

// Share of all cores busy between two reads of /proc/stat.
struct CpuTimes {
  double busy = 0, total = 0;
};
CpuTimes ReadCpuTimes() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  in >> cpu;
  CpuTimes t;
  double v;
  for (int i = 0; i < 8 && in >> v; ++i) {
    t.total += v;
    if (i != 3 && i != 4) t.busy += v;  // idle, iowait
  }
  return t;
}
double BusyShare(const CpuTimes& a, const CpuTimes& b) {
  return b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0;
}

}  // namespace

// chain4's 4 calls, each after a condition, with 2 branches that never run.
// chain4 on an agent with a result cache, every call's input new (the task's
// text and the step in each): a lookup, a miss and an insert per call. The
// step is needed: an output is `{ok: true}` or `{ok: false}`, so without it
// s3's input was s2's half the time, and a hit (1.5 of 4 calls per task).
constexpr char kCached4[] = R"(    steps:
      - {id: s1, agent: echo_cached, input: {text: $task.text, step: 1}}
      - {id: s2, agent: echo_cached, input: {text: $task.text, step: 2, prev: $steps.s1}}
      - {id: s3, agent: echo_cached, input: {text: $task.text, step: 3, prev: $steps.s2}}
      - {id: s4, agent: echo_cached, input: {text: $task.text, step: 4, prev: $steps.s3}}
)";

constexpr char kChild4[] = R"(    steps:
      - {id: s1, agent: echo, input: {text: $task.text}}
      - {id: s2, workflow: chain2, input: {text: $task.text, prev: $steps.s1}}
      - {id: s3, agent: echo, input: {prev: $steps.s2}}
)";

// chain4 with a wait step before its third call; the bench's client sends
// the signal right after each submission (BenchFleet::Submit).
constexpr char kWaited4[] = R"(    steps:
      - {id: s1, agent: echo, input: {text: $task.text}}
      - {id: s2, agent: echo, input: {prev: $steps.s1}}
      - {id: go, wait: {signal: go, timeout: 10m}}
      - {id: s3, agent: echo, input: {prev: $steps.s2, go: $steps.go}}
      - {id: s4, agent: echo, input: {prev: $steps.s3}}
)";

// chain4 whose second step's agent signals once, the step allowing
// `signals` (asked4: a question answered by another agent's call; rescoped4:
// a re-plan, the step its own planner).
static std::string SignallingChain4(const std::string& agent, const std::string& signals) {
  return absl::StrCat("    steps:\n      - {id: s1, agent: echo, input: {text: $task.text}}\n      - {id: s2, agent: ", agent,
                      ", input: {prev: $steps.s1}, signals: ", signals,
                      "}\n      - {id: s3, agent: echo, input: {prev: $steps.s2}}\n"
                      "      - {id: s4, agent: echo, input: {prev: $steps.s3}}\n");
}

// chain4 with an action between its second and third calls: one HTTP request
// to the bench's tool server (ToolServer), its payload checked against a
// schema and scanned as every action's is, its answer the third call's input.
constexpr char kActed4[] = R"(    steps:
      - {id: s1, agent: echo, input: {text: $task.text}}
      - {id: s2, agent: echo, input: {prev: $steps.s1}}
      - {id: act, action: effect, input: {text: $task.text, prev: $steps.s2}}
      - {id: s3, agent: echo, input: {prev: $steps.s2, effect: $steps.act}}
      - {id: s4, agent: echo, input: {prev: $steps.s3}}
)";

constexpr char kRouted4[] = R"(    steps:
      - {id: s1, agent: echo, input: {text: $task.text}}
      - id: s2
        agent: echo
        when: exists($steps.s1.ok)
        input: {prev: $steps.s1}
      - id: s2_other
        agent: echo
        when: not exists($steps.s1.ok)
        input: {prev: $steps.s1}
      - id: s3
        agent: echo
        when: $steps.s2.ok in [true, false]
        input: {prev: $steps.s2}
      - id: s3_other
        agent: echo
        when: $steps.s2.ok == null
        input: {prev: $steps.s2}
      - {id: s4, agent: echo, input: {prev: $steps.s3, other: $steps.s3_other, first: $steps.s2_other}}
)";

std::string BenchConfig(const std::string& prefix, const std::string& processing, const std::string& extra,
                        const std::string& kafka_extra, bool static_membership, const std::string& action_url) {
  std::string agent_schema = "output_schema: {type: object, required: [ok], properties: {ok: {type: boolean}}}";
  auto agent = [&](const std::string& name, const std::string& provider, const std::string& timeout) {
    return absl::StrCat("  ", name, ": {provider: ", provider, ", models: {default: sim}, timeout: ", timeout,
                        ", max_tokens: 256, ", agent_schema, "}\n");
  };
  auto chain = [](const std::string& agent, int n) {
    std::string s = absl::StrCat("    steps:\n      - {id: s1, agent: ", agent, ", input: {text: $task.text}}\n");
    for (int i = 2; i <= n; ++i) {
      absl::StrAppend(&s, "      - {id: s", i, ", agent: ", agent, ", input: {prev: $steps.s", i - 1, "}}\n");
    }
    return s;
  };
  std::string fan = "    steps:\n      - {id: each, agent: AGENT, for_each: $task.items, input: {item: $item}}\n";
  auto fan_of = [&](const std::string& agent) {
    std::string s = fan;
    s.replace(s.find("AGENT"), 5, agent);
    return s;
  };
  return absl::StrCat(
      "kafka:\n  topic_prefix: ", prefix,
      "\n  partitions: 8\n  work_partitions: 8\n  replication_factor: 1\n"
      "  properties: {bootstrap.servers: 127.0.0.1:9092}\n", kafka_extra,
      "providers:\n"
      "  instant: {type: simulated, latency: {distribution: fixed, mean_ms: 0}}\n"
      "  ms200: {type: simulated, latency: {distribution: fixed, mean_ms: 200}}\n"
      "  s2: {type: simulated, latency: {distribution: fixed, mean_ms: 2000}}\n"
      "  parked: {type: simulated, latency: {distribution: fixed, mean_ms: 7200000}}\n"
      "  asks: {type: simulated, latency: {distribution: fixed, mean_ms: 0}, signals: {needs_info: 1.0}}\n"
      "  rescopes: {type: simulated, latency: {distribution: fixed, mean_ms: 0}, signals: {rescope: 1.0}}\n"
      "pricing:\n  sim: {input_per_mtok: 1.0, output_per_mtok: 2.0}\n"
      "agents:\n",
      agent("echo", "instant", "30s"), agent("slow", "ms200", "30s"), agent("slow2s", "s2", "30s"),
      agent("parked", "parked", "4h"), agent("echo_asks", "asks", "30s"), agent("echo_rescopes", "rescopes", "30s"),
      "  echo_cached: {provider: instant, models: {default: sim}, timeout: 30s, max_tokens: 256, cache: {ttl: 1h}, ",
      agent_schema, "}\n",
      "actions:\n  effect: {url: \"", action_url, "\", timeout: 10s, "
      "schema: {type: object, required: [text, prev], properties: {text: {type: string, maxLength: 1000}, prev: {type: object}}}}\n",
      "workflows:\n"
      "  one:\n",
      chain("echo", 1), "  chain4:\n", chain("echo", 4), "  slow_chain4:\n", chain("slow", 4),
      "  slow_one:\n", chain("slow", 1), "  slow2s_one:\n", chain("slow2s", 1), "  parked_one:\n    deadline: 4h\n", chain("parked", 1),
      "  routed4:\n", kRouted4, "  cached4:\n", kCached4, "  chain2:\n", chain("echo", 2),
      "  child4:\n", kChild4, "  waited4:\n", kWaited4, "  asked4:\n", SignallingChain4("echo_asks", "{needs_info: {agent: echo}}"),
      "  rescoped4:\n", SignallingChain4("echo_rescopes", "{rescope: {planner: s2}}"), "  acted4:\n", kActed4, "  fan:\n", fan_of("echo"), "  parked_fan:\n    deadline: 4h\n", fan_of("parked"),
      "coordinator: {group_id: ", prefix, "coordinator, processing: ", processing,
      static_membership ? ", static_membership: true" : "", "}\n",
      "worker: {group_prefix: ", prefix, "workers}\n", extra);
}

namespace {

// The low-latency profile's client settings (docs/configuration.md): the
// producers send at once instead of lingering 2 ms for a batch.
constexpr char kLowLatencyKafka[] = "  producer: {linger.ms: 0}\n";

std::string KafkaExtra(const BenchOptions& o) {
  return o.linger_ms >= 0 ? absl::StrCat("  producer: {linger.ms: ", o.linger_ms, "}\n") : "";
}

struct RunSpec {
  std::string name;
  std::string processing = "at_least_once";
  int coordinators = 1;
  int workers = 1;
  int max_in_flight = 256;
  std::string extra_config;
  std::string coordinator_extra;  // more keys of the coordinator section (", commit_policy: interval")
  std::string kafka_extra;        // more lines of the kafka section
  bool profile_kafka = false;     // kafka_extra is a profile's: --linger_ms does not apply
  bool static_membership = false;  // coordinator.static_membership
  std::vector<std::string> worker_flags;  // more flags for every worker: {"--agents", "echo"}
  std::string warm_workflow = "one";       // what the warm-up runs: an agent the workers serve
  std::string action_url = kNoActionUrl;  // acted4's action (a ToolServer's url())
};

// The external system acted4's action changes: an HTTP endpoint on this
// process that applies each Idempotency-Key once, as a payment API does, and
// counts requests and distinct keys (effects), so a run can tell a lost or a
// doubled effect from a retried request.
class ToolServer {
 public:
  static absl::StatusOr<std::unique_ptr<ToolServer>> Start() {
    std::unique_ptr<ToolServer> t(new ToolServer());
    ToolServer* self = t.get();
    ASSIGN_OR_RETURN(t->http_, HttpServer::Start("127.0.0.1:0", {{"/effect", [self](const HttpServerRequest& r) {
                                                                     return self->Apply(r);
                                                                   }}}));
    return t;
  }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", http_->port(), "/effect"); }
  struct Counts {
    int64_t requests = 0, effects = 0;
  };
  Counts counts() {
    absl::MutexLock lock(&mu_);
    return {requests_, static_cast<int64_t>(keys_.size())};
  }

 private:
  ToolServer() = default;
  HttpReply Apply(const HttpServerRequest& r) {
    std::string key = r.Header("idempotency-key");
    if (r.method != "POST" || key.empty()) return HttpReply(400, "text/plain", "POST with an Idempotency-Key\n");
    absl::MutexLock lock(&mu_);
    ++requests_;
    bool applied = keys_.insert(key).second;
    return HttpReply(200, "application/json", applied ? R"({"applied":true})" : R"({"applied":false,"repeat":true})");
  }
  absl::Mutex mu_;
  int64_t requests_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_set<std::string> keys_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<HttpServer> http_;  // last: stopped (its threads joined) before the counts go
};

// One fleet on the broker under test, with a client (a producer and a result
// collector) that submits tasks and waits for their results.
class BenchFleet {
 public:
  static absl::StatusOr<std::unique_ptr<BenchFleet>> Start(const BenchOptions& options, const RunSpec& spec);
  // Nothing is measured after a run: its processes are killed (a graceful
  // stop would wait for parked calls), with their own broker or topics.
  ~BenchFleet() { fleet_.Stop(absl::ZeroDuration()); }

  // Submits `tasks` as fast as the producer takes them and waits for every
  // result. Sets the wall time from the first submission to the last result.
  absl::StatusOr<std::vector<v1::TaskResult>> Run(std::vector<v1::TaskSubmission> tasks, absl::Duration timeout,
                                                  double* seconds = nullptr);
  // Submits without waiting.
  absl::Status Submit(std::vector<v1::TaskSubmission> tasks);

  // The broker is not among the processes (in-process or external): the
  // coordinators come first, then the workers.
  pid_t coordinator() const { return fleet_.pids().front(); }
  std::vector<pid_t> workers() const { return {fleet_.pids().begin() + spec_.coordinators, fleet_.pids().end()}; }
  const FleetConfig& config() const { return config_; }
  LocalFleet& fleet() { return fleet_; }
  ResultCollector& collector() { return *collector_; }
  std::string NewId() { return absl::StrCat(spec_.name, "-", next_id_++); }

 private:
  BenchFleet(std::string dir, std::string config_path, RunSpec spec)
      : spec_(std::move(spec)), fleet_(std::move(dir), std::move(config_path)) {}

  RunSpec spec_;
  FleetConfig config_;
  std::unique_ptr<MockCluster> dev_broker_;
  LocalFleet fleet_;
  std::unique_ptr<Producer> producer_;
  std::unique_ptr<ResultCollector> collector_;
  int64_t next_id_ = 0;
};

absl::StatusOr<std::unique_ptr<BenchFleet>> BenchFleet::Start(const BenchOptions& options, const RunSpec& spec) {
  std::string dir = options.work_dir + "/" + spec.name;
  std::filesystem::create_directories(dir);
  std::string prefix = absl::StrCat("bench.", absl::ToUnixSeconds(absl::Now()), ".", spec.name, ".");
  std::string path = dir + "/fleet.yaml";
  std::ofstream(path) << BenchConfig(prefix, spec.processing + spec.coordinator_extra, spec.extra_config,
                                     (spec.profile_kafka ? "" : KafkaExtra(options)) + spec.kafka_extra,
                                     spec.static_membership, spec.action_url);
  ASSIGN_OR_RETURN(FleetConfig config, LoadConfigFile(path));
  std::unique_ptr<BenchFleet> f(new BenchFleet(dir, path, spec));
  if (options.bootstrap.empty()) {
    ASSIGN_OR_RETURN(f->dev_broker_, MockCluster::Start(1, FleetTopics(config)));
    config.kafka.properties["bootstrap.servers"] = f->dev_broker_->bootstrap();
    ApplyDevBrokerSettings(&config.kafka);
    f->fleet_.UseBroker(f->dev_broker_->bootstrap(), true);
  } else {
    config.kafka.properties["bootstrap.servers"] = options.bootstrap;
    RETURN_IF_ERROR(CreateTopics(ProducerProperties(config.kafka), FleetTopics(config), absl::Seconds(60)));
    f->fleet_.UseBroker(options.bootstrap, false);
  }
  f->config_ = std::move(config);
  for (int i = 1; i <= spec.coordinators; ++i) {
    RETURN_IF_ERROR(f->fleet_.StartCoordinator(absl::StrCat("c", i)).status());
  }
  for (int i = 1; i <= spec.workers; ++i) {
    std::vector<std::string> flags = {"--max_in_flight", absl::StrCat(spec.max_in_flight)};
    flags.insert(flags.end(), spec.worker_flags.begin(), spec.worker_flags.end());
    RETURN_IF_ERROR(f->fleet_.StartWorker(absl::StrCat("w", i), flags).status());
  }
  RETURN_IF_ERROR(f->fleet_.WaitAllLogged("partitions assigned", absl::Seconds(90)));
  ASSIGN_OR_RETURN(f->producer_, NewProducer(ProducerProperties(f->config_.kafka)));
  Topics topics(f->config_.kafka.topic_prefix);
  RETURN_IF_ERROR(f->producer_->Warm(topics.tasks, absl::Seconds(30)));
  ASSIGN_OR_RETURN(f->collector_, ResultCollector::Start(f->config_, f->producer_.get()));
  // Warm up: tasks through every partition, so every process has done real work.
  std::vector<v1::TaskSubmission> warm;
  for (int i = 0; i < 64; ++i) {
    v1::TaskSubmission t;
    t.set_task_id(f->NewId());
    t.set_workflow(spec.warm_workflow);
    (*t.mutable_input()->mutable_fields())["text"].set_string_value("warm");
    warm.push_back(std::move(t));
  }
  auto done = f->Run(std::move(warm), absl::Seconds(120));
  if (!done.ok()) return absl::Status(done.status().code(), absl::StrCat("warm-up: ", done.status().message()));
  if (!f->fleet_.AllRunning()) return absl::InternalError("a fleet process exited (logs in " + dir + ")");
  return f;
}

absl::Status BenchFleet::Submit(std::vector<v1::TaskSubmission> tasks) {
  Topics topics(config_.kafka.topic_prefix);
  for (auto& t : tasks) {
    absl::Time now = absl::Now();
    *t.mutable_submitted_at() = ToTimestamp(now);
    collector_->Expect(t.task_id(), now);
    Encoded e = Encode(t, NewTraceparent());
    RETURN_IF_ERROR(producer_->Produce({topics.tasks, t.task_id(), std::move(e.payload), std::move(e.headers)}));
    if (t.workflow() == "waited4") {
      // Its wait step's signal, at once: as an approval service that answers
      // straight away would (a signal before the step starts is kept for it).
      v1::TaskSignal signal;
      signal.set_task_id(t.task_id());
      signal.set_name("go");
      signal.set_sender("bench");
      signal.mutable_payload()->set_bool_value(true);
      *signal.mutable_sent_at() = ToTimestamp(now);
      Encoded se = Encode(signal, NewTraceparent());
      RETURN_IF_ERROR(producer_->Produce({topics.signals, t.task_id(), std::move(se.payload), std::move(se.headers)}));
    }
    collector_->Poll(absl::ZeroDuration());
  }
  return producer_->Flush(absl::Seconds(60));
}

absl::StatusOr<std::vector<v1::TaskResult>> BenchFleet::Run(std::vector<v1::TaskSubmission> tasks,
                                                            absl::Duration timeout, double* seconds) {
  size_t before = collector_->results().size();
  size_t want = tasks.size();
  absl::Time start = absl::Now();
  RETURN_IF_ERROR(Submit(std::move(tasks)));
  absl::Time deadline = start + timeout;
  while (collector_->results().size() < before + want && absl::Now() < deadline && !ShutdownRequested()) {
    collector_->Poll(absl::Milliseconds(2));
  }
  if (seconds) *seconds = absl::ToDoubleSeconds(absl::Now() - start);
  size_t got = collector_->results().size() - before;
  if (got < want) {
    return absl::DeadlineExceededError(absl::StrCat(got, " of ", want, " results within ", absl::FormatDuration(timeout),
                                                    " (logs in ", fleet_.dir(), ")"));
  }
  return std::vector<v1::TaskResult>(collector_->results().begin() + before, collector_->results().end());
}

v1::TaskSubmission Task(BenchFleet& f, const std::string& workflow, int fan_out = 0, const std::string& tenant = "") {
  v1::TaskSubmission t;
  t.set_task_id(f.NewId());
  t.set_workflow(workflow);
  t.set_tenant(tenant);
  auto& fields = *t.mutable_input()->mutable_fields();
  fields["text"].set_string_value(t.task_id());
  if (fan_out > 0) {
    auto* items = fields["items"].mutable_list_value();
    for (int i = 0; i < fan_out; ++i) items->add_values()->set_string_value(absl::StrCat(t.task_id(), "/", i));
  }
  return t;
}

double Ms(const google::protobuf::Timestamp& from, const google::protobuf::Timestamp& to) {
  return TimeUtil::DurationToNanoseconds(to - from) / 1e6;
}

int64_t Rss(pid_t pid) {
  auto s = ReadProcessStats(pid);
  return s.ok() ? s->rss_bytes : 0;
}

// The RSS of a process that just took a burst of work, once the memory the
// burst freed has gone back to the system (jemalloc returns pages left unused
// for dirty_decay_ms, 10 s by default, gradually): sampled every second, past
// one decay period, until it stops falling; at most 30 s. What a long-running
// process holds, not the garbage of the burst that filled it (2 s after
// parking 100,000 tasks, the coordinator's RSS held ~0.5-0.9 KB per task of
// freed message buffers). `quick` (CI's smoke run, which quotes nothing)
// reads it at once.
int64_t SettledRss(pid_t pid, bool quick) {
  int64_t last = Rss(pid);
  if (quick) return last;
  for (int i = 0; i < 30; ++i) {
    absl::SleepFor(absl::Seconds(1));
    int64_t now = Rss(pid);
    if (i >= 11 && now >= last - last / 200) return now;  // less than 0.5% down in a second
    last = now;
  }
  return last;
}
double Cpu(const std::vector<pid_t>& pids) {
  double sum = 0;
  for (pid_t p : pids) {
    auto s = ReadProcessStats(p);
    if (s.ok()) sum += s->cpu_seconds;
  }
  return sum;
}

// Sequential one-at-a-time tasks: the coordinator's accepted → finished
// (the steps alone) and the client's submit → result.
absl::Status MeasureLatency(BenchFleet& f, const std::string& workflow, int fan_out, int samples,
                            Percentiles* steps, Percentiles* task) {
  std::vector<double> inner, outer, in_hop, out_hop;
  for (int i = 0; i < samples; ++i) {
    auto r = f.Run({Task(f, workflow, fan_out)}, absl::Seconds(60));
    if (!r.ok()) return r.status();
    const v1::TaskResult& res = r->front();
    if (res.status() != v1::TASK_STATUS_COMPLETED) return absl::InternalError("task " + res.task_id() + " did not complete");
    absl::Time now = absl::Now();
    inner.push_back(Ms(res.accepted_at(), res.finished_at()));
    outer.push_back(absl::ToDoubleMilliseconds(now - FromTimestamp(res.submitted_at())));
    in_hop.push_back(Ms(res.submitted_at(), res.accepted_at()));
    out_hop.push_back(absl::ToDoubleMilliseconds(now - FromTimestamp(res.finished_at())));
  }
  Say(absl::StrCat("  submit -> accepted p50 ", PercentilesOf(in_hop).p50, " ms; finished -> client p50 ",
                   PercentilesOf(out_hop).p50, " ms"));
  *steps = PercentilesOf(inner);
  if (task) *task = PercentilesOf(outer);
  return absl::OkStatus();
}

// Steps that ran (a skipped branch is not a step run).
int64_t CountSteps(const std::vector<v1::TaskResult>& results) {
  int64_t n = 0;
  for (const auto& r : results) {
    for (const auto& s : r.steps()) n += s.status() != v1::STEP_STATUS_SKIPPED;
  }
  return n;
}

// Submits `count` tasks at once; steps per second from the first submission to the last result.
absl::StatusOr<BrokerResults::Throughput> MeasureThroughput(BenchFleet& f, const std::string& workflow, int count,
                                                            int tenants = 0) {
  std::vector<v1::TaskSubmission> tasks;
  for (int i = 0; i < count; ++i) {
    tasks.push_back(Task(f, workflow, 0, tenants > 0 ? absl::StrCat("tenant-", i % tenants) : ""));
  }
  Say(absl::StrCat("  submitting ", count, " ", workflow, " tasks at once"));
  BrokerResults::Throughput t;
  double c0 = Cpu({f.coordinator()}), w0 = Cpu(f.workers());
  CpuTimes m0 = ReadCpuTimes();
  ASSIGN_OR_RETURN(auto results, f.Run(std::move(tasks), absl::Minutes(10), &t.seconds));
  t.machine_busy = BusyShare(m0, ReadCpuTimes());
  t.coordinator_cpu_s = Cpu({f.coordinator()}) - c0;
  t.workers_cpu_s = Cpu(f.workers()) - w0;
  for (const auto& r : results) {
    if (r.status() != v1::TASK_STATUS_COMPLETED) return absl::InternalError("task " + r.task_id() + " did not complete");
    t.calls += r.usage().calls();
  }
  t.tasks = count;
  t.steps = CountSteps(results);
  t.steps_per_s = t.steps / t.seconds;
  return t;
}

// Submits tasks that park (their agent answers in two hours) and waits until
// every one is dispatched (its work items are on the work topic): they are
// all in flight in the coordinator.
absl::Status Park(BenchFleet& f, const std::string& workflow, int count, int fan_out) {
  Topics topics(f.config().kafka.topic_prefix);
  auto marks0 = QueryWatermarks(ConsumerProperties(f.config().kafka, "bench"), topics.Work("parked"), absl::Seconds(30));
  if (!marks0.ok()) return marks0.status();
  int64_t base = 0;
  for (const auto& m : *marks0) base += m.high;
  std::vector<v1::TaskSubmission> tasks;
  for (int i = 0; i < count; ++i) tasks.push_back(Task(f, workflow, fan_out));
  RETURN_IF_ERROR(f.Submit(std::move(tasks)));
  int64_t want = base + static_cast<int64_t>(count) * std::max(fan_out, 1);
  for (absl::Time until = absl::Now() + absl::Minutes(10); absl::Now() < until;) {
    auto marks = QueryWatermarks(ConsumerProperties(f.config().kafka, "bench"), topics.Work("parked"), absl::Seconds(30));
    if (!marks.ok()) return marks.status();
    int64_t n = 0;
    for (const auto& m : *marks) n += m.high;
    // exactly_once would count transaction markers too; the suite parks in at_least_once.
    if (n >= want) {
      absl::SleepFor(absl::Seconds(2));  // the state snapshots behind the last dispatch
      return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(500));
  }
  return absl::DeadlineExceededError(absl::StrCat("parking ", count, " tasks: not all dispatched within 10 min"));
}

// Something done to a fleet at a moment of a steady load.
struct LoadEvent {
  absl::Duration at;  // from the start of the load
  std::function<absl::Status()> run;
  absl::Time happened = absl::InfinitePast();
};

// Submits one-step `workflow` tasks at `rate` per second for `length`,
// running each event (in order of `at`) when its time comes, then waits up
// to `drain` for every result. Returns the results of this load.
absl::StatusOr<std::vector<v1::TaskResult>> SteadyLoad(BenchFleet& f, const std::string& workflow, double rate,
                                                       absl::Duration length, std::vector<LoadEvent>* events,
                                                       absl::Duration drain) {
  size_t before = f.collector().results().size();
  absl::Time start = absl::Now();
  int64_t sent = 0;
  size_t next_event = 0;
  for (absl::Duration elapsed; (elapsed = absl::Now() - start) < length && !ShutdownRequested();) {
    for (; next_event < events->size() && (*events)[next_event].at <= elapsed; ++next_event) {
      (*events)[next_event].happened = absl::Now();
      RETURN_IF_ERROR((*events)[next_event].run());
    }
    std::vector<v1::TaskSubmission> batch;
    for (int64_t due = static_cast<int64_t>(absl::ToDoubleSeconds(elapsed) * rate); sent < due; ++sent) {
      batch.push_back(Task(f, workflow));
    }
    if (!batch.empty()) RETURN_IF_ERROR(f.Submit(std::move(batch)));
    f.collector().Poll(absl::Milliseconds(5));
  }
  size_t want = before + static_cast<size_t>(sent);
  for (absl::Time until = absl::Now() + drain; f.collector().results().size() < want && absl::Now() < until;) {
    f.collector().Poll(absl::Milliseconds(10));
  }
  size_t got = f.collector().results().size() - before;
  if (got < static_cast<size_t>(sent)) {
    return absl::DeadlineExceededError(absl::StrCat(got, " of ", sent, " results of the steady load"));
  }
  return std::vector<v1::TaskResult>(f.collector().results().begin() + before, f.collector().results().end());
}

// The coordinator's transaction commits so far (exactly_once), from its
// /metrics: how many, the seconds they took, the inputs they committed, and
// the seconds its loop stood still for them (less: a commit under load runs
// beside the next batch).
struct CommitTotals {
  double commits = 0, seconds = 0, inputs = 0, waited = 0;
};
absl::StatusOr<CommitTotals> ReadCommitTotals(BenchFleet& f) {
  int port = 0;
  std::ifstream log(f.fleet().dir() + "/coordinator-c1.log");
  for (std::string line; port == 0 && std::getline(log, line);) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("msg", "") == "http listening") port = std::stoi(j.value("port", "0"));
  }
  if (port == 0) return absl::NotFoundError("the coordinator logged no http port");
  static HttpClient* client = new HttpClient();  // one loop thread for the run
  std::promise<HttpResponse> reply;
  HttpRequest request;
  request.url = absl::StrCat("http://127.0.0.1:", port, "/metrics");
  request.method = "GET";
  request.timeout = absl::Seconds(10);
  client->Send(std::move(request), [&reply](HttpResponse r) { reply.set_value(std::move(r)); });
  HttpResponse r = reply.get_future().get();
  if (r.transport != HttpResponse::Transport::kOk || r.status != 200) {
    return absl::UnavailableError(absl::StrCat("/metrics of the coordinator: ", r.transport_error, " ", r.status));
  }
  CommitTotals t;
  for (absl::string_view line : absl::StrSplit(r.body, '\n')) {
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (parts.size() != 2) continue;
    double v = 0;
    if (!absl::SimpleAtod(parts[1], &v)) continue;
    if (absl::StartsWith(parts[0], "agentfleet_coordinator_commit_seconds_count")) t.commits += v;
    if (absl::StartsWith(parts[0], "agentfleet_coordinator_commit_seconds_sum")) t.seconds += v;
    if (absl::StartsWith(parts[0], "agentfleet_coordinator_commit_inputs_sum")) t.inputs += v;
    if (absl::StartsWith(parts[0], "agentfleet_coordinator_commit_wait_seconds_total")) t.waited += v;
  }
  return t;
}

// A number the process logged on its "stopped" line (0 if it did not).
int64_t LoggedTotal(const std::string& log_file, const std::string& field) {
  std::ifstream in(log_file);
  int64_t value = 0;
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("msg", "") == "stopped") value = std::stoll(j.value(field, "0"));
  }
  return value;
}

double LatencyMs(const v1::TaskResult& r) { return Ms(r.submitted_at(), r.finished_at()); }

// How long the work of a member SIGKILLed at `kill` waited: a task "stalled"
// if it took more than max(1 s, 10 × the p50 before the kill).
BrokerResults::Failover AnalyzeFailover(const std::vector<v1::TaskResult>& results, absl::Time kill) {
  BrokerResults::Failover out;
  std::vector<double> before;
  for (const auto& r : results) {
    if (FromTimestamp(r.submitted_at()) < kill) before.push_back(LatencyMs(r));
  }
  out.baseline_p50_ms = PercentilesOf(before).p50;
  double threshold = std::max(1000.0, 10 * out.baseline_p50_ms);
  double first = -1;
  for (const auto& r : results) {
    double latency = LatencyMs(r);
    out.longest_wait_ms = std::max(out.longest_wait_ms, latency);
    if (latency <= threshold) continue;
    ++out.stalled;
    double after_kill = absl::ToDoubleMilliseconds(FromTimestamp(r.finished_at()) - kill);
    if (after_kill > 0 && (first < 0 || after_kill < first)) first = after_kill;
  }
  out.kill_to_first_ms = std::max(first, 0.0);
  return out;
}

// Throughput and waits in the `window` after a scale event at `at`.
BrokerResults::Rebalance AnalyzeRebalance(const std::vector<v1::TaskResult>& results, absl::Time at,
                                          absl::Duration window, double rate) {
  BrokerResults::Rebalance out;
  out.rate = rate;
  const absl::Duration bucket = absl::Milliseconds(250);
  std::vector<int> buckets(static_cast<size_t>(window / bucket), 0);
  std::vector<absl::Time> finished;
  std::vector<double> waits;
  absl::Time last_before = absl::InfinitePast();
  for (const auto& r : results) {
    absl::Time done = FromTimestamp(r.finished_at());
    if (done < at) last_before = std::max(last_before, done);
    if (done >= at && done < at + window) {
      ++buckets[static_cast<size_t>((done - at) / bucket)];
      finished.push_back(done);
    }
    absl::Time submitted = FromTimestamp(r.submitted_at());
    if (submitted >= at && submitted < at + window) waits.push_back(LatencyMs(r));
  }
  out.min_share = buckets.empty() ? 0 : *std::min_element(buckets.begin(), buckets.end()) /
                                            (rate * absl::ToDoubleSeconds(bucket));
  std::sort(finished.begin(), finished.end());
  absl::Time prev = last_before == absl::InfinitePast() ? at : last_before;
  absl::Duration gap;
  for (absl::Time t : finished) {
    gap = std::max(gap, t - prev);
    prev = t;
  }
  out.longest_gap_ms = absl::ToDoubleMilliseconds(std::max(gap, at + window - prev));
  out.latency = PercentilesOf(waits);
  for (double w : waits) out.max_ms = std::max(out.max_ms, w);
  return out;
}

struct Counts {
  int round_trips, raw_messages, latency_samples, throughput_tasks, in_flight_tasks, worker_calls, scale_tasks_per_worker,
      width_samples, width_in_flight, tenant_tasks, steady_tasks, steady_rounds;
};

}  // namespace

// Reading a task's records (trace, replay, fork, diff) with `fillers` other
// tasks' events (a receipt and a result per step of 4, and a result per 8
// events) on the topics: five chain4
// tasks run, then the fillers are produced, then five more tasks run; the
// oldest and the newest task are looked up by their partitions and windows
// and by reading whole topics. The fillers come `margin` + 1 s after the
// older tasks end and before the newer ones start, so each task's window
// holds its own records; one more read, with the CLI's default margin of a
// minute, has the fillers inside the older task's window.
absl::Status MeasureLookup(BenchFleet& f, int64_t fillers, BrokerResults* out) {
  const absl::Duration margin = absl::Seconds(5);
  auto wait_until = [](absl::Time t) {
    while (absl::Now() < t && !ShutdownRequested()) absl::SleepFor(absl::Milliseconds(20));
  };
  auto run = [&f]() -> absl::StatusOr<std::vector<v1::TaskResult>> {
    std::vector<v1::TaskSubmission> tasks;
    for (int i = 0; i < 5; ++i) tasks.push_back(Task(f, "chain4"));
    return f.Run(std::move(tasks), absl::Minutes(2));
  };
  auto latest_end = [](const std::vector<v1::TaskResult>& results) {
    absl::Time t = absl::InfinitePast();
    for (const auto& r : results) t = std::max(t, FromTimestamp(r.finished_at()));
    return t;
  };
  const FleetConfig& config = f.config();
  Topics topics(config.kafka.topic_prefix);
  ASSIGN_OR_RETURN(auto older, run());
  wait_until(latest_end(older) + margin + absl::Seconds(1));
  Say(absl::StrCat("  producing ", fillers, " events of other tasks (and a result per 8)"));
  ASSIGN_OR_RETURN(auto producer, NewProducer(ProducerProperties(config.kafka)));
  for (int64_t i = 0; i < fillers; ++i) {
    std::string id = absl::StrCat("filler-", i / 8);
    // What a worker sends for each of a chain4 task's steps: a receipt, then
    // a result (the coordinator counts them as stale: no such task).
    v1::WorkEvent e;
    e.set_task_id(id);
    e.set_step(absl::StrCat("s", 1 + i % 8 / 2));
    e.set_fan_index(-1);
    e.set_attempt(1);
    if (i % 2 == 0) {
      e.mutable_receipt()->set_worker("w1");
    } else {
      v1::WorkResult* r = e.mutable_result();
      r->set_status(v1::RESULT_STATUS_OK);
      (*r->mutable_output()->mutable_fields())["text"].set_string_value(id);
      r->set_model("sim");
      r->set_worker("w1");
    }
    Encoded ee = Encode(e, "");
    RETURN_IF_ERROR(producer->Produce({topics.events, id, std::move(ee.payload), std::move(ee.headers)}));
    if (i % 8 == 7) {
      v1::TaskResult r;
      r.set_task_id(id);
      r.set_workflow("chain4");
      r.set_status(v1::TASK_STATUS_COMPLETED);
      Encoded er = Encode(r, "");
      RETURN_IF_ERROR(producer->Produce({topics.results, id, std::move(er.payload), std::move(er.headers)}));
    }
  }
  RETURN_IF_ERROR(producer->Flush(absl::Minutes(5)));
  wait_until(absl::Now() + margin + absl::Seconds(1));
  ASSIGN_OR_RETURN(auto newer, run());
  for (const TopicSpec& t : FleetTopics(config)) {
    ASSIGN_OR_RETURN(auto marks, QueryWatermarks(ProducerProperties(config.kafka), t.name, absl::Minutes(1)));
    int64_t records = 0;
    for (const Watermarks& w : marks) records += w.high - w.low;
    out->lookup_records += records;
    if (t.name == topics.events) out->lookup_events = records;
    if (records > 1000) Say(absl::StrCat("  ", t.name, ": ", records, " offsets"));
  }
  struct Case {
    std::string task, id, how;
    RecordsLookup lookup;
    int samples;
  };
  RecordsLookup window, minute, everything;
  window.margin = margin;
  everything.scan_all = true;
  const std::string margin_text = absl::StrCat("its partitions and window ±", absl::FormatDuration(margin));
  std::vector<Case> cases = {
      {"the newest", newer.back().task_id(), margin_text, window, 5},
      {"the oldest (before the fillers)", older.front().task_id(), margin_text, window, 5},
      {"the oldest (before the fillers)", older.front().task_id(), "its partitions and window ±1m (the CLI's default)",
       minute, 3},
      {"the newest", newer.back().task_id(), "every partition of every topic (--scan_all)", everything, 1},
      {"the oldest (before the fillers)", older.front().task_id(), "every partition of every topic (--scan_all)",
       everything, 1},
  };
  for (const Case& c : cases) {
    BrokerResults::Lookup l;
    l.task = c.task;
    l.how = c.how;
    std::vector<double> ms;
    for (int i = 0; i < c.samples; ++i) {
      LookupStats stats;
      absl::Time start = absl::Now();
      ASSIGN_OR_RETURN(TaskRecords records, ReadTaskRecords(config, c.id, absl::Minutes(5), c.lookup, &stats));
      ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
      l.scanned = stats.scanned;
      l.result_rounds = stats.result_rounds;
      ASSIGN_OR_RETURN(ReplayReport report, Replay(config, c.id, records));
      l.identical = report.identical() && !report.decisions.empty();
    }
    l.ms = PercentilesOf(ms);
    Say(absl::StrCat("  ", c.task, ", ", c.how, ": ", l.ms.p50, " ms, ", l.scanned, " records read, replay ",
                     l.identical ? "identical" : "NOT identical"));
    out->lookup.push_back(l);
  }
  return absl::OkStatus();
}

absl::Status CheckFeatureCalls(const FeatureWorkflow& w, int64_t tasks, int64_t calls) {
  if (!w.own_calls || calls == static_cast<int64_t>(w.calls) * tasks) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(w.name, ": ", calls, " model calls for ", tasks, " tasks, expected ", w.calls,
                                          " each (a cache that hit, or a signal not acted on)"));
}

absl::Status CheckFeatureEffects(const FeatureWorkflow& w, int64_t tasks, int64_t effects) {
  if (effects == static_cast<int64_t>(w.effects) * tasks) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(w.name, ": ", effects, " side effects for ", tasks, " tasks, expected ",
                                          w.effects, " each (an action lost, or applied under two keys)"));
}

absl::StatusOr<BrokerResults> RunBenchSuite(const BenchOptions& o) {
  const Counts n = o.quick ? Counts{20, 2000, 5, 200, 2000, 400, 50, 3, 100, 200, 200, 2}
                           : Counts{1000, 100000, 300, 25000, 100000, 20000, 5000, 100, 1000, 10000, 50000, 3};
  BrokerResults out;
  out.broker = o.broker_name;
  std::string tag = o.bootstrap.empty() ? "dev" : "kafka";
  auto spec = [&](std::string name) {
    RunSpec s;
    s.name = tag + "-" + name;
    return s;
  };

  // 1. The raw limit, on the topics of a fleet config (two work topics), with
  // its client settings (`kafka_extra`: a profile's). Kept per profile, so
  // its pipelined rate can be measured again beside each throughput run.
  struct RawSetup {
    std::unique_ptr<MockCluster> dev;  // on the development broker: the raw limit's own
    RawKafkaOptions options;
  };
  std::map<std::string, RawSetup> raw_setups;  // by profile
  const int passes = o.quick ? 1 : 3;
  auto measure_raw = [&](const std::string& name, const std::string& profile,
                         const std::string& kafka_extra) -> absl::StatusOr<RawKafkaResult> {
    RunSpec s = spec(name);
    std::string dir = o.work_dir + "/" + s.name;
    std::filesystem::create_directories(dir);
    std::string prefix = absl::StrCat("bench.", absl::ToUnixSeconds(absl::Now()), ".", s.name, ".");
    ASSIGN_OR_RETURN(FleetConfig config, LoadConfigString(BenchConfig(prefix, "at_least_once", "", kafka_extra),
                                                          dir + "/fleet.yaml"));
    RawSetup& setup = raw_setups[profile];
    if (o.bootstrap.empty()) {
      ASSIGN_OR_RETURN(setup.dev, MockCluster::Start(1, FleetTopics(config)));
      config.kafka.properties["bootstrap.servers"] = setup.dev->bootstrap();
      ApplyDevBrokerSettings(&config.kafka);
    } else {
      config.kafka.properties["bootstrap.servers"] = o.bootstrap;
      RETURN_IF_ERROR(CreateTopics(ProducerProperties(config.kafka), FleetTopics(config), absl::Seconds(60)));
    }
    Topics topics(prefix);
    RawKafkaOptions& r = setup.options;
    r.producer = ProducerProperties(config.kafka);
    r.consumer = ConsumerProperties(config.kafka, "unused");
    r.ping_topic = topics.Work("echo");
    r.pong_topic = topics.Work("slow");
    r.round_trips = n.round_trips;
    r.messages = n.raw_messages;
    r.pipelined_passes = passes;
    ASSIGN_OR_RETURN(RawKafkaResult raw, MeasureRawKafka(r));
    Percentiles rt = PercentilesOf(raw.round_trip_ms);
    Say(absl::StrCat("raw (", name, "): round trip p50 ", rt.p50, " ms, p99 ", rt.p99, " ms; ",
                     static_cast<int64_t>(raw.messages_per_s), " msg/s pipelined (median of ", passes, ")"));
    return raw;
  };
  // The profile's raw pipelined rate, now: its passes' rates.
  auto pipelined_now = [&](const std::string& profile) -> absl::StatusOr<std::vector<double>> {
    RawKafkaOptions r = raw_setups.at(profile).options;
    r.round_trips = 0;
    ASSIGN_OR_RETURN(RawKafkaResult raw, MeasureRawKafka(r));
    return raw.pipelined_per_s;
  };
  Say("raw librdkafka round trip and pipelined rate");
  ASSIGN_OR_RETURN(out.raw, measure_raw("raw", "default", KafkaExtra(o)));
  out.raw_round_trip = PercentilesOf(out.raw.round_trip_ms);

  // 2 and 3. Step overhead (one task at a time) and throughput, per
  // processing mode: exactly_once with adaptive commits (the default) and,
  // for comparison, a commit every commit_interval; then both modes in the
  // low-latency profile, against a raw round trip with its settings.
  struct ModeRun {
    std::string label, processing, coordinator_extra;
    std::string tag;  // in the run's name (its topics and log directory)
  };
  struct ProfileRun {
    BrokerResults::Profile profile;
    std::string kafka_extra;
    std::vector<ModeRun> modes;
  };
  std::vector<ProfileRun> profile_runs = {
      {{"default", o.linger_ms >= 0 ? absl::StrCat("linger.ms ", o.linger_ms) : "linger.ms 2", {}, 0},
       "",
       {{"at_least_once", "at_least_once", "", "alo"},
        {"exactly_once", "exactly_once", "", "eos"},
        {"exactly_once (interval)", "exactly_once", ", commit_policy: interval", "eos-interval"}}},
      {{"low_latency", "linger.ms 0", {}, 0},
       std::string(kLowLatencyKafka),
       {{"at_least_once", "at_least_once", "", "ll-alo"}, {"exactly_once", "exactly_once", "", "ll-eos"}}},
  };
  for (ProfileRun& p : profile_runs) {
    if (!o.Runs("modes")) break;
    if (p.profile.name == "default") {
      p.profile.raw_round_trip = out.raw_round_trip;
      p.profile.raw_messages_per_s = out.raw.messages_per_s;
    } else {
      ASSIGN_OR_RETURN(RawKafkaResult raw, measure_raw("raw-" + p.profile.name, p.profile.name, p.kafka_extra));
      p.profile.raw_round_trip = PercentilesOf(raw.round_trip_ms);
      p.profile.raw_messages_per_s = raw.messages_per_s;
    }
    out.profiles.push_back(p.profile);
    for (const ModeRun& m : p.modes) {
      if (o.quick && !m.coordinator_extra.empty()) continue;  // the comparison, in full runs only
      RunSpec s = spec(m.tag);
      s.processing = m.processing;
      s.coordinator_extra = m.coordinator_extra;
      if (p.profile.name != "default") {
        s.kafka_extra = p.kafka_extra;
        s.profile_kafka = true;
      }
      s.workers = 2;
      Say(absl::StrCat("step latency and throughput, ", m.label, ", profile ", p.profile.name,
                       ": 1 coordinator, 2 workers, 0 ms agents"));
      ASSIGN_OR_RETURN(auto f, BenchFleet::Start(o, s));
      BrokerResults::Step step;
      step.profile = p.profile.name;
      step.mode = m.label;
      RETURN_IF_ERROR(MeasureLatency(*f, "one", 0, n.latency_samples, &step.step, &step.task));
      out.steps.push_back(step);
      // The raw pipelined rate right before and after the throughput run:
      // this machine's speed moves by ×2 within minutes.
      ASSIGN_OR_RETURN(std::vector<double> raw_rates, pipelined_now(p.profile.name));
      ASSIGN_OR_RETURN(auto t, MeasureThroughput(*f, "chain4", n.throughput_tasks));
      ASSIGN_OR_RETURN(std::vector<double> raw_after, pipelined_now(p.profile.name));
      raw_rates.insert(raw_rates.end(), raw_after.begin(), raw_after.end());
      t.raw_messages_per_s = PercentilesOf(raw_rates).p50;
      t.raw_min_per_s = *std::min_element(raw_rates.begin(), raw_rates.end());
      t.raw_max_per_s = *std::max_element(raw_rates.begin(), raw_rates.end());
      t.profile = p.profile.name;
      t.mode = m.label;
      out.throughput.push_back(t);
      Say(absl::StrCat(m.label, " (", p.profile.name, "): step p50 ", step.step.p50, " ms, p99 ", step.step.p99,
                       " ms; ", static_cast<int64_t>(t.steps_per_s), " steps/s against raw ",
                       static_cast<int64_t>(t.raw_messages_per_s), " msg/s pipelined beside it (",
                       static_cast<int64_t>(t.raw_min_per_s), "–", static_cast<int64_t>(t.raw_max_per_s), ")"));
    }
  }

  // 4a. Tasks in flight in one coordinator: RSS before and with them all parked.
  if (o.Runs("inflight")) {
    RunSpec s = spec("inflight");
    s.max_in_flight = 1000;
    Say(absl::StrCat(n.in_flight_tasks, " tasks in flight in one coordinator"));
    ASSIGN_OR_RETURN(auto f, BenchFleet::Start(o, s));
    out.in_flight.tasks = n.in_flight_tasks;
    out.in_flight.rss_before = Rss(f->coordinator());
    RETURN_IF_ERROR(Park(*f, "parked_one", n.in_flight_tasks, 0));
    out.in_flight.rss_loaded = SettledRss(f->coordinator(), o.quick);
    out.in_flight.bytes_per_task =
        static_cast<double>(out.in_flight.rss_loaded - out.in_flight.rss_before) / n.in_flight_tasks;
    Say(absl::StrCat("coordinator RSS ", out.in_flight.rss_before >> 20, " MiB idle, ", out.in_flight.rss_loaded >> 20,
                     " MiB with ", n.in_flight_tasks, " tasks in flight"));
  }

  // 4b. One worker holding 2,000 calls of 2 s each.
  if (o.Runs("worker")) {
    RunSpec s = spec("worker");
    s.max_in_flight = 2000;
    Say(absl::StrCat("one worker, ", n.worker_calls, " calls of 2 s, 2000 in flight"));
    ASSIGN_OR_RETURN(auto f, BenchFleet::Start(o, s));
    pid_t w = f->workers().front();
    double cpu0 = Cpu({w});
    std::vector<v1::TaskSubmission> tasks;
    for (int i = 0; i < n.worker_calls; ++i) tasks.push_back(Task(*f, "slow2s_one"));
    double seconds = 0;
    RETURN_IF_ERROR(f->Run(std::move(tasks), absl::Minutes(10), &seconds).status());
    auto stats = ReadProcessStats(w);
    if (!stats.ok()) return stats.status();
    out.worker.calls = n.worker_calls;
    out.worker.max_in_flight = 2000;
    out.worker.agent_latency_s = 2;
    out.worker.peak_rss = stats->peak_rss_bytes;
    out.worker.cpu_ms_per_call = (stats->cpu_seconds - cpu0) * 1000 / n.worker_calls;
    out.worker.calls_per_s = n.worker_calls / seconds;
  }

  // 5. Scale-out: 200 ms agents, 1/2/4 workers × 1/2 coordinators.
  for (int coordinators : {1, 2}) {
    if (!o.Runs("scale")) break;
    for (int workers : {1, 2, 4}) {
      RunSpec s = spec(absl::StrCat("scale-c", coordinators, "w", workers));
      s.coordinators = coordinators;
      s.workers = workers;
      s.max_in_flight = 1000;
      Say(absl::StrCat("scale-out: ", coordinators, " coordinators, ", workers, " workers, 200 ms agents"));
      ASSIGN_OR_RETURN(auto f, BenchFleet::Start(o, s));
      ASSIGN_OR_RETURN(auto t, MeasureThroughput(*f, "slow_chain4", n.scale_tasks_per_worker * workers));
      out.scale.push_back({coordinators, workers, t.steps_per_s, t.machine_busy});
      Say(absl::StrCat("  ", static_cast<int64_t>(t.steps_per_s), " steps/s, machine ",
                       static_cast<int>(t.machine_busy * 100), "% busy"));
    }
  }

  // 6a. Width: one fan-out step of 1, 10, 100 instances — latency, and memory per parked task.
  for (int width : {1, 10, 100}) {
    if (!o.Runs("growth")) break;
    RunSpec s = spec(absl::StrCat("fan", width));
    s.workers = 1;
    s.max_in_flight = 1000;
    Say(absl::StrCat("fan-out ", width));
    ASSIGN_OR_RETURN(auto f, BenchFleet::Start(o, s));
    BrokerResults::Width w;
    w.fan_out = width;
    RETURN_IF_ERROR(MeasureLatency(*f, "fan", width, n.width_samples, &w.task, nullptr));
    int64_t before = SettledRss(f->coordinator(), o.quick);
    w.in_flight_tasks = std::max(1, n.width_in_flight / width);
    RETURN_IF_ERROR(Park(*f, "parked_fan", w.in_flight_tasks, width));
    w.bytes_per_task = static_cast<double>(SettledRss(f->coordinator(), o.quick) - before) / w.in_flight_tasks;
    out.widths.push_back(w);
  }

  // 6b. Tenants with budgets: each one a ledger per partition.
  for (int tenants : {1, 100, 10000}) {
    if (!o.Runs("growth")) break;
    RunSpec s = spec(absl::StrCat("tenants", tenants));
    s.workers = 2;
    s.extra_config = "tenants:\n  \"*\": {max_cost_usd: 1000000, period: day}\n";
    Say(absl::StrCat(tenants, " tenants with budgets"));
    ASSIGN_OR_RETURN(auto f, BenchFleet::Start(o, s));
    ASSIGN_OR_RETURN(auto t, MeasureThroughput(*f, "chain4", n.tenant_tasks, tenants));
    out.tenants.push_back({tenants, t.steps_per_s, Rss(f->coordinator())});
  }

  // 7. Failover: a member SIGKILLed under a steady load of one-step tasks
  // (exactly_once, 0 ms agents, a pool of 2 workers serving that agent).
  struct FailoverCase {
    std::string scenario, settings, kafka_extra;
    bool static_membership = false;
    int coordinators = 1;
    bool kill_worker = false, restart = false;
    absl::Duration session = absl::Seconds(10);
  };
  const std::vector<FailoverCase> failover_cases = {
      {"a worker SIGKILLed (2 workers)", "librdkafka's defaults: session 45 s, heartbeat 3 s",
       "  consumer: {session.timeout.ms: \"45000\", heartbeat.interval.ms: \"3000\"}\n", false, 1, true, false,
       absl::Seconds(45)},
      {"a worker SIGKILLed (2 workers)", "agentfleet's defaults: session 10 s, heartbeat 1 s", "", false, 1, true},
      {"a coordinator SIGKILLed (2 replicas)", "agentfleet's defaults", "", false, 2},
      {"the coordinator SIGKILLed and restarted at once, same --instance", "dynamic membership (the default)", "",
       false, 1, false, true},
      {"the coordinator SIGKILLed and restarted at once, same --instance", "static membership", "", true, 1, false,
       true},
  };
  // The development broker's group coordinator is not Kafka's (docs/brokers.md):
  // failover and rebalancing are measured on real Kafka only.
  const bool real_kafka = !o.bootstrap.empty();
  if (!real_kafka && (o.Runs("failover") || o.Runs("rebalance"))) {
    Say("failover and rebalance: measured on real Kafka only (--kafka)");
  }
  for (size_t i = 0; i < failover_cases.size(); ++i) {
    if (!o.Runs("failover") || !real_kafka) break;
    const FailoverCase& fc = failover_cases[i];
    if (o.quick && fc.session > absl::Seconds(10)) continue;
    RunSpec s = spec(absl::StrCat("failover", i));
    s.processing = "exactly_once";
    s.coordinators = fc.coordinators;
    s.workers = 2;
    s.kafka_extra = fc.kafka_extra;
    s.static_membership = fc.static_membership;
    s.worker_flags = {"--agents", "echo"};  // a one-agent pool: each worker owns some of echo's partitions
    Say("failover: " + fc.scenario + ", " + fc.settings);
    ASSIGN_OR_RETURN(auto f, BenchFleet::Start(o, s));
    pid_t victim = fc.kill_worker ? f->workers().front() : f->fleet().pids()[fc.coordinators - 1];
    std::vector<LoadEvent> events = {{absl::Seconds(5), [&]() -> absl::Status {
                                        if (kill(victim, SIGKILL) != 0) return absl::InternalError("kill failed");
                                        if (fc.restart) return f->fleet().StartCoordinator("c1").status();
                                        return absl::OkStatus();
                                      }}};
    double rate = o.quick ? 50 : 100;
    ASSIGN_OR_RETURN(auto results, SteadyLoad(*f, "one", rate, absl::Seconds(10) + fc.session + absl::Seconds(10),
                                              &events, absl::Minutes(2)));
    BrokerResults::Failover r = AnalyzeFailover(results, events.front().happened);
    r.scenario = fc.scenario;
    r.settings = fc.settings;
    out.failover.push_back(r);
    Say(absl::StrCat("  SIGKILL → first stalled task done ", static_cast<int64_t>(r.kill_to_first_ms),
                     " ms; longest wait ", static_cast<int64_t>(r.longest_wait_ms), " ms; ", r.stalled,
                     " tasks stalled"));
  }

  // 10. One task's records among a million others, on real Kafka (the
  // development broker has no time index).
  if (o.Runs("lookup") && !real_kafka) Say("lookup: measured on real Kafka only (--kafka)");
  if (o.Runs("lookup") && real_kafka) {
    RunSpec s = spec("lookup");
    s.processing = "exactly_once";
    Say("lookup: one task's records among a million other records");
    ASSIGN_OR_RETURN(auto f, BenchFleet::Start(o, s));
    RETURN_IF_ERROR(MeasureLookup(*f, o.quick ? 20000 : 1000000, &out));
  }

  // 9. Features against chain4 (the same 4 calls), per mode.
  for (std::string mode : {"at_least_once", "exactly_once"}) {
    if (!o.Runs("features")) break;
    RunSpec s = spec(mode == "at_least_once" ? "feature-alo" : "feature-eos");
    s.processing = mode;
    s.workers = 2;
    ASSIGN_OR_RETURN(std::unique_ptr<ToolServer> tool, ToolServer::Start());
    s.action_url = tool->url();
    std::vector<std::string> names;
    for (const FeatureWorkflow& w : kFeatureWorkflows) names.push_back(w.name);
    Say("features, " + mode + ": " + absl::StrJoin(names, ", ") +
        " (the first the plain chain), 1 coordinator, 2 workers, 0 ms agents, the actions' tool on " + s.action_url);
    ASSIGN_OR_RETURN(auto f, BenchFleet::Start(o, s));
    for (int round = 0; round < 2; ++round) {  // alternating, so drift hits all alike
      for (const FeatureWorkflow& w : kFeatureWorkflows) {
        const std::string workflow = w.name;
        const double calls = w.calls;
        BrokerResults::Feature r;
        r.mode = mode;
        r.workflow = workflow;
        ToolServer::Counts before = tool->counts();
        RETURN_IF_ERROR(MeasureLatency(*f, workflow, 0, n.latency_samples / 2, &r.per_call, nullptr));
        r.per_call.p50 /= calls;
        r.per_call.p99 /= calls;
        ASSIGN_OR_RETURN(auto t, MeasureThroughput(*f, workflow, n.throughput_tasks / 2));
        ToolServer::Counts after = tool->counts();
        absl::Status check = CheckFeatureCalls(w, t.tasks, t.calls);
        if (check.ok()) check = CheckFeatureEffects(w, n.latency_samples / 2 + t.tasks, after.effects - before.effects);
        if (!check.ok()) {
          return absl::Status(check.code(), absl::StrCat(check.message(), " (logs in ", f->fleet().dir(), ")"));
        }
        if (int64_t retried = (after.requests - before.requests) - (after.effects - before.effects); retried > 0) {
          Say(absl::StrCat("  ", workflow, ": ", retried, " action requests repeated a key (retries)"));
        }
        r.calls_per_s = calls * t.tasks / t.seconds;
        r.coordinator_cpu_us_per_call = t.tasks > 0 ? 1e6 * t.coordinator_cpu_s / (calls * t.tasks) : 0;
        Say(absl::StrCat(mode, " ", workflow, ": per call p50 ", r.per_call.p50, " ms; ",
                         static_cast<int64_t>(r.calls_per_s), " calls/s, coordinator ",
                         r.coordinator_cpu_us_per_call, " µs CPU per call"));
        out.features.push_back(r);
      }
    }
  }

  // 10. exactly_once against at_least_once, sustained: every mode's fleet
  // up first, then rounds in which each runs in turn, who goes first
  // rotating. Real Kafka only: the development broker runs at_least_once
  // alone, so asking for it there says so instead of measuring nothing.
  if (o.Runs("steady") && !real_kafka && !o.only.empty()) {
    Say("steady: skipped on the development broker (it runs at_least_once alone); give --kafka");
  }
  if (o.Runs("steady") && real_kafka) {
    Say(absl::StrCat("steady: exactly_once against at_least_once, ", n.steady_rounds, " rounds of ",
                     n.steady_tasks, " chain4 tasks per mode, 1 coordinator and 2 workers each, 0 ms agents"));
    struct SteadyMode {
      std::string label, processing, coordinator_extra, tag;
      std::unique_ptr<BenchFleet> fleet;
    };
    std::vector<SteadyMode> modes;
    modes.push_back({"at_least_once", "at_least_once", "", "steady-alo", nullptr});
    modes.push_back({"exactly_once", "exactly_once", "", "steady-eos", nullptr});
    modes.push_back({"exactly_once (commit_interval 300ms)", "exactly_once", ", commit_interval: 300ms", "steady-eos300", nullptr});
    for (SteadyMode& m : modes) {
      RunSpec s = spec(m.tag);
      s.processing = m.processing;
      s.coordinator_extra = m.coordinator_extra;
      s.workers = 2;
      ASSIGN_OR_RETURN(m.fleet, BenchFleet::Start(o, s));
    }
    for (int round = 1; round <= n.steady_rounds; ++round) {
      for (size_t i = 0; i < modes.size(); ++i) {
        SteadyMode& m = modes[(i + round - 1) % modes.size()];  // who goes first rotates
        const bool transactions = m.processing == "exactly_once";
        CommitTotals before;
        if (transactions) {
          ASSIGN_OR_RETURN(before, ReadCommitTotals(*m.fleet));
        }
        ASSIGN_OR_RETURN(auto t, MeasureThroughput(*m.fleet, "chain4", n.steady_tasks));
        BrokerResults::SteadyRun r;
        if (transactions) {
          ASSIGN_OR_RETURN(CommitTotals after, ReadCommitTotals(*m.fleet));
          r.commits = after.commits - before.commits;
          r.commit_share = t.seconds > 0 ? (after.seconds - before.seconds) / t.seconds : 0;
          r.wait_share = t.seconds > 0 ? (after.waited - before.waited) / t.seconds : 0;
          r.inputs_per_commit = r.commits > 0 ? (after.inputs - before.inputs) / r.commits : 0;
        }
        r.round = round;
        r.mode = m.label;
        r.steps = t.steps;
        r.steps_per_s = t.steps_per_s;
        r.coordinator_cpu_us_per_step = t.steps > 0 ? 1e6 * t.coordinator_cpu_s / t.steps : 0;
        Say(absl::StrCat("  round ", round, " ", m.label, ": ", static_cast<int64_t>(t.steps_per_s), " steps/s over ",
                         absl::FormatDuration(absl::Seconds(t.seconds)), ", coordinator ",
                         r.coordinator_cpu_us_per_step, " µs CPU per step",
                         transactions ? absl::StrCat("; ", r.commits, " commits of ", r.inputs_per_commit,
                                                     " inputs, committing ", 100 * r.commit_share,
                                                     "% of the time, the loop waiting ", 100 * r.wait_share, "%")
                                      : ""));
        out.steady.push_back(r);
      }
    }
  }

  // 8. A one-agent worker pool scaled 2 → 4 → 2 under load (2 s agents),
  // with the eager range assignor and with cooperative-sticky.
  std::vector<std::pair<std::string, std::string>> assignors = {
      {"range", "  consumer: {partition.assignment.strategy: range}\n"},
      {"cooperative-sticky", "  consumer: {partition.assignment.strategy: cooperative-sticky}\n"}};
  if (o.kip848) assignors.push_back({"KIP-848 (group.protocol=consumer)", "  consumer: {group.protocol: consumer}\n"});
  for (size_t a = 0; a < assignors.size(); ++a) {
    if (!o.Runs("rebalance") || !real_kafka) break;
    const auto& [assignor, kafka_extra] = assignors[a];
    RunSpec s = spec(absl::StrCat("rebalance", a));
    s.processing = "exactly_once";
    s.workers = 2;
    s.max_in_flight = 1000;
    s.kafka_extra = kafka_extra;
    s.worker_flags = {"--agents", "slow2s"};
    s.warm_workflow = "slow2s_one";
    Say("rebalance: a pool scaled 2 → 4 → 2, " + assignor);
    ASSIGN_OR_RETURN(auto f, BenchFleet::Start(o, s));
    std::vector<std::thread> stopping;
    std::vector<pid_t> added;
    const absl::Duration window = absl::Seconds(8);
    std::vector<LoadEvent> events = {
        {absl::Seconds(6),
         [&]() -> absl::Status {
           for (const char* id : {"w3", "w4"}) {
             ASSIGN_OR_RETURN(pid_t p, f->fleet().StartWorker(id, {"--max_in_flight", "1000", "--agents", "slow2s"}));
             added.push_back(p);
           }
           return absl::OkStatus();
         }},
        {absl::Seconds(6) + window + absl::Seconds(4), [&]() -> absl::Status {
           // SIGTERM, as Kubernetes scales down: each finishes its calls and leaves the group.
           for (pid_t p : added) stopping.emplace_back([p] { Stop(p, absl::Seconds(30)); });
           return absl::OkStatus();
         }}};
    double rate = o.quick ? 100 : 200;
    auto results = SteadyLoad(*f, "slow2s_one", rate, absl::Seconds(6) + 2 * (window + absl::Seconds(4)), &events,
                              absl::Minutes(2));
    for (auto& t : stopping) t.join();
    if (!results.ok()) return results.status();
    // Every call a worker started, from the totals each logs when it stops:
    // beyond one per task (and the warm-up's), a call was run twice.
    int64_t started = 0;
    for (pid_t w : f->workers()) Stop(w, absl::Seconds(30));
    for (const char* id : {"w1", "w2", "w3", "w4"}) started += LoggedTotal(f->fleet().dir() + "/" + id + ".log", "started");
    int64_t redone = started - static_cast<int64_t>(f->collector().results().size());
    std::vector<double> before;
    for (const auto& r : *results) {
      if (FromTimestamp(r.submitted_at()) < events.front().happened) before.push_back(LatencyMs(r));
    }
    for (size_t e = 0; e < events.size(); ++e) {
      BrokerResults::Rebalance r = AnalyzeRebalance(*results, events[e].happened, window, rate);
      r.assignor = assignor;
      r.event = e == 0 ? "2 → 4 workers (started)" : "4 → 2 workers (SIGTERM)";
      r.baseline_p50_ms = PercentilesOf(before).p50;
      r.calls_redone = redone;
      out.rebalance.push_back(r);
      Say(absl::StrCat("  ", r.event, ": lowest 250 ms of results ", static_cast<int>(100 * r.min_share),
                       "% of the rate, longest gap ", static_cast<int64_t>(r.longest_gap_ms), " ms, wait p99 ",
                       static_cast<int64_t>(r.latency.p99), " ms (", static_cast<int64_t>(r.baseline_p50_ms),
                       " ms p50 before)"));
    }
  }
  return out;
}

}  // namespace agentfleet
