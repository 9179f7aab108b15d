// The console's process: a reader thread that follows the tasks, results,
// dlq and dlq.actions topics (assigned, never a group member, nothing
// committed), and the HTTP routes over what it has read.
#include <algorithm>
#include <atomic>
#include <iostream>
#include <memory>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "cli/console.h"
#include "cli/cost.h"
#include "cli/dlq.h"
#include "codec/codec.h"
#include "common/log.h"
#include "common/signals.h"
#include "google/protobuf/util/json_util.h"
#include "http/http_server.h"
#include "kafka/key_scan.h"
#include "kafka/topics.h"
#include "nlohmann/json.hpp"
#include "provider/http_client.h"

namespace agentfleet {
namespace {

constexpr char kComponent[] = "console";
constexpr char kCookie[] = "agentfleet_console";
constexpr size_t kPageRows = 500;

HttpReply Html(int status, std::string body) { return {status, "text/html; charset=utf-8", std::move(body), {}}; }
HttpReply JsonReply(int status, std::string body) {
  return {status, "application/json", std::move(body), {}};
}
HttpReply Redirect(const std::string& to, std::vector<std::pair<std::string, std::string>> more = {}) {
  more.emplace_back("Location", to);
  return {303, "text/plain; charset=utf-8", "see " + to + "\n", std::move(more)};
}
std::string ErrorJson(const std::string& message) { return absl::StrCat("{\"error\":", nlohmann::json(message).dump(), "}"); }

// Compares without stopping at the first difference (the token's bytes do
// not leak through response times).
bool SameSecret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % std::max<size_t>(b.size(), 1)]);
  return diff == 0 && !b.empty();
}

std::string CookieValue(const std::string& header, const std::string& name) {
  for (absl::string_view part : absl::StrSplit(header, ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::StartsWith(part, name + "=")) return std::string(part.substr(name.size() + 1));
  }
  return "";
}

class Console {
 public:
  Console(const FleetConfig& config, const ConsoleOptions& options)
      : config_(config), options_(options), topics_(config.kafka.topic_prefix), index_(options.max_tasks) {}

  absl::Status Start();
  void Stop();
  int port() const { return server_ ? server_->port() : 0; }

