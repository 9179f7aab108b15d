// `agentfleet bench`: the end-to-end suite on the development broker (hosted
// in this process) and, given --kafka, on a real Kafka broker; writes the
// report into a Markdown file between its markers, and the scale-out plot.
#pragma once

#include <string>

namespace agentfleet {

struct BenchCommandOptions {
  std::string kafka;       // a real broker's bootstrap; empty: the development broker only
  std::string kafka_name = "Apache Kafka";
  bool quick = false;
  int linger_ms = -1;      // the producers' linger.ms (fleet and baseline); -1: the fleet's default
  bool kip848 = false;     // rebalance: also with KIP-848's group.protocol=consumer
  bool kafka_only = false; // with `kafka`: skip the development broker
  std::string only;        // comma-separated parts (see BenchOptions::only); empty: all
  std::string output = "docs/benchmarks.md";
  std::string plot;        // default: benchmarks-scaleout.svg beside `output`
  std::string command;     // the command line, for the report
};

int RunBench(const BenchCommandOptions& options);

}  // namespace agentfleet
