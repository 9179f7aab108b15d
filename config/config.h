// The fleet configuration: one YAML file with Kafka settings, providers,
// pricing, agents and workflows. LoadConfigFile() validates strictly — unknown
// keys, wrong types, unknown agents, bad references, cycles — and its errors
// read "FILE:LINE:COLUMN: FIELD: what is wrong". docs/configuration.md is the
// reference for every key.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "config/condition.h"
#include "config/expression.h"
#include "config/json_schema.h"
#include "config/prompt_template.h"
#include "nlohmann/json.hpp"
#include "safety/sanitize.h"

namespace agentfleet {

struct KafkaConfig {
  std::string topic_prefix = "agentfleet.";
  // Partitions of tasks, events, results, state and dlq (tasks/events/state
  // must be equal: they are co-partitioned by task_id).
  int partitions = 8;
  // Partitions of each work.<agent> topic.
  int work_partitions = 8;
  int replication_factor = 1;
  // Whether the coordinator creates missing topics at start (Admin API).
  bool create_topics = true;
  // The largest message (value, key and headers) any agentfleet process
  // produces. Set as every producer's message.max.bytes and, with room for
  // framing, as max.message.bytes of the topics the fleet creates. 1,000,000
  // is librdkafka's default and below Kafka's default broker limit
  // (1,048,588). What would be larger is never produced: a work item fails
  // its attempt, a result or state snapshot fails its task, and a dead letter
  // is truncated (docs/robustness.md, "Sizes").
  size_t max_message_bytes = 1000000;
  // How long the topics that make a task's history keep their records
  // (retention.ms of tasks, events, signals, work.<agent>, results and dlq):
  // how long `agentfleet trace` and `agentfleet replay` can read a task.
  absl::Duration retention = absl::Hours(24 * 30);
  // How long the audit topic keeps its records (retention.ms); `retention`
  // unless set.
  absl::Duration audit_retention = absl::Hours(24 * 30);
  // How long the cost ledger (the costs topic) keeps its entries: how far
  // back `agentfleet cost` can report.
  absl::Duration cost_retention = absl::Hours(24 * 400);
  // librdkafka properties for every client, then per role.
  std::map<std::string, std::string> properties;
  std::map<std::string, std::string> producer;
  std::map<std::string, std::string> consumer;
  // librdkafka properties whose values are secrets, read from environment
  // variables at start: property -> variable (sasl.password -> KAFKA_SASL_PASSWORD).
  // Secret properties given in `properties` are refused.
  std::map<std::string, std::string> properties_env;
};

// How long the simulated provider takes per call.
struct LatencyConfig {
  enum class Distribution { kFixed, kUniform, kExponential, kLogNormal };
  Distribution distribution = Distribution::kFixed;
  double mean_ms = 0;  // fixed, exponential
  double min_ms = 0;   // uniform
  double max_ms = 0;   // uniform
  double p50_ms = 0;   // lognormal
  double p99_ms = 0;   // lognormal
};

// A circuit breaker (coordinator/circuit_breaker.h), with resilience4j's
// settings and defaults.
struct BreakerConfig {
  enum class Window { kCount, kTime };
  Window window = Window::kCount;
  int window_calls = 100;                         // count window: the last N calls
  absl::Duration window_time = absl::Seconds(60);  // time window: the calls of the last T
  double failure_rate = 0.5;                       // opens at >= this share of failed calls
  double slow_call_rate = 1.0;                     // ... or at >= this share of slow calls
  absl::Duration slow_call_duration = absl::Seconds(60);
  int minimum_calls = 100;                         // no decision on fewer calls
  absl::Duration wait_in_open = absl::Seconds(60);
  int half_open_calls = 10;                        // probe calls in HALF_OPEN
  absl::Duration max_half_open_wait = absl::ZeroDuration();  // zero: wait for the probes forever
};

// A provider's quota for one model, for the whole fleet (zero: no limit of
// that kind). The coordinator replicas split it by the share of task
// partitions each owns.
struct RateLimit {
  double requests_per_minute = 0;
  double tokens_per_minute = 0;
};

struct ProviderConfig {
  enum class Type { kSimulated, kOpenAi, kAnthropic };
  std::string name;
  Type type = Type::kSimulated;
  // simulated:
  LatencyConfig latency;
  double failure_rate = 0;
  uint64_t seed = 1;
  // Agent signals, for development: the share of calls answered with a
  // needs_info question (inputs without `_info`) or a rescope (inputs
  // without `_rescope`) instead of an output, drawn from the input.
  double needs_info_rate = 0;
  double rescope_rate = 0;
  // openai (OpenAI-compatible chat completions) and anthropic (Messages API):
  std::string base_url;  // e.g. https://api.openai.com/v1, http://vllm:8000/v1
  // The API key comes from one of these, never from the YAML itself.
  std::string api_key_env;   // name of an environment variable
  std::string api_key_file;  // path of a mounted secret file
  std::map<std::string, std::string> headers;  // extra request headers
  absl::Duration connect_timeout = absl::Seconds(10);
  // Connections per host; 0: as many as there are calls in flight (HTTP/2
  // multiplexes them over few connections where the server speaks it).
  int max_connections = 0;
  // openai: how the agent's output schema is asked for: "json_schema"
  // (response_format json_schema), "json_object", or "none".
  std::string json_mode = "json_schema";
  std::string anthropic_version = "2023-06-01";
  // One breaker per model of this provider, when set.
  std::optional<BreakerConfig> breaker;
  // Model name -> quota.
  std::map<std::string, RateLimit> rate_limits;
  bool is_http() const { return type != Type::kSimulated; }
};

struct ModelPrice {
  double input_per_mtok = 0;   // USD per million input tokens
  double output_per_mtok = 0;  // USD per million output tokens
  // The share a provider batch takes off (OpenAI's Batch API and Anthropic's
  // Message Batches: half).
  double batch_discount = 0.5;
};

// `batch:` on an agent: the first attempt of its PRIORITY_BATCH work goes
// through the provider's batch API (OpenAI /v1/batches, Anthropic
// /v1/messages/batches) at the batch price, when the task's deadline leaves
// room for max_wait and the provider's 24-hour window; anything else, and
// every item a batch fails or lets expire, is called online.
struct BatchConfig {
  int max_items = 1000;                          // a batch is sent at this many items...
  absl::Duration max_wait = absl::Minutes(5);    // ...or when its first item has waited this long
  absl::Duration poll_interval = absl::Seconds(30);
};
// How long a provider may take for a batch (both providers' window).
inline constexpr absl::Duration kBatchWindow = absl::Hours(24);

// Exponential backoff with jitter between attempts.
struct RetryPolicy {
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(30);
  double multiplier = 2.0;
  double jitter = 0.2;  // +/- this share of the backoff, drawn uniformly
};

// Where an agent's work goes when the agent cannot serve it (its attempts
// ran out, or its circuit breaker is open): another agent, or another of its
// own model tiers. Exactly one is set.
struct FallbackConfig {
  std::string agent;
  std::string model_tier;
};

// An action (issue 19): an HTTP request to an external system with a side
// effect, built from a step's validated input. Actions run on workers like
// agents (work topic work.<name>), once per effect: every attempt of a step
// instance carries the same effect id as its Idempotency-Key.
struct ActionConfig {
  std::string method = "POST";  // POST, PUT, PATCH, DELETE
  // "https://host/path/{field}": {field} is the payload's top-level string or
  // number, percent-encoded. The scheme and host are literal.
  std::string url;
  std::string host;  // the url's host, always allowed
  std::map<std::string, std::string> headers;  // literal, no credentials
  // Header values with ${ENV} references, read by the worker at start;
  // those values never leave in a payload (the secrets scan looks for them).
  std::map<std::string, std::string> secret_headers;
  // The payload (the step's input) must validate against it.
  std::optional<JsonSchema> schema;
  // What the payload must pass (safety/sanitize.h); the worker adds the
  // secret headers' values to policy.secrets.
  SanitizePolicy policy;
  // An outcome that is unknown (sent, no answer: a timeout, a reset
  // connection, a worker that died): retry under the same effect id; ask
  // the status endpoint; or stop the task for a human (outcome_unknown).
  enum class OnUnknown { kRetry, kStatus, kStop };
  OnUnknown on_unknown = OnUnknown::kRetry;
  std::string status_url;  // with {effect_id}; GET; 2xx applied, 404 not applied
  size_t max_response_bytes = 1 << 20;
  // Keep the (sanitized, PII-redacted) payload in the audit log.
  bool record_payload = false;
};

// A read-only tool an agent's model may call during its call (issue 19): an
// HTTP request the worker makes with the arguments the model gives, whose
// answer goes back to the model. Tools must not change anything: what does
// is an action.
struct ToolConfig {
  std::string name;
  std::string description;
  nlohmann::json parameters;  // JSON Schema of the arguments, as written (sent to the model)
  std::optional<JsonSchema> parameters_schema;
  std::string method = "GET";  // GET (arguments fill the URL) or POST (arguments are the body)
  std::string url;             // with {argument} placeholders in the path and query
  std::string host;
  std::map<std::string, std::string> headers;
  std::map<std::string, std::string> secret_headers;  // ${ENV} references, as for actions
  absl::Duration timeout = absl::Seconds(10);
  size_t max_response_bytes = 64 * 1024;
};

// The provider name action agents carry (not a valid provider name).
inline constexpr char kActionProvider[] = "@actions";

// `semantic_cache:` on an agent: a call whose input means the same as an
// earlier one's is served that call's output. The coordinator asks a worker
// for the embedding of the compared text (the input's `field`, or the whole
// input as canonical JSON), through `provider` (OpenAI-compatible
// /embeddings, or the simulated provider) and `model`; a cached entry with
// cosine similarity >= `threshold` in the same scope serves the call. The
// scope: the agent, its model, its prompt-template version (prompts and
// output schema), the tenant (unless `shared`), and every input field but
// the compared one, which must be equal.
struct SemanticCacheConfig {
  std::string provider;
  std::string model;
  std::string field;  // a top-level input field holding text; empty: the whole input
  double threshold = 0.95;  // measured: docs/benchmarks.md, "Semantic cache"
  bool shared = false;
  absl::Duration ttl = absl::Hours(24);
  int max_entries = 10000;
  absl::Duration timeout = absl::Seconds(10);  // of the embedding request
};

struct AgentConfig {
  std::string name;
  std::string description;
  std::string provider;
  // Model name per tier; "default" is required.
  std::map<std::string, std::string> models;
  std::optional<JsonSchema> output_schema;
  // The schema as written, sent to providers that take one, and its size.
  nlohmann::json output_schema_json;
  size_t output_schema_bytes = 0;
  // Prompts for the HTTP providers, filled from the item's input. Without a
  // user prompt the input itself is sent, as JSON.
  std::optional<PromptTemplate> system_prompt;
  std::optional<PromptTemplate> prompt;
  std::optional<double> temperature;
  // Start-to-close: how long one attempt may run once a worker took it.
  absl::Duration timeout = absl::Seconds(60);
  // Schedule-to-start: how long an attempt may wait for a worker to take it
  // (no receipt); zero means no limit (a backlog is not a failure).
  absl::Duration schedule_to_start_timeout = absl::ZeroDuration();
  // How long a running attempt may go without a heartbeat (or receipt).
  absl::Duration heartbeat_timeout = absl::Seconds(30);
  int max_tokens = 1024;
  int max_attempts = 3;
  // The most attempts of this agent the fleet keeps out at once (sent to its
  // work topic and not ended), split between the coordinator replicas like a
  // quota; past it attempts wait in the coordinator's fair queue (0: no
  // window, the work topic is the queue).
  int max_in_flight = 0;
  RetryPolicy retry;
  std::optional<FallbackConfig> fallback;
  // A breaker for the agent, when set.
  std::optional<BreakerConfig> breaker;
  // The exact result cache: a successful output is reused, for `cache_ttl`,
  // by any call of this agent on the same model with the same input
  // (canonical JSON). Zero: no cache.
  absl::Duration cache_ttl = absl::ZeroDuration();
  int cache_max_entries = 10000;
  std::optional<SemanticCacheConfig> semantic_cache;
  std::optional<BatchConfig> batch;
  // A hash of what shapes the agent's answers besides its input and model
  // (its prompts and output schema): semantic-cache entries of another
  // version are never served.
  std::string template_version;
  // Tools its model may call (HTTP providers), and the bounds of the loop:
  // model turns that call tools, and the tokens (input and output, every
  // turn) one attempt may spend; the coordinator reserves that much.
  std::vector<ToolConfig> tools;
  int max_tool_turns = 4;
  int64_t tool_max_tokens = 32000;
  // Tool answers the built-in injection detector flags are withheld from the
  // model (the call is told why, and recorded as "withheld").
  bool screen_tool_results = true;
  // false: the fleet's spend_limit, once reached, holds this agent's calls
  // until the next period (a critical agent goes on; its spend counts).
  bool critical = true;
  // Set for an action (`actions:` in the config): the "agent" is an HTTP
  // request, not a model; provider is kActionProvider, no tokens, no price.
  std::shared_ptr<const ActionConfig> action;
};

// Dynamic fan-out (the orchestrator-worker pattern): the step's agent plans
// sub-steps in its output, `{"<field>": [{"agent": "...", "input": {...}}]}`,
// and the coordinator runs them in parallel, within these limits. The step's
// output is the agent's own output with `<into>` set to the list of the
// sub-steps' outputs, in order, for a later (reducer) step to read.
struct SpawnConfig {
  std::string field;
  std::vector<std::string> agents;  // the agents a sub-step may name
  int max = 10;                     // at most this many sub-steps
  std::string into = "results";
};

// `wait:` — a step that calls no agent: it waits for a named signal sent
// to its task from outside (`agentfleet signal TASK NAME [JSON]`, a
// TaskSignal on the signals topic). Its output is {"signal", "payload",
// "sender", "timed_out": false}; when `timeout` passes first it is
// {"signal", "timed_out": true}, or the task fails (on_timeout: fail).
struct WaitConfig {
  std::string signal;
  absl::Duration timeout;  // required; shorter than the workflow's deadline
  bool fail_on_timeout = false;
};

// `signals:` on an agent step: what its agent may send instead of an
// output, as {"_signal": {"type": "needs_info", "question": "..."}} or
// {"_signal": {"type": "rescope", "reason": "..."}}. A type the step does
// not list (or a malformed one) fails the attempt as a retryable
// invalid_signal.
struct NeedsInfoConfig {
  // The question goes to this agent (input {"question", "step", "input"};
  // its output is the answer), or
  std::string agent;
  // to the outside: the instance waits for this signal (a plain step's
  // instance waits for `signal`, a fanned-out or spawned one for
  // `signal.<fan index>`); its payload is the answer.
  std::optional<WaitConfig> wait;
  // With wait: the question is also published here as JSON, with the
  // signal name that answers it.
  std::string emit;
  // Questions one instance may ask; one more fails it (needs_info_exhausted).
  int max_questions = 3;
};

struct StepSignalsConfig {
  std::optional<NeedsInfoConfig> needs_info;
  // rescope: this step (itself, or one it depends on) runs again with the
  // reason in its input (`_rescope`), and every step after it too; at most
  // the workflow's max_replans times per task. Empty: not allowed.
  std::string rescope_planner;
  bool any() const { return needs_info.has_value() || !rescope_planner.empty(); }
};

struct StepConfig {
  std::string id;
  std::string agent;  // empty for a wait step; an action's name for `action:`
  bool action = false;  // `action: NAME`
  // `screen: builtin`: the coordinator scans every string of the step's
  // input with the built-in prompt-injection detector (safety/injection.h);
  // its output is {flagged, findings}. No agent, no call.
  bool screen = false;
  // Prompt-injection containment (issue 19), derived when the config loads:
  // the top-level fields of this step's input that carry untrusted text (the
  // workflow's untrusted_inputs, or an output derived from them: a tainted
  // step's); "*" when the whole input does. The worker delimits them.
  std::vector<std::string> untrusted_fields;
  // Whether this step's output is derived from untrusted text (an agent that
  // read some, or has tools; an action's answer; a child fed some).
  bool tainted_output = false;
  std::optional<WaitConfig> wait;
  // `emit: TOPIC`: the step's output (a list for a fan-out) is also
  // published to TOPIC as JSON ({task_id, tenant, workflow, step, output})
  // when the step completes, in the transaction that records it.
  std::string emit;
  // `workflow: NAME`: the step runs another workflow as a child task (its
  // `input` is the child's input) and its output is the child's output.
  // `budget:` caps the child's tokens and cost; the child never gets more
  // than the parent has left.
  std::string child_workflow;
  int64_t child_max_tokens = 0;
  double child_max_cost_usd = 0;
  // Template whose "$..." strings are references (config/expression.h).
  nlohmann::json input = nlohmann::json::object();
  // When set, the step runs once per element of this list.
  std::optional<Reference> for_each;
  std::string model_tier = "default";
  // `model_tier: $steps.classify.complexity`: the tier read from task data
  // when the step is dispatched; a value that is not one of the agent's
  // tiers runs `default` (and says so in the step's explanation).
  std::optional<Reference> model_tier_from;
  // An optional step that fails (after its retries and fallback) does not
  // fail the task: its output is null and the task ends PARTIAL.
  bool optional = false;
  std::optional<SpawnConfig> spawn;
  StepSignalsConfig signals;
  // `when:` — the step runs only if this holds once the steps it reads are
  // done; otherwise it is skipped (config/condition.h). Null: always runs.
  std::shared_ptr<const Condition> when;
  std::string when_text;
  // Steps this one waits for: those its input and condition reference, plus `after`.
  std::vector<std::string> depends_on;
};

// Hard limits for one task; zero means no limit of that kind. A submission's
// own budget applies where it is stricter.
struct BudgetConfig {
  int64_t max_tokens = 0;    // input + output tokens, every attempt included
  double max_cost_usd = 0;   // by the pricing table
  int64_t max_steps = 0;     // step instances started (each fan-out element counts)
  // Once this share of a token or cost limit is spent, steps run on the
  // agent's cheapest model tier.
  double downgrade_at = 0.8;
};

struct WorkflowConfig {
  std::string name;
  BudgetConfig budget;
  std::vector<StepConfig> steps;  // in file order
  std::string output_step;
  // A task of this workflow fails when its deadline passes: the submission's
  // deadline if earlier, else accepted time + this.
  absl::Duration deadline = absl::Hours(1);
  // `emit: TOPIC`: the task's result is also published to TOPIC as JSON
  // (protobuf JSON of TaskResult), in the transaction that publishes it.
  std::string emit;
  // How many times one task may re-run part of its DAG for agents' rescope
  // signals; one more fails the step that asked (replans_exhausted).
  int max_replans = 2;
  // `secret_inputs: [customer.ssn, api_token]`: fields of the task's input
  // that must never reach an agent (its work item, its prompts, its model)
  // or a child workflow. A step input or for_each that references one, or
  // an object holding one ($task, $task.customer), is a load-time error.
  std::vector<std::vector<std::string>> secret_inputs;
  // Fields of the task's input that hold untrusted text (a customer's message,
  // a fetched document): never in a system prompt; delimited wherever an agent
  // reads them, as is every output derived from them.
  std::vector<std::vector<std::string>> untrusted_inputs;
  const StepConfig* FindStep(const std::string& id) const;
  // The first dependency cycle among the steps, as the path that closes it
  // ("a", "b", "a"), in file order of the steps it starts from; empty if the
  // steps form a DAG. Self-references and unknown steps are not cycles here.
  std::vector<std::string> DependencyCycle() const;
  // Whether step `id` is `other` or depends on it, directly or not (a
  // re-plan from `other` resets it).
  bool DependsOn(const std::string& id, const std::string& other) const;
};

struct CoordinatorConfig {
  enum class Processing { kExactlyOnce, kAtLeastOnce };
  std::string group_id = "agentfleet-coordinator";
  // The largest submission or event read; at most kafka.max_message_bytes.
  size_t max_payload_bytes = 1000000;
  // exactly_once: consume -> process -> produce -> commit offsets in Kafka
  // transactions (when: commit_policy). at_least_once: no transactions.
  Processing processing = Processing::kExactlyOnce;
  // exactly_once: when a transaction commits. kAdaptive commits as soon as
  // a poll has drained the input (a lone step waits for no interval; under
  // load the input that arrives during one commit makes the next, larger
  // transaction), and at the latest after commit_interval. kInterval
  // commits every commit_interval (Kafka Streams' way).
  enum class CommitPolicy { kAdaptive, kInterval };
  CommitPolicy commit_policy = CommitPolicy::kAdaptive;
  absl::Duration commit_interval = absl::Milliseconds(100);
  // How long a finished task's id is kept (to recognise resubmissions)
  // before its state is tombstoned.
  absl::Duration finished_retention = absl::Hours(24);
  // Kafka transaction timeout: how long a crashed replica's open transaction
  // can hold back read_committed readers.
  absl::Duration transaction_timeout = absl::Seconds(10);
  // How often the consumer-group lag metric is read from the brokers.
  absl::Duration lag_interval = absl::Seconds(10);
  // The capacity signal (agentfleet_pool_capacity_replicas): the replicas
  // that would drain a pool's pending work in this long, within its quotas.
  absl::Duration capacity_drain_time = absl::Seconds(30);
  // How deep child workflows may nest (a child of a child ... of a task).
  int max_child_depth = 3;
  // Joins the group as a static member named `<group_id>-<instance>`: a
  // replica restarted under the same --instance gets its partitions back
  // without a rebalance, but a stopped one keeps them until its session
  // times out. For replicas with stable names (a StatefulSet).
  bool static_membership = false;
};

struct WorkerConfig {
  std::string group_prefix = "agentfleet-workers";
  int max_in_flight = 256;
  // The largest work item read; at most kafka.max_message_bytes.
  size_t max_payload_bytes = 1000000;
  // Items running longer than this send a heartbeat this often.
  absl::Duration heartbeat_interval = absl::Seconds(5);
  // On SIGTERM, how long in-flight items may take to finish.
  absl::Duration shutdown_grace = absl::Seconds(30);
  // A call still running this long after it started sends its receipt; one
  // that finished sooner sends only its result (one event instead of two).
  absl::Duration receipt_delay = absl::Milliseconds(100);
  // The worker pools (--pool) of the fleet: the coordinator exports each
  // pool's consumer-group lag on the work topics.
  std::vector<std::string> pools = {"default"};
  // Backstop: a partition with messages to fetch that has not moved for
  // this long while the worker had room is restarted (docs/robustness.md).
  absl::Duration stall_after = absl::Seconds(30);
};

// A tenant's hard spending limit per period (UTC hours, days or months).
// Each task partition holds an equal slice of it, so the limit holds exactly
// however the partitions move between coordinator replicas.
// The ledger name of the fleet-wide spend_limit among the tenants' (no
// tenant can be named so: tenants are refused with control characters).
inline constexpr char kFleetLedger[] = "\x1e" "fleet";

struct TenantConfig {
  enum class Period { kHour, kDay, kMonth };
  enum class OnExhausted { kHold, kReject };
  Period period = Period::kDay;
  double max_cost_usd = 0;  // zero: no limit of this kind
  int64_t max_tokens = 0;
  // hold: calls wait for the next period; reject: new tasks are REJECTED and
  // running ones end BUDGET_EXHAUSTED.
  OnExhausted on_exhausted = OnExhausted::kHold;
  // The tenant's share of a contended provider quota against other tenants'
  // (fair queuing on estimated tokens); 0: not given (1, or the "*" entry's).
  double weight = 0;
  bool has_limits() const { return max_cost_usd > 0 || max_tokens > 0; }
};

// Export of spans over OTLP/HTTP with JSON encoding (any OpenTelemetry
// collector's /v1/traces). Off when the endpoint is empty.
struct TracingConfig {
  std::string otlp_endpoint;  // e.g. http://otel-collector:4318/v1/traces
  absl::Duration export_interval = absl::Seconds(1);
  absl::Duration timeout = absl::Seconds(5);
  size_t max_queue = 10000;  // spans waiting for export; more are dropped (counted)
};

// `triggers:` — a workflow started by each message on a topic the user
// already has (JSON, or protobuf written as JSON). The task id is
// "<trigger>/<value>" of the message key or of a field of the message, so a
// redelivered or re-sent event is recognised as the same task.
struct TriggerConfig {
  std::string name;
  std::string topic;     // full topic name (no prefix)
  std::string workflow;
  // Path of the field the id comes from ($event.a.b); empty: the key ($key).
  std::vector<std::string> id_field;
  // Template of the task's input: "$event", "$event.a.b" and "$key" strings
  // are replaced by the event, its field (null if missing) and the key.
  nlohmann::json input = "$event";
  std::string tenant;
};

struct FleetConfig {
  std::string source;  // file the config came from
  // Each top-level section as written (YAML, normalized): what a reload
  // compares to tell which sections changed.
  std::map<std::string, std::string> sections;
  TracingConfig tracing;
  KafkaConfig kafka;
  std::map<std::string, ProviderConfig> providers;
  std::map<std::string, ModelPrice> pricing;
  std::map<std::string, AgentConfig> agents;
  std::map<std::string, WorkflowConfig> workflows;
  CoordinatorConfig coordinator;
  WorkerConfig worker;
  // Tenant name -> limits; "*" applies to every tenant not named.
  std::map<std::string, TenantConfig> tenants;
  // The fleet-wide hard spending limit per period (spend_limit:): every
  // call counts; once it is reached, the calls of non-critical agents and
  // of PRIORITY_BATCH tasks are held until the next period.
  std::optional<TenantConfig> spend_limit;
  std::map<std::string, TriggerConfig> triggers;