 private:
  void ReadLoop(std::unique_ptr<Consumer> consumer);
  void Take(const Message& m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::map<std::string, HttpHandler> Routes();

  // Authentication, then the handler. `api`: answers 401 JSON instead of
  // sending a browser to /login.
  HttpReply Guard(const HttpServerRequest& r, bool api, const std::function<HttpReply()>& handler);
  HttpReply Tasks(const HttpServerRequest& r, bool api);
  HttpReply Task(const HttpServerRequest& r, bool api);
  HttpReply DeadLetters(const HttpServerRequest& r, bool api, const std::string& notice = "");
  HttpReply DeadLetterOp(const HttpServerRequest& r, bool api);
  HttpReply Login(const HttpServerRequest& r);
  HttpReply Costs(const HttpServerRequest& r, bool api);
  HttpReply FleetState(bool api);

  const FleetConfig& config_;
  const ConsoleOptions options_;
  const Topics topics_;
  // One DLQ operation at a time (each fences the one before: cli/dlq.h).
  absl::Mutex op_mu_;

  absl::Mutex mu_;
  TaskIndex index_ ABSL_GUARDED_BY(mu_);
  std::deque<DeadLetter> letters_ ABSL_GUARDED_BY(mu_);
  DeadLetterActions actions_ ABSL_GUARDED_BY(mu_);
  CoordinatorWaits waits_ ABSL_GUARDED_BY(mu_);  // from the state topic
  absl::Status ledger_error_ ABSL_GUARDED_BY(mu_);  // the cost ledger's last failed read
  absl::Time ledger_retry_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();  // read from dlq.actions, and this console's own
  // Records of tasks, results and dlq.actions that do not decode (the fleet
  // dead-letters such submissions; they are counted on the tasks page).
  int64_t unreadable_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::pair<std::string, int32_t>, int64_t> targets_;  // the reader's, until caught up
  std::atomic<bool> caught_up_{false};
  std::atomic<bool> stop_{false};
  std::thread reader_;
  std::unique_ptr<HttpServer> server_;
};

absl::Status Console::Start() {
  Properties props = ConsumerProperties(config_.kafka, "agentfleet-console");
  props["enable.auto.commit"] = "false";
  props["isolation.level"] = "read_committed";
  std::vector<std::string> names = {topics_.tasks, topics_.results, topics_.dlq, topics_.dlq_actions, topics_.state};
  auto counts = PartitionCounts(props, names, options_.timeout);
  if (!counts.ok()) return counts.status();
  std::vector<TopicPartition> assignment;
  for (const std::string& topic : names) {
    auto it = counts->find(topic);
    if (it == counts->end() || it->second <= 0) {
      if (topic == topics_.dlq_actions && !options_.enable_writes) continue;  // made by `topics create`; optional to read
      return absl::FailedPreconditionError(
          absl::StrCat("topic ", topic, " does not exist (run `agentfleet topics create`)"));
    }
    for (int p = 0; p < it->second; ++p) assignment.push_back({topic, p, /*OFFSET_BEGINNING*/ -2});
  }
  // The history is in once every partition's position reaches its high
  // watermark as it was now (asked read_uncommitted: the end including
  // transaction markers, which move a read_committed position too).
  Properties hw_props = props;
  hw_props["isolation.level"] = "read_uncommitted";
  for (const TopicPartition& tp : assignment) {
    if (targets_.count({tp.topic, 0}) > 0 || targets_.count({tp.topic, tp.partition}) > 0) continue;
    auto marks = QueryWatermarks(hw_props, tp.topic, options_.timeout);
    if (!marks.ok()) return marks.status();
    for (size_t p = 0; p < marks->size(); ++p) {
      if ((*marks)[p].high > (*marks)[p].low) targets_[{tp.topic, static_cast<int32_t>(p)}] = (*marks)[p].high;
    }
  }
  auto consumer = NewConsumer(props);
  if (!consumer.ok()) return consumer.status();
  if (absl::Status s = (*consumer)->Assign(assignment); !s.ok()) return s;
  reader_ = std::thread([this, c = std::move(*consumer)]() mutable { ReadLoop(std::move(c)); });
  auto server = HttpServer::Start(options_.http_address, Routes());
  if (!server.ok()) {
    Stop();
    return server.status();
  }
  server_ = std::move(*server);
  return absl::OkStatus();
}

void Console::Stop() {
  server_.reset();
  stop_ = true;
  if (reader_.joinable()) reader_.join();
}

void Console::ReadLoop(std::unique_ptr<Consumer> consumer) {
  std::vector<Message> batch;
  absl::Time started = absl::Now();
  bool slow_logged = false;
  while (!stop_) {
    batch.clear();
    consumer->PollInto(absl::Milliseconds(200), 2000, &batch);
    if (!batch.empty()) {
      absl::MutexLock lock(&mu_);
      for (const Message& m : batch) Take(m);
    }
    if (!caught_up_ && !slow_logged && absl::Now() - started > absl::Minutes(1)) {
      slow_logged = true;
      Log(LogLevel::kWarning, kComponent, "still reading the topics' history; not ready",
          {{"partitions_left", absl::StrCat(targets_.size())}});
    }
    if (!caught_up_) {
      for (const TopicPartition& p : consumer->Positions()) {
        auto it = targets_.find({p.topic, p.partition});
        if (it != targets_.end() && p.offset >= it->second) targets_.erase(it);
      }
      if (targets_.empty()) {
        caught_up_ = true;
        Log(LogLevel::kInfo, kComponent, "read the topics' history");
      }
    }
  }
  consumer->Close();
}

void Console::Take(const Message& m) {
  size_t max = config_.coordinator.max_payload_bytes;
  if (m.topic == topics_.tasks) {
    auto s = Decode<v1::TaskSubmission>(m.payload, m.headers, max);
    if (s.ok()) index_.Add(*s); else ++unreadable_;
  } else if (m.topic == topics_.results) {
    auto r = Decode<v1::TaskResult>(m.payload, m.headers, max);
    if (r.ok()) index_.Add(*r); else ++unreadable_;
  } else if (m.topic == topics_.dlq) {
    letters_.push_back(ParseDeadLetter(config_, m));
    while (letters_.size() > options_.max_dead_letters) letters_.pop_front();
  } else if (m.topic == topics_.dlq_actions) {
    auto a = ParseDeadLetterAction(m.payload);
    if (a.ok()) actions_[{a->partition, a->offset}] = *a; else ++unreadable_;
  } else if (m.topic == topics_.state) {
    // Running tasks' snapshots; a tenant's ledger (key "\x1ftenant/...") is not one.
    if (!m.key.empty() && m.key[0] == '\x1f') return;
    if (m.payload.empty()) {
      waits_.Remove(m.key);
      return;
    }
    auto s = Decode<v1::TaskState>(m.payload, m.headers, std::max<size_t>(m.payload.size(), 1));
    if (s.ok()) waits_.Update(m.key, *s); else ++unreadable_;
  }
}

HttpReply Console::Guard(const HttpServerRequest& r, bool api, const std::function<HttpReply()>& handler) {
  if (!options_.token.empty()) {
    std::string auth = r.Header("authorization");
    std::string presented = absl::StartsWith(auth, "Bearer ") ? auth.substr(7) : CookieValue(r.Header("cookie"), kCookie);
    if (!SameSecret(presented, options_.token)) {
      if (api) return JsonReply(401, ErrorJson("a bearer token is required (Authorization: Bearer TOKEN)"));
      return Redirect("/login?next=" + UrlEscape(r.path + (r.query.empty() ? "" : "?" + r.query)));
    }
  }
  if (options_.token.empty() && !options_.allow_unauthenticated) {
    // Loopback without a token: only requests addressed to a loopback name,
    // so a web page whose name was re-pointed at 127.0.0.1 (DNS rebinding)
    // cannot use the console from a browser on this machine.
    std::string host = r.Header("host");
    if (host.find(':') == std::string::npos || (host.front() == '[' && host.back() == ']')) host += ":80";
    if (!IsLoopbackAddress(host)) {
      return api ? JsonReply(403, ErrorJson("Host not allowed")) : Html(403, "Host not allowed\n");
    }
  }
  if (r.method == "POST") {
    // A form posted from another site (cross-site request forgery) carries
    // its own Origin; the console's own pages send the console's.
    std::string origin = r.Header("origin");
    std::string host = r.Header("host");
    if (!origin.empty() && origin != "http://" + host && origin != "https://" + host) {
      return api ? JsonReply(403, ErrorJson("cross-origin request refused")) : Html(403, "cross-origin request refused\n");
    }
  }
  return handler();
}

HttpReply Console::Login(const HttpServerRequest& r) {
  std::map<std::string, std::string> form = ParseForm(r.method == "POST" ? r.body : r.query);
  // Only a path of this console (not "//host" or "/\\host", which browsers take for another site).
  std::string next = form.count("next") && absl::StartsWith(form["next"], "/") && !absl::StartsWith(form["next"], "//") &&
                             form["next"].find('\\') == std::string::npos
                         ? form["next"]
                         : "/tasks";
  std::string error;
  if (r.method == "POST") {
    if (SameSecret(form["token"], options_.token)) {
      return Redirect(next, {{"Set-Cookie", absl::StrCat(kCookie, "=", options_.token,
                                                         "; Path=/; HttpOnly; SameSite=Strict")}});
    }
    error = "<p class=\"error\" role=\"alert\">That token is not the console's.</p>";
  }
  return Html(r.method == "POST" ? 401 : 200,
              absl::StrCat("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in · "
                           "agentfleet</title></head><body><main><h1>agentfleet console</h1>",
                           error, "<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"",
                           HtmlEscape(next), "\"><label>Token <input type=\"password\" name=\"token\" "
                           "autocomplete=\"current-password\" required></label> <button type=\"submit\">Sign in"
                           "</button></form></main></body></html>\n"));
}

HttpReply Console::Tasks(const HttpServerRequest& r, bool api) {
  std::map<std::string, std::string> form = ParseForm(r.query);
  auto filter = ParseTaskFilter(form);
  std::vector<TaskSummary> tasks;
  size_t indexed;
  int64_t unreadable;
  {
    absl::MutexLock lock(&mu_);
    indexed = index_.size();
    unreadable = unreadable_;
    if (filter.ok()) tasks = index_.Search(*filter, kPageRows);
  }
  if (api) return filter.ok() ? JsonReply(200, TasksJson(tasks)) : JsonReply(400, ErrorJson(std::string(filter.status().message())));
  return Html(filter.ok() ? 200 : 400,
              TasksPage(tasks, form, indexed, unreadable, filter.ok() ? "" : std::string(filter.status().message())));
}

HttpReply Console::Task(const HttpServerRequest& r, bool api) {
  std::string prefix = api ? "/api/tasks/" : "/tasks/";
  std::string id = r.path.substr(std::min(r.path.size(), prefix.size()));
  if (id.empty()) return Tasks(r, api);
  auto records = ReadTaskRecords(config_, id, options_.timeout, options_.lookup);
  if (!records.ok()) {
    std::string message = absl::StrCat("cannot read the task's records: ", records.status().message());
    return api ? JsonReply(502, ErrorJson(message)) : Html(502, HtmlEscape(message));
  }
  TaskTrace trace = BuildTrace(config_, id, *records);
  if (api) return JsonReply(trace.found ? 200 : 404, TraceJson(trace));
  std::string input;
  if (auto submission = FindSubmission(*records, id, config_.coordinator.max_payload_bytes)) {
    google::protobuf::util::JsonPrintOptions print;
    print.add_whitespace = true;
    (void)google::protobuf::util::MessageToJsonString(submission->input(), &input, print);
  }
  std::vector<v1::TaskSignal> signals;
  for (const Message& m : records->signals) {
    auto s = Decode<v1::TaskSignal>(m.payload, m.headers, config_.coordinator.max_payload_bytes);
    if (s.ok() && s->task_id() == id) signals.push_back(*std::move(s));
  }
  return Html(trace.found ? 200 : 404, TaskPage(trace, input, signals, absl::Now(), options_.trace_url));
}

HttpReply Console::DeadLetters(const HttpServerRequest& r, bool api, const std::string& notice) {
  std::map<std::string, std::string> form = ParseForm(r.query);
  DeadLetterFilter filter{form["reason"], form["component"], !form["all"].empty()};
  std::vector<DeadLetter> shown;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = letters_.rbegin(); it != letters_.rend() && shown.size() < kPageRows; ++it) {
      DeadLetter d = WithDisposition(*it, actions_);
      if (Matches(filter, d)) shown.push_back(std::move(d));
    }
  }
  if (api) return JsonReply(200, DeadLettersJson(shown));
  return Html(200, DeadLettersPage(shown, form, options_.enable_writes, notice));
}

