// Prometheus metrics of an agentfleet process (prometheus-cpp from Debian):
// one registry per process, served as the text exposition on /metrics of the
// process's HTTP endpoint, beside the health probes.
//
// Every name starts with agentfleet_ and follows Prometheus conventions
// (base units: seconds; counters end in _total). Labels take values from
// bounded sets only: agents, models, workflows and topics of the config,
// error codes, statuses. Never a task id, tenant-supplied text or a secret.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "http/http_server.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace agentfleet {

// The children of one labelled family, found by their label values in the
// order of `label_names` and created on first use. Thread-safe; a lookup is
// one hash of the joined values.
template <typename T>
class Series {
 public:
  Series(prometheus::Family<T>& family, std::vector<std::string> label_names,
         prometheus::Histogram::BucketBoundaries buckets = {})
      : family_(family), names_(std::move(label_names)), buckets_(std::move(buckets)) {}

  T& With(std::initializer_list<absl::string_view> values) {
    std::string key;
    for (absl::string_view v : values) {
      key.append(v.data(), v.size());
      key.push_back('\x1f');
    }
    absl::MutexLock lock(&mu_);
    auto it = children_.find(key);
    if (it != children_.end()) return *it->second;
    prometheus::Labels labels;
    size_t i = 0;
    for (absl::string_view v : values) labels.emplace(names_.at(i++), std::string(v));
    T& child = Add(labels);
    children_.emplace(std::move(key), &child);
    return child;
  }

 private:
  T& Add(const prometheus::Labels& labels);
  prometheus::Family<T>& family_;
  std::vector<std::string> names_;
  prometheus::Histogram::BucketBoundaries buckets_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, T*> children_;
};

template <>
inline prometheus::Histogram& Series<prometheus::Histogram>::Add(const prometheus::Labels& labels) {
  return family_.Add(labels, buckets_);
}
template <typename T>
T& Series<T>::Add(const prometheus::Labels& labels) {
  return family_.Add(labels);
}

// Bucket boundaries for latencies from 5 ms to 10 minutes, in seconds.
prometheus::Histogram::BucketBoundaries LatencyBuckets();

// The registry a process exposes, with agentfleet_build_info{version,
// component} = 1 already in it.
std::shared_ptr<prometheus::Registry> NewRegistry(absl::string_view component);

// The text exposition format (version 0.0.4) of everything in `registry`.
std::string Exposition(prometheus::Registry& registry);

// The /metrics route for a process's HttpServer.
std::map<std::string, HttpHandler> MetricsRoutes(std::shared_ptr<prometheus::Registry> registry);

}  // namespace agentfleet
