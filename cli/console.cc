#include "cli/console.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agentfleet/v1/work.pb.h"
#include "codec/codec.h"
#include "google/protobuf/util/json_util.h"
#include "http/http_server.h"
#include "kafka/dead_letter.h"
#include "kafka/topics.h"
#include "nlohmann/json.hpp"
#include "provider/http_client.h"
#include "safety/sanitize.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;

std::string TimeText(const std::optional<absl::Time>& t) {
  if (!t) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", *t, absl::UTCTimeZone());
}

Json TimeJson(const std::optional<absl::Time>& t) {
  if (!t) return nullptr;
  return TimeText(t);
}

std::optional<absl::Time> FromProtoTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return std::nullopt;
  return FromTimestamp(t);
}

// RUNNING (no result yet), then every TaskStatus a result can have.
const std::vector<std::string>& StatusNames() {
  static const auto* names = [] {
    auto* out = new std::vector<std::string>;
    const google::protobuf::EnumDescriptor* e = v1::TaskStatus_descriptor();
    for (int i = 0; i < e->value_count(); ++i) {
      out->push_back(TaskStatusName(static_cast<v1::TaskStatus>(e->value(i)->number())));
    }
    return out;
  }();
  return *names;
}

std::string BreakerStatusName(v1::BreakerStatus status) {
  std::string name = v1::BreakerStatus_Name(status);
  return absl::StartsWith(name, "BREAKER_STATUS_") ? name.substr(15) : name;
}

std::string Param(const std::map<std::string, std::string>& form, const std::string& name) {
  auto it = form.find(name);
  return it == form.end() ? "" : it->second;
}

}  // namespace

// ---- TaskIndex --------------------------------------------------------------------

TaskSummary& TaskIndex::Entry(const std::string& task_id) {
  auto [it, inserted] = tasks_.try_emplace(task_id);
  if (inserted) {
    it->second.task_id = task_id;
    order_.push_back(task_id);
    while (tasks_.size() > capacity_ && !order_.empty()) {
      tasks_.erase(order_.front());
      order_.pop_front();
      ++evicted_;
    }
  }
  return tasks_[task_id];
}

void TaskIndex::Add(const v1::TaskSubmission& s) {
  TaskSummary& t = Entry(s.task_id());
  if (t.tenant.empty()) t.tenant = s.tenant();
  if (t.workflow.empty()) t.workflow = s.workflow();
  if (!t.submitted) t.submitted = FromProtoTime(s.submitted_at());
}

void TaskIndex::Add(const v1::TaskResult& r) {
  TaskSummary& t = Entry(r.task_id());
  t.tenant = r.tenant();
  t.workflow = r.workflow();
  t.status = TaskStatusName(r.status());
  if (auto submitted = FromProtoTime(r.submitted_at())) t.submitted = submitted;
  t.finished = FromProtoTime(r.finished_at());
  t.cost_usd = r.usage().cost_usd();
  t.tokens = r.usage().input_tokens() + r.usage().output_tokens();
  t.input_tokens = r.usage().input_tokens();
  t.output_tokens = r.usage().output_tokens();
  t.calls = r.usage().calls();
  t.steps = r.steps_size();
  t.error = r.has_error() ? absl::StrCat(r.error().code(), ": ", r.error().message()) : "";
}

std::vector<TaskSummary> TaskIndex::Search(const TaskFilter& f, size_t limit) const {
  std::vector<const TaskSummary*> found;
  for (const auto& [id, t] : tasks_) {
    if (!f.id.empty() && !absl::StartsWith(id, f.id)) continue;
    if (!f.tenant.empty() && t.tenant != f.tenant) continue;
    if (!f.workflow.empty() && t.workflow != f.workflow) continue;
    if (!f.status.empty() && t.status != f.status) continue;
    std::optional<absl::Time> at = t.submitted ? t.submitted : t.finished;
    if ((f.since || f.until) && !at) continue;
    if (f.since && *at < *f.since) continue;
    if (f.until && *at > *f.until) continue;
    found.push_back(&t);
  }
  auto newest_first = [](const TaskSummary* a, const TaskSummary* b) {
    absl::Time ta = a->submitted.value_or(a->finished.value_or(absl::InfinitePast()));
    absl::Time tb = b->submitted.value_or(b->finished.value_or(absl::InfinitePast()));
    return ta != tb ? ta > tb : a->task_id < b->task_id;
  };
  size_t n = std::min(limit, found.size());
  std::partial_sort(found.begin(), found.begin() + n, found.end(), newest_first);
  std::vector<TaskSummary> out;
  for (size_t i = 0; i < n; ++i) out.push_back(*found[i]);
  return out;
}

absl::StatusOr<TaskFilter> ParseTaskFilter(const std::map<std::string, std::string>& form) {
  TaskFilter f;
  f.id = Param(form, "id");
  f.tenant = Param(form, "tenant");
  f.workflow = Param(form, "workflow");
  f.status = absl::AsciiStrToUpper(Param(form, "status"));
  if (!f.status.empty() &&
      std::find(StatusNames().begin(), StatusNames().end(), f.status) == StatusNames().end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("status: '", f.status, "' is not one of ", absl::StrJoin(StatusNames(), ", ")));
  }
  // A time: RFC 3339 ("2026-12-01T10:00:00Z"), or a duration before now ("2h").
  for (const char* name : {"since", "until"}) {
    std::string text = Param(form, name);
    if (text.empty()) continue;
    absl::Time t;
    absl::Duration ago;
    std::string err;
    if (absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    } else if (absl::ParseDuration(text, &ago) && ago >= absl::ZeroDuration()) {
      t = absl::Now() - ago;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": '", text, "' is neither a time (2026-12-01T10:00:00Z) nor a duration (2h)"));
    }
    (std::string(name) == "since" ? f.since : f.until) = t;
  }
  return f;
}

// ---- CoordinatorWaits ------------------------------------------------------------------

void CoordinatorWaits::Update(const std::string& task_id, const v1::TaskState& state) {
  std::vector<Wait> waits;
  if (!state.finished() && state.status() == v1::TASK_STATUS_UNSPECIFIED) {
    const v1::TaskSubmission& s = state.submission();
    for (const v1::StepState& step : state.steps()) {
      Wait w;
      if (step.rate_wait()) {
        bool window = absl::StartsWith(step.rate_key(), "window:");
        w.kind = window ? "window" : "quota";
        w.queue = window ? step.rate_key().substr(7) : step.rate_key().empty() ? "(not yet queued)" : step.rate_key();
      } else if (step.tenant_wait()) {
        w.kind = "tenant budget";
        w.queue = s.tenant();
      } else {
        continue;
      }
      w.tenant = s.tenant();
      w.interactive = s.priority() == v1::PRIORITY_INTERACTIVE;
      w.accepted = FromProtoTime(state.accepted_at()).value_or(absl::UnixEpoch());
      waits.push_back(std::move(w));
    }
  }
  if (waits.empty()) {
    waits_.erase(task_id);
  } else {
    waits_[task_id] = std::move(waits);
  }
}