// POST /dlq/P/O/replay|discard (and /api/dlq/...): the record is replayed
// to its origin topic (or not) and the action written to dlq.actions, in
// one transaction committed before the answer (ActOnDeadLetter).
HttpReply Console::DeadLetterOp(const HttpServerRequest& r, bool api) {
  auto fail = [&](int status, const std::string& message) {
    return api ? JsonReply(status, ErrorJson(message)) : Html(status, HtmlEscape(message) + "\n");
  };
  if (r.method != "POST") return fail(405, "use POST");
  if (!options_.enable_writes) return fail(403, "the console is read-only (start it with --enable_writes)");
  std::vector<std::string> parts = absl::StrSplit(r.path.substr(api ? 9 : 5), '/');  // P, O, op
  int32_t partition;
  int64_t offset;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &partition) || !absl::SimpleAtoi(parts[1], &offset) ||
      (parts[2] != "replay" && parts[2] != "discard")) {
    return fail(404, "expected /dlq/PARTITION/OFFSET/replay or /discard");
  }
  DeadLetterAction action;
  action.action = parts[2] == "replay" ? "replayed" : "discarded";
  action.partition = partition;
  action.offset = offset;
  std::string user = r.Header("x-forwarded-user");  // set by an authenticating ingress
  action.by = user.empty() ? options_.operator_name : user;
  action.from = r.remote_address;
  absl::MutexLock op(&op_mu_);
  auto done = ActOnDeadLetter(config_, action, options_.timeout);  // cli/dlq.h: once only, in one transaction
  if (!done.ok()) {
    switch (done.status().code()) {
      case absl::StatusCode::kNotFound: return fail(404, std::string(done.status().message()));
      case absl::StatusCode::kAlreadyExists:
      case absl::StatusCode::kAborted:
      case absl::StatusCode::kFailedPrecondition: return fail(409, std::string(done.status().message()));
      default: return fail(502, absl::StrCat("Kafka: ", done.status().message()));
    }
  }
  action = *std::move(done);
  {
    absl::MutexLock lock(&mu_);
    actions_[{partition, offset}] = action;
  }
  std::string message = absl::StrCat("dead letter ", partition, "/", offset, " ", action.action,
                                     parts[2] == "replay" ? " to " + action.origin_topic : "");
  if (api) return JsonReply(200, DeadLetterActionJson(action));
  return Redirect("/dlq?done=" + UrlEscape(message));
}

