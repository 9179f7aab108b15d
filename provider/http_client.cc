#include "provider/http_client.h"

#include <curl/curl.h>

#include "absl/base/call_once.h"
#include "absl/time/clock.h"

namespace agentfleet {

struct HttpClient::Transfer {
  HttpRequest request;
  std::function<void(HttpResponse)> done;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string body;
  size_t max_bytes = 0;
  bool too_large = false;
  absl::Time started;
  char error[CURL_ERROR_SIZE] = {0};

  ~Transfer() {
    if (headers) curl_slist_free_all(headers);
    if (easy) curl_easy_cleanup(easy);
  }
};

namespace {

absl::once_flag curl_init_once;

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<HttpClient::Transfer*>(user);
  size_t n = size * count;
  if (t->body.size() + n > t->max_bytes) {
    t->too_large = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  t->body.append(data, n);
  return n;
}

HttpResponse::Transport Classify(CURLcode code) {
  switch (code) {
    case CURLE_OK:
      return HttpResponse::Transport::kOk;
    case CURLE_OPERATION_TIMEDOUT:
      return HttpResponse::Transport::kTimeout;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return HttpResponse::Transport::kConnectionFailed;
    case CURLE_PARTIAL_FILE:
      return HttpResponse::Transport::kTruncated;
    default:
      return HttpResponse::Transport::kOther;
  }
}

}  // namespace

HttpClient::HttpClient(Options options) : options_(options) {
  absl::call_once(curl_init_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  CURLM* multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(options_.max_host_connections));
  curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  multi_ = multi;
  thread_ = std::thread([this] { Loop(); });
}

HttpClient::~HttpClient() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  curl_multi_wakeup(static_cast<CURLM*>(multi_));
  thread_.join();
  curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

void HttpClient::Send(HttpRequest request, std::function<void(HttpResponse)> done) {
  auto t = std::make_unique<Transfer>();
  t->request = std::move(request);
  t->done = std::move(done);
  ++in_flight_;
  {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(t));
  }
  curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

void HttpClient::Start(std::unique_ptr<Transfer> owned) {
  Transfer* t = owned.release();  // owned through active_ until Finish
  active_.insert(t);
  t->max_bytes = t->request.max_response_bytes > 0 ? t->request.max_response_bytes : options_.max_response_bytes;
  t->started = absl::Now();
  CURL* e = curl_easy_init();
  t->easy = e;
  for (const std::string& h : t->request.headers) t->headers = curl_slist_append(t->headers, h.c_str());
  t->headers = curl_slist_append(t->headers, "Expect:");  // no 100-continue round trip
  curl_easy_setopt(e, CURLOPT_URL, t->request.url.c_str());
  const std::string& method = t->request.method;
  if (method == "GET") {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->request.body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->request.body.size()));
    if (!method.empty() && method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_PRIVATE, t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(absl::ToInt64Milliseconds(t->request.timeout)));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(t->request.connect_timeout)));
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");  // every encoding libcurl can decode
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
  CURLMcode rc = curl_multi_add_handle(static_cast<CURLM*>(multi_), e);
  if (rc != CURLM_OK) Finish(t, CURLE_FAILED_INIT);
}

void HttpClient::Finish(Transfer* raw, int curl_code) {
  std::unique_ptr<Transfer> t(raw);
  active_.erase(raw);
  auto code = static_cast<CURLcode>(curl_code);
  curl_multi_remove_handle(static_cast<CURLM*>(multi_), t->easy);
  HttpResponse r;
  r.elapsed = absl::Now() - t->started;
  r.transport = t->too_large ? HttpResponse::Transport::kTooLarge : Classify(code);
  long request_size = 0;
  r.sent = curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &request_size) == CURLE_OK && request_size > 0;
  if (r.transport == HttpResponse::Transport::kTooLarge) {
    r.transport_error = "the response is larger than " + std::to_string(t->max_bytes) + " bytes";
  } else if (code != CURLE_OK) {
    r.transport_error = t->error[0] ? t->error : curl_easy_strerror(code);
  }
  if (r.transport == HttpResponse::Transport::kOk) {
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &r.status);
    curl_off_t retry_after = 0;  // seconds, from a delay or an HTTP date
    if (curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0) {
      r.retry_after = absl::Seconds(retry_after);
    }
    r.body = std::move(t->body);
  }
  auto done = std::move(t->done);
  t.reset();
  --in_flight_;
  done(std::move(r));
}

void HttpClient::Loop() {
  auto* multi = static_cast<CURLM*>(multi_);
  for (;;) {
    std::deque<std::unique_ptr<Transfer>> fresh;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
      fresh.swap(queue_);
    }
    for (auto& t : fresh) Start(std::move(t));
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      Finish(t, msg->data.result);
    }
    curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
  }
  // Abandon what is left, without callbacks.
  for (Transfer* t : active_) {
    curl_multi_remove_handle(multi, t->easy);
    delete t;
  }
  active_.clear();
}

std::string UrlEscape(const std::string& text) {
  char* escaped = curl_easy_escape(nullptr, text.data(), static_cast<int>(text.size()));
  if (escaped == nullptr) return "";
  std::string out(escaped);
  curl_free(escaped);
  return out;
}

}  // namespace agentfleet
