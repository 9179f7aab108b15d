#include "cli/commands.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "audit/audit.h"
#include "audit/replay.h"
#include "cli/diff.h"
#include "cli/fork.h"
#include "cli/tasks_input.h"
#include "cli/trace.h"
#include "codec/codec.h"
#include "codec/trace.h"
#include "common/log.h"
#include "common/signals.h"
#include "common/subprocess.h"
#include "fleet/local_fleet.h"
#include "fleet/run_summary.h"
#include "google/protobuf/util/json_util.h"
#include "kafka/kafka.h"
#include "http/http_server.h"
#include "kafka/mock_cluster.h"
#include "provider/http_client.h"
#include "kafka/topics.h"

namespace agentfleet {
namespace {

std::string ReadAll(std::istream& in) {
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

}  // namespace

std::string DefaultConfigPath() {
  std::vector<std::string> candidates = {
      ExecutableDir() + "/../share/agentfleet/examples/support.yaml",
#ifdef AGENTFLEET_SOURCE_DIR
      std::string(AGENTFLEET_SOURCE_DIR) + "/examples/support.yaml",
#endif
  };
  for (const auto& c : candidates) {
    if (std::filesystem::exists(c)) return c;
  }
  return "examples/support.yaml";
}

namespace {

// Write then rename, so a reader never sees a half-written file.
void WriteFileAtomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  std::ofstream(tmp) << text << "\n";
  std::filesystem::rename(tmp, path);
}

}  // namespace

int RunBroker(const FleetConfig& config, const CliOptions& options) {
  auto cluster = MockCluster::Start(options.brokers, FleetTopics(config));
  if (!cluster.ok()) {
    std::cerr << "agentfleet broker: " << cluster.status().message() << "\n";
    return 1;
  }
  std::string bootstrap = (*cluster)->bootstrap();
  std::cout << "agentfleet broker: development broker (librdkafka mock cluster) at " << bootstrap
            << "\n" << std::flush;
  // Fault injection: POST a fault line to /faults (agentfleet broker fault).
  std::unique_ptr<HttpServer> control;
  if (!options.control_address.empty()) {
    MockCluster* c = cluster->get();
    auto server = HttpServer::Start(
        options.control_address, {{"/faults", [c](const HttpServerRequest& request) {
                                     if (request.method != "POST") {
                                       return HttpReply{405, "text/plain; charset=utf-8",
                                                        absl::StrCat("POST a fault: ", MockCluster::FaultHelp(), "\n")};
                                     }
                                     auto done = c->Inject(request.body);
                                     if (!done.ok()) {
                                       return HttpReply{400, "text/plain; charset=utf-8",
                                                        std::string(done.status().message()) + "\n"};
                                     }
                                     std::cout << "agentfleet broker: fault: " << *done << "\n" << std::flush;
                                     return HttpReply{200, "text/plain; charset=utf-8", *done + "\n"};
                                   }}});
    if (!server.ok()) {
      std::cerr << "agentfleet broker: --control_address: " << server.status().message() << "\n";
      return 2;
    }
    control = std::move(*server);
    std::string address = absl::StrCat("127.0.0.1:", control->port());
    std::cout << "agentfleet broker: fault injection at http://" << address << "/faults\n" << std::flush;
    if (!options.bootstrap_file.empty()) WriteFileAtomically(options.bootstrap_file + ".control", address);
  }
  if (!options.bootstrap_file.empty()) WriteFileAtomically(options.bootstrap_file, bootstrap);
  while (!ShutdownRequested()) absl::SleepFor(absl::Milliseconds(100));
  return 0;
}

int RunBrokerFault(const CliOptions& options, const std::string& fault) {
  if (options.control_address.empty() || fault.empty()) {
    std::cerr << "agentfleet broker fault: usage: agentfleet broker fault --control_address HOST:PORT '"
              << MockCluster::FaultHelp() << "'\n";
    return 2;
  }
  HttpClient client;
  HttpRequest request;
  request.url = absl::StrCat("http://", options.control_address, "/faults");
  request.body = fault;
  request.timeout = absl::Seconds(10);
  absl::Notification done;
  HttpResponse response;
  client.Send(request, [&](HttpResponse r) {
    response = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  if (response.transport != HttpResponse::Transport::kOk) {
    std::cerr << "agentfleet broker fault: " << request.url << ": " << response.transport_error << "\n";
    return 1;
  }
  (response.status == 200 ? std::cout : std::cerr) << response.body;
  return response.status == 200 ? 0 : 2;
}

int RunTopicsCreate(const FleetConfig& config) {
  auto specs = FleetTopics(config);
  absl::Status s = CreateTopics(ProducerProperties(config.kafka), specs, absl::Seconds(30));
  if (!s.ok()) {
    std::cerr << "agentfleet topics create: " << s.message() << "\n";
    return 1;
  }
  for (const auto& t : specs) std::cout << t.name << " (" << t.partitions << " partitions)\n";
  return 0;
}

int RunSubmit(const FleetConfig& config, const std::string& path, const CliOptions& options) {
  std::string text;
  if (path.empty() || path == "-") {
    text = ReadAll(std::cin);
  } else {
    std::ifstream in(path);
    if (!in) {
      std::cerr << "agentfleet submit: cannot read " << path << "\n";
      return 2;
    }
    text = ReadAll(in);
  }
  auto tasks = ParseTasks(text, path.empty() ? "-" : path);
  if (!tasks.ok()) {
    std::cerr << tasks.status().message() << "\n";
    return 2;
  }
  auto outcome = SubmitAndCollect(config, std::move(*tasks), options.wait, options.timeout);
  if (!outcome.ok()) {
    std::cerr << "agentfleet submit: " << outcome.status().message() << "\n";
    return 1;
  }
  const RunSummary* summary = &outcome->summary;
  if (!options.wait) {
    std::cout << "submitted " << summary->submitted << " tasks\n";
    return 0;
  }
  std::cout << (options.json ? summary->Json() + "\n" : summary->Text());
  return summary->lost == 0 && summary->duplicates == 0 ? 0 : 1;
}

int RunResults(const FleetConfig& config, const CliOptions& options) {
  Topics topics(config.kafka.topic_prefix);
  Properties props = ConsumerProperties(config.kafka, "agentfleet-cli");
  auto marks = QueryWatermarks(props, topics.results, absl::Seconds(15));
  auto consumer = marks.ok() ? NewConsumer(props) : marks.status();
  if (!consumer.ok()) {
    std::cerr << "agentfleet results: " << consumer.status().message() << "\n";
    return 1;
  }
  std::vector<TopicPartition> assignment;
  for (size_t p = 0; p < marks->size(); ++p) {
    assignment.push_back({topics.results, static_cast<int32_t>(p),
                          options.from_beginning ? (*marks)[p].low : (*marks)[p].high});
  }
  if (absl::Status s = (*consumer)->Assign(assignment); !s.ok()) {
    std::cerr << "agentfleet results: " << s.message() << "\n";
    return 1;
  }
  int shown = 0;
  absl::Time deadline = absl::Now() + options.timeout;
  while (!ShutdownRequested() && (options.count == 0 || shown < options.count) && absl::Now() < deadline) {
    for (const Message& m : (*consumer)->Poll(absl::Milliseconds(200), 1000)) {
      auto r = Decode<v1::TaskResult>(m.payload, m.headers);
      if (!r.ok()) {
        std::cerr << "skipping undecodable result at " << m.topic << "/" << m.partition << "@" << m.offset
                  << ": " << r.status().message() << "\n";
        continue;
      }
      if (options.json) {
        std::string json;
        google::protobuf::util::JsonPrintOptions print;
        print.preserve_proto_field_names = true;
        (void)google::protobuf::util::MessageToJsonString(*r, &json, print);
        std::cout << json << "\n";
      } else {
        std::cout << r->task_id() << "\t" << v1::TaskStatus_Name(r->status()).substr(12) << "\t"
                  << r->usage().input_tokens() + r->usage().output_tokens() << " tokens\t$"
                  << r->usage().cost_usd() << (r->has_error() ? "\t" + r->error().message() : "") << "\n";
      }
      std::cout.flush();
      if (options.count > 0 && ++shown >= options.count) break;
    }
  }
  (*consumer)->Close();
  return 0;
}

int RunDemo(const CliOptions& options) {
  std::string config_path = options.config_path.empty() ? DefaultConfigPath() : options.config_path;
  auto config = LoadConfigFile(config_path);
  if (!config.ok()) {
    std::cerr << config.status().message() << "\n";
    return 2;
  }
  char dir_template[] = "/tmp/agentfleet-demo.XXXXXX";
  std::string dir = mkdtemp(dir_template);
  LocalFleet fleet(dir, config_path);
  auto fail = [&](const std::string& why) {
    std::cerr << "agentfleet demo: " << why << " (logs in " << dir << ")\n";
    fleet.Stop();
    return 1;
  };
  std::cerr << "agentfleet demo: config " << config_path << ", logs in " << dir << "\n";
  auto bootstrap = fleet.StartDevBroker();
  if (!bootstrap.ok()) return fail(std::string(bootstrap.status().message()));
  auto coordinator = fleet.StartCoordinator("coordinator-1");
  if (!coordinator.ok()) return fail(std::string(coordinator.status().message()));
  for (int i = 1; i <= options.workers; ++i) {
    auto worker = fleet.StartWorker(absl::StrCat("worker-", i));
    if (!worker.ok()) return fail(std::string(worker.status().message()));
  }
  std::cerr << "agentfleet demo: broker " << *bootstrap << ", 1 coordinator, " << options.workers
            << " workers started (pids";
  for (pid_t p : fleet.pids()) std::cerr << " " << p;
  std::cerr << ")\n";

  config->kafka.properties["bootstrap.servers"] = *bootstrap;
  ApplyDevBrokerSettings(&config->kafka);
  // One task through the whole pipeline first: the fleet is ready when it
  // returns (consumer groups joined), so the measured run starts warm.
  std::string run = absl::StrCat(absl::ToUnixMillis(absl::Now()));
  auto warm = SubmitAndCollect(*config, SampleTasks(1, "warmup-" + run, 1), true, absl::Seconds(90));
  if (!warm.ok()) return fail(std::string(warm.status().message()));
  if (warm->summary.received != 1) return fail("the fleet did not answer a warm-up task within 90 s");
  if (!fleet.AllRunning()) return fail("a fleet process exited");
  std::cerr << "agentfleet demo: fleet ready; submitting " << options.tasks << " tasks\n";
  auto outcome = SubmitAndCollect(*config, SampleTasks(options.tasks, "demo-" + run, 42), true, options.timeout);
  bool all_alive = fleet.AllRunning();
  fleet.Stop();
  if (!outcome.ok()) return fail(std::string(outcome.status().message()));
  const RunSummary* summary = &outcome->summary;
  std::cout << summary->Text();
  if (!all_alive) std::cout << "warning: a fleet process exited during the run (logs in " << dir << ")\n";
  std::cout << "stopped the broker, the coordinator and " << options.workers << " workers\n";
  if (options.json) std::cout << summary->Json() << "\n";
  bool ok = summary->lost == 0 && summary->duplicates == 0 && all_alive &&
            summary->count(v1::TASK_STATUS_COMPLETED) == summary->submitted;
  if (ok) std::filesystem::remove_all(dir);
  return ok ? 0 : 1;
}

}  // namespace agentfleet

namespace agentfleet {

int RunAudit(const FleetConfig& config, const CliOptions& options) {
  auto report = Audit(config, options.verify, options.timeout);
  if (!report.ok()) {
    std::cerr << "agentfleet audit: " << report.status().message() << "\n";
    return 1;
  }
  std::cout << (options.json ? report->Json() + "\n" : report->Text());
  return report->clean() ? 0 : 1;
}

int RunTenants(const FleetConfig& config, const CliOptions& options) {
  auto tenants = Tenants(config, options.timeout);
  if (!tenants.ok()) {
    std::cerr << "agentfleet tenants: " << tenants.status().message() << "\n";
    return 1;
  }
  std::cout << (options.json ? TenantsJson(*tenants) + "\n" : TenantsText(*tenants));
  return 0;
}

int RunTrace(const FleetConfig& config, const std::string& task_id, const CliOptions& options) {
  auto messages = ReadTaskRecords(config, task_id, options.timeout, options.lookup);
  if (!messages.ok()) {
    std::cerr << "agentfleet trace: " << messages.status().message() << "\n";
    return 1;
  }
  TaskTrace trace = BuildTrace(config, task_id, *messages);
  std::cout << (options.json ? TraceJson(trace) + "\n" : TraceText(trace));
  return trace.found ? 0 : 1;
}

int RunReplay(const FleetConfig& config, const std::string& task_id, const std::string& save_path,
              const std::string& records_path, const CliOptions& options) {
  absl::StatusOr<TaskRecords> records;
  if (!records_path.empty()) {
    std::ifstream in(records_path);
    if (!in) {
      std::cerr << "agentfleet replay: cannot read " << records_path << "\n";
      return 2;
    }
    std::stringstream text;
    text << in.rdbuf();
    records = LoadTaskRecords(text.str(), records_path);
  } else {
    records = ReadTaskRecords(config, task_id, options.timeout, options.lookup);
  }
  if (!records.ok()) {
    std::cerr << "agentfleet replay: " << records.status().message() << "\n";
    return 1;
  }
  if (!save_path.empty()) {
    std::ofstream save(save_path);
    save << SaveTaskRecords(*records, std::max(config.coordinator.max_payload_bytes, config.worker.max_payload_bytes));
    if (!save.good()) {
      std::cerr << "agentfleet replay: cannot write " << save_path << "\n";
      return 1;
    }
  }
  auto report = Replay(config, task_id, *records);
  if (!report.ok()) {
    std::cerr << "agentfleet replay: " << report.status().message() << "\n";
    return 1;
  }
  std::cout << (options.json ? ReplayJson(*report) + "\n" : ReplayText(*report));
  return report->identical() ? 0 : 1;
}

int RunFork(const FleetConfig& config, const std::string& task_id, const std::string& from_step,
            const std::vector<std::string>& sets, const std::string& tenant, const CliOptions& options) {
  std::vector<v1::ModelOverride> overrides;
  for (const std::string& set : sets) {
    auto m = ParseModelOverride(set);
    if (!m.ok()) {
      std::cerr << "agentfleet fork: " << m.status().message() << "\n";
      return 2;
    }
    overrides.push_back(*m);
  }
  auto records = ReadTaskRecords(config, task_id, options.timeout, options.lookup);
  if (!records.ok()) {
    std::cerr << "agentfleet fork: " << records.status().message() << "\n";
    return 1;
  }
  std::string id = absl::StrCat(task_id, "-fork-", absl::Hex(absl::ToUnixMillis(absl::Now())));
  auto plan = PlanFork(config, task_id, *records, from_step, overrides, tenant, id);
  if (!plan.ok()) {
    std::cerr << "agentfleet fork: " << plan.status().message() << "\n";
    return absl::IsInvalidArgument(plan.status()) ? 2 : 1;
  }
  std::cout << "fork " << id << " of " << task_id << " from '" << from_step << "'\n"
            << "  reuses (no call, no cost): " << (plan->reused.empty() ? "-" : absl::StrJoin(plan->reused, ", "))
            << "\n  runs again: " << (plan->rerun.empty() ? "-" : absl::StrJoin(plan->rerun, ", ")) << "\n";
  for (const v1::ModelOverride& m : overrides) {
    std::cout << "  agent " << m.agent() << ", tier " << m.tier() << ": model " << m.model() << "\n";
  }
  auto outcome = SubmitAndCollect(config, {plan->submission}, options.wait, options.timeout);
  if (!outcome.ok()) {
    std::cerr << "agentfleet fork: " << outcome.status().message() << "\n";
    return 1;
  }
  if (!options.wait) {
    std::cout << "submitted; compare with: agentfleet diff " << task_id << " " << id << "\n";
    return 0;
  }
  if (outcome->results.empty()) {
    std::cerr << "agentfleet fork: no result for " << id << " within " << absl::FormatDuration(options.timeout) << "\n";
    return 1;
  }
  const v1::TaskResult& r = outcome->results.front();
  std::cout << id << ": " << v1::TaskStatus_Name(r.status()).substr(12) << ", "
            << absl::StrFormat("$%.6f", r.usage().cost_usd()) << ", " << r.usage().calls() << " calls" << (r.has_error() ? " — " + r.error().message() : "") << "\n"
            << "compare with: agentfleet diff " << task_id << " " << id << "\n";
  return r.status() == v1::TASK_STATUS_COMPLETED || r.status() == v1::TASK_STATUS_PARTIAL ? 0 : 1;
}

int RunDiffCommand(const FleetConfig& config, const std::string& task_a, const std::string& task_b,
                   const CliOptions& options) {
  auto records = ReadTaskRecords(config, std::vector<std::string>{task_a, task_b}, options.timeout, options.lookup);
  if (!records.ok()) {
    std::cerr << "agentfleet diff: " << records.status().message() << "\n";
    return 1;
  }
  auto diff = DiffRuns(config, task_a, (*records)[task_a], task_b, (*records)[task_b]);
  if (!diff.ok()) {
    std::cerr << "agentfleet diff: " << diff.status().message() << "\n";
    return 1;
  }
  std::cout << (options.json ? RunDiffJson(*diff) + "\n" : RunDiffText(*diff));
  return 0;
}

int RunLag(const FleetConfig& config, const CliOptions& options) {
  auto lags = ReadFleetLag(config, options.keda, std::min(options.timeout, absl::Seconds(30)));
  if (!lags.ok()) {
    std::cerr << "agentfleet lag: " << lags.status().message() << "\n";
    return 1;
  }
  // The lag is the answer; the capacity signal beside it needs the results
  // and breakers topics too, and is left out (saying why) when they cannot be read.
  auto capacity = ReadFleetCapacity(config, *lags, options.keda, std::min(options.timeout, absl::Seconds(30)));
  if (!capacity.ok()) {
    std::cerr << "agentfleet lag: no capacity signal: " << capacity.status().message() << "\n";
  }
  std::vector<PoolCapacity> pools = capacity.ok() ? *capacity : std::vector<PoolCapacity>();
  std::cout << (options.json ? LagJson(*lags, options.keda, pools) + "\n" : LagText(*lags, options.keda, pools));
  return 0;
}

}  // namespace agentfleet