HttpReply Console::Costs(const HttpServerRequest& r, bool api) {
  std::map<std::string, std::string> form = ParseForm(r.query);
  // Default: the last 7 days by tenant.
  std::string from = form["from"];
  if (from.empty()) from = absl::FormatTime("%Y-%m-%d", absl::Now() - absl::Hours(24 * 6), absl::UTCTimeZone());
  std::string by = form.count("by") ? form["by"] : "tenant";
  auto query = CostQueryOf(from, form["to"], by, absl::Now());
  // After the ledger could not be read, the results serve for 5 minutes
  // without waiting on it again.
  absl::Status ledger_failed;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Now() < ledger_retry_at_) ledger_failed = ledger_error_;
  }
  absl::StatusOr<CostReport> report =
      !query.ok()            ? absl::StatusOr<CostReport>(query.status())
      : !ledger_failed.ok()  ? absl::StatusOr<CostReport>(ledger_failed)
                             : ReadCostReport(config_, *query, std::min(options_.timeout, absl::Seconds(15)));
  if (query.ok() && !report.ok() && ledger_failed.ok()) {
    absl::MutexLock lock(&mu_);
    ledger_error_ = report.status();
    ledger_retry_at_ = absl::Now() + absl::Minutes(5);
  }
  std::string notice;
  if (query.ok() && !report.ok()) {
    // No ledger (or none readable): the results the console has read.
    const std::string ledger_error(report.status().message());
    TaskFilter finished;
    finished.since = query->from - absl::Hours(24 * kTrendDays);
    std::vector<TaskSummary> tasks;
    {
      absl::MutexLock lock(&mu_);
      tasks = index_.Search(finished, index_.size());
    }
    report = CostReportFromTasks(tasks, *query);
    if (report.ok()) {
      notice = absl::StrCat("From the results of the ", tasks.size(), " tasks the console holds: the cost ledger could not be read (",
                            ledger_error, ").");
    } else {
      report = absl::Status(report.status().code(), absl::StrCat(report.status().message(), "; and the cost ledger could not be read (",
                                                               ledger_error, ")"));
    }
  }
  int status = report.ok() ? 200 : query.ok() && !absl::IsInvalidArgument(report.status()) ? 502 : 400;
  if (api) {
    if (!report.ok()) return JsonReply(status, ErrorJson(std::string(report.status().message())));
    nlohmann::json j = nlohmann::json::parse(FormatCostJson(*report));
    j["source"] = notice.empty() ? "ledger" : "results";
    if (!notice.empty()) j["notice"] = notice;
    return JsonReply(200, j.dump());
  }
  form["from"] = from;
  form["by"] = by;
  return Html(status, CostsPage(report.ok() ? *report : CostReport(), form,
                                report.ok() ? "" : std::string(report.status().message()), notice));
}

