// The report of `agentfleet bench`: Markdown tables (every fleet figure next
// to the raw librdkafka figure of the same broker and run, with the ratio)
// and a plot of the scale-out curve drawn by gnuplot.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bench/suite.h"

namespace agentfleet {

struct ReportContext {
  std::string date;     // of the run
  std::string machine;  // cores and CPU model
  std::string command;  // how it was run
  bool quick = false;
  std::string plot_file;  // relative to the Markdown file; empty: no plot
};

// The Markdown section (no trailing markers).
std::string BenchMarkdown(const std::vector<BrokerResults>& results, const ReportContext& context);

// Replaces what lies between the bench markers of `path` with `section`
// (appends the markers and section if the file has none; creates the file).
[[nodiscard]] absl::Status WriteBenchSection(const std::string& path, const std::string& section);

// Draws the scale-out curve of every broker to `svg_path` with gnuplot.
[[nodiscard]] absl::Status PlotScaleOut(const std::vector<BrokerResults>& results,
                                        const std::string& svg_path, const std::string& work_dir);

}  // namespace agentfleet
