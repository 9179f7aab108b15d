#include "bench/bench_command.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/report.h"
#include "bench/suite.h"

namespace agentfleet {
namespace {

std::string Machine() {
  std::ifstream in("/proc/cpuinfo");
  std::string model;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  return absl::StrCat(std::thread::hardware_concurrency(), " cores (", model.empty() ? "unknown CPU" : model, ")");
}

}  // namespace

int RunBench(const BenchCommandOptions& options) {
  // A misspelt part would otherwise run nothing but the raw baseline, quietly.
  for (absl::string_view part : absl::StrSplit(options.only, ',', absl::SkipEmpty())) {
    if (std::find(std::begin(kBenchParts), std::end(kBenchParts), part) == std::end(kBenchParts)) {
      std::cerr << "agentfleet bench: --only: unknown part '" << part << "' (parts: "
                << absl::StrJoin(kBenchParts, ",") << ")\n";
      return 2;
    }
  }
  char dir_template[] = "/tmp/agentfleet-bench.XXXXXX";
  std::string dir = mkdtemp(dir_template);
  std::cerr << "agentfleet bench: logs and configs in " << dir << "\n";
  std::vector<BrokerResults> results;
  std::vector<std::pair<std::string, std::string>> brokers;
  if (!options.kafka.empty()) brokers.push_back({options.kafka_name, options.kafka});
  if (options.kafka.empty() || !options.kafka_only) brokers.push_back({"development broker", ""});
  for (const auto& [name, bootstrap] : brokers) {
    BenchOptions o;
    o.broker_name = name;
    o.bootstrap = bootstrap;
    o.quick = options.quick;
    o.linger_ms = options.linger_ms;
    o.kip848 = options.kip848;
    for (absl::string_view part : absl::StrSplit(options.only, ',', absl::SkipEmpty())) o.only.insert(std::string(part));
    o.work_dir = dir;
    std::cerr << "agentfleet bench: === " << name << " ===\n";
    auto r = RunBenchSuite(o);
    if (!r.ok()) {
      std::cerr << "agentfleet bench: " << name << ": " << r.status().message() << " (logs in " << dir << ")\n";
      return 1;
    }
    results.push_back(*r);
  }
  std::filesystem::path out(options.output);
  std::string plot = options.plot.empty() ? (out.parent_path() / "benchmarks-scaleout.svg").string() : options.plot;
  ReportContext c;
  c.date = absl::FormatTime("%Y-%m-%d %H:%M UTC", absl::Now(), absl::UTCTimeZone());
  c.machine = Machine();
  c.command = options.command;
  c.quick = options.quick;
  bool scaled = !results.front().scale.empty();
  absl::Status plotted = scaled ? PlotScaleOut(results, std::filesystem::absolute(plot).string(), dir) : absl::OkStatus();
  if (plotted.ok() && scaled) {
    c.plot_file = std::filesystem::relative(std::filesystem::absolute(plot),
                                            std::filesystem::absolute(out).parent_path()).string();
  } else {
    std::cerr << "agentfleet bench: no plot: " << plotted.message() << "\n";
  }
  std::string section = BenchMarkdown(results, c);
  std::cout << section;
  absl::Status written = WriteBenchSection(options.output, section);
  if (!written.ok()) {
    std::cerr << "agentfleet bench: " << written.message() << "\n";
    return 1;
  }
  std::cerr << "agentfleet bench: wrote " << options.output << (plotted.ok() && scaled ? " and " + plot : "") << "\n";
  std::filesystem::remove_all(dir);
  return plotted.ok() ? 0 : 1;
}

}  // namespace agentfleet