HttpReply Console::FleetState(bool api) {
  FleetView view;
  {
    absl::MutexLock lock(&mu_);
    view.queues = waits_.Queues();
  }
  view.trigger = options_.keda;
  absl::Duration timeout = std::min(options_.timeout, absl::Seconds(15));
  // Three independent reads, each with its own Kafka clients, at once: the
  // page takes as long as the slowest, not their sum.
  std::thread breakers_read([&] {
    // Breakers as the coordinator replicas share them: the latest state of each.
    auto breakers =
        ReadPartitionsToEnd(ConsumerProperties(config_.kafka, "agentfleet-console"), topics_.breakers, {0}, timeout);
    if (!breakers.ok()) {
      view.breakers_error = std::string(breakers.status().message());
      return;
    }
    std::map<std::string, v1::BreakerState> latest;
    for (const Message& m : *breakers) {
      auto b = Decode<v1::BreakerState>(m.payload, m.headers);
      if (b.ok()) latest[b->name()] = *b;
    }
    for (auto& [name, b] : latest) view.breakers.push_back(std::move(b));
  });
  std::thread tenants_read([&] {
    auto tenants = Tenants(config_, timeout);
    if (tenants.ok()) view.tenants = *tenants; else view.tenants_error = std::string(tenants.status().message());
  });
  auto lags = ReadFleetLag(config_, view.trigger, timeout);
  if (lags.ok()) {
    view.lags = *lags;
    std::thread capacity_read([&] {
      auto pools = ReadFleetCapacity(config_, view.lags, view.trigger, timeout);
      if (pools.ok()) view.pools = *pools; else view.capacity_error = std::string(pools.status().message());
    });
    std::vector<std::string> groups;
    for (const GroupTopicLag& g : view.lags) {
      if (std::find(groups.begin(), groups.end(), g.group) == groups.end()) groups.push_back(g.group);
    }
    if (!groups.empty()) {
      auto described = DescribeGroups(ProducerProperties(config_.kafka), groups, timeout);
      if (described.ok()) view.groups = *described; else view.groups_error = std::string(described.status().message());
    }
    capacity_read.join();
  } else {
    view.lag_error = std::string(lags.status().message());
    view.capacity_error = "needs the lag";
  }
  breakers_read.join();
  tenants_read.join();
  return api ? JsonReply(200, FleetJson(view)) : Html(200, FleetPage(view));
}

