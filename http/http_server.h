// HttpServer: the small HTTP endpoint every agentfleet process serves for
// Kubernetes probes and Prometheus scrapes, on civetweb. Handlers
// run on the server's own threads.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct mg_connection;
struct mg_context;

namespace agentfleet {

struct HttpReply {
  HttpReply() = default;
  HttpReply(int status, std::string content_type, std::string body,
            std::vector<std::pair<std::string, std::string>> headers = {})
      : status(status), content_type(std::move(content_type)), body(std::move(body)), headers(std::move(headers)) {}
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // More response headers ("Location", "Set-Cookie"), sent as given.
  std::vector<std::pair<std::string, std::string>> headers;
};

struct HttpServerRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the path, URL-decoded, without the query
  std::string query;   // after '?', as sent (ParseForm decodes it)
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string remote_address;
  std::string body;    // at most 64 KiB is read
  // The header `name` (lower case), or "".
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// name=value&... (a query string, or an application/x-www-form-urlencoded
// body), URL-decoded; of a repeated name, the last value.
std::map<std::string, std::string> ParseForm(const std::string& encoded);

using HttpHandler = std::function<HttpReply(const HttpServerRequest&)>;

// Thread-safe: handlers run on the server's threads, several at once, and
// must be thread-safe themselves.
class HttpServer {
 public:
  // Serves `routes` on `address`, "HOST:PORT" ("0.0.0.0:9090"; port 0 picks
  // a free one). A route is an exact path, or, ending in '/', a prefix: "/tasks/"
  // serves "/tasks" and every path under it. Fails with a clear message if it
  // cannot listen.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& address, std::map<std::string, HttpHandler> routes);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }

 private:
  HttpServer() = default;
  static int Dispatch(mg_connection* conn, void* handler);
  mg_context* ctx_ = nullptr;
  std::map<std::string, HttpHandler> routes_;
  int port_ = 0;
};

// /healthz: 200 while `alive` returns OK (without one, while the process
// serves at all), else 503 with its message. /readyz: 200 when `ready`
// returns OK, else 503 with its message.
std::map<std::string, HttpHandler> HealthRoutes(std::function<absl::Status()> ready,
                                                std::function<absl::Status()> alive = {});

// Starts the HTTP endpoint of a process on `address` — the health routes
// plus `more` (/metrics) — and logs where it listens; returns null when
// `address` is empty (turned off).
[[nodiscard]] absl::StatusOr<std::unique_ptr<HttpServer>> StartHealthServer(
    const std::string& address, const std::string& component, std::function<absl::Status()> ready,
    std::map<std::string, HttpHandler> more = {}, std::function<absl::Status()> alive = {});

}  // namespace agentfleet