void CoordinatorWaits::Remove(const std::string& task_id) { waits_.erase(task_id); }

std::vector<WaitingQueue> CoordinatorWaits::Queues() const {
  std::map<std::pair<std::string, std::string>, WaitingQueue> queues;
  std::map<std::pair<std::string, std::string>, absl::flat_hash_set<std::string>> tenants;
  for (const auto& [task_id, waits] : waits_) {
    for (const Wait& w : waits) {
      WaitingQueue& q = queues[{w.kind, w.queue}];
      q.kind = w.kind;
      q.queue = w.queue;
      ++q.attempts;
      q.interactive += w.interactive ? 1 : 0;
      if (!q.oldest_accepted || w.accepted < *q.oldest_accepted) q.oldest_accepted = w.accepted;
      tenants[{w.kind, w.queue}].insert(w.tenant);
    }
  }
  std::vector<WaitingQueue> out;
  for (auto& [key, q] : queues) {
    q.tenants = static_cast<int64_t>(tenants[key].size());
    out.push_back(std::move(q));
  }
  std::stable_sort(out.begin(), out.end(), [](const WaitingQueue& a, const WaitingQueue& b) {
    return a.kind != b.kind ? a.kind < b.kind : a.attempts > b.attempts;
  });
  return out;
}

// ---- dead letters -------------------------------------------------------------------

namespace {

template <typename T>
void DecodeAs(const Message& m, DeadLetter* d) {
  absl::StatusOr<T> decoded = Decode<T>(m.payload, m.headers, std::max<size_t>(m.payload.size(), 1));
  if (!decoded.ok()) {
    d->decode_error = std::string(decoded.status().message());
    return;
  }
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(*decoded, &d->decoded, print).ok()) d->decoded.clear();
}

}  // namespace

DeadLetter ParseDeadLetter(const FleetConfig& config, const Message& m) {
  DeadLetter d;
  d.partition = m.partition;
  d.offset = m.offset;
  d.at = absl::FromUnixMillis(m.timestamp_ms);
  d.key = m.key;
  d.reason = FindHeader(m.headers, kDlqReasonHeader).value_or("");
  d.component = FindHeader(m.headers, kDlqComponentHeader).value_or("");
  d.origin_topic = FindHeader(m.headers, kDlqTopicHeader).value_or("");
  int32_t p;
  int64_t o;
  if (absl::SimpleAtoi(FindHeader(m.headers, kDlqPartitionHeader).value_or(""), &p)) d.origin_partition = p;
  if (absl::SimpleAtoi(FindHeader(m.headers, kDlqOffsetHeader).value_or(""), &o)) d.origin_offset = o;
  d.payload_bytes = m.payload.size();
  d.truncated = FindHeader(m.headers, kDlqOriginalBytesHeader).has_value();
  if (!d.truncated) {
    Topics t(config.kafka.topic_prefix);
    if (d.origin_topic == t.tasks) DecodeAs<v1::TaskSubmission>(m, &d);
    else if (d.origin_topic == t.results) DecodeAs<v1::TaskResult>(m, &d);
    else if (d.origin_topic == t.events) DecodeAs<v1::WorkEvent>(m, &d);
    else if (d.origin_topic == t.signals) DecodeAs<v1::TaskSignal>(m, &d);
    else if (absl::StartsWith(d.origin_topic, t.work_prefix)) DecodeAs<v1::WorkItem>(m, &d);
  }
  if (d.decoded.size() > kKeptDecodedBytes) d.decoded = RedactForDisplay(d.decoded, kKeptDecodedBytes);
  d.message = m;
  if (m.payload.size() > kKeptPayloadBytes) {
    d.message.payload.clear();
    d.payload_kept = false;
  }
  return d;
}

bool Matches(const DeadLetterFilter& f, const DeadLetter& d) {
  if (!f.include_handled && !d.disposition.empty()) return false;
  if (!f.component.empty() && d.component != f.component) return false;
  if (!f.reason.empty() && !absl::StrContains(absl::AsciiStrToLower(d.reason), absl::AsciiStrToLower(f.reason))) {
    return false;
  }
  return true;
}

absl::StatusOr<OutboundMessage> ReplayMessage(const DeadLetter& d) {
  if (d.truncated) {
    return absl::FailedPreconditionError(
        "the dead letter is a truncated copy (the original was larger than kafka.max_message_bytes); its bytes "
        "cannot be replayed");
  }
  if (d.origin_topic.empty()) {
    return absl::FailedPreconditionError("the dead letter names no origin topic (no agentfleet.dlq.topic header)");
  }
  if (!d.payload_kept) return absl::InternalError("the dead letter's payload was not kept; read it again");
  OutboundMessage out;
  out.topic = d.origin_topic;
  out.key = d.message.key;
  out.payload = d.message.payload;
  for (const auto& [name, value] : d.message.headers) {
    if (!absl::StartsWith(name, "agentfleet.dlq.")) out.headers.emplace_back(name, value);
  }
  out.headers.emplace_back(kDlqReplayedFromHeader, absl::StrCat(d.partition, ":", d.offset));
  return out;
}

std::string DeadLetterActionJson(const DeadLetterAction& a) {
  return Json{{"action", a.action}, {"partition", a.partition}, {"offset", a.offset},
              {"by", a.by},         {"from", a.from},           {"at", TimeText(a.at)},
              {"origin_topic", a.origin_topic}, {"note", a.note}}
      .dump();
}

absl::StatusOr<DeadLetterAction> ParseDeadLetterAction(const std::string& text) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("action") || !j["action"].is_string() || !j.contains("partition") ||
      !j["partition"].is_number_integer() || !j.contains("offset") || !j["offset"].is_number_integer()) {
    return absl::InvalidArgumentError("not a dead-letter action (JSON with action, partition, offset)");
  }
  DeadLetterAction a;
  a.action = j["action"].get<std::string>();
  a.partition = j["partition"].get<int32_t>();
  a.offset = j["offset"].get<int64_t>();
  a.by = j.value("by", "");
  a.from = j.value("from", "");
  a.origin_topic = j.value("origin_topic", "");
  a.note = j.value("note", "");
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, j.value("at", ""), &a.at, &err)) a.at = absl::UnixEpoch();
  return a;
}