std::map<std::string, HttpHandler> Console::Routes() {
  std::map<std::string, HttpHandler> routes = HealthRoutes([this] {
    return caught_up_ ? absl::OkStatus() : absl::UnavailableError("reading the topics' history");
  });
  routes["/"] = [](const HttpServerRequest&) { return Redirect("/tasks"); };
  routes["/login"] = [this](const HttpServerRequest& r) {
    return options_.token.empty() ? Redirect("/tasks") : Login(r);
  };
  routes["/tasks/"] = [this](const HttpServerRequest& r) { return Guard(r, false, [&] { return Task(r, false); }); };
  routes["/api/tasks/"] = [this](const HttpServerRequest& r) { return Guard(r, true, [&] { return Task(r, true); }); };
  routes["/costs"] = [this](const HttpServerRequest& r) { return Guard(r, false, [&] { return Costs(r, false); }); };
  routes["/api/costs"] = [this](const HttpServerRequest& r) { return Guard(r, true, [&] { return Costs(r, true); }); };
  routes["/fleet"] = [this](const HttpServerRequest& r) { return Guard(r, false, [&] { return FleetState(false); }); };
  routes["/api/fleet"] = [this](const HttpServerRequest& r) { return Guard(r, true, [&] { return FleetState(true); }); };
  routes["/dlq/"] = [this](const HttpServerRequest& r) {
    return Guard(r, false, [&] {
      if (r.path == "/dlq" || r.path == "/dlq/") return DeadLetters(r, false, ParseForm(r.query)["done"]);
      return DeadLetterOp(r, false);
    });
  };
  routes["/api/dlq/"] = [this](const HttpServerRequest& r) {
    return Guard(r, true, [&] {
      if (r.path == "/api/dlq" || r.path == "/api/dlq/") return DeadLetters(r, true);
      return DeadLetterOp(r, true);
    });
  };
  return routes;
}

}  // namespace

int RunConsole(const FleetConfig& config, const ConsoleOptions& options) {
  if (options.token.empty() && !options.allow_unauthenticated && !IsLoopbackAddress(options.http_address)) {
    std::cerr << "agentfleet console: --http_address " << options.http_address
              << " is not loopback: give a token (--token_file FILE or AGENTFLEET_CONSOLE_TOKEN), or "
                 "--allow_unauthenticated when an authenticating ingress is in front\n";
    return 2;
  }
  if (!options.token.empty()) RedactInLogs(options.token);
  Console console(config, options);
  if (absl::Status s = console.Start(); !s.ok()) {
    std::cerr << "agentfleet console: " << s.message() << "\n";
    return 1;
  }
  Log(LogLevel::kInfo, kComponent, "serving",
      {{"address", options.http_address}, {"port", absl::StrCat(console.port())},
       {"writes", options.enable_writes ? "enabled" : "off"}, {"token", options.token.empty() ? "none" : "required"}});
  while (!ShutdownRequested()) absl::SleepFor(absl::Milliseconds(200));
  console.Stop();
  return 0;
}

}  // namespace agentfleet
