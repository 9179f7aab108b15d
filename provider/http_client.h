// HttpClient: many concurrent HTTP requests on one thread, through libcurl's
// multi interface. Send() queues a request and returns at once; one event
// loop drives every transfer (no thread per request), reusing connections and
// multiplexing over HTTP/2 where the server speaks it. The completion callback
// runs on the client's thread, exactly once per request, and must be quick.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace agentfleet {

struct HttpRequest {
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;                  // sent as a POST unless `method` says otherwise
  // "POST" (also when empty), "GET" (no body), "PUT", "PATCH", "DELETE".
  std::string method;
  size_t max_response_bytes = 0;     // 0: the client's
  absl::Duration timeout = absl::Seconds(60);          // the whole exchange
  absl::Duration connect_timeout = absl::Seconds(10);
};

struct HttpResponse {
  enum class Transport {
    kOk,                // a complete response arrived (any HTTP status)
    kTimeout,           // no complete response within the timeout
    kConnectionFailed,  // refused, reset, closed without a response, TLS, DNS
    kTruncated,         // the body ended before its announced length
    kTooLarge,          // the body passed max_response_bytes
    kOther,
  };
  Transport transport = Transport::kOther;
  std::string transport_error;  // libcurl's message when not kOk
  long status = 0;              // HTTP status when kOk
  std::string body;
  absl::Duration retry_after = absl::ZeroDuration();  // the Retry-After header
  absl::Duration elapsed;
  // Whether any of the request reached the connection (libcurl's
  // CURLINFO_REQUEST_SIZE > 0): when not, the server cannot have acted on it.
  bool sent = false;
};

// `text` percent-encoded for a URL's path or query (libcurl's escaping).
std::string UrlEscape(const std::string& text);

// Thread-safe: requests may be sent from any thread; callbacks run on the
// client's loop thread.
class HttpClient {
 public:
  struct Options {
    int max_host_connections = 0;  // 0: no limit
    size_t max_response_bytes = 16 << 20;
  };
  explicit HttpClient(Options options);
  HttpClient() : HttpClient(Options()) {}
  // Stops the loop. Requests still in flight are abandoned: their callbacks
  // do not run.
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  void Send(HttpRequest request, std::function<void(HttpResponse)> done);

  // Requests sent and not yet completed.
  size_t in_flight() const { return in_flight_.load(); }

  struct Transfer;  // one request in flight (internal)

 private:
  void Loop();
  void Start(std::unique_ptr<Transfer> t);
  void Finish(Transfer* t, int curl_code);

  Options options_;
  void* multi_;  // CURLM*
  absl::Mutex mu_;
  std::deque<std::unique_ptr<Transfer>> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<size_t> in_flight_{0};
  absl::flat_hash_set<Transfer*> active_;  // owned; touched by the loop thread only
  std::thread thread_;
};

}  // namespace agentfleet
