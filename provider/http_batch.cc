// HttpProvider's batches (http_provider.h): requests of one model collected
// up to max_items or max_wait, sent through the provider's batch API, polled,
// and answered from its results; whatever a batch does not answer is called
// online.
#include <atomic>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "provider/http_provider.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;
using Type = ProviderConfig::Type;

constexpr char kComponent[] = "provider";
// Results files: as large as a provider makes them (OpenAI: 200 MB inputs).
constexpr size_t kMaxResultsBytes = size_t{512} << 20;

// A 2xx answer whose body is a JSON object, or why not.
absl::StatusOr<Json> JsonAnswer(const HttpResponse& r, const char* what) {
  if (r.transport != HttpResponse::Transport::kOk) {
    return absl::UnavailableError(absl::StrCat(what, ": ", r.transport_error));
  }
  if (r.status < 200 || r.status >= 300) {
    return absl::UnavailableError(absl::StrCat(what, ": HTTP ", r.status, ": ", r.body.substr(0, 200)));
  }
  Json j = Json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::UnavailableError(absl::StrCat(what, ": the answer is not a JSON object"));
  return j;
}

std::string Text(const Json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

// "scheme://host[:port]" of a URL.
std::string Origin(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  size_t path = url.find('/', scheme + 3);
  return path == std::string::npos ? url : url.substr(0, path);
}

std::string Boundary() {
  static thread_local absl::BitGen gen;
  return absl::StrCat("agentfleet-", absl::Hex(absl::Uniform<uint64_t>(gen), absl::kZeroPad16));
}

}  // namespace

std::map<std::string, Json> ParseBatchResults(ProviderConfig::Type type, absl::string_view body) {
  std::map<std::string, Json> answers;
  for (absl::string_view line : absl::StrSplit(body, '\n', absl::SkipWhitespace())) {
    Json row = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    std::string id = Text(row, "custom_id");
    if (id.empty()) continue;
    if (type == Type::kAnthropic) {
      // {"custom_id", "result": {"type": "succeeded", "message": {...}}}; errored, expired, canceled: none.
      const Json& result = row.value("result", Json());
      if (Text(result, "type") == "succeeded" && result.contains("message") && result["message"].is_object()) {
        answers[id] = result["message"];
      }
    } else {
      // {"custom_id", "response": {"status_code", "body"}, "error"}; an error or a non-200: none.
      // value() would throw on a member of another type: a hostile file must not.
      const Json& response = row.value("response", Json());
      if (response.is_object() && response.contains("status_code") && response["status_code"] == 200 &&
          response.contains("body") && response["body"].is_object()) {
        answers[id] = response["body"];
      }
    }
  }
  return answers;
}

struct HttpProvider::Batch {
  std::string model;
  BatchConfig options;
  struct Item {
    ModelRequest request;
    std::function<void(ModelResponse)> done;
    absl::Time queued;
  };
  std::vector<Item> items;
  std::string id;  // the provider's
  absl::Time give_up = absl::InfiniteFuture();
  std::atomic<bool> settled{false};

  // Item i's id within the batch (both providers: [a-zA-Z0-9_-]{1,64}).
  static std::string CustomId(size_t i) { return absl::StrCat("r", i); }
};

void HttpProvider::Enqueue(ModelRequest request, std::function<void(ModelResponse)> done) {
  std::shared_ptr<Batch> full;
  std::shared_ptr<Batch> started;
  {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<Batch>& batch = filling_[request.model];
    if (!batch) {
      batch = std::make_shared<Batch>();
      batch->model = request.model;
      batch->options = *request.batch;
      started = batch;
    }
    batch->items.push_back({std::move(request), std::move(done), absl::Now()});
    if (batch->items.size() >= static_cast<size_t>(batch->options.max_items)) {
      full = std::move(batch);
      filling_.erase(full->model);
    }
  }
  if (started && !full) {
    scheduler_->RunAfter(started->options.max_wait, [this, started] { Flush(started); });
  }
  if (full) Submit(std::move(full));
}

