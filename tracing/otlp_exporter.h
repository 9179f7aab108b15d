// Spans exported over OTLP/HTTP with the JSON encoding (POST
// {"resourceSpans": ...} to a collector's /v1/traces), batched on a thread of
// its own with libcurl, so the coordinator's loop and the worker's calls
// never wait for the collector. A collector that is down costs dropped spans
// (counted, logged once a minute), never a stalled fleet.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "config/config.h"

namespace agentfleet {

struct Span {
  enum class Kind { kInternal = 1, kServer = 2, kClient = 3, kProducer = 4, kConsumer = 5 };
  using Value = std::variant<std::string, int64_t, double, bool>;
  std::string trace_id;        // 32 hex digits
  std::string span_id;         // 16 hex digits
  std::string parent_span_id;  // empty for a root span
  std::string name;
  Kind kind = Kind::kInternal;
  absl::Time start, end;
  std::vector<std::pair<std::string, Value>> attributes;
  bool error = false;
  std::string status_message;
};

// Builds a span from W3C traceparents: `self` gives its trace and span id,
// `parent` (may be empty or invalid) its parent span id.
Span SpanFrom(const std::string& self, const std::string& parent, std::string name, Span::Kind kind,
              absl::Time start, absl::Time end);

// The OTLP/JSON request body for `spans` of service `service`.
std::string OtlpJson(const std::string& service, const std::vector<Span>& spans);

class OtlpExporter {
 public:
  // Null when config.otlp_endpoint is empty (tracing off).
  static std::unique_ptr<OtlpExporter> Start(const TracingConfig& config, std::string service);
  ~OtlpExporter();  // exports what is queued (bounded by the timeout), then stops

  // Queues a span; never blocks. Thread-safe.
  void Export(Span span);
  int64_t exported() const;
  int64_t dropped() const;

 private:
  OtlpExporter(const TracingConfig& config, std::string service);
  void Loop();
  bool Post(const std::string& body);

  TracingConfig config_;
  std::string service_;
  mutable absl::Mutex mu_;
  std::deque<Span> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t exported_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace agentfleet
