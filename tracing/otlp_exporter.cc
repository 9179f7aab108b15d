#include "tracing/otlp_exporter.h"

#include <curl/curl.h>

#include "absl/strings/str_cat.h"
#include "codec/trace.h"
#include "common/log.h"
#include "nlohmann/json.hpp"

namespace agentfleet {
namespace {

using Json = nlohmann::json;
constexpr char kComponent[] = "tracing";
constexpr size_t kBatch = 512;

Json AttributeValue(const Span::Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return {{"stringValue", *s}};
  if (const auto* i = std::get_if<int64_t>(&v)) return {{"intValue", std::to_string(*i)}};  // int64 as a string
  if (const auto* d = std::get_if<double>(&v)) return {{"doubleValue", *d}};
  return {{"boolValue", std::get<bool>(v)}};
}

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

}  // namespace

Span SpanFrom(const std::string& self, const std::string& parent, std::string name, Span::Kind kind,
              absl::Time start, absl::Time end) {
  Span s;
  if (IsValidTraceparent(self)) {
    s.trace_id = self.substr(3, 32);
    s.span_id = self.substr(36, 16);
  }
  if (IsValidTraceparent(parent) && parent.substr(3, 32) == s.trace_id) s.parent_span_id = parent.substr(36, 16);
  s.name = std::move(name);
  s.kind = kind;
  s.start = start;
  s.end = end;
  return s;
}

std::string OtlpJson(const std::string& service, const std::vector<Span>& spans) {
  Json out = Json::array();
  for (const Span& s : spans) {
    Json attributes = Json::array();
    for (const auto& [key, value] : s.attributes) attributes.push_back({{"key", key}, {"value", AttributeValue(value)}});
    Json span = {{"traceId", s.trace_id},
                 {"spanId", s.span_id},
                 {"name", s.name},
                 {"kind", static_cast<int>(s.kind)},
                 {"startTimeUnixNano", std::to_string(absl::ToUnixNanos(s.start))},
                 {"endTimeUnixNano", std::to_string(absl::ToUnixNanos(s.end))},
                 {"attributes", std::move(attributes)},
                 {"status", {{"code", s.error ? 2 : 1}, {"message", s.status_message}}}};
    if (!s.parent_span_id.empty()) span["parentSpanId"] = s.parent_span_id;
    out.push_back(std::move(span));
  }
  Json body = {{"resourceSpans",
                {{{"resource", {{"attributes", {{{"key", "service.name"}, {"value", {{"stringValue", service}}}}}}}},
                  {"scopeSpans", {{{"scope", {{"name", "agentfleet"}}}, {"spans", std::move(out)}}}}}}}};
  return body.dump();
}

std::unique_ptr<OtlpExporter> OtlpExporter::Start(const TracingConfig& config, std::string service) {
  if (config.otlp_endpoint.empty()) return nullptr;
  std::unique_ptr<OtlpExporter> e(new OtlpExporter(config, std::move(service)));
  e->thread_ = std::thread([raw = e.get()] { raw->Loop(); });
  Log(LogLevel::kInfo, kComponent, "exporting spans over OTLP/HTTP", {{"endpoint", config.otlp_endpoint}});
  return e;
}

OtlpExporter::OtlpExporter(const TracingConfig& config, std::string service)
    : config_(config), service_(std::move(service)) {}

OtlpExporter::~OtlpExporter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void OtlpExporter::Export(Span span) {
  absl::MutexLock lock(&mu_);
  if (queue_.size() >= config_.max_queue) {
    ++dropped_;
    return;
  }
  queue_.push_back(std::move(span));
}

int64_t OtlpExporter::exported() const {
  absl::MutexLock lock(&mu_);
  return exported_;
}

int64_t OtlpExporter::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

void OtlpExporter::Loop() {
  absl::Time next_warning = absl::InfinitePast();
  for (;;) {
    std::vector<Span> batch;
    bool stopping = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || queue_.size() >= kBatch; };
      mu_.AwaitWithTimeout(absl::Condition(&ready), config_.export_interval);
      stopping = stopping_;
      while (!queue_.empty() && batch.size() < kBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    if (!batch.empty()) {
      bool ok = Post(OtlpJson(service_, batch));
      absl::MutexLock lock(&mu_);
      (ok ? exported_ : dropped_) += static_cast<int64_t>(batch.size());
      if (!ok && absl::Now() >= next_warning) {
        next_warning = absl::Now() + absl::Minutes(1);
        Log(LogLevel::kWarning, kComponent, "span export failed; spans dropped",
            {{"endpoint", config_.otlp_endpoint}, {"dropped", absl::StrCat(dropped_)}});
      }
    }
    absl::MutexLock lock(&mu_);
    if (stopping && queue_.empty()) return;
  }
}

bool OtlpExporter::Post(const std::string& body) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return false;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, config_.otlp_endpoint.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(absl::ToInt64Milliseconds(config_.timeout)));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Discard);
  long status = 0;
  bool ok = curl_easy_perform(curl) == CURLE_OK;
  if (ok) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return ok && status >= 200 && status < 300;
}

}  // namespace agentfleet