void HttpProvider::Flush(const std::shared_ptr<Batch>& batch) {
  {
    absl::MutexLock lock(&mu_);
    auto it = filling_.find(batch->model);
    if (it == filling_.end() || it->second != batch) return;  // sent when it filled up
    filling_.erase(it);
  }
  Submit(batch);
}

HttpRequest HttpProvider::Get(const std::string& url) const {
  HttpRequest http;
  http.method = "GET";
  http.url = url;
  http.headers = ProviderHeaders(config_, api_key_);
  http.connect_timeout = config_.connect_timeout;
  http.max_response_bytes = kMaxResultsBytes;
  return http;
}

void HttpProvider::Submit(std::shared_ptr<Batch> batch) {
  batch->give_up = absl::Now() + kBatchWindow + batch->options.max_wait + 2 * batch->options.poll_interval;
  std::vector<Json> bodies;
  for (const Batch::Item& item : batch->items) {
    bodies.push_back(Json::parse(BuildHttpRequest(config_, api_key_, item.request).body));
  }
  if (config_.type == Type::kAnthropic) {
    Json requests = Json::array();
    for (size_t i = 0; i < bodies.size(); ++i) {
      requests.push_back({{"custom_id", Batch::CustomId(i)}, {"params", std::move(bodies[i])}});
    }
    HttpRequest http;
    http.url = config_.base_url + "/v1/messages/batches";
    http.headers = ProviderHeaders(config_, api_key_);
    http.headers.push_back("Content-Type: application/json");
    http.body = Json{{"requests", std::move(requests)}}.dump();
    http.connect_timeout = config_.connect_timeout;
    client_->Send(std::move(http), [this, batch](HttpResponse r) { Created(batch, r); });
    return;
  }
  // OpenAI: the requests as a JSONL file, then the batch over it.
  std::string jsonl;
  for (size_t i = 0; i < bodies.size(); ++i) {
    absl::StrAppend(&jsonl,
                    Json{{"custom_id", Batch::CustomId(i)}, {"method", "POST"}, {"url", "/v1/chat/completions"},
                         {"body", std::move(bodies[i])}}
                        .dump(),
                    "\n");
  }
  std::string boundary = Boundary();
  HttpRequest upload;
  upload.url = config_.base_url + "/files";
  upload.headers = ProviderHeaders(config_, api_key_);
  upload.headers.push_back("Content-Type: multipart/form-data; boundary=" + boundary);
  upload.body = absl::StrCat("--", boundary, "\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--",
                             boundary,
                             "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"batch.jsonl\"\r\n"
                             "Content-Type: application/jsonl\r\n\r\n",
                             jsonl, "\r\n--", boundary, "--\r\n");
  upload.connect_timeout = config_.connect_timeout;
  client_->Send(std::move(upload), [this, batch](HttpResponse r) {
    auto file = JsonAnswer(r, "uploading the batch's requests");
    if (!file.ok() || Text(*file, "id").empty()) {
      return Settle(batch, {}, file.ok() ? "the upload's answer has no id" : std::string(file.status().message()));
    }
    HttpRequest create;
    create.url = config_.base_url + "/batches";
    create.headers = ProviderHeaders(config_, api_key_);
    create.headers.push_back("Content-Type: application/json");
    create.body = Json{{"input_file_id", Text(*file, "id")},
                       {"endpoint", "/v1/chat/completions"},
                       {"completion_window", "24h"}}
                      .dump();
    create.connect_timeout = config_.connect_timeout;
    client_->Send(std::move(create), [this, batch](HttpResponse created) { Created(batch, created); });
  });
}

void HttpProvider::Created(std::shared_ptr<Batch> batch, const HttpResponse& response) {
  auto created = JsonAnswer(response, "creating the batch");
  if (!created.ok() || Text(*created, "id").empty()) {
    return Settle(batch, {}, created.ok() ? "the batch's answer has no id" : std::string(created.status().message()));
  }
  batch->id = Text(*created, "id");
  Log(LogLevel::kInfo, kComponent, "batch sent",
      {{"provider", config_.name}, {"model", batch->model}, {"batch", batch->id},
       {"requests", absl::StrCat(batch->items.size())}});
  SchedulePoll(std::move(batch));
}

