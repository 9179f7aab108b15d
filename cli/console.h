// `agentfleet console`: a web console for operators (issue 22). A separate
// process that reads the fleet's topics without joining any consumer group
// (it assigns partitions to itself and commits nothing) and serves
// server-rendered HTML pages plus the JSON API they are built from:
//  - /tasks: the tasks it has seen (submissions and results), searched by
//    id, tenant, workflow, status and time; /tasks/ID: one task's step
//    timeline as a waterfall (cli/trace.h), refreshed while it runs;
//  - /dlq: the dead-letter queue with reason and origin; a record can be
//    replayed to the topic it came from or discarded, when writes are on,
//    and every such action is recorded on the dlq.actions topic.
// Access: loopback by default; a bearer token (Authorization header, or the
// cookie /login sets) when one is given; read-only unless --enable_writes.
//
// The pieces below the server are pure and tested without Kafka or HTTP.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agentfleet/v1/state.pb.h"
#include "agentfleet/v1/task.pb.h"
#include "audit/audit.h"
#include "cli/lag.h"
#include "cli/trace.h"
#include "cost/report.h"
#include "config/config.h"
#include "kafka/kafka.h"

namespace agentfleet {

// ---- the task index ---------------------------------------------------------

struct TaskSummary {
  std::string task_id, tenant, workflow;
  std::string status = "RUNNING";  // the result's status, RUNNING until there is one
  std::optional<absl::Time> submitted, finished;
  double cost_usd = 0;
  int64_t tokens = 0;
  int64_t input_tokens = 0, output_tokens = 0, calls = 0;
  int steps = 0;
  std::string error;  // the result's error code and message
};

struct TaskFilter {
  std::string id;  // a prefix of the task id
  std::string tenant, workflow, status;
  std::optional<absl::Time> since, until;  // submitted (or finished, without a submission) in [since, until]
};

// The newest `capacity` tasks seen on the tasks and results topics, by task
// id. Not thread-safe.
class TaskIndex {
 public:
  explicit TaskIndex(size_t capacity) : capacity_(capacity) {}
  void Add(const v1::TaskSubmission& submission);
  void Add(const v1::TaskResult& result);
  // Newest submitted first, at most `limit`.
  std::vector<TaskSummary> Search(const TaskFilter& filter, size_t limit) const;
  size_t size() const { return tasks_.size(); }
  int64_t evicted() const { return evicted_; }

 private:
  TaskSummary& Entry(const std::string& task_id);
  size_t capacity_;
  absl::flat_hash_map<std::string, TaskSummary> tasks_;
  std::deque<std::string> order_;  // first seen, oldest first
  int64_t evicted_ = 0;
};

// InvalidArgument naming the field for a bad status or time.
[[nodiscard]] absl::StatusOr<TaskFilter> ParseTaskFilter(const std::map<std::string, std::string>& form);

// ---- work held in the coordinators ----------------------------------------------

// One queue the coordinators hold attempts in, from the running tasks'
// durable state (the state topic's StepState wait flags): a model's quota
// (kind "quota", queue its rate_key), an agent's max_in_flight ("window",
// queue the agent), a tenant's budget ("tenant budget", queue the tenant).
struct WaitingQueue {
  std::string kind, queue;
  int64_t attempts = 0, interactive = 0;  // the rest are batch
  int64_t tenants = 0;
  std::optional<absl::Time> oldest_accepted;  // the earliest accepted task among the waiting
};

// Follows the state topic: each running task's waiting attempts, by task.
// Not thread-safe.
class CoordinatorWaits {
 public:
  // A task's latest state; a finished one (or one without waits) is dropped.
  void Update(const std::string& task_id, const v1::TaskState& state);
  void Remove(const std::string& task_id);  // its tombstone
  // Kind, then most attempts first.
  std::vector<WaitingQueue> Queues() const;
  size_t tasks() const { return waits_.size(); }

