#include "http/http_server.h"

#include <civetweb.h>

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace agentfleet {
namespace {
absl::once_flag civetweb_init_once;
// civetweb's own messages are dropped; Start() reports failures itself.
int QuietLog(const mg_connection*, const char*) { return 1; }
}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& address,
                                                              std::map<std::string, HttpHandler> routes) {
  absl::call_once(civetweb_init_once, [] { mg_init_library(0); });
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size()) {
    return absl::InvalidArgumentError(absl::StrCat("HTTP address '", address, "': expected HOST:PORT"));
  }
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->routes_ = std::move(routes);
  // civetweb reads an empty host as "all interfaces".
  std::string listen = address.substr(0, colon) == "0.0.0.0" ? address.substr(colon + 1) : address;
  const char* options[] = {"listening_ports", listen.c_str(), "num_threads", "4", "request_timeout_ms", "10000",
                           nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = &QuietLog;
  server->ctx_ = mg_start(&callbacks, nullptr, options);
  if (server->ctx_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen for HTTP on ", address, " (in use, or not a local address?)"));
  }
  for (auto& route : server->routes_) {
    mg_set_request_handler(server->ctx_, route.first.c_str(), &HttpServer::Dispatch, &route);
  }
  mg_server_port ports[4];
  int n = mg_get_server_ports(server->ctx_, 4, ports);
  if (n > 0) server->port_ = ports[0].port;
  return server;
}

HttpServer::~HttpServer() {
  if (ctx_) mg_stop(ctx_);
}

int HttpServer::Dispatch(mg_connection* conn, void* data) {
  const auto* route = static_cast<const std::pair<const std::string, HttpHandler>*>(data);
  const mg_request_info* info = mg_get_request_info(conn);
  // Exact paths only: civetweb also routes "/readyz/anything" here.
  if (info->local_uri == nullptr || route->first != info->local_uri) {
    mg_send_http_error(conn, 404, "%s", "not found\n");
    return 404;
  }
  HttpServerRequest request;
  request.method = info->request_method ? info->request_method : "";
  char buffer[4096];
  for (int n; request.body.size() < (64 << 10) && (n = mg_read(conn, buffer, sizeof buffer)) > 0;) {
    request.body.append(buffer, n);
  }
  HttpReply reply = route->second(request);
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\n",
            reply.status, mg_get_response_code_text(conn, reply.status), reply.content_type.c_str(),
            reply.body.size());
  mg_write(conn, reply.body.data(), reply.body.size());
  return reply.status;
}

std::map<std::string, HttpHandler> HealthRoutes(std::function<absl::Status()> ready) {
  return {
      {"/healthz", [](const HttpServerRequest&) { return HttpReply{200, "text/plain; charset=utf-8", "ok\n"}; }},
      {"/readyz",
       [ready = std::move(ready)](const HttpServerRequest&) {
         absl::Status s = ready();
         if (s.ok()) return HttpReply{200, "text/plain; charset=utf-8", "ready\n"};
         return HttpReply{503, "text/plain; charset=utf-8", absl::StrCat("not ready: ", s.message(), "\n")};
       }},
  };
}

absl::StatusOr<std::unique_ptr<HttpServer>> StartHealthServer(const std::string& address, const std::string& component,
                                                              std::function<absl::Status()> ready,
                                                              std::map<std::string, HttpHandler> more) {
  if (address.empty()) return nullptr;
  std::map<std::string, HttpHandler> routes = HealthRoutes(std::move(ready));
  routes.merge(more);
  auto server = HttpServer::Start(address, std::move(routes));
  if (server.ok()) {
    Log(LogLevel::kInfo, component, "http listening",
        {{"address", address}, {"port", absl::StrCat((*server)->port())}});
  }
  return server;
}

}  // namespace agentfleet