void HttpProvider::SchedulePoll(std::shared_ptr<Batch> batch) {
  if (absl::Now() > batch->give_up) return Settle(batch, {}, "the batch did not end within the provider's window");
  scheduler_->RunAfter(batch->options.poll_interval, [this, batch] { Poll(batch); });
}

void HttpProvider::Poll(std::shared_ptr<Batch> batch) {
  const bool anthropic = config_.type == Type::kAnthropic;
  std::string url = anthropic ? absl::StrCat(config_.base_url, "/v1/messages/batches/", batch->id)
                              : absl::StrCat(config_.base_url, "/batches/", batch->id);
  client_->Send(Get(url), [this, batch, anthropic](HttpResponse r) {
    auto status = JsonAnswer(r, "polling the batch");
    if (!status.ok()) return SchedulePoll(batch);  // a poll that failed is tried again, within the window
    if (anthropic) {
      if (Text(*status, "processing_status") != "ended") return SchedulePoll(batch);
      std::string results = Text(*status, "results_url");
      if (results.empty()) return Settle(batch, {}, "the ended batch has no results_url");
      // The API key goes only to the provider's own host.
      if (Origin(results) != Origin(config_.base_url)) {
        return Settle(batch, {}, "the batch's results_url is not on the provider's host");
      }
      return Fetch(batch, {results}, {});
    }
    std::string state = Text(*status, "status");
    if (state == "failed") return Settle(batch, {}, "the provider failed the batch");
    if (state != "completed" && state != "expired" && state != "cancelled") return SchedulePoll(batch);
    // An expired or cancelled batch may still hold some answers.
    std::vector<std::string> files;
    for (const char* key : {"output_file_id", "error_file_id"}) {
      if (!Text(*status, key).empty()) {
        files.push_back(absl::StrCat(config_.base_url, "/files/", Text(*status, key), "/content"));
      }
    }
    Fetch(batch, std::move(files), {});
  });
}

void HttpProvider::Fetch(std::shared_ptr<Batch> batch, std::vector<std::string> urls,
                         std::map<std::string, Json> answers) {
  if (urls.empty()) return Settle(batch, answers, "the batch did not answer it");
  std::string url = urls.back();
  urls.pop_back();
  client_->Send(Get(url), [this, batch, urls = std::move(urls), answers = std::move(answers)](HttpResponse r) mutable {
    if (r.transport != HttpResponse::Transport::kOk || r.status < 200 || r.status >= 300) {
      return Settle(batch, answers, absl::StrCat("reading the batch's results failed (", r.transport_error,
                                                 r.status ? absl::StrCat("HTTP ", r.status) : "", ")"));
    }
    for (auto& [id, answer] : ParseBatchResults(config_.type, r.body)) answers[id] = std::move(answer);
    Fetch(batch, std::move(urls), std::move(answers));
  });
}

void HttpProvider::Settle(const std::shared_ptr<Batch>& batch, const std::map<std::string, Json>& answers,
                          const std::string& why) {
  if (batch->settled.exchange(true)) return;
  size_t online = 0;
  for (size_t i = 0; i < batch->items.size(); ++i) {
    Batch::Item& item = batch->items[i];
    auto answer = answers.find(Batch::CustomId(i));
    if (answer == answers.end()) {
      // Not answered by the batch: the same request, online.
      ++online;
      item.request.batch = nullptr;
      Call(std::move(item.request), std::move(item.done));
      continue;
    }
    HttpResponse http;
    http.transport = HttpResponse::Transport::kOk;
    http.status = 200;
    http.body = answer->second.dump();
    ModelResponse response = ParseHttpResponse(config_, api_key_, item.request, http);
    response.batch = true;
    response.latency = absl::Now() - item.queued;
    item.done(std::move(response));
  }
  Log(online == 0 ? LogLevel::kInfo : LogLevel::kWarning, kComponent, "batch settled",
      {{"provider", config_.name}, {"model", batch->model}, {"batch", batch->id.empty() ? "(not sent)" : batch->id},
       {"answered", absl::StrCat(batch->items.size() - online)}, {"online", absl::StrCat(online)},
       {"why", online == 0 ? "" : why}});
}

}  // namespace agentfleet