 private:
  struct Wait {
    std::string kind, queue, tenant;
    bool interactive = false;
    absl::Time accepted;
  };
  absl::flat_hash_map<std::string, std::vector<Wait>> waits_;
};

// ---- the dead-letter queue ----------------------------------------------------
// (its operations on Kafka, shared with `agentfleet dlq`: cli/dlq.h)

struct DeadLetter {
  int32_t partition = 0;
  int64_t offset = 0;
  absl::Time at;
  std::string key;
  std::string reason, component;
  std::string origin_topic;
  int32_t origin_partition = -1;
  int64_t origin_offset = -1;
  size_t payload_bytes = 0;
  bool truncated = false;  // the copy holds only the original's first bytes
  std::string decoded;     // the payload as JSON, when it decodes as what its topic carries
  std::string decode_error;
  bool payload_kept = true;  // message.payload holds the whole payload
  // The latest action on it, "", "replayed" or "discarded": filled in from
  // the dlq.actions records when shown.
  std::string disposition;
  std::string disposition_by;
  std::optional<absl::Time> disposition_at;
  Message message;  // as read
};

inline constexpr size_t kKeptPayloadBytes = 16 << 10;
inline constexpr size_t kKeptDecodedBytes = 8 << 10;

// What a dead letter holds, from its headers; `decoded` tried by its origin
// topic's message type and cut to kKeptDecodedBytes; the payload kept only
// up to kKeptPayloadBytes (`payload_kept`).
DeadLetter ParseDeadLetter(const FleetConfig& config, const Message& message);

struct DeadLetterFilter {
  std::string reason;     // a substring
  std::string component;  // exact
  bool include_handled = false;  // also the replayed and discarded
};
bool Matches(const DeadLetterFilter& filter, const DeadLetter& letter);

// The message a replay sends: the original key, payload and headers (the
// dead-letter headers removed, agentfleet.dlq.replayed_from added), to the
// origin topic. FailedPrecondition for a truncated copy (the original's
// bytes are gone) or one without an origin topic; Internal for a letter
// whose payload was not kept (read it again first).
[[nodiscard]] absl::StatusOr<OutboundMessage> ReplayMessage(const DeadLetter& letter);

inline constexpr char kDlqReplayedFromHeader[] = "agentfleet.dlq.replayed_from";

// An operator's action on a dead letter, kept on the dlq.actions topic
// (key "PARTITION:OFFSET" of the dead letter, value this as JSON).
struct DeadLetterAction {
  std::string action;  // "replayed" or "discarded"
  int32_t partition = 0;
  int64_t offset = 0;
  std::string by;  // who (the console's --operator, or the ingress's user header)
  std::string from;  // the client's address
  absl::Time at;
  std::string origin_topic;
  std::string note;
};
std::string DeadLetterActionJson(const DeadLetterAction& action);
[[nodiscard]] absl::StatusOr<DeadLetterAction> ParseDeadLetterAction(const std::string& json);

// ---- what is shown -----------------------------------------------------------------

// `text` cut to `max_chars` (noting how much was cut), with emails, phone
// and card numbers and secret-shaped tokens (API keys) redacted.
std::string RedactForDisplay(const std::string& text, size_t max_chars);

// One bar of the waterfall: an attempt's queue wait and run, as offsets
// from the task's start.
struct WaterfallBar {
  const AttemptTrace* attempt = nullptr;
  double start_ms = 0;  // dispatched
  double wait_ms = 0;   // dispatched -> started (or finished, without a start)
  double run_ms = 0;    // started -> finished (or now, running)
};
std::vector<WaterfallBar> Waterfall(const TaskTrace& trace, absl::Time now);

std::string HtmlEscape(const std::string& text);
// `indexed`: tasks in the index; `unreadable`: records read that did not decode.
std::string TasksPage(const std::vector<TaskSummary>& tasks, const std::map<std::string, std::string>& form,
                      size_t indexed, int64_t unreadable, const std::string& error);
// `input_json`: the submission's input; `signals`: those sent to the task
// (cancellations, answers, approvals); `trace_url`: a link for the trace
// id, "{trace_id}" replaced (empty: no link).
std::string TaskPage(const TaskTrace& trace, const std::string& input_json, const std::vector<v1::TaskSignal>& signals,
                     absl::Time now, const std::string& trace_url);
std::string DeadLettersPage(const std::vector<DeadLetter>& letters, const std::map<std::string, std::string>& form,
                            bool writes_enabled, const std::string& notice);
// Spend by day and by the report's dimensions (cost/report.h), from the
// cost ledger; `notice` says where else it came from.
std::string CostsPage(const CostReport& report, const std::map<std::string, std::string>& form,
                      const std::string& error, const std::string& notice = "");
// The report from the finished tasks' results (their tenant, workflow,
// finish time and usage), for when the cost ledger cannot be read. By
// tenant and workflow only: a result does not split its spend by agent and
// model (InvalidArgument).
[[nodiscard]] absl::StatusOr<CostReport> CostReportFromTasks(const std::vector<TaskSummary>& tasks,
                                                           const CostQuery& query);
// Each group's lag with the replicas KEDA would ask for, each pool's
// capacity signal (agents limited by lag, quota or an open breaker), and
// each tenant's spending this period against its limit. An empty `error`
// per section, or why it could not be read.
struct FleetView {
  std::vector<GroupTopicLag> lags;
  std::vector<PoolCapacity> pools;
  std::vector<TenantSpending> tenants;
  std::vector<GroupDescription> groups;  // the coordinators' and the pools' members and their partitions
  std::vector<v1::BreakerState> breakers;  // each breaker's latest state (the breakers topic)
  std::vector<WaitingQueue> queues;         // rate-limit and budget queues (the state topic)
  KedaTrigger trigger;
  std::string lag_error, capacity_error, tenants_error, groups_error, breakers_error;
};
std::string FleetPage(const FleetView& fleet);
std::string FleetJson(const FleetView& fleet);
std::string TasksJson(const std::vector<TaskSummary>& tasks);
std::string DeadLettersJson(const std::vector<DeadLetter>& letters);

// ---- the process -----------------------------------------------------------------

struct ConsoleOptions {
  std::string http_address = "127.0.0.1:8080";
  std::string token;  // required of every request but the probes, when set
  // Serve without a token on a non-loopback address (an authenticating
  // ingress in front); refused otherwise.
  bool allow_unauthenticated = false;
  bool enable_writes = false;
  std::string operator_name = "console";
  std::string trace_url;  // e.g. "https://jaeger.example/trace/{trace_id}"
  size_t max_tasks = 100000;
  // The newest dead letters kept (each with at most kKeptPayloadBytes of
  // its payload and kKeptDecodedBytes of its decoded form; a larger one is
  // read again from Kafka when replayed).
  size_t max_dead_letters = 2000;
  absl::Duration timeout = absl::Seconds(30);  // a page's reads from Kafka (the fleet's and costs' at most 15 s)
  RecordsLookup lookup;
  KedaTrigger keda;  // the fleet page's replica estimate (the chart's trigger settings)
};

// The bearer token: the content of `token_file` (surrounding whitespace
// removed) when given, else $AGENTFLEET_CONSOLE_TOKEN, else "" (none).
// InvalidArgument for a file that cannot be read or holds nothing.
[[nodiscard]] absl::StatusOr<std::string> ReadConsoleToken(const std::string& token_file);

// Whether `address` (HOST:PORT) listens on loopback only.
bool IsLoopbackAddress(const std::string& address);

// Runs the console until SIGINT or SIGTERM; the exit code.
int RunConsole(const FleetConfig& config, const ConsoleOptions& options);

}  // namespace agentfleet