// ---- rendering -------------------------------------------------------------------------

std::string RedactForDisplay(const std::string& text, size_t max_chars) {
  std::string out = RedactPii(text);
  // Secret-shaped tokens (API keys), found word by word.
  std::string redacted;
  size_t start = 0;
  auto boundary = [](char c) { return c == ' ' || c == '"' || c == '\n' || c == ',' || c == ':' || c == '\''; };
  for (size_t i = 0; i <= out.size(); ++i) {
    if (i == out.size() || boundary(out[i])) {
      std::string word = out.substr(start, i - start);
      std::string shape = word.size() >= 16 ? SecretShape(word) : "";
      redacted += shape.empty() ? word : absl::StrCat("[", shape, " redacted]");
      if (i < out.size()) redacted.push_back(out[i]);
      start = i + 1;
    }
  }
  if (redacted.size() > max_chars) {
    size_t cut = max_chars;
    while (cut > 0 && (static_cast<unsigned char>(redacted[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
    redacted = absl::StrCat(redacted.substr(0, cut), "… (", redacted.size() - cut, " more bytes)");
  }
  return redacted;
}

std::vector<WaterfallBar> Waterfall(const TaskTrace& trace, absl::Time now) {
  std::vector<WaterfallBar> bars;
  // From the coordinator's acceptance: the wait before it (a backlog, a
  // coordinator starting) is a fact of its own on the page, and would
  // otherwise squeeze every attempt into the right edge.
  std::optional<absl::Time> origin = trace.accepted ? trace.accepted : trace.submitted;
  for (const AttemptTrace& a : trace.attempts) {
    if (a.dispatched && (!origin || *a.dispatched < *origin)) origin = a.dispatched;
  }
  if (!origin) return bars;
  absl::Time end_of_task = trace.finished.value_or(now);
  for (const AttemptTrace& a : trace.attempts) {
    if (!a.dispatched) continue;
    WaterfallBar bar;
    bar.attempt = &a;
    bar.start_ms = absl::ToDoubleMilliseconds(*a.dispatched - *origin);
    absl::Time end = a.finished.value_or(a.outcome == "running" ? now : end_of_task);
    absl::Time started = a.started.value_or(a.finished ? *a.finished : end);
    bar.wait_ms = std::max(0.0, absl::ToDoubleMilliseconds(started - *a.dispatched));
    bar.run_ms = std::max(0.0, absl::ToDoubleMilliseconds(end - started));
    bars.push_back(bar);
  }
  return bars;
}

std::string HtmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

namespace {

constexpr char kStyle[] = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24;background:#fff}
header{background:#1b1f24;color:#fff;padding:.5rem 1rem;display:flex;gap:1.5rem;align-items:center}
header a{color:#fff;text-decoration:none}header a[aria-current]{text-decoration:underline}
main{padding:1rem}h1{font-size:1.3rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin-top:1.5rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
form.filter{display:flex;flex-wrap:wrap;gap:.5rem;margin-bottom:1rem;align-items:end}
form.filter label{display:flex;flex-direction:column;font-size:.85rem}
.status-COMPLETED,.outcome-ok{color:#1a7f37}.status-FAILED,.status-REJECTED,.status-BUDGET_EXHAUSTED,.outcome-error{color:#cf222e}
.status-RUNNING{color:#0969da}.error{color:#cf222e}.notice{background:#ddf4ff;padding:.5rem}
.wf{position:relative;height:1.1rem;background:#f6f8fa;min-width:300px}
.wf span{position:absolute;top:0;bottom:0}.wf .wait{background:#d0d7de}.wf .run{background:#2da44e}
.wf .run.error{background:#cf222e}.wf .run.running{background:#0969da}.wf .run.signal{background:#bf8700}
pre{background:#f6f8fa;padding:.5rem;overflow:auto;max-height:20rem;white-space:pre-wrap;word-break:break-all}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dl.facts dt{font-weight:600}
button{cursor:pointer}
)";

std::string Layout(const std::string& title, const std::string& current, const std::string& body,
                   const std::string& head_extra = "") {
  auto nav = [&](const std::string& href, const std::string& name) {
    return absl::StrCat("<a href=\"", href, "\"", current == href ? " aria-current=\"page\"" : "", ">", name, "</a>");
  };
  return absl::StrCat("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
                      "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">", head_extra,
                      "<title>", HtmlEscape(title), " · agentfleet</title><style>", kStyle,
                      "</style></head><body><header><strong>agentfleet</strong><nav aria-label=\"sections\">",
                      nav("/tasks", "Tasks"), " ", nav("/dlq", "Dead letters"), " ", nav("/costs", "Costs"), " ",
                      nav("/fleet", "Fleet"), "</nav></header><main>", body,
                      "</main></body></html>\n");
}

std::string Input(const std::string& name, const std::string& label, const std::map<std::string, std::string>& form,
                  const std::string& placeholder = "") {
  return absl::StrCat("<label>", label, " <input name=\"", name, "\" value=\"", HtmlEscape(Param(form, name)),
                      "\" placeholder=\"", HtmlEscape(placeholder), "\"></label>");
}

std::string Money(double usd) { return absl::StrFormat("$%.6f", usd); }

// A table's start: `attributes` on <table>, a header row of `columns`
// ("Name", or "Name|25%" for a column that width of the table).
std::string TableHead(const std::vector<std::string>& columns, const std::string& attributes = "") {
  std::string out = absl::StrCat("<table", attributes, "><thead><tr>");
  for (const std::string& column : columns) {
    size_t bar = column.find('|');
    absl::StrAppend(&out, "<th scope=\"col\"",
                    bar == std::string::npos ? "" : absl::StrCat(" style=\"width:", column.substr(bar + 1), "\""), ">",
                    HtmlEscape(column.substr(0, bar)), "</th>");
  }
  absl::StrAppend(&out, "</tr></thead><tbody>");
  return out;
}

// A section's error in place of its table.
std::string ErrorParagraph(const std::string& message, bool alert = false) {
  return absl::StrCat("<p class=\"error\"", alert ? " role=\"alert\"" : "", ">", HtmlEscape(message), "</p>");
}

std::string TaskLink(const std::string& id) {
  return absl::StrCat("<a href=\"/tasks/", UrlEscape(id), "\">", HtmlEscape(id), "</a>");
}

}  // namespace

std::string TasksPage(const std::vector<TaskSummary>& tasks, const std::map<std::string, std::string>& form,
                      size_t indexed, int64_t unreadable, const std::string& error) {
  std::string body = "<h1>Tasks</h1><form class=\"filter\" method=\"get\" action=\"/tasks\" role=\"search\">";
  absl::StrAppend(&body, Input("id", "Task id (prefix)", form), Input("tenant", "Tenant", form),
                  Input("workflow", "Workflow", form));
  absl::StrAppend(&body, "<label>Status <select name=\"status\"><option value=\"\">any</option>");
  for (const std::string& s : StatusNames()) {
    absl::StrAppend(&body, "<option", absl::AsciiStrToUpper(Param(form, "status")) == s ? " selected" : "", ">", s,
                    "</option>");
  }
  absl::StrAppend(&body, "</select></label>", Input("since", "Since", form, "2h or 2026-12-01T10:00:00Z"),
                  Input("until", "Until", form), "<button type=\"submit\">Search</button></form>");
  if (!error.empty()) absl::StrAppend(&body, ErrorParagraph(error, true));
  absl::StrAppend(&body, "<p>", tasks.size(), " shown of ", indexed, " tasks indexed",
                  unreadable > 0 ? absl::StrCat("; ", unreadable, " records on the topics did not decode (see Dead letters)")
                                 : "",
                  ".</p>",
                  TableHead({"Task", "Status", "Tenant", "Workflow", "Submitted", "Finished", "Steps", "Tokens", "Cost"}));
  for (const TaskSummary& t : tasks) {
    absl::StrAppend(&body, "<tr><td>", TaskLink(t.task_id), "</td><td class=\"status-", t.status, "\">", t.status,
                    t.error.empty() ? "" : absl::StrCat("<br><small>", HtmlEscape(t.error), "</small>"), "</td><td>",
                    HtmlEscape(t.tenant), "</td><td>", HtmlEscape(t.workflow), "</td><td>", TimeText(t.submitted),
                    "</td><td>", TimeText(t.finished), "</td><td class=\"num\">", t.steps, "</td><td class=\"num\">",
                    t.tokens, "</td><td class=\"num\">", Money(t.cost_usd), "</td></tr>");
  }
  absl::StrAppend(&body, "</tbody></table>");
  return Layout("Tasks", "/tasks", body);
}

std::string TaskPage(const TaskTrace& t, const std::string& input_json, const std::vector<v1::TaskSignal>& signals,
                     absl::Time now, const std::string& trace_url) {
  std::string status = t.result ? TaskStatusName(t.result->status()) : "RUNNING";
  std::string body = absl::StrCat("<h1>Task ", HtmlEscape(t.task_id), " <span class=\"status-", status, "\">", status,
                                  "</span></h1>");
  if (!t.found) {
    absl::StrAppend(&body, "<p class=\"error\" role=\"alert\">Nothing about this task is on the fleet's topics.</p>");
    return Layout(t.task_id, "/tasks", body);
  }
  std::string trace_id = HtmlEscape(t.trace_id);
  if (!trace_url.empty() && !t.trace_id.empty()) {
    std::string url = trace_url;
    size_t at = url.find("{trace_id}");
    if (at != std::string::npos) url.replace(at, 10, UrlEscape(t.trace_id));
    trace_id = absl::StrCat("<a href=\"", HtmlEscape(url), "\">", trace_id, "</a>");
  }
  absl::StrAppend(&body, "<dl class=\"facts\"><dt>Tenant</dt><dd>", HtmlEscape(t.tenant),
                  "</dd><dt>Workflow</dt><dd>", HtmlEscape(t.workflow), "</dd><dt>Trace id</dt><dd>", trace_id,
                  "</dd><dt>Submitted</dt><dd>", TimeText(t.submitted), "</dd><dt>Accepted</dt><dd>",
                  TimeText(t.accepted),
                  t.submitted && t.accepted
                      ? absl::StrFormat(" (queued %.0f ms)", absl::ToDoubleMilliseconds(*t.accepted - *t.submitted))
                      : "",
                  "</dd><dt>Finished</dt><dd>", TimeText(t.finished), "</dd>");
  if (t.result) {
    const v1::Usage& u = t.result->usage();
    absl::StrAppend(&body, "<dt>Usage</dt><dd>", u.input_tokens(), " in / ", u.output_tokens(), " out tokens, ",
                    u.calls(), " calls, ", Money(u.cost_usd()), "</dd>");
    if (t.result->has_error()) {
      absl::StrAppend(&body, "<dt>Error</dt><dd class=\"error\">", HtmlEscape(t.result->error().code()), ": ",
                      HtmlEscape(t.result->error().message()), "</dd>");
    }
    if (auto it = t.result->labels().find("forked_from"); it != t.result->labels().end()) {
      absl::StrAppend(&body, "<dt>Forked from</dt><dd>", TaskLink(it->second), "</dd>");
    }
  }
  absl::StrAppend(&body, "</dl>");

  // The waterfall: one row per attempt, its queue wait then its run.
  std::vector<WaterfallBar> bars = Waterfall(t, now);
  double span = 1;
  for (const WaterfallBar& b : bars) span = std::max(span, b.start_ms + b.wait_ms + b.run_ms);
  absl::StrAppend(&body, "<h2>Timeline</h2>",
                  TableHead({"Step", "Attempt", "Agent", "Model", "Worker", "Wait", "Run", "Tokens", "Cost", "Outcome",
                             absl::StrFormat("from acceptance: 0 – %.0f ms|35%%", span)},
                            " class=\"waterfall\" aria-label=\"attempts\""));
  for (const WaterfallBar& b : bars) {
    const AttemptTrace& a = *b.attempt;
    std::string step = a.fan_index >= 0 ? absl::StrCat(a.step, "[", a.fan_index, "]") : a.step;
    std::string agent = HtmlEscape(a.agent);
    if (!a.fallback_for.empty()) absl::StrAppend(&agent, " <small>(fallback for ", HtmlEscape(a.fallback_for), ")</small>");
    if (!a.answering.empty()) absl::StrAppend(&agent, " <small>(answering ", HtmlEscape(a.answering), ")</small>");
    if (a.embedding) absl::StrAppend(&agent, " <small>(cache embedding)</small>");
    std::string run_class = a.outcome == "ok"                        ? "run"
                            : a.outcome == "running"                 ? "run running"
                            : absl::StartsWith(a.outcome, "signal") ? "run signal"
                                                                     : "run error";
    std::string outcome_class = a.outcome == "ok" ? "outcome-ok" : a.outcome == "running" ? "" : "outcome-error";
    std::string label = absl::StrFormat("%s attempt %d: waited %.0f ms, ran %.0f ms, %s", step, a.attempt, b.wait_ms,
                                        b.run_ms, a.outcome);
    absl::StrAppend(
        &body, "<tr class=\"attempt\" data-step=\"", HtmlEscape(a.step), "\" data-attempt=\"", a.attempt,
        "\" data-agent=\"", HtmlEscape(a.agent), "\" data-outcome=\"", HtmlEscape(a.outcome), "\"><td>",
        HtmlEscape(step), "</td><td class=\"num\">", a.attempt, "</td><td>", agent, "</td><td>",
        HtmlEscape(a.model.empty() ? a.model_tier : a.model), "</td><td>", HtmlEscape(a.worker),
        "</td><td class=\"num\">", absl::StrFormat("%.0f ms", b.wait_ms), "</td><td class=\"num\">",
        absl::StrFormat("%.0f ms", b.run_ms), "</td><td class=\"num\">", a.usage.input_tokens(), "/",
        a.usage.output_tokens(), "</td><td class=\"num\">", Money(a.cost_usd), "</td><td class=\"", outcome_class,
        "\">", HtmlEscape(a.outcome),
        a.message.empty() ? "" : absl::StrCat("<br><small>", HtmlEscape(RedactForDisplay(a.message, 300)), "</small>"),
        "</td><td><div class=\"wf\" role=\"img\" aria-label=\"", HtmlEscape(label), "\" title=\"", HtmlEscape(label),
        "\"><span class=\"wait\" style=\"left:", absl::StrFormat("%.2f", 100 * b.start_ms / span), "%;width:",
        absl::StrFormat("%.2f", 100 * b.wait_ms / span), "%\"></span><span class=\"", run_class, "\" style=\"left:",
        absl::StrFormat("%.2f", 100 * (b.start_ms + b.wait_ms) / span), "%;width:",
        absl::StrFormat("%.2f", std::max(0.3, 100 * b.run_ms / span)), "%\"></span></div></td></tr>");
  }
  absl::StrAppend(&body, "</tbody></table>");

  if (t.result && t.result->steps_size() > 0) {
    absl::StrAppend(&body, "<h2>Steps</h2>",
                    TableHead({"Step", "Agent", "Model", "Status", "Attempts", "Tokens", "Cost", "Latency", "Notes"}));
    for (const v1::StepSummary& s : t.result->steps()) {
      std::vector<std::string> notes;
      if (s.cached()) notes.push_back(absl::StrFormat("cache hit (saved %s)", Money(s.saved_cost_usd())));
      if (s.reused()) notes.push_back("reused from the original");
      if (!s.explanation().empty()) notes.push_back(RedactForDisplay(s.explanation(), 300));
      for (const v1::AgentQuestion& q : s.questions()) notes.push_back("asked: " + RedactForDisplay(q.question(), 200));
      if (s.has_error()) notes.push_back(s.error().code() + ": " + RedactForDisplay(s.error().message(), 300));
      std::string step = s.fan_index() >= 0 ? absl::StrCat(s.step(), "[", s.fan_index(), "]") : s.step();
      std::string step_status = v1::StepStatus_Name(s.status());
      if (absl::StartsWith(step_status, "STEP_STATUS_")) step_status = step_status.substr(12);
      absl::StrAppend(&body, "<tr><td>", HtmlEscape(step), "</td><td>", HtmlEscape(s.agent()), "</td><td>",
                      HtmlEscape(s.model()), "</td><td>", step_status, "</td><td class=\"num\">", s.attempts(),
                      "</td><td class=\"num\">", s.usage().input_tokens(), "/", s.usage().output_tokens(),
                      "</td><td class=\"num\">", Money(s.usage().cost_usd()), "</td><td class=\"num\">",
                      s.latency_ms(), " ms</td><td>", HtmlEscape(absl::StrJoin(notes, "; ")), "</td></tr>");
    }
    absl::StrAppend(&body, "</tbody></table>");
  }
  if (t.result) {
    for (const v1::Rescope& r : t.result->rescopes()) {
      absl::StrAppend(&body, "<p>Re-planned at ", HtmlEscape(r.step()), " by ", HtmlEscape(r.planner()), ": ",
                      HtmlEscape(RedactForDisplay(r.reason(), 300)), "</p>");
    }
  }
  if (!signals.empty()) {
    absl::StrAppend(&body, "<h2>Signals</h2>", TableHead({"Sent", "Name", "Sender", "Payload or reason"}));
    for (const v1::TaskSignal& s : signals) {
      std::string payload;
      google::protobuf::util::JsonPrintOptions print;
      (void)google::protobuf::util::MessageToJsonString(s.payload(), &payload, print);
      std::string what = s.cancel() ? "cancel: " + s.reason() : payload;
      absl::StrAppend(&body, "<tr class=\"signal\"><td>", TimeText(FromProtoTime(s.sent_at())), "</td><td>",
                      HtmlEscape(s.cancel() ? "cancel" : s.name()), "</td><td>", HtmlEscape(s.sender()), "</td><td>",
                      HtmlEscape(RedactForDisplay(what, 500)), "</td></tr>");
    }
    absl::StrAppend(&body, "</tbody></table>");
  }
  absl::StrAppend(&body, "<h2>Input</h2><pre>", HtmlEscape(RedactForDisplay(input_json, 4000)), "</pre>");
  if (t.result) {
    std::string output;
    google::protobuf::util::JsonPrintOptions print;
    (void)google::protobuf::util::MessageToJsonString(t.result->output(), &output, print);
    absl::StrAppend(&body, "<h2>Output</h2><pre>", HtmlEscape(RedactForDisplay(output, 4000)), "</pre>");
  }
  for (const std::string& p : t.problems) {
    absl::StrAppend(&body, "<p class=\"error\">unreadable: ", HtmlEscape(p), "</p>");
  }
  // A running task's page follows it: the browser reloads it every 2 s.
  return Layout(t.task_id, "/tasks", body, t.result ? "" : "<meta http-equiv=\"refresh\" content=\"2\">");
}

std::string DeadLettersPage(const std::vector<DeadLetter>& letters, const std::map<std::string, std::string>& form,
                            bool writes_enabled, const std::string& notice) {
  std::string body = "<h1>Dead letters</h1><form class=\"filter\" method=\"get\" action=\"/dlq\" role=\"search\">";
  absl::StrAppend(&body, Input("reason", "Reason contains", form), Input("component", "Component", form),
                  "<label>Replayed and discarded too <input type=\"checkbox\" name=\"all\" value=\"1\"",
                  Param(form, "all").empty() ? "" : " checked", "></label><button type=\"submit\">Filter</button></form>");
  if (!notice.empty()) absl::StrAppend(&body, "<p class=\"notice\" role=\"status\">", HtmlEscape(notice), "</p>");
  if (!writes_enabled) {
    absl::StrAppend(&body, "<p>Read-only: start the console with <code>--enable_writes</code> to replay or discard.</p>");
  }
  absl::StrAppend(&body, "<p>", letters.size(), " shown.</p>",
                  TableHead({"Record", "Time", "Reason", "Component", "Origin", "Key", "Payload", "Action"}));
  for (const DeadLetter& d : letters) {
    std::string id = absl::StrCat(d.partition, "/", d.offset);
    std::string payload = absl::StrCat(d.payload_bytes, " bytes", d.truncated ? " (truncated copy)" : "");
    if (!d.decoded.empty()) {
      absl::StrAppend(&payload, "<details><summary>decoded</summary><pre>",
                      HtmlEscape(RedactForDisplay(d.decoded, 4000)), "</pre></details>");
    } else if (!d.decode_error.empty()) {
      absl::StrAppend(&payload, "<br><small>does not decode: ", HtmlEscape(d.decode_error), "</small>");
    }
    std::string action;
    if (!d.disposition.empty()) {
      action = absl::StrCat(d.disposition, " by ", HtmlEscape(d.disposition_by), "<br><small>",
                            TimeText(d.disposition_at), "</small>");
    } else if (writes_enabled) {
      for (const char* op : {"replay", "discard"}) {
        absl::StrAppend(&action, "<form method=\"post\" action=\"/dlq/", id, "/", op,
                        "\"><button type=\"submit\" aria-label=\"", op, " record ", id, "\">", op,
                        "</button></form>");
      }
    }
    absl::StrAppend(&body, "<tr class=\"dead-letter\" id=\"dlq-", d.partition, "-", d.offset, "\"><td>", id,
                    "</td><td>", TimeText(d.at), "</td><td>", HtmlEscape(d.reason), "</td><td>",
                    HtmlEscape(d.component), "</td><td>", HtmlEscape(d.origin_topic), " ", d.origin_partition, "/",
                    d.origin_offset, "</td><td>", HtmlEscape(d.key.substr(0, 200)), "</td><td>", payload,
                    "</td><td>", action, "</td></tr>");
  }
  absl::StrAppend(&body, "</tbody></table>");
  return Layout("Dead letters", "/dlq", body);
}

namespace {

std::string Percent(std::optional<double> v) {
  return v ? absl::StrFormat("%+.0f%%", 100 * *v) : "";
}

// A horizontal bar `fraction` of its cell wide, with its value as text for
// screen readers and for reading.
std::string Bar(double fraction, const std::string& text) {
  fraction = std::clamp(fraction, 0.0, 1.0);
  return absl::StrFormat(
      "<div class=\"wf\" role=\"img\" aria-label=\"%s\"><span class=\"run\" style=\"left:0;width:%.2f%%\"></span></div>",
      HtmlEscape(text), 100 * fraction);
}

}  // namespace

absl::StatusOr<CostReport> CostReportFromTasks(const std::vector<TaskSummary>& tasks, const CostQuery& query) {
  for (const std::string& d : query.by) {
    if (d != "tenant" && d != "workflow") {
      return absl::InvalidArgumentError(absl::StrCat(
          "by ", d, " needs the cost ledger: a task's result does not split its spend by agent and model"));
    }
  }
  CostReportBuilder builder;
  for (const TaskSummary& t : tasks) {
    if (!t.finished) continue;
    v1::CostEntry e;
    e.set_task_id(t.task_id);
    e.set_tenant(t.tenant);
    e.set_workflow(t.workflow);
    *e.mutable_finished_at() = ToTimestamp(*t.finished);
    e.mutable_usage()->set_cost_usd(t.cost_usd);
    e.mutable_usage()->set_input_tokens(t.input_tokens);
    e.mutable_usage()->set_output_tokens(t.output_tokens);
    e.mutable_usage()->set_calls(t.calls);
    builder.Add(e);
  }
  return builder.Build(query);
}

std::string CostsPage(const CostReport& report, const std::map<std::string, std::string>& form,
                      const std::string& error, const std::string& notice) {
  std::string body = "<h1>Costs</h1><form class=\"filter\" method=\"get\" action=\"/costs\">";
  absl::StrAppend(&body, Input("from", "From (day)", form, "2026-11-01"), Input("to", "To (day, included)", form),
                  Input("by", "By", form, "tenant,workflow,agent,model"), "<button type=\"submit\">Show</button></form>");
  if (!error.empty()) {
    absl::StrAppend(&body, ErrorParagraph(error, true));
    return Layout("Costs", "/costs", body);
  }
  if (!notice.empty()) absl::StrAppend(&body, "<p class=\"notice\">", HtmlEscape(notice), "</p>");
  const CostRow& t = report.total;
  absl::StrAppend(&body, "<dl class=\"facts\"><dt>Range</dt><dd>",
                  absl::FormatTime("%Y-%m-%d", report.query.from, absl::UTCTimeZone()), " to ",
                  absl::FormatTime("%Y-%m-%d", report.query.to - absl::Seconds(1), absl::UTCTimeZone()),
                  "</dd><dt>Spend</dt><dd>", Money(t.cost_usd), "</dd><dt>Tasks</dt><dd>", t.tasks,
                  "</dd><dt>Cost per task</dt><dd>", Money(t.cost_per_task()), "</dd><dt>Tokens</dt><dd>",
                  t.input_tokens, " in / ", t.output_tokens, " out</dd><dt>Saved</dt><dd>",
                  Money(t.cache_saved_usd), " by the cache, ", Money(t.batch_saved_usd), " by batches</dd></dl>");
  double most = 0;
  for (const CostRow& r : report.rows) most = std::max(most, r.cost_usd);
  std::string by = report.query.by.empty() ? "" : absl::StrJoin(report.query.by, ", ");
  std::vector<std::string> columns = {"Day"};
  if (!by.empty()) columns.push_back(by);
  columns.insert(columns.end(), {"Spend", "Tasks", "Per task", "Calls", "Change", "7-day average", "|25%"});
  absl::StrAppend(&body, TableHead(columns));
  for (const CostRow& r : report.rows) {
    std::string day = absl::FormatCivilTime(r.day);
    absl::StrAppend(&body, "<tr", r.anomaly ? " class=\"error\"" : "", "><td>", day, "</td>",
                    by.empty() ? "" : absl::StrCat("<td>", HtmlEscape(absl::StrJoin(r.key, ", ")), "</td>"),
                    "<td class=\"num\">", Money(r.cost_usd), "</td><td class=\"num\">", r.tasks,
                    "</td><td class=\"num\">", Money(r.cost_per_task()), "</td><td class=\"num\">", r.calls,
                    "</td><td class=\"num\">", Percent(r.change), r.anomaly ? " (over 2σ off)" : "",
                    "</td><td class=\"num\">", r.trailing_avg ? Money(*r.trailing_avg) : "", "</td><td>",
                    Bar(most > 0 ? r.cost_usd / most : 0, absl::StrCat(day, " ", Money(r.cost_usd))), "</td></tr>");
  }
  absl::StrAppend(&body, "</tbody></table>");
  return Layout("Costs", "/costs", body);
}

std::string FleetPage(const FleetView& f) {
  std::string body = "<h1>Fleet</h1><h2>Consumer-group lag</h2>";
  if (!f.lag_error.empty()) {
    absl::StrAppend(&body, ErrorParagraph(f.lag_error, true));
  } else {
    absl::StrAppend(&body, "<p>Replicas as KEDA's Kafka scaler would ask for them with lagThreshold ",
                    f.trigger.lag_threshold, " (", f.trigger.min_replicas, "–", f.trigger.max_replicas,
                    " replicas).</p>", TableHead({"Group", "Topic", "Lag", "Partitions (with lag)", "KEDA replicas"}));
    for (const GroupTopicLag& g : f.lags) {
      absl::StrAppend(&body, "<tr><td>", HtmlEscape(g.group), "</td><td>", HtmlEscape(g.lag.topic),
                      "</td><td class=\"num\">", g.keda.lag, "</td><td class=\"num\">", g.keda.partitions, " (",
                      g.keda.partitions_with_lag, ")</td><td class=\"num\">", g.keda.replicas, "</td></tr>");
    }
    absl::StrAppend(&body, "</tbody></table>");
  }
  absl::StrAppend(&body, "<h2>Members</h2>");
  if (!f.groups_error.empty()) {
    absl::StrAppend(&body, ErrorParagraph(f.groups_error));
  } else {
    absl::StrAppend(&body, TableHead({"Group", "State", "Member", "Host", "Partitions"}));
    for (const GroupDescription& g : f.groups) {
      if (g.members.empty()) {
        absl::StrAppend(&body, "<tr><td>", HtmlEscape(g.group), "</td><td>", HtmlEscape(g.state), "</td><td colspan=\"3\">",
                        g.error.empty() ? "no members" : HtmlEscape(g.error), "</td></tr>");
      }
      for (const GroupMember& m : g.members) {
        // "tasks 0,1,2 · events 0,1,2": partitions by topic.
        std::map<std::string, std::vector<int32_t>> by_topic;
        for (const TopicPartition& tp : m.assignment) by_topic[tp.topic].push_back(tp.partition);
        std::vector<std::string> parts;
        for (const auto& [topic, ps] : by_topic) parts.push_back(absl::StrCat(HtmlEscape(topic), " ", absl::StrJoin(ps, ",")));
        absl::StrAppend(&body, "<tr class=\"member\"><td>", HtmlEscape(g.group), "</td><td>", HtmlEscape(g.state),
                        "</td><td>", HtmlEscape(m.client_id), "</td><td>", HtmlEscape(m.host), "</td><td>",
                        absl::StrJoin(parts, " · "), "</td></tr>");
      }
    }
    absl::StrAppend(&body, "</tbody></table>");
  }
  absl::StrAppend(&body, "<h2>Circuit breakers</h2>");
  if (!f.breakers_error.empty()) {
    absl::StrAppend(&body, ErrorParagraph(f.breakers_error));
  } else if (f.breakers.empty()) {
    absl::StrAppend(&body, "<p>No breaker has changed state: all closed.</p>");
  } else {
    absl::StrAppend(&body, TableHead({"Breaker", "State", "Since", "Decided by", "Why"}));
    for (const v1::BreakerState& b : f.breakers) {
      std::string state = BreakerStatusName(b.status());
      absl::StrAppend(&body, "<tr class=\"breaker\"><td>", HtmlEscape(b.name()), "</td><td",
                      state == "OPEN" ? " class=\"error\"" : "", ">", state, "</td><td>",
                      TimeText(FromProtoTime(b.since())), "</td><td>", HtmlEscape(b.replica()), "</td><td>",
                      HtmlEscape(RedactForDisplay(b.reason(), 300)), "</td></tr>");
    }
    absl::StrAppend(&body, "</tbody></table>");
  }
  absl::StrAppend(&body, "<h2>Waiting in the coordinators</h2>");
  if (f.queues.empty()) {
    absl::StrAppend(&body, "<p>No attempt waits for a quota, an agent's max_in_flight or a tenant's budget.</p>");
  } else {
    absl::StrAppend(&body, "<p>Attempts the coordinators hold back (not on the work topics, so not in the lag), "
                           "from the running tasks' state.</p>",
                    TableHead({"Waiting for", "Queue", "Attempts", "Interactive", "Batch", "Tenants",
                               "Oldest task accepted"}));
    for (const WaitingQueue& q : f.queues) {
      absl::StrAppend(&body, "<tr class=\"queue\"><td>",
                      q.kind == "quota" ? "model quota" : q.kind == "window" ? "agent max_in_flight" : q.kind,
                      "</td><td>", HtmlEscape(q.queue), "</td><td class=\"num\">", q.attempts,
                      "</td><td class=\"num\">", q.interactive, "</td><td class=\"num\">",
                      q.attempts - q.interactive, "</td><td class=\"num\">", q.tenants, "</td><td>",
                      TimeText(q.oldest_accepted), "</td></tr>");
    }
    absl::StrAppend(&body, "</tbody></table>");
  }
  absl::StrAppend(&body, "<h2>Worker pools</h2>");
  if (!f.capacity_error.empty()) {
    absl::StrAppend(&body, ErrorParagraph(f.capacity_error));
  } else {
    absl::StrAppend(&body, TableHead({"Pool", "Pending call time", "Useful replicas", "KEDA replicas", "Agents (limited by)"}));
    for (const PoolCapacity& p : f.pools) {
      std::vector<std::string> agents;
      for (const CapacityEstimate::Agent& a : p.estimate.agents) {
        agents.push_back(absl::StrCat(HtmlEscape(a.agent), " (",
                                      std::string(a.limited_by) == "breaker" ? "<strong class=\"error\">breaker open</strong>"
                                                                             : a.limited_by,
                                      ")"));
      }
      absl::StrAppend(&body, "<tr><td>", HtmlEscape(p.pool), "</td><td class=\"num\">",
                      absl::StrFormat("%.1f s", p.estimate.pending_call_seconds), "</td><td class=\"num\">",
                      p.replicas, "</td><td class=\"num\">", p.keda_replicas, "</td><td>",
                      absl::StrJoin(agents, ", "), "</td></tr>");
    }
    absl::StrAppend(&body, "</tbody></table>");
  }
  absl::StrAppend(&body, "<h2>Tenants' budgets this period</h2>");
  if (!f.tenants_error.empty()) {
    absl::StrAppend(&body, ErrorParagraph(f.tenants_error));
  } else {
    absl::StrAppend(&body, TableHead({"Tenant", "Period", "Spent", "Limit", "Tokens", "When spent", "Used|25%"}));
    for (const TenantSpending& t : f.tenants) {
      double used = t.max_cost_usd > 0 ? t.cost_usd / t.max_cost_usd : 0;
      absl::StrAppend(&body, "<tr><td>", HtmlEscape(t.tenant), "</td><td>", HtmlEscape(t.period),
                      "</td><td class=\"num\">", Money(t.cost_usd), "</td><td class=\"num\">",
                      t.max_cost_usd > 0 ? Money(t.max_cost_usd) : "none", "</td><td class=\"num\">", t.tokens,
                      t.max_tokens > 0 ? absl::StrCat(" of ", t.max_tokens) : "", "</td><td>",
                      HtmlEscape(t.on_exhausted), "</td><td>",
                      Bar(used, absl::StrFormat("%s: %.0f%% of its limit", t.tenant, 100 * used)), "</td></tr>");
    }
    if (f.tenants.empty()) {
      absl::StrAppend(&body, "<tr><td colspan=\"7\">No tenant has a limit (tenants: in the fleet config).</td></tr>");
    }
    absl::StrAppend(&body, "</tbody></table>");
  }
  return Layout("Fleet", "/fleet", body);
}

std::string FleetJson(const FleetView& f) {
  Json j = {{"lag_error", f.lag_error},
            {"capacity_error", f.capacity_error},
            {"tenants_error", f.tenants_error},
            {"groups_error", f.groups_error}};
  Json groups = Json::array();
  for (const GroupDescription& g : f.groups) {
    Json members = Json::array();
    for (const GroupMember& m : g.members) {
      Json parts = Json::array();
      for (const TopicPartition& tp : m.assignment) parts.push_back({{"topic", tp.topic}, {"partition", tp.partition}});
      members.push_back({{"client_id", m.client_id}, {"member_id", m.consumer_id}, {"host", m.host}, {"assignment", parts}});
    }
    groups.push_back({{"group", g.group}, {"state", g.state}, {"error", g.error}, {"members", members}});
  }
  j["groups"] = std::move(groups);
  j["breakers_error"] = f.breakers_error;
  Json breakers = Json::array();
  for (const v1::BreakerState& b : f.breakers) {
    breakers.push_back({{"name", b.name()},
                        {"state", BreakerStatusName(b.status())},
                        {"since", TimeJson(FromProtoTime(b.since()))},
                        {"replica", b.replica()},
                        {"reason", b.reason()}});
  }
  j["breakers"] = std::move(breakers);
  Json queues = Json::array();
  for (const WaitingQueue& q : f.queues) {
    queues.push_back({{"kind", q.kind},
                      {"queue", q.queue},
                      {"attempts", q.attempts},
                      {"interactive", q.interactive},
                      {"batch", q.attempts - q.interactive},
                      {"tenants", q.tenants},
                      {"oldest_accepted", TimeJson(q.oldest_accepted)}});
  }
  j["queues"] = std::move(queues);
  Json lag = Json::parse(LagJson(f.lags, f.trigger, f.pools), nullptr, false);
  j["trigger"] = lag["trigger"];
  j["lag"] = lag["lag"];
  j["pools"] = lag.contains("pools") ? lag["pools"] : Json::array();
  j["tenants"] = Json::parse(TenantsJson(f.tenants), nullptr, false);
  return j.dump();
}

std::string TasksJson(const std::vector<TaskSummary>& tasks) {
  Json out = Json::array();
  for (const TaskSummary& t : tasks) {
    out.push_back({{"task_id", t.task_id},  {"tenant", t.tenant},     {"workflow", t.workflow},
                   {"status", t.status},    {"submitted", TimeJson(t.submitted)},
                   {"finished", TimeJson(t.finished)}, {"cost_usd", t.cost_usd}, {"tokens", t.tokens},
                   {"steps", t.steps},      {"error", t.error}});
  }
  return Json{{"tasks", out}}.dump();
}

std::string DeadLettersJson(const std::vector<DeadLetter>& letters) {
  Json out = Json::array();
  for (const DeadLetter& d : letters) {
    Json j = {{"partition", d.partition},
              {"offset", d.offset},
              {"at", TimeText(d.at)},
              {"key", d.key.substr(0, 200)},
              {"reason", d.reason},
              {"component", d.component},
              {"origin", {{"topic", d.origin_topic}, {"partition", d.origin_partition}, {"offset", d.origin_offset}}},
              {"payload_bytes", d.payload_bytes},
              {"truncated", d.truncated},
              {"decode_error", d.decode_error},
              {"disposition", d.disposition},
              {"disposition_by", d.disposition_by},
              {"disposition_at", TimeJson(d.disposition_at)}};
    if (!d.decoded.empty()) j["decoded"] = RedactForDisplay(d.decoded, 16000);
    out.push_back(std::move(j));
  }
  return Json{{"dead_letters", out}}.dump();
}

absl::StatusOr<std::string> ReadConsoleToken(const std::string& token_file) {
  if (token_file.empty()) {
    const char* env = std::getenv("AGENTFLEET_CONSOLE_TOKEN");
    return std::string(absl::StripAsciiWhitespace(env == nullptr ? "" : env));
  }
  std::ifstream in(token_file);
  std::stringstream text;
  if (!in || !(text << in.rdbuf())) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read --token_file ", token_file));
  }
  std::string token(absl::StripAsciiWhitespace(text.str()));
  if (token.empty()) return absl::InvalidArgumentError(absl::StrCat("--token_file ", token_file, " is empty"));
  return token;
}

bool IsLoopbackAddress(const std::string& address) {
  size_t colon = address.rfind(':');
  std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

}  // namespace agentfleet