  // The limits that apply to `tenant`, or null (kFleetLedger: spend_limit).
  const TenantConfig* FindTenant(const std::string& tenant) const;
  // The tenant's weight in the quota queues' fair order (default 1).
  double TenantWeight(const std::string& tenant) const;

  const AgentConfig* FindAgent(const std::string& name) const;
  // Whether any action is configured (the audit topic exists then).
  bool HasActions() const;
  const WorkflowConfig* FindWorkflow(const std::string& name) const;
  // USD for these tokens on `model` by the pricing table (0 for an unpriced model).
  // `batch`: the call ran in a provider batch (the model's batch_discount off).
  double Cost(const std::string& model, int64_t input_tokens, int64_t output_tokens, bool batch = false) const;
  // The model's price, or a zero price for an unpriced model.
  ModelPrice Price(const std::string& model) const;
};

// Reads and validates a config file. InvalidArgument carries every problem
// found, one per line, each "FILE:LINE:COL: FIELD: message".
[[nodiscard]] absl::StatusOr<FleetConfig> LoadConfigFile(const std::string& path);

// Same, from text; `source` names it in error messages.
[[nodiscard]] absl::StatusOr<FleetConfig> LoadConfigString(const std::string& text,
                                                           const std::string& source);

// The sections a running coordinator takes from a reloaded config (SIGHUP):
// the spending limits and weights. Everything else is fixed for the life of
// the process (workflows, agents and topics are what its tasks' state
// points into).
inline constexpr const char* kLiveSections[] = {"tenants", "spend_limit"};

// A config reload: copies the live sections of `fresh` (already validated)
// into `live`; returns the other top-level sections whose text changed,
// which take effect only when the process restarts.
std::vector<std::string> ApplyLiveSections(const FleetConfig& fresh, FleetConfig* live);

}  // namespace agentfleet
