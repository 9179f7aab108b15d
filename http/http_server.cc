#include "http/http_server.h"

#include <civetweb.h>

#include "absl/base/call_once.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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
    // civetweb routes "/tasks" and "/tasks/..." to a handler of "/tasks";
    // Dispatch keeps exact routes exact.
    std::string uri = route.first;
    if (uri.size() > 1 && uri.back() == '/') uri.pop_back();
    mg_set_request_handler(server->ctx_, uri.c_str(), &HttpServer::Dispatch, &route);
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
  // civetweb also routes "/readyz/anything" here: exact routes stay exact,
  // prefix routes ("/tasks/") take the bare name and what is under it.
  const std::string& route_path = route->first;
  std::string path = info->local_uri ? info->local_uri : "";
  bool prefix = route_path.size() > 1 && route_path.back() == '/';
  bool match = prefix ? (path + "/" == route_path || absl::StartsWith(path, route_path)) : path == route_path;
  if (!match) {
    mg_send_http_error(conn, 404, "%s", "not found\n");
    return 404;
  }
  HttpServerRequest request;
  request.method = info->request_method ? info->request_method : "";
  request.path = path;
  request.query = info->query_string ? info->query_string : "";
  request.remote_address = info->remote_addr;
  for (int i = 0; i < info->num_headers; ++i) {
    request.headers[absl::AsciiStrToLower(info->http_headers[i].name)] = info->http_headers[i].value;
  }
  char buffer[4096];
  for (int n; request.body.size() < (64 << 10) && (n = mg_read(conn, buffer, sizeof buffer)) > 0;) {
    request.body.append(buffer, n);
  }
  HttpReply reply = route->second(request);
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n",
            reply.status, mg_get_response_code_text(conn, reply.status), reply.content_type.c_str(),
            reply.body.size());
  for (const auto& [name, value] : reply.headers) mg_printf(conn, "%s: %s\r\n", name.c_str(), value.c_str());
  mg_printf(conn, "\r\n");
  mg_write(conn, reply.body.data(), reply.body.size());
  return reply.status;
}

std::map<std::string, std::string> ParseForm(const std::string& encoded) {
  std::map<std::string, std::string> form;
  for (absl::string_view pair : absl::StrSplit(encoded, '&', absl::SkipEmpty())) {
    size_t eq = pair.find('=');
    std::string name(pair.substr(0, eq));
    std::string value(eq == absl::string_view::npos ? absl::string_view() : pair.substr(eq + 1));
    // Decoding never grows a string; '+' is a space in forms.
    auto decode = [](const std::string& in) {
      std::string out(in.size() + 1, '\0');
      int n = mg_url_decode(in.data(), static_cast<int>(in.size()), out.data(), static_cast<int>(out.size()), 1);
      out.resize(n < 0 ? 0 : n);
      return out;
    };
    form[decode(name)] = decode(value);
  }
  return form;
}

std::map<std::string, HttpHandler> HealthRoutes(std::function<absl::Status()> ready,
                                                std::function<absl::Status()> alive) {
  return {
      {"/healthz",
       [alive = std::move(alive)](const HttpServerRequest&) {
         absl::Status s = alive ? alive() : absl::OkStatus();
         if (s.ok()) return HttpReply{200, "text/plain; charset=utf-8", "ok\n"};
         return HttpReply{503, "text/plain; charset=utf-8", absl::StrCat("not alive: ", s.message(), "\n")};
       }},
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
                                                              std::map<std::string, HttpHandler> more,
                                                              std::function<absl::Status()> alive) {
  if (address.empty()) return nullptr;
  std::map<std::string, HttpHandler> routes = HealthRoutes(std::move(ready), std::move(alive));
  routes.merge(more);
  auto server = HttpServer::Start(address, std::move(routes));
  if (server.ok()) {
    Log(LogLevel::kInfo, component, "http listening",
        {{"address", address}, {"port", absl::StrCat((*server)->port())}});
  }
  return server;
}

}  // namespace agentfleet
