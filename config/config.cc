#include "config/config.h"

#include <algorithm>
#include <cstdlib>

#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/digest.h"
#include "yaml-cpp/yaml.h"

namespace agentfleet {

const StepConfig* WorkflowConfig::FindStep(const std::string& id) const {
  for (const auto& s : steps) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

bool WorkflowConfig::DependsOn(const std::string& id, const std::string& other) const {
  std::set<std::string> seen;
  std::vector<std::string> todo = {id};
  while (!todo.empty()) {
    std::string s = todo.back();
    todo.pop_back();
    if (s == other) return true;
    const StepConfig* step = FindStep(s);
    if (step == nullptr || !seen.insert(s).second) continue;
    todo.insert(todo.end(), step->depends_on.begin(), step->depends_on.end());
  }
  return false;
}

std::vector<std::string> WorkflowConfig::DependencyCycle() const {
  // Depth-first search; a step met again while on the stack closes a cycle.
  std::map<std::string, int> color;  // 0 not seen, 1 on the stack, 2 done
  std::vector<std::string> stack, cycle;
  std::function<void(const std::string&)> visit = [&](const std::string& id) {
    color[id] = 1;
    stack.push_back(id);
    const StepConfig* s = FindStep(id);
    for (const auto& d : s ? s->depends_on : std::vector<std::string>{}) {
      if (!cycle.empty()) break;
      if (d == id || !FindStep(d)) continue;
      if (color[d] == 1) {
        cycle.assign(std::find(stack.begin(), stack.end(), d), stack.end());
        cycle.push_back(d);
      } else if (color[d] == 0) {
        visit(d);
      }
    }
    stack.pop_back();
    color[id] = 2;
  };
  for (const auto& s : steps) {
    if (cycle.empty() && color[s.id] == 0) visit(s.id);
  }
  return cycle;
}

const AgentConfig* FleetConfig::FindAgent(const std::string& name) const {
  auto it = agents.find(name);
  return it == agents.end() ? nullptr : &it->second;
}

bool FleetConfig::HasActions() const {
  for (const auto& [name, agent] : agents) {
    if (agent.action) return true;
  }
  return false;
}

const WorkflowConfig* FleetConfig::FindWorkflow(const std::string& name) const {
  auto it = workflows.find(name);
  return it == workflows.end() ? nullptr : &it->second;
}

double FleetConfig::Cost(const std::string& model, int64_t input_tokens, int64_t output_tokens, bool batch) const {
  auto it = pricing.find(model);
  if (it == pricing.end()) return 0;
  double online = (input_tokens * it->second.input_per_mtok + output_tokens * it->second.output_per_mtok) / 1e6;
  return batch ? online * (1 - it->second.batch_discount) : online;
}

const TenantConfig* FleetConfig::FindTenant(const std::string& tenant) const {
  if (tenant == kFleetLedger) return spend_limit ? &*spend_limit : nullptr;
  // An entry with only a weight gives no budget: the "*" entry's applies.
  auto it = tenants.find(tenant);
  if (it == tenants.end() || !it->second.has_limits()) it = tenants.find("*");
  return it == tenants.end() || !it->second.has_limits() ? nullptr : &it->second;
}

double FleetConfig::TenantWeight(const std::string& tenant) const {
  for (const std::string& name : {tenant, std::string("*")}) {
    auto it = tenants.find(name);
    if (it != tenants.end() && it->second.weight > 0) return it->second.weight;
  }
  return 1;
}

ModelPrice FleetConfig::Price(const std::string& model) const {
  auto it = pricing.find(model);
  return it == pricing.end() ? ModelPrice{} : it->second;
}

namespace {

using Json = nlohmann::json;

const std::regex& NameRegex() {
  static const std::regex re("^[a-z][a-z0-9_-]{0,62}$");
  return re;
}

// What Kafka accepts as a topic name.
const std::regex& TopicRegex() {
  static const std::regex re("^[a-zA-Z0-9._-]{1,249}$");
  return re;
}

// Collects every problem with its position, so one run reports them all.
class Loader {
 public:
  explicit Loader(std::string source) : source_(std::move(source)) {}

  void Error(const YAML::Mark& mark, const std::string& field, const std::string& message) {
    if (mark.is_null()) {
      errors_.push_back(absl::StrCat(source_, ": ", field, ": ", message));
    } else {
      errors_.push_back(
          absl::StrCat(source_, ":", mark.line + 1, ":", mark.column + 1, ": ", field, ": ", message));
    }
  }
  void Error(const YAML::Node& node, const std::string& field, const std::string& message) {
    Error(node.Mark(), field, message);
  }
  bool ok() const { return errors_.empty(); }
  std::string Report() const { return absl::StrJoin(errors_, "\n"); }

  // True if `node` is a map whose keys are all in `allowed`; reports otherwise.
  bool Map(const YAML::Node& node, const std::string& field, const std::set<std::string>& allowed) {
    if (!node.IsMap()) {
      Error(node, field, "expected a mapping");
      return false;
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      std::string key = it->first.Scalar();
      if (!allowed.empty() && allowed.count(key) == 0) {
        Error(it->first, Join(field, key),
              absl::StrCat("unknown key (expected one of: ", absl::StrJoin(allowed, ", "), ")"));
      }
    }
    return true;
  }

  static std::string Join(const std::string& field, const std::string& key) {
    return field.empty() ? key : absl::StrCat(field, ".", key);
  }

  bool String(const YAML::Node& parent, const char* key, const std::string& field, std::string* out,
              bool required = false) {
    YAML::Node n = parent[key];
    if (!n) {
      if (required) Error(parent, Join(field, key), "is required");
      return false;
    }
    if (!n.IsScalar()) {
      Error(n, Join(field, key), "expected a string");
      return false;
    }
    *out = n.Scalar();
    return true;
  }

  template <typename T>
  bool Number(const YAML::Node& parent, const char* key, const std::string& field, T* out,
              std::optional<T> min = std::nullopt, std::optional<T> max = std::nullopt) {
    YAML::Node n = parent[key];
    if (!n) return false;
    T value{};
    if (!n.IsScalar() || !YAML::convert<T>::decode(n, value)) {
      Error(n, Join(field, key),
            absl::StrCat("expected ", std::is_integral_v<T> ? "an integer" : "a number", ", got '",
                         n.IsScalar() ? n.Scalar() : "a collection", "'"));
      return false;
    }
    if ((min && value < *min) || (max && value > *max)) {
      Error(n, Join(field, key),
            absl::StrCat("must be ", min ? absl::StrCat(">= ", *min) : "",
                         min && max ? " and " : "", max ? absl::StrCat("<= ", *max) : ""));
      return false;
    }
    *out = value;
    return true;
  }

  // Reads `key` as one of `choices`; any other value is reported with the
  // choices ("expected a, b or c, got 'x'"). False if absent or refused.
  template <typename T>
  bool Enum(const YAML::Node& parent, const char* key, const std::string& field,
            std::initializer_list<std::pair<const char*, T>> choices, T* out) {
    std::string value;
    if (!String(parent, key, field, &value)) return false;
    std::vector<std::string> names;
    for (const auto& [name, v] : choices) {
      if (value == name) {
        *out = v;
        return true;
      }
      names.push_back(name);
    }
    std::string last = names.back();
    names.pop_back();
    Error(parent[key], Join(field, key),
          absl::StrCat("expected ", absl::StrJoin(names, ", "), names.empty() ? "" : " or ", last, ", got '", value,
                       "'"));
    return false;
  }

  bool Bool(const YAML::Node& parent, const char* key, const std::string& field, bool* out) {
    YAML::Node n = parent[key];
    if (!n) return false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, *out)) {
      Error(n, Join(field, key), "expected true or false");
      return false;
    }
    return true;
  }

  bool Duration(const YAML::Node& parent, const char* key, const std::string& field,
                absl::Duration* out) {
    YAML::Node n = parent[key];
    if (!n) return false;
    absl::Duration d;
    if (!n.IsScalar() || !absl::ParseDuration(n.Scalar(), &d) || d <= absl::ZeroDuration()) {
      Error(n, Join(field, key), "expected a positive duration such as 500ms, 30s or 2m");
      return false;
    }
    *out = d;
    return true;
  }

  void StringMap(const YAML::Node& parent, const char* key, const std::string& field,
                 std::map<std::string, std::string>* out) {
    YAML::Node n = parent[key];
    if (!n) return;
    if (!n.IsMap()) {
      Error(n, Join(field, key), "expected a mapping of names to values");
      return;
    }
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->second.IsScalar()) {
        Error(it->second, Join(Join(field, key), it->first.Scalar()), "expected a scalar value");
        continue;
      }
      (*out)[it->first.Scalar()] = it->second.Scalar();
    }
  }

  // YAML -> JSON with YAML's scalar typing: quoted scalars stay strings.
  Json ToJson(const YAML::Node& n) {
    if (n.IsMap()) {
      Json obj = Json::object();
      for (auto it = n.begin(); it != n.end(); ++it) obj[it->first.Scalar()] = ToJson(it->second);
      return obj;
    }
    if (n.IsSequence()) {
      Json arr = Json::array();
      for (const auto& e : n) arr.push_back(ToJson(e));
      return arr;
    }
    if (n.IsNull() || !n.IsDefined()) return nullptr;
    const std::string& s = n.Scalar();
    if (n.Tag() == "!") return s;  // quoted
    if (s == "true" || s == "True") return true;
    if (s == "false" || s == "False") return false;
    if (s == "null" || s == "~") return nullptr;
    int64_t i;
    if (YAML::convert<int64_t>::decode(n, i)) return i;
    double d;
    if (YAML::convert<double>::decode(n, d)) return d;
    return s;
  }

 private:
  std::string source_;
  std::vector<std::string> errors_;
};

// ---- sections ----

void LoadKafka(Loader& L, const YAML::Node& n, KafkaConfig* k) {
  const std::string f = "kafka";
  if (!L.Map(n, f, {"topic_prefix", "partitions", "work_partitions", "replication_factor", "max_message_bytes", "retention", "audit_retention", "cost_retention",
                    "create_topics", "properties", "producer", "consumer", "properties_env"})) {
    return;
  }
  L.String(n, "topic_prefix", f, &k->topic_prefix);
  L.Number<int>(n, "partitions", f, &k->partitions, 1, 10000);
  L.Number<int>(n, "work_partitions", f, &k->work_partitions, 1, 10000);
  L.Number<int>(n, "replication_factor", f, &k->replication_factor, 1, 32);
  // librdkafka's message.max.bytes range.
  L.Number<size_t>(n, "max_message_bytes", f, &k->max_message_bytes, 65536, 1000000000);
  if (L.Duration(n, "retention", f, &k->retention) && k->retention < absl::Hours(1)) {
    L.Error(n["retention"], f + ".retention", "must be at least 1h");
  }
  k->audit_retention = k->retention;
  if (L.Duration(n, "audit_retention", f, &k->audit_retention) && k->audit_retention < absl::Hours(1)) {
    L.Error(n["audit_retention"], f + ".audit_retention", "must be at least 1h");
  }
  if (L.Duration(n, "cost_retention", f, &k->cost_retention) && k->cost_retention < absl::Hours(24 * 8)) {
    L.Error(n["cost_retention"], f + ".cost_retention", "must be at least 8d (a report's trend reads the 7 days before it)");
  }
  const YAML::Node& props = n;
  for (const char* section : {"properties", "producer"}) {
    if (const YAML::Node sec = props[section]; sec && sec.IsMap() && sec["message.max.bytes"].IsDefined()) {
      L.Error(sec["message.max.bytes"], f + "." + section + ".message.max.bytes",
              "set kafka.max_message_bytes instead: the fleet sizes its checks, topics and producers from it");
    }
  }
  L.Bool(n, "create_topics", f, &k->create_topics);
  L.StringMap(n, "properties", f, &k->properties);
  L.StringMap(n, "producer", f, &k->producer);
  L.StringMap(n, "consumer", f, &k->consumer);
  L.StringMap(n, "properties_env", f, &k->properties_env);
  // Secrets come from the environment (a Kubernetes Secret), never from this file.
  static const std::set<std::string> kSecret = {"sasl.password", "ssl.key.password", "ssl.keystore.password",
                                                "sasl.oauthbearer.client.secret", "ssl.key.pem"};
  const YAML::Node& cn = n;  // const: lookups must not insert keys
  for (const char* section : {"properties", "producer", "consumer"}) {
    const YAML::Node sec = cn[section];
    if (!sec || !sec.IsMap()) continue;
    for (const std::string& key : kSecret) {
      if (const YAML::Node v = sec[key]; v.IsDefined()) {
        L.Error(v, f + "." + section + "." + key,
                "credentials do not belong in the config file; name an environment variable in kafka.properties_env");
      }
    }
  }
}

void LoadLatency(Loader& L, const YAML::Node& n, const std::string& f, LatencyConfig* lat) {
  if (!L.Map(n, f, {"distribution", "mean_ms", "min_ms", "max_ms", "p50_ms", "p99_ms"})) return;
  using D = LatencyConfig::Distribution;
  L.Enum<D>(n, "distribution", f,
            {{"fixed", D::kFixed}, {"uniform", D::kUniform}, {"exponential", D::kExponential},
             {"lognormal", D::kLogNormal}},
            &lat->distribution);
  L.Number<double>(n, "mean_ms", f, &lat->mean_ms, 0.0);
  L.Number<double>(n, "min_ms", f, &lat->min_ms, 0.0);
  L.Number<double>(n, "max_ms", f, &lat->max_ms, 0.0);
  L.Number<double>(n, "p50_ms", f, &lat->p50_ms, 0.0);
  L.Number<double>(n, "p99_ms", f, &lat->p99_ms, 0.0);
  if (lat->distribution == D::kUniform && lat->max_ms < lat->min_ms) {
    L.Error(n, f + ".max_ms", "must be >= min_ms");
  }
  if (lat->distribution == D::kLogNormal && (lat->p50_ms <= 0 || lat->p99_ms < lat->p50_ms)) {
    L.Error(n, f, "lognormal needs p50_ms > 0 and p99_ms >= p50_ms");
  }
}

std::optional<BreakerConfig> LoadBreaker(Loader& L, const YAML::Node& n, const std::string& f) {
  if (!L.Map(n, f, {"window", "window_calls", "window_time", "failure_rate", "slow_call_rate", "slow_call_duration",
                    "minimum_calls", "wait_in_open", "half_open_calls", "max_half_open_wait"})) {
    return std::nullopt;
  }
  BreakerConfig b;
  using W = BreakerConfig::Window;
  L.Enum<W>(n, "window", f, {{"count", W::kCount}, {"time", W::kTime}}, &b.window);
  L.Number<int>(n, "window_calls", f, &b.window_calls, 1, 100000);
  L.Duration(n, "window_time", f, &b.window_time);
  L.Number<double>(n, "failure_rate", f, &b.failure_rate, 0.0, 1.0);
  L.Number<double>(n, "slow_call_rate", f, &b.slow_call_rate, 0.0, 1.0);
  L.Duration(n, "slow_call_duration", f, &b.slow_call_duration);
  L.Number<int>(n, "minimum_calls", f, &b.minimum_calls, 1, 100000);
  L.Duration(n, "wait_in_open", f, &b.wait_in_open);
  L.Number<int>(n, "half_open_calls", f, &b.half_open_calls, 1, 10000);
  L.Duration(n, "max_half_open_wait", f, &b.max_half_open_wait);
  if (b.window == BreakerConfig::Window::kCount && b.minimum_calls > b.window_calls) {
    b.minimum_calls = b.window_calls;  // resilience4j: the window caps it
  }
  return b;
}

void LoadProvider(Loader& L, const YAML::Node& n, const std::string& f, ProviderConfig* p) {
  if (!L.Map(n, f, {"type", "latency", "failure_rate", "seed", "signals", "base_url", "api_key_env", "api_key_file",
                    "headers", "connect_timeout", "max_connections", "json_mode", "anthropic_version", "breaker",
                    "rate_limits"})) {
    return;
  }
  if (YAML::Node b = n["breaker"]) p->breaker = LoadBreaker(L, b, f + ".breaker");
  if (YAML::Node r = n["rate_limits"]; r && L.Map(r, f + ".rate_limits", {})) {
    for (auto it = r.begin(); it != r.end(); ++it) {
      std::string mf = f + ".rate_limits." + it->first.Scalar();
      RateLimit limit;
      if (!L.Map(it->second, mf, {"requests_per_minute", "tokens_per_minute"})) continue;
      L.Number<double>(it->second, "requests_per_minute", mf, &limit.requests_per_minute, 0.0);
      L.Number<double>(it->second, "tokens_per_minute", mf, &limit.tokens_per_minute, 0.0);
      if (limit.requests_per_minute == 0 && limit.tokens_per_minute == 0) {
        L.Error(it->second, mf, "give requests_per_minute, tokens_per_minute or both");
      }
      p->rate_limits[it->first.Scalar()] = limit;
    }
  }
  std::string type;
  L.String(n, "type", f, &type, /*required=*/true);
  using T = ProviderConfig::Type;
  static const std::map<std::string, T> kTypes = {
      {"simulated", T::kSimulated}, {"openai", T::kOpenAi}, {"anthropic", T::kAnthropic}};
  if (auto it = kTypes.find(type); it != kTypes.end()) {
    p->type = it->second;
  } else if (!type.empty()) {
    L.Error(n["type"], f + ".type", "unknown provider type '" + type + "' (supported: simulated, openai, anthropic)");
    return;
  }
  // Each key belongs to one kind of provider; a key of the other kind is a mistake.
  const std::set<std::string> sim_only = {"latency", "failure_rate", "seed", "signals"};
  const std::set<std::string> http_only = {"base_url", "api_key_env", "api_key_file", "headers",
                                           "connect_timeout", "max_connections", "json_mode", "anthropic_version"};
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string key = it->first.Scalar();
    if ((p->is_http() && sim_only.count(key)) || (!p->is_http() && http_only.count(key)) ||
        (key == "json_mode" && p->type != T::kOpenAi) || (key == "anthropic_version" && p->type != T::kAnthropic)) {
      L.Error(it->first, f + "." + key, "does not apply to a provider of type '" + type + "'");
    }
  }
  if (!p->is_http()) {
    if (n["latency"]) LoadLatency(L, n["latency"], f + ".latency", &p->latency);
    L.Number<double>(n, "failure_rate", f, &p->failure_rate, 0.0, 1.0);
    L.Number<uint64_t>(n, "seed", f, &p->seed);
    if (YAML::Node sig = n["signals"]; sig && L.Map(sig, f + ".signals", {"needs_info", "rescope"})) {
      L.Number<double>(sig, "needs_info", f + ".signals", &p->needs_info_rate, 0.0, 1.0);
      L.Number<double>(sig, "rescope", f + ".signals", &p->rescope_rate, 0.0, 1.0);
    }
    return;
  }
  if (L.String(n, "base_url", f, &p->base_url, /*required=*/true) &&
      !std::regex_match(p->base_url, std::regex("^https?://[^/\\s]+(/\\S*)?$"))) {
    L.Error(n["base_url"], f + ".base_url", "expected an http:// or https:// URL, got '" + p->base_url + "'");
  }
  while (!p->base_url.empty() && p->base_url.back() == '/') p->base_url.pop_back();
  L.String(n, "api_key_env", f, &p->api_key_env);
  L.String(n, "api_key_file", f, &p->api_key_file);
  if (!p->api_key_env.empty() && !p->api_key_file.empty()) {
    L.Error(n["api_key_file"], f + ".api_key_file", "give api_key_env or api_key_file, not both");
  }
  L.StringMap(n, "headers", f, &p->headers);
  for (const auto& [name, value] : p->headers) {
    std::string lower = absl::AsciiStrToLower(name);
    if (lower == "authorization" || lower == "x-api-key") {
      L.Error(n["headers"][name], f + ".headers." + name,
              "credentials do not belong in the config file; use api_key_env or api_key_file");
    }
  }
  L.Duration(n, "connect_timeout", f, &p->connect_timeout);
  L.Number<int>(n, "max_connections", f, &p->max_connections, 0, 100000);
  L.Enum<std::string>(n, "json_mode", f,
                      {{"json_schema", "json_schema"}, {"json_object", "json_object"}, {"none", "none"}},
                      &p->json_mode);
  L.String(n, "anthropic_version", f, &p->anthropic_version);
}

std::optional<JsonSchema> LoadSchema(Loader& L, const YAML::Node& n, const std::string& f) {
  if (!L.Map(n, f, {"type", "properties", "required", "additionalProperties", "enum", "items",
                    "minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum",
                    "description"})) {
    return std::nullopt;
  }
  JsonSchema s;
  std::string type;
  if (L.String(n, "type", f, &type)) {
    static const std::map<std::string, JsonSchema::Type> kTypes = {
        {"object", JsonSchema::Type::kObject},   {"array", JsonSchema::Type::kArray},
        {"string", JsonSchema::Type::kString},   {"number", JsonSchema::Type::kNumber},
        {"integer", JsonSchema::Type::kInteger}, {"boolean", JsonSchema::Type::kBoolean},
        {"null", JsonSchema::Type::kNull}};
    auto it = kTypes.find(type);
    if (it == kTypes.end()) {
      L.Error(n["type"], f + ".type", "unknown type '" + type + "'");
    } else {
      s.type = it->second;
    }
  }
  if (YAML::Node props = n["properties"]) {
    if (L.Map(props, f + ".properties", {})) {
      for (auto it = props.begin(); it != props.end(); ++it) {
        std::string name = it->first.Scalar();
        if (auto sub = LoadSchema(L, it->second, f + ".properties." + name)) s.properties[name] = *sub;
      }
    }
  }
  if (YAML::Node req = n["required"]) {
    if (!req.IsSequence()) {
      L.Error(req, f + ".required", "expected a list of property names");
    } else {
      for (const auto& r : req) {
        s.required.push_back(r.Scalar());
        if (s.properties.count(r.Scalar()) == 0) {
          L.Error(r, f + ".required", "'" + r.Scalar() + "' is not among the properties");
        }
      }
    }
  }
  L.Bool(n, "additionalProperties", f, &s.additional_properties);
  if (YAML::Node e = n["enum"]) {
    if (!e.IsSequence() || e.size() == 0) {
      L.Error(e, f + ".enum", "expected a non-empty list");
    } else {
      for (const auto& v : e) s.enum_values.push_back(L.ToJson(v));
    }
  }
  if (YAML::Node items = n["items"]) {
    if (auto sub = LoadSchema(L, items, f + ".items")) s.items = std::make_shared<JsonSchema>(*sub);
  }
  size_t v;
  if (L.Number<size_t>(n, "minItems", f, &v)) s.min_items = v;
  if (L.Number<size_t>(n, "maxItems", f, &v)) s.max_items = v;
  if (L.Number<size_t>(n, "minLength", f, &v)) s.min_length = v;
  if (L.Number<size_t>(n, "maxLength", f, &v)) s.max_length = v;
  double d;
  if (L.Number<double>(n, "minimum", f, &d)) s.minimum = d;
  if (L.Number<double>(n, "maximum", f, &d)) s.maximum = d;
  return s;
}

void LoadRetry(Loader& L, const YAML::Node& n, const std::string& f, RetryPolicy* retry) {
  if (YAML::Node r = n["retry"]; r && L.Map(r, f + ".retry", {"initial_backoff", "max_backoff", "multiplier", "jitter"})) {
    L.Duration(r, "initial_backoff", f + ".retry", &retry->initial_backoff);
    L.Duration(r, "max_backoff", f + ".retry", &retry->max_backoff);
    L.Number<double>(r, "multiplier", f + ".retry", &retry->multiplier, 1.0, 100.0);
    L.Number<double>(r, "jitter", f + ".retry", &retry->jitter, 0.0, 1.0);
  }
}

std::string CheckUrlTemplate(Loader& L, const YAML::Node& n, const std::string& f, const std::string& url,
                             const std::set<std::string>& names);

// Secret headers: values with ${ENV} references only.
void LoadSecretHeaders(Loader& L, const YAML::Node& n, const std::string& f, std::map<std::string, std::string>* out) {
  L.StringMap(n, "secret_headers", f, out);
  static const std::regex kEnvRef("\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}");
  for (const auto& [name, value] : *out) {
    if (!std::regex_search(value, kEnvRef)) {
      L.Error(n["secret_headers"][name], f + ".secret_headers." + name,
              "expected a value with an ${ENV_VAR} reference (the secret is read from the worker's environment)");
    }
  }
}

// Literal headers: never credentials (those are secret_headers).
void LoadPlainHeaders(Loader& L, const YAML::Node& n, const std::string& f, std::map<std::string, std::string>* out) {
  L.StringMap(n, "headers", f, out);
  for (const auto& [name, value] : *out) {
    if (value.find("${") != std::string::npos) {
      L.Error(n["headers"][name], f + ".headers." + name, "an ${ENV} value is a secret: put it in secret_headers");
      continue;
    }
    std::string lower = absl::AsciiStrToLower(name);
    if (lower == "authorization" || lower == "x-api-key" || lower == "cookie" || lower == "idempotency-key") {
      L.Error(n["headers"][name], f + ".headers." + name,
              lower == "idempotency-key" ? "is set by the fleet (the action's effect id)"
                                         : "credentials do not belong in the config file; use secret_headers");
    }
  }
}

void LoadTools(Loader& L, const YAML::Node& n, const std::string& f, const FleetConfig& cfg, AgentConfig* a) {
  if (YAML::Node loop = n["tool_loop"]; loop && L.Map(loop, f + ".tool_loop", {"max_turns", "max_tokens"})) {
    L.Number<int>(loop, "max_turns", f + ".tool_loop", &a->max_tool_turns, 1, 50);
    L.Number<int64_t>(loop, "max_tokens", f + ".tool_loop", &a->tool_max_tokens, int64_t{1}, int64_t{100'000'000});
  }
  L.Bool(n, "screen_tool_results", f, &a->screen_tool_results);
  L.Bool(n, "critical", f, &a->critical);
  L.Number<int>(n, "max_in_flight", f, &a->max_in_flight, 0, 10'000'000);
  YAML::Node tools = n["tools"];
  if (!tools) return;
  if (!tools.IsSequence()) {
    L.Error(tools, f + ".tools", "expected a list of tools");
    return;
  }
  auto provider = cfg.providers.find(n["provider"] ? n["provider"].Scalar() : "");
  if (provider != cfg.providers.end() && !provider->second.is_http()) {
    L.Error(tools, f + ".tools", "tools need an HTTP provider (openai or anthropic)");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < tools.size(); ++i) {
    const YAML::Node& t = tools[i];
    std::string tf = absl::StrCat(f, ".tools[", i, "]");
    if (!L.Map(t, tf, {"name", "description", "parameters", "method", "url", "headers", "secret_headers", "timeout",
                       "max_response_bytes"})) {
      continue;
    }
    ToolConfig tool;
    if (L.String(t, "name", tf, &tool.name, true)) {
      if (!std::regex_match(tool.name, std::regex("^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$"))) {
        L.Error(t["name"], tf + ".name", "must match [a-zA-Z_][a-zA-Z0-9_-]* (at most 64 characters)");
      } else if (tool.name == "respond") {
        L.Error(t["name"], tf + ".name", "'respond' is the tool an Anthropic model answers with");
      } else if (!names.insert(tool.name).second) {
        L.Error(t["name"], tf + ".name", "duplicate tool name '" + tool.name + "'");
      }
    }
    L.String(t, "description", tf, &tool.description, true);
    std::set<std::string> fields;
    if (YAML::Node p = t["parameters"]) {
      tool.parameters_schema = LoadSchema(L, p, tf + ".parameters");
      tool.parameters = L.ToJson(p);
      if (YAML::Node props = p["properties"]; props && props.IsMap()) {
        for (auto it = props.begin(); it != props.end(); ++it) fields.insert(it->first.Scalar());
      }
    } else {
      tool.parameters = {{"type", "object"}, {"properties", nlohmann::json::object()}};
    }
    L.Enum<std::string>(t, "method", tf, {{"GET", "GET"}, {"POST", "POST"}}, &tool.method);
    if (L.String(t, "url", tf, &tool.url, true)) tool.host = CheckUrlTemplate(L, t["url"], tf + ".url", tool.url, fields);
    LoadPlainHeaders(L, t, tf, &tool.headers);
    LoadSecretHeaders(L, t, tf, &tool.secret_headers);
    L.Duration(t, "timeout", tf, &tool.timeout);
    L.Number<size_t>(t, "max_response_bytes", tf, &tool.max_response_bytes, size_t{1}, size_t{16} << 20);
    a->tools.push_back(std::move(tool));
  }
}

void LoadSemanticCache(Loader& L, const YAML::Node& n, const std::string& f, const FleetConfig& cfg,
                       AgentConfig* a) {
  if (!L.Map(n, f, {"embedding", "field", "threshold", "scope", "ttl", "max_entries", "timeout"})) return;
  SemanticCacheConfig c;
  if (YAML::Node e = n["embedding"]; !e) {
    L.Error(n, f + ".embedding", "is required ({provider, model}: where the embeddings come from)");
  } else if (L.Map(e, f + ".embedding", {"provider", "model"})) {
    if (L.String(e, "provider", f + ".embedding", &c.provider, true)) {
      auto p = cfg.providers.find(c.provider);
      if (p == cfg.providers.end()) {
        L.Error(e["provider"], f + ".embedding.provider", "unknown provider '" + c.provider + "'");
      } else if (p->second.type == ProviderConfig::Type::kAnthropic) {
        L.Error(e["provider"], f + ".embedding.provider",
                "provider '" + c.provider + "' is an Anthropic one, which has no embeddings API (use an OpenAI-compatible one)");
      }
    }
    if (L.String(e, "model", f + ".embedding", &c.model, true) && cfg.pricing.count(c.model) == 0) {
      L.Error(e["model"], f + ".embedding.model", "model '" + c.model + "' has no entry in pricing (every model needs a price)");
    }
  }
  if (L.String(n, "field", f, &c.field) && c.field.empty()) {
    L.Error(n["field"], f + ".field", "must name a top-level field of the input (leave it out to compare the whole input)");
  }
  L.Number<double>(n, "threshold", f, &c.threshold, 0.5, 1.0);
  L.Enum<bool>(n, "scope", f, {{"tenant", false}, {"shared", true}}, &c.shared);
  if (L.Duration(n, "ttl", f, &c.ttl) && (c.ttl <= absl::ZeroDuration() || c.ttl > absl::Hours(24 * 7))) {
    L.Error(n["ttl"], f + ".ttl", "must be more than 0 and at most 168h (the cache topic keeps entries for 7 days)");
  }
  L.Number<int>(n, "max_entries", f, &c.max_entries, 1, 1'000'000);
  if (L.Duration(n, "timeout", f, &c.timeout) && c.timeout <= absl::ZeroDuration()) {
    L.Error(n["timeout"], f + ".timeout", "must be more than 0");
  }
  a->semantic_cache = std::move(c);
}

void LoadAgent(Loader& L, const YAML::Node& n, const std::string& f, const FleetConfig& cfg,
               AgentConfig* a) {
  if (!L.Map(n, f, {"description", "provider", "models", "output_schema", "timeout", "max_tokens",
                    "max_attempts", "schedule_to_start_timeout", "heartbeat_timeout", "retry",
                    "system_prompt", "prompt", "temperature", "fallback", "breaker", "cache", "tools",
                    "tool_loop", "screen_tool_results", "critical", "semantic_cache", "batch",
                    "max_in_flight"})) {
    return;
  }
  LoadTools(L, n, f, cfg, a);
  L.String(n, "description", f, &a->description);
  if (L.String(n, "provider", f, &a->provider, true) && cfg.providers.count(a->provider) == 0) {
    L.Error(n["provider"], f + ".provider", "unknown provider '" + a->provider + "'");
  }
  L.StringMap(n, "models", f, &a->models);
  if (!n["models"]) {
    L.Error(n, f + ".models", "is required (a model name per tier; 'default' at least)");
  } else if (a->models.count("default") == 0) {
    L.Error(n["models"], f + ".models", "needs a 'default' tier");
  }
  for (const auto& [tier, model] : a->models) {
    if (cfg.pricing.count(model) == 0) {
      L.Error(n["models"][tier], f + ".models." + tier,
              "model '" + model + "' has no entry in pricing (every model needs a price)");
    }
  }
  if (YAML::Node s = n["output_schema"]) {
    a->output_schema = LoadSchema(L, s, f + ".output_schema");
    a->output_schema_json = L.ToJson(s);
    a->output_schema_bytes = a->output_schema_json.dump().size();
  }
  std::string version_text = a->output_schema_json.dump();
  for (const char* key : {"system_prompt", "prompt"}) {
    std::string text;
    if (!L.String(n, key, f, &text)) continue;
    absl::StrAppend(&version_text, "\x1f", key, "\x1f", text);
    if (text.find("${") != std::string::npos) {
      // A secret in a prompt goes to the model, its logs and its provider.
      L.Error(n[key], L.Join(f, key), "a prompt cannot read the environment (${...}): secrets never go into prompts");
      continue;
    }
    auto parsed = PromptTemplate::Parse(text);
    if (!parsed.ok()) {
      L.Error(n[key], L.Join(f, key), std::string(parsed.status().message()));
    } else {
      (std::string(key) == "prompt" ? a->prompt : a->system_prompt) = *parsed;
    }
  }
  double temperature;
  if (L.Number<double>(n, "temperature", f, &temperature, 0.0, 2.0)) a->temperature = temperature;
  if (YAML::Node b = n["breaker"]) a->breaker = LoadBreaker(L, b, f + ".breaker");
  if (YAML::Node c = n["cache"]; c && L.Map(c, f + ".cache", {"ttl", "max_entries"})) {
    if (!c["ttl"]) L.Error(c, f + ".cache.ttl", "is required (how long a cached output may be reused)");
    if (L.Duration(c, "ttl", f + ".cache", &a->cache_ttl) && a->cache_ttl > absl::Hours(24 * 7)) {
      L.Error(c["ttl"], f + ".cache.ttl", "must be at most 168h (the cache topic keeps entries for 7 days)");
    }
    L.Number<int>(c, "max_entries", f + ".cache", &a->cache_max_entries, 1, 10'000'000);
  }
  a->template_version = Sha256Hex(version_text).substr(0, 16);
  if (YAML::Node c = n["semantic_cache"]) LoadSemanticCache(L, c, f + ".semantic_cache", cfg, a);
  if (YAML::Node b = n["batch"]; b && L.Map(b, f + ".batch", {"max_items", "max_wait", "poll_interval"})) {
    BatchConfig batch;
    L.Number<int>(b, "max_items", f + ".batch", &batch.max_items, 1, 50'000);
    if (L.Duration(b, "max_wait", f + ".batch", &batch.max_wait) &&
        (batch.max_wait <= absl::ZeroDuration() || batch.max_wait > absl::Hours(24))) {
      L.Error(b["max_wait"], f + ".batch.max_wait", "must be more than 0 and at most 24h");
    }
    if (L.Duration(b, "poll_interval", f + ".batch", &batch.poll_interval) &&
        (batch.poll_interval < absl::Milliseconds(100) || batch.poll_interval > absl::Hours(1))) {
      L.Error(b["poll_interval"], f + ".batch.poll_interval", "must be between 100ms and 1h");
    }
    auto p = cfg.providers.find(a->provider);
    if (p != cfg.providers.end() && !p->second.is_http()) {
      L.Error(b, f + ".batch", "provider '" + a->provider + "' has no batch API (an openai or anthropic provider has)");
    }
    if (!a->tools.empty()) L.Error(b, f + ".batch", "an agent with tools cannot batch (a tool loop needs several turns)");
    a->batch = batch;
  }
  if (YAML::Node fb = n["fallback"]; fb && L.Map(fb, f + ".fallback", {"agent", "model_tier"})) {
    FallbackConfig fallback;
    L.String(fb, "agent", f + ".fallback", &fallback.agent);
    L.String(fb, "model_tier", f + ".fallback", &fallback.model_tier);
    if (fallback.agent.empty() == fallback.model_tier.empty()) {
      L.Error(fb, f + ".fallback", "give either agent (another agent) or model_tier (one of this agent's tiers)");
    } else if (!fallback.model_tier.empty() && a->models.count(fallback.model_tier) == 0) {
      L.Error(fb["model_tier"], f + ".fallback.model_tier", "agent '" + a->name + "' has no model tier '" + fallback.model_tier + "'");
    } else if (fallback.agent == a->name) {
      L.Error(fb["agent"], f + ".fallback.agent", "an agent cannot be its own fallback");
    }
    a->fallback = fallback;
  }
  L.Duration(n, "timeout", f, &a->timeout);
  L.Duration(n, "schedule_to_start_timeout", f, &a->schedule_to_start_timeout);
  L.Duration(n, "heartbeat_timeout", f, &a->heartbeat_timeout);
  L.Number<int>(n, "max_tokens", f, &a->max_tokens, 1, 1'000'000);
  L.Number<int>(n, "max_attempts", f, &a->max_attempts, 1, 100);
  LoadRetry(L, n, f, &a->retry);
}

// Checks the references in an input template, collecting the steps it reads.
// A step's `when:`: parsed and type-checked, its errors at the column of
// the expression they are about; the steps it reads become dependencies.
void LoadCondition(Loader& L, const YAML::Node& node, const std::string& field, StepConfig* step,
                   std::vector<std::string>* refs) {
  if (!node.IsScalar()) {
    L.Error(node, field, "expected a condition, such as $steps.classify.intent == 'billing'");
    return;
  }
  auto condition = ParseCondition(node.Scalar());
  if (!condition.ok()) {
    // "column N: ..." -> the position in the file (a quoted scalar starts after its quote).
    std::string message(condition.status().message());
    YAML::Mark mark = node.Mark();
    int column = 1;
    if (absl::StartsWith(message, "column ")) {
      size_t colon = message.find(':');
      column = std::atoi(message.substr(7, colon - 7).c_str());
      message = message.substr(colon + 2);
    }
    mark.column += column - 1 + (node.Tag() == "!" ? 1 : 0);
    L.Error(mark, field, message);
    return;
  }
  std::vector<const Condition*> pending = {condition->get()};
  while (!pending.empty()) {
    const Condition* c = pending.back();
    pending.pop_back();
    if ((c->kind == Condition::Kind::kRef || c->kind == Condition::Kind::kExists) &&
        c->ref.root == Reference::Root::kItem) {
      L.Error(node, field, "$item is not defined in a condition (it is decided once, before any fan-out)");
      return;
    }
    for (const auto& child : c->children) pending.push_back(child.get());
  }
  for (const std::string& s : (*condition)->Steps()) refs->push_back(s);
  step->when_text = node.Scalar();
  step->when = std::shared_ptr<const Condition>(std::move(*condition));
}

void CheckTemplate(Loader& L, const YAML::Node& n, const std::string& f, bool fanned_out,
                   std::vector<std::string>* refs) {
  if (n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it) {
      CheckTemplate(L, it->second, f + "." + it->first.Scalar(), fanned_out, refs);
    }
  } else if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i) CheckTemplate(L, n[i], absl::StrCat(f, "[", i, "]"), fanned_out, refs);
  } else if (n.IsScalar() && IsReference(n.Scalar())) {
    auto ref = ParseReference(n.Scalar());
    if (!ref.ok()) {
      L.Error(n, f, std::string(ref.status().message()));
      return;
    }
    if (ref->root == Reference::Root::kItem && !fanned_out) {
      L.Error(n, f, "$item is only defined in a step with for_each");
    }
    if (ref->root == Reference::Root::kStep) refs->push_back(ref->step);
  }
}

// The fields an agent's prompts read must be in the step's input. Where the
// input template holds a reference ("$steps.x") the shape is known only at run
// time, so the check stops there.
void CheckPromptFields(Loader& L, const AgentConfig& agent, const YAML::Node& where, const std::string& f,
                       const Json& input) {
  for (const auto* t : {&agent.system_prompt, &agent.prompt}) {
    if (!*t) continue;
    for (const auto& path : (*t)->Fields()) {
      const Json* v = &input;
      for (const std::string& key : path) {
        if (v->is_string() && IsReference(v->get<std::string>())) break;
        if (!v->is_object() || !v->contains(key)) {
          L.Error(where, f, absl::StrCat("agent '", agent.name, "' has a prompt that reads {{",
                                         absl::StrJoin(path, "."), "}}, which this input does not have"));
          break;
        }
        v = &(*v)[key];
      }
    }
  }
}

// `routes:` — each picks exactly one branch by a value: the steps of the
// case it equals, or the default's. Each routed step gets the when: that
// says so (a step is routed once and has no when: of its own), and waits
// for the step the value comes from.
void LoadRoutes(Loader& L, const YAML::Node& routes, const std::string& f, WorkflowConfig* w) {
  if (!routes.IsSequence()) {
    L.Error(routes, f, "expected a list of routes, each {on: REF, cases: {VALUE: [steps]}, default: [steps]}");
    return;
  }
  for (size_t i = 0; i < routes.size(); ++i) {
    const YAML::Node& r = routes[i];
    std::string rf = absl::StrCat(f, "[", i, "]");
    if (!L.Map(r, rf, {"on", "cases", "default"})) continue;
    YAML::Node on = r["on"];
    absl::StatusOr<Reference> ref = absl::InvalidArgumentError("expected a reference, such as $steps.classify.intent");
    if (on && on.IsScalar() && IsReference(on.Scalar())) ref = ParseReference(on.Scalar());
    if (!ref.ok() || ref->root == Reference::Root::kItem) {
      L.Error(on ? on : r, rf + ".on", ref.ok() ? "cannot route on $item" : std::string(ref.status().message()));
      continue;
    }
    // Step -> the values that send the task to it (in file order); null for
    // the default's steps.
    std::vector<std::pair<std::string, nlohmann::json>> branches;
    nlohmann::json all_values = nlohmann::json::array();
    auto add = [&](const YAML::Node& ids, const std::string& field, const nlohmann::json& value) {
      std::vector<std::string> list;
      if (ids.IsScalar()) {
        list.push_back(ids.Scalar());
      } else if (ids.IsSequence()) {
        for (const auto& id : ids) list.push_back(id.Scalar());
      } else {
        L.Error(ids, field, "expected a step id or a list of step ids");
      }
      for (const auto& id : list) {
        auto it = std::find_if(branches.begin(), branches.end(), [&](const auto& b) { return b.first == id; });
        if (it == branches.end()) {
          branches.push_back({id, value.is_null() ? nlohmann::json() : nlohmann::json::array({value})});
        } else if (value.is_null() || it->second.is_null()) {
          L.Error(ids, field, "step '" + id + "' is both a case and the default");
        } else {
          it->second.push_back(value);
        }
      }
    };
    YAML::Node cases = r["cases"];
    if (!cases || !cases.IsMap() || cases.size() == 0) {
      L.Error(cases ? cases : r, rf + ".cases", "expected a map from values to the steps they run");
      continue;
    }
    for (auto it = cases.begin(); it != cases.end(); ++it) {
      // YAML's scalars: a number or true/false as itself, anything else as text.
      nlohmann::json value = L.ToJson(it->first);
      if (!value.is_string() && !value.is_number() && !value.is_boolean()) {
        L.Error(it->first, rf + ".cases", "a case is a string, a number or true/false");
        continue;
      }
      all_values.push_back(value);
      add(it->second, rf + ".cases." + it->first.Scalar(), value);
    }
    if (YAML::Node d = r["default"]) add(d, rf + ".default", nullptr);
    for (const auto& [id, values] : branches) {
      StepConfig* step = nullptr;
      for (auto& st : w->steps) step = st.id == id ? &st : step;
      if (step == nullptr) {
        L.Error(r, rf, "routes to unknown step '" + id + "'");
        continue;
      }
      if (step->when) {
        L.Error(r, rf, "step '" + id + "' is routed twice or has a when: of its own");
        continue;
      }
      auto value_ref = std::make_unique<Condition>();
      value_ref->kind = Condition::Kind::kRef;
      value_ref->ref = *ref;
      auto list = std::make_unique<Condition>();
      list->literal = values.is_null() ? all_values : values;
      auto when = std::make_shared<Condition>();
      when->kind = values.is_null() ? Condition::Kind::kNotIn : Condition::Kind::kIn;
      when->children.push_back(std::move(value_ref));
      when->children.push_back(std::move(list));
      step->when_text = absl::StrCat("routed: ", on.Scalar(), values.is_null() ? " not in " : " in ",
                                     (values.is_null() ? all_values : values).dump());
      step->when = std::move(when);
      if (ref->root == Reference::Root::kStep &&
          std::find(step->depends_on.begin(), step->depends_on.end(), ref->step) == step->depends_on.end()) {
        step->depends_on.push_back(ref->step);
      }
    }
  }
}

// `wait: {signal, timeout, on_timeout}` of a wait step or of a needs_info.
std::optional<WaitConfig> LoadWait(Loader& L, const YAML::Node& wait, const std::string& f, const WorkflowConfig& w) {
  if (!L.Map(wait, f, {"signal", "timeout", "on_timeout"})) return std::nullopt;
  WaitConfig wc;
  if (L.String(wait, "signal", f, &wc.signal, true) && !std::regex_match(wc.signal, NameRegex())) {
    L.Error(wait["signal"], f + ".signal", "must match [a-z][a-z0-9_-]* (at most 63 characters)");
  }
  if (!L.Duration(wait, "timeout", f, &wc.timeout) && !wait["timeout"]) {
    L.Error(wait, f + ".timeout", "required: how long to wait (shorter than the workflow's deadline)");
  } else if (wait["timeout"] && wc.timeout >= w.deadline) {
    L.Error(wait["timeout"], f + ".timeout",
            absl::StrCat("must be shorter than the workflow's deadline (", absl::FormatDuration(w.deadline),
                         "), or the task fails before the timeout's branch can run"));
  }
  L.Enum<bool>(wait, "on_timeout", f, {{"continue", false}, {"fail", true}}, &wc.fail_on_timeout);
  return wc;
}

// `signals:` of an agent step (the planner of a rescope is checked once
// every step is loaded).
void LoadStepSignals(Loader& L, const YAML::Node& n, const std::string& f, const FleetConfig& cfg,
                     const WorkflowConfig& w, StepSignalsConfig* out) {
  if (!L.Map(n, f, {"needs_info", "rescope", "delegate"})) return;
  if (YAML::Node d = n["delegate"]) {
    L.Error(d, f + ".delegate", "an agent delegates by planning sub-steps: give the step a spawn:");
  }
  if (YAML::Node ni = n["needs_info"]; ni && L.Map(ni, f + ".needs_info", {"agent", "wait", "emit", "max_questions"})) {
    NeedsInfoConfig c;
    std::string nf = f + ".needs_info";
    if (L.String(ni, "agent", nf, &c.agent) && (cfg.agents.count(c.agent) == 0 || cfg.agents.at(c.agent).action)) {
      L.Error(ni["agent"], nf + ".agent", "unknown agent '" + c.agent + "'");
    }
    if (YAML::Node wait = ni["wait"]) c.wait = LoadWait(L, wait, nf + ".wait", w);
    if (static_cast<bool>(ni["agent"]) == static_cast<bool>(ni["wait"])) {
      L.Error(ni, nf, "give exactly one of agent (an agent answers) or wait (a signal from outside answers)");
    }
    if (L.String(ni, "emit", nf, &c.emit)) {
      if (!std::regex_match(c.emit, TopicRegex())) {
        L.Error(ni["emit"], nf + ".emit", "not a Kafka topic name ([a-zA-Z0-9._-], at most 249 characters)");
      } else if (!ni["wait"]) {
        L.Error(ni["emit"], nf + ".emit", "only a question that waits for an answer from outside is published");
      }
    }
    L.Number<int>(ni, "max_questions", nf, &c.max_questions, 1, 100);
    out->needs_info = c;
  }
  if (YAML::Node r = n["rescope"]; r && L.Map(r, f + ".rescope", {"planner"})) {
    L.String(r, "planner", f + ".rescope", &out->rescope_planner, /*required=*/true);
  }
}

// Where a step's input or for_each could carry one of the workflow's
// secret_inputs to an agent or a child workflow: a $task reference to the
// secret field, to an object holding it, or to a field inside it.
void CheckSecretRefs(Loader& L, const YAML::Node& n, const std::string& f, const WorkflowConfig& w,
                     const std::string& to) {
  if (n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it) CheckSecretRefs(L, it->second, f + "." + it->first.Scalar(), w, to);
  } else if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i) CheckSecretRefs(L, n[i], absl::StrCat(f, "[", i, "]"), w, to);
  } else if (n.IsScalar() && IsReference(n.Scalar())) {
    auto ref = ParseReference(n.Scalar());
    if (!ref.ok() || ref->root != Reference::Root::kTask) return;
    for (const auto& secret : w.secret_inputs) {
      size_t common = std::min(secret.size(), ref->path.size());
      if (!std::equal(secret.begin(), secret.begin() + common, ref->path.begin())) continue;
      L.Error(n, f, absl::StrCat(n.Scalar(), " would send the secret input '", absl::StrJoin(secret, "."), "' to ", to,
                                 " (secret_inputs never leave the coordinator)"));
      return;
    }
  }
}

void CheckSecretInputs(Loader& L, const WorkflowConfig& w, const YAML::Node& steps, const std::string& f) {
  for (size_t i = 0; i < steps.size(); ++i) {
    const StepConfig* step = steps[i].IsMap() && steps[i]["id"] ? w.FindStep(steps[i]["id"].Scalar()) : nullptr;
    if (step == nullptr) continue;
    const StepConfig& s = *step;
    std::string to = s.action                        ? "action '" + s.agent + "' (an external system)"
                     : !s.agent.empty()              ? "agent '" + s.agent + "'"
                     : !s.child_workflow.empty()     ? "child workflow '" + s.child_workflow + "'"
                                                     : "";
    if (to.empty()) continue;  // a wait step sends nothing
    std::string sf = absl::StrCat(f, ".steps[", i, "]");
    if (YAML::Node in = steps[i]["input"]) CheckSecretRefs(L, in, sf + ".input", w, to);
    if (YAML::Node fe = steps[i]["for_each"]) CheckSecretRefs(L, fe, sf + ".for_each", w, to);
  }
}

// Agent signals: a planner the step reaches, answer signals no other wait uses.
void CheckStepSignals(Loader& L, const WorkflowConfig& w, const std::map<std::string, YAML::Node>& nodes,
                      const std::string& f) {
  std::map<std::string, std::string> signal_owner;  // signal name -> the step that waits for it
  for (const auto& s : w.steps) {
    if (s.wait) signal_owner.emplace(s.wait->signal, s.id);
  }
  for (size_t i = 0; i < w.steps.size(); ++i) {
    const StepConfig& s = w.steps[i];
    std::string sf = absl::StrCat(f, ".steps[", i, "].signals");
    auto node = nodes.find(s.id);
    if (node == nodes.end()) continue;
    YAML::Node n = node->second["signals"];
    if (!s.signals.rescope_planner.empty()) {
      const std::string& p = s.signals.rescope_planner;
      const StepConfig* planner = w.FindStep(p);
      if (!w.DependsOn(s.id, p)) {
        L.Error(n["rescope"]["planner"], sf + ".rescope.planner",
                planner ? "step '" + p + "' is neither this step nor one it depends on, so re-running it "
                          "would not re-plan this step's work"
                        : "unknown step '" + p + "'");
      } else if (planner != nullptr && planner->agent.empty()) {
        L.Error(n["rescope"]["planner"], sf + ".rescope.planner",
                "step '" + p + "' calls no agent (a wait or child-workflow step): nothing would read the reason");
      }
    }
    if (s.signals.needs_info && s.signals.needs_info->wait) {
      const std::string& name = s.signals.needs_info->wait->signal;
      auto [it, fresh] = signal_owner.emplace(name, s.id);
      if (!fresh) {
        L.Error(n["needs_info"]["wait"]["signal"], sf + ".needs_info.wait.signal",
                "signal '" + name + "' is already waited for by step '" + it->second + "'");
      }
    }
  }
}

// A list of field paths of the task's input ("customer.ssn").
void LoadFieldPaths(Loader& L, const YAML::Node& n, const char* key, const std::string& f,
                    std::vector<std::vector<std::string>>* out) {
  YAML::Node list = n[key];
  if (!list) return;
  if (!list.IsSequence()) {
    L.Error(list, L.Join(f, key), "expected a list of fields of the task's input, such as customer.ssn");
    return;
  }
  for (const auto& s : list) {
    std::vector<std::string> path = absl::StrSplit(s.Scalar(), '.');
    if (!s.IsScalar() || absl::c_any_of(path, [](const std::string& p) { return p.empty(); })) {
      L.Error(s, L.Join(f, key), "expected a field path such as customer.ssn");
      continue;
    }
    out->push_back(std::move(path));
  }
}

// Whether a reference reads untrusted text: a task field on (or holding, or
// inside) an untrusted path, a tainted step's output, or a tainted item.
bool ReadsUntrusted(const Reference& ref, const WorkflowConfig& w, const std::set<std::string>& tainted,
                    bool item_tainted) {
  switch (ref.root) {
    case Reference::Root::kTask:
      for (const auto& u : w.untrusted_inputs) {
        size_t common = std::min(u.size(), ref.path.size());
        if (std::equal(u.begin(), u.begin() + common, ref.path.begin())) return true;
      }
      return false;
    case Reference::Root::kStep:
      return tainted.count(ref.step) > 0;
    case Reference::Root::kItem:
      return item_tainted;
  }
  return false;
}

bool TemplateReadsUntrusted(const nlohmann::json& t, const WorkflowConfig& w, const std::set<std::string>& tainted,
                            bool item_tainted) {
  if (t.is_object() || t.is_array()) {
    for (const auto& v : t) {
      if (TemplateReadsUntrusted(v, w, tainted, item_tainted)) return true;
    }
    return false;
  }
  if (!t.is_string() || !IsReference(t.get<std::string>())) return false;
  auto ref = ParseReference(t.get<std::string>());
  return ref.ok() && ReadsUntrusted(*ref, w, tainted, item_tainted);
}

// Prompt-injection containment: which step inputs carry untrusted text, and
// which outputs derive from it (a fixpoint over the DAG); a system prompt
// never reads any of it.
void DeriveUntrusted(Loader& L, const FleetConfig& cfg, WorkflowConfig* w, const YAML::Node& steps,
                     const std::string& f) {
  std::set<std::string> tainted;
  for (bool changed = true; changed;) {
    changed = false;
    for (StepConfig& s : w->steps) {
      bool item = s.for_each && ReadsUntrusted(*s.for_each, *w, tainted, false);
      s.untrusted_fields.clear();
      if (s.input.is_object()) {
        for (const auto& [key, value] : s.input.items()) {
          if (TemplateReadsUntrusted(value, *w, tainted, item)) s.untrusted_fields.push_back(key);
        }
      } else if (TemplateReadsUntrusted(s.input, *w, tainted, item)) {
        s.untrusted_fields.push_back("*");
      }
      const AgentConfig* agent = cfg.FindAgent(s.agent);
      bool out = !s.screen && s.wait == std::nullopt &&
                 (!s.untrusted_fields.empty() || s.action || (agent != nullptr && !agent->tools.empty()));
      if (out && !s.tainted_output) {
        s.tainted_output = true;
        tainted.insert(s.id);
        changed = true;
      }
    }
  }
  for (size_t i = 0; i < steps.size(); ++i) {
    const StepConfig* s = steps[i].IsMap() && steps[i]["id"] ? w->FindStep(steps[i]["id"].Scalar()) : nullptr;
    const AgentConfig* agent = s ? cfg.FindAgent(s->agent) : nullptr;
    if (agent == nullptr || !agent->system_prompt || s->untrusted_fields.empty()) continue;
    for (const auto& field : agent->system_prompt->Fields()) {
      std::string top = field.empty() ? "*" : field[0];
      bool all = s->untrusted_fields[0] == "*";
      if (!all && absl::c_find(s->untrusted_fields, top) == s->untrusted_fields.end()) continue;
      YAML::Node at = steps[i]["input"] && steps[i]["input"].IsMap() && steps[i]["input"][top] ? steps[i]["input"][top]
                                                                                              : steps[i];
      L.Error(at, absl::StrCat(f, ".steps[", i, "].input", all ? "" : "." + top),
              absl::StrCat("agent '", agent->name, "''s system_prompt reads {{", absl::StrJoin(field, "."),
                           "}}, which is untrusted here: untrusted text never goes into a system prompt (put it in "
                           "the prompt, where the worker delimits it)"));
      break;
    }
  }
}

void LoadWorkflow(Loader& L, const YAML::Node& n, const std::string& f, const FleetConfig& cfg,
                  WorkflowConfig* w) {
  if (!L.Map(n, f, {"description", "steps", "output", "deadline", "budget", "routes", "emit",
                   "max_replans", "secret_inputs", "untrusted_inputs"})) {
    return;
  }
  L.Duration(n, "deadline", f, &w->deadline);
  L.Number<int>(n, "max_replans", f, &w->max_replans, 0, 100);
  LoadFieldPaths(L, n, "secret_inputs", f, &w->secret_inputs);
  LoadFieldPaths(L, n, "untrusted_inputs", f, &w->untrusted_inputs);
  if (L.String(n, "emit", f, &w->emit) && !std::regex_match(w->emit, TopicRegex())) {
    L.Error(n["emit"], f + ".emit", "not a Kafka topic name ([a-zA-Z0-9._-], at most 249 characters)");
  }
  if (YAML::Node b = n["budget"];
      b && L.Map(b, f + ".budget", {"max_tokens", "max_cost_usd", "max_steps", "downgrade_at"})) {
    L.Number<int64_t>(b, "max_tokens", f + ".budget", &w->budget.max_tokens, 0);
    L.Number<double>(b, "max_cost_usd", f + ".budget", &w->budget.max_cost_usd, 0.0);
    L.Number<int64_t>(b, "max_steps", f + ".budget", &w->budget.max_steps, 0);
    L.Number<double>(b, "downgrade_at", f + ".budget", &w->budget.downgrade_at, 0.0, 1.0);
  }
  YAML::Node steps = n["steps"];
  if (!steps || !steps.IsSequence() || steps.size() == 0) {
    L.Error(steps ? steps : n, f + ".steps", "expected a non-empty list of steps");
    return;
  }
  std::map<std::string, YAML::Node> step_nodes;
  for (size_t i = 0; i < steps.size(); ++i) {
    const YAML::Node& s = steps[i];
    std::string sf = absl::StrCat(f, ".steps[", i, "]");
    if (!L.Map(s, sf, {"id", "agent", "action", "input", "for_each", "after", "model_tier", "optional", "spawn", "when",
                       "wait", "emit", "workflow", "budget", "signals", "screen"})) {
      continue;
    }
    StepConfig step;
    if (L.String(s, "id", sf, &step.id, true)) {
      if (!std::regex_match(step.id, NameRegex())) {
        L.Error(s["id"], sf + ".id", "must match [a-z][a-z0-9_-]* (at most 63 characters)");
      }
      if (step_nodes.count(step.id)) L.Error(s["id"], sf + ".id", "duplicate step id '" + step.id + "'");
      step_nodes[step.id] = s;
    }
    if (YAML::Node child = s["workflow"]) {
      // A child workflow: no agent of its own (checked to exist once every workflow is loaded).
      for (const char* key : {"agent", "wait", "for_each", "model_tier", "spawn"}) {
        if (s[key]) L.Error(s[key], sf + "." + key, "a child-workflow step takes no " + std::string(key));
      }
      L.String(s, "workflow", sf, &step.child_workflow, true);
      if (YAML::Node b = s["budget"]; b && L.Map(b, sf + ".budget", {"max_tokens", "max_cost_usd"})) {
        L.Number<int64_t>(b, "max_tokens", sf + ".budget", &step.child_max_tokens, 0);
        L.Number<double>(b, "max_cost_usd", sf + ".budget", &step.child_max_cost_usd, 0.0);
      }
    } else if (YAML::Node b = s["budget"]) {
      L.Error(b, sf + ".budget", "only a child-workflow step (workflow:) takes a budget");
    } else if (YAML::Node wait = s["wait"]) {
      // A wait step calls no agent: only id, wait, when and after apply.
      for (const char* key : {"agent", "input", "for_each", "model_tier", "optional", "spawn"}) {
        if (s[key]) L.Error(s[key], sf + "." + key, "a wait step calls no agent, so it takes no " + std::string(key));
      }
      step.wait = LoadWait(L, wait, sf + ".wait", *w);
    } else if (YAML::Node screen = s["screen"]) {
      // The built-in prompt-injection detector, run by the coordinator.
      for (const char* key : {"agent", "action", "for_each", "model_tier", "spawn", "signals", "optional"}) {
        if (s[key]) L.Error(s[key], sf + "." + key, "a screen step calls no agent, so it takes no " + std::string(key));
      }
      if (!screen.IsScalar() || screen.Scalar() != "builtin") {
        L.Error(screen, sf + ".screen", "expected builtin (the built-in prompt-injection detector)");
      }
      if (!s["input"]) L.Error(s, sf + ".input", "a screen step needs an input: the text to scan");
      step.screen = true;
    } else if (YAML::Node act = s["action"]) {
      // An action: an HTTP request built from the step's input, once per effect.
      for (const char* key : {"agent", "model_tier", "spawn", "signals"}) {
        if (s[key]) L.Error(s[key], sf + "." + key, "an action step takes no " + std::string(key));
      }
      const AgentConfig* a = L.String(s, "action", sf, &step.agent, true) ? cfg.FindAgent(step.agent) : nullptr;
      if (a == nullptr || !a->action) L.Error(act, sf + ".action", "unknown action '" + step.agent + "'");
      step.action = true;
    } else if (L.String(s, "agent", sf, &step.agent, true)) {
      const AgentConfig* a = cfg.FindAgent(step.agent);
      if (a == nullptr) {
        L.Error(s["agent"], sf + ".agent", "unknown agent '" + step.agent + "'");
      } else if (a->action) {
        L.Error(s["agent"], sf + ".agent", "'" + step.agent + "' is an action; use action: " + step.agent);
      }
    }
    std::vector<std::string> refs;
    if (YAML::Node fe = s["for_each"]) {
      if (!fe.IsScalar() || !IsReference(fe.Scalar())) {
        L.Error(fe, sf + ".for_each", "expected a reference to a list, such as $task.sources");
      } else if (auto ref = ParseReference(fe.Scalar()); !ref.ok()) {
        L.Error(fe, sf + ".for_each", std::string(ref.status().message()));
      } else if (ref->root == Reference::Root::kItem) {
        L.Error(fe, sf + ".for_each", "cannot fan out over $item");
      } else {
        step.for_each = *ref;
        if (ref->root == Reference::Root::kStep) refs.push_back(ref->step);
      }
    }
    if (YAML::Node in = s["input"]) {
      CheckTemplate(L, in, sf + ".input", step.for_each.has_value(), &refs);
      step.input = L.ToJson(in);
    }
    L.Bool(s, "optional", sf, &step.optional);
    if (L.String(s, "emit", sf, &step.emit) && !std::regex_match(step.emit, TopicRegex())) {
      L.Error(s["emit"], sf + ".emit", "not a Kafka topic name ([a-zA-Z0-9._-], at most 249 characters)");
    }
    if (YAML::Node sp = s["spawn"]; sp && L.Map(sp, sf + ".spawn", {"field", "agents", "max", "into"})) {
      SpawnConfig spawn;
      L.String(sp, "field", sf + ".spawn", &spawn.field, /*required=*/true);
      L.String(sp, "into", sf + ".spawn", &spawn.into);
      L.Number<int>(sp, "max", sf + ".spawn", &spawn.max, 1, 10000);
      YAML::Node agents = sp["agents"];
      if (!agents || !agents.IsSequence() || agents.size() == 0) {
        L.Error(agents ? agents : sp, sf + ".spawn.agents", "expected a non-empty list of the agents a sub-step may name");
      } else {
        for (const auto& a : agents) {
          if (const AgentConfig* known = cfg.FindAgent(a.Scalar()); known == nullptr || known->action) {
            L.Error(a, sf + ".spawn.agents", "unknown agent '" + a.Scalar() + "'");
          }
          spawn.agents.push_back(a.Scalar());
        }
      }
      if (step.for_each) L.Error(sp, sf + ".spawn", "a step cannot both fan out over a list (for_each) and spawn");
      step.spawn = spawn;
    }
    if (YAML::Node sig = s["signals"]) {
      if (step.agent.empty()) {
        L.Error(sig, sf + ".signals", "only an agent step's agent sends signals");
      } else {
        LoadStepSignals(L, sig, sf + ".signals", cfg, *w, &step.signals);
      }
    }
    if (const AgentConfig* agent = cfg.FindAgent(step.agent)) {
      CheckPromptFields(L, *agent, s["input"] ? s["input"] : s, sf + ".input", step.input);
      // The fallback agent gets the same input.
      if (agent->fallback && !agent->fallback->agent.empty()) {
        if (const AgentConfig* fb = cfg.FindAgent(agent->fallback->agent)) {
          CheckPromptFields(L, *fb, s["input"] ? s["input"] : s, sf + ".input", step.input);
        }
      }
    }
    L.String(s, "model_tier", sf, &step.model_tier);
    if (IsReference(step.model_tier)) {
      auto ref = ParseReference(step.model_tier);
      if (!ref.ok()) {
        L.Error(s["model_tier"], sf + ".model_tier", std::string(ref.status().message()));
      } else if (ref->root == Reference::Root::kItem) {
        L.Error(s["model_tier"], sf + ".model_tier", "a tier is read from $task or $steps, not $item");
      } else {
        step.model_tier_from = *ref;
        if (ref->root == Reference::Root::kStep) refs.push_back(ref->step);
      }
      step.model_tier = "default";
    } else if (const AgentConfig* agent = cfg.FindAgent(step.agent);
               agent != nullptr && agent->models.count(step.model_tier) == 0) {
      L.Error(s["model_tier"] ? s["model_tier"] : s, sf + ".model_tier",
              "agent '" + step.agent + "' has no model tier '" + step.model_tier + "'");
    }
    if (YAML::Node when = s["when"]) {
      LoadCondition(L, when, sf + ".when", &step, &refs);
    }
    if (YAML::Node after = s["after"]) {
      if (!after.IsSequence()) {
        L.Error(after, sf + ".after", "expected a list of step ids");
      } else {
        for (const auto& a : after) refs.push_back(a.Scalar());
      }
    }
    std::set<std::string> seen;
    for (const auto& r : refs) {
      if (seen.insert(r).second) step.depends_on.push_back(r);
    }
    w->steps.push_back(std::move(step));
  }
  if (YAML::Node routes = n["routes"]) LoadRoutes(L, routes, f + ".routes", w);
  // Dependencies name real steps, not the step itself.
  for (size_t i = 0; i < w->steps.size(); ++i) {
    for (const auto& d : w->steps[i].depends_on) {
      std::string sf = absl::StrCat(f, ".steps[", i, "]");
      if (d == w->steps[i].id) {
        L.Error(steps[i], sf, "step '" + d + "' depends on itself");
      } else if (step_nodes.count(d) == 0) {
        L.Error(steps[i], sf, "references unknown step '" + d + "'");
      }
    }
  }
  if (std::vector<std::string> cycle = w->DependencyCycle(); !cycle.empty()) {
    L.Error(step_nodes[cycle[cycle.size() - 2]], f + ".steps", "dependency cycle: " + absl::StrJoin(cycle, " -> "));
  }
  CheckStepSignals(L, *w, step_nodes, f);
  if (!w->secret_inputs.empty()) CheckSecretInputs(L, *w, steps, f);
  DeriveUntrusted(L, cfg, w, steps, f);
  // The output step: explicit, or the one step nothing depends on.
  if (L.String(n, "output", f, &w->output_step)) {
    if (!w->FindStep(w->output_step)) L.Error(n["output"], f + ".output", "unknown step '" + w->output_step + "'");
  } else {
    std::set<std::string> used;
    for (const auto& s : w->steps) used.insert(s.depends_on.begin(), s.depends_on.end());
    std::vector<std::string> sinks;
    for (const auto& s : w->steps) {
      if (!used.count(s.id)) sinks.push_back(s.id);
    }
    if (sinks.size() == 1) {
      w->output_step = sinks[0];
    } else if (sinks.size() > 1) {
      L.Error(n, f + ".output", "several final steps (" + absl::StrJoin(sinks, ", ") + "); name the one whose output is the task's");
    }
  }
  // Every run must yield the task's output: the step that gives it always runs.
  if (const StepConfig* out = w->FindStep(w->output_step); out != nullptr && out->when) {
    L.Error(step_nodes[out->id]["when"], f + ".steps", "step '" + out->id +
                                                           "' gives the workflow's output, so it cannot have a when: "
                                                           "(let a final step without one collect the branches)");
  }
}

void LoadTenants(Loader& L, const YAML::Node& tenants, FleetConfig* cfg) {
  if (!L.Map(tenants, "tenants", {})) return;
  for (auto it = tenants.begin(); it != tenants.end(); ++it) {
    std::string f = "tenants." + it->first.Scalar();
    TenantConfig t;
    if (!L.Map(it->second, f, {"period", "max_cost_usd", "max_tokens", "on_exhausted", "weight"})) continue;
    using P = TenantConfig::Period;
    L.Enum<P>(it->second, "period", f, {{"hour", P::kHour}, {"day", P::kDay}, {"month", P::kMonth}}, &t.period);
    L.Number<double>(it->second, "max_cost_usd", f, &t.max_cost_usd, 0.0);
    L.Number<int64_t>(it->second, "max_tokens", f, &t.max_tokens, 0);
    if (it->second["weight"] && L.Number<double>(it->second, "weight", f, &t.weight, 0.001, 1000.0)) {
      // A weight alone is fine: the tenant has no budget of its own.
    } else if (t.max_cost_usd == 0 && t.max_tokens == 0) {
      L.Error(it->second, f, "give max_cost_usd, max_tokens or both (or a weight)");
    }
    using O = TenantConfig::OnExhausted;
    L.Enum<O>(it->second, "on_exhausted", f, {{"hold", O::kHold}, {"reject", O::kReject}}, &t.on_exhausted);
    cfg->tenants[it->first.Scalar()] = t;
  }
}

void LoadSpendLimit(Loader& L, const YAML::Node& n, FleetConfig* cfg) {
  const std::string f = "spend_limit";
  if (!L.Map(n, f, {"period", "max_cost_usd", "max_tokens"})) return;
  TenantConfig t;
  using P = TenantConfig::Period;
  L.Enum<P>(n, "period", f, {{"hour", P::kHour}, {"day", P::kDay}, {"month", P::kMonth}}, &t.period);
  L.Number<double>(n, "max_cost_usd", f, &t.max_cost_usd, 0.0);
  L.Number<int64_t>(n, "max_tokens", f, &t.max_tokens, 0);
  if (!t.has_limits()) L.Error(n, f, "give max_cost_usd, max_tokens or both");
  t.on_exhausted = TenantConfig::OnExhausted::kHold;  // non-critical work waits; nothing fails
  cfg->spend_limit = t;
}

void LoadProviders(Loader& L, const YAML::Node& providers, FleetConfig* cfg) {
  if (!L.Map(providers, "providers", {})) return;
  for (auto it = providers.begin(); it != providers.end(); ++it) {
    ProviderConfig p;
    p.name = it->first.Scalar();
    LoadProvider(L, it->second, "providers." + p.name, &p);
    cfg->providers[p.name] = p;
  }
}

void LoadPricing(Loader& L, const YAML::Node& pricing, FleetConfig* cfg) {
  if (!L.Map(pricing, "pricing", {})) return;
  for (auto it = pricing.begin(); it != pricing.end(); ++it) {
    std::string f = "pricing." + it->first.Scalar();
    ModelPrice price;
    if (L.Map(it->second, f, {"input_per_mtok", "output_per_mtok", "batch_discount"})) {
      if (!it->second["input_per_mtok"] || !it->second["output_per_mtok"]) {
        L.Error(it->second, f, "needs input_per_mtok and output_per_mtok (USD per million tokens)");
      }
      L.Number<double>(it->second, "input_per_mtok", f, &price.input_per_mtok, 0.0);
      L.Number<double>(it->second, "output_per_mtok", f, &price.output_per_mtok, 0.0);
      L.Number<double>(it->second, "batch_discount", f, &price.batch_discount, 0.0, 1.0);
    }
    cfg->pricing[it->first.Scalar()] = price;
  }
}

// Agents need providers and pricing loaded; fallbacks name other agents.
void LoadAgents(Loader& L, const YAML::Node& root, FleetConfig* cfg) {
  YAML::Node agents = root["agents"];
  if (!agents) {
    L.Error(root, "agents", "is required");
    return;
  }
  if (!L.Map(agents, "agents", {})) return;
  for (auto it = agents.begin(); it != agents.end(); ++it) {
    AgentConfig a;
    a.name = it->first.Scalar();
    if (!std::regex_match(a.name, NameRegex())) {
      L.Error(it->first, "agents." + a.name, "agent names must match [a-z][a-z0-9_-]* (they name topics)");
    }
    LoadAgent(L, it->second, "agents." + a.name, *cfg, &a);
    cfg->agents[a.name] = std::move(a);
  }
  for (const auto& [name, agent] : cfg->agents) {
    if (agent.fallback && !agent.fallback->agent.empty() && cfg->agents.count(agent.fallback->agent) == 0) {
      L.Error(agents[name]["fallback"]["agent"], "agents." + name + ".fallback.agent",
              "unknown agent '" + agent.fallback->agent + "'");
    }
  }
}

// An action's URL template: http(s), a literal host, {field} placeholders in
// the path and query only. Returns the host ("" after an error).
std::string CheckUrlTemplate(Loader& L, const YAML::Node& n, const std::string& f, const std::string& url,
                             const std::set<std::string>& names) {
  static const std::regex kUrl("^https?://([A-Za-z0-9.-]+)(:[0-9]{1,5})?(/[^\\s]*)?$");
  if (url.find("${") != std::string::npos) {
    L.Error(n, f, "a URL cannot read the environment (${...}): it is logged and audited; secrets go in secret_headers");
    return "";
  }
  std::smatch m;
  if (!std::regex_match(url, m, kUrl)) {
    L.Error(n, f, "expected http(s)://HOST[:PORT]/PATH with a literal host ({field} only in the path), got '" + url + "'");
    return "";
  }
  std::string rest = m[3].str();
  static const std::regex kPlaceholder("\\{([^{}]*)\\}");
  for (auto it = std::sregex_iterator(rest.begin(), rest.end(), kPlaceholder); it != std::sregex_iterator(); ++it) {
    std::string name = (*it)[1].str();
    if (!std::regex_match(name, std::regex("^[A-Za-z_][A-Za-z0-9_]*$"))) {
      L.Error(n, f, "placeholder {" + name + "} is not a field name");
    } else if (!names.empty() && names.count(name) == 0) {
      L.Error(n, f, "placeholder {" + name + "} is not one of " + absl::StrJoin(names, ", "));
    }
  }
  std::string unbalanced = std::regex_replace(rest, kPlaceholder, "");
  if (unbalanced.find_first_of("{}") != std::string::npos) L.Error(n, f, "unbalanced { } in '" + url + "'");
  return absl::AsciiStrToLower(m[1].str());
}

void LoadAction(Loader& L, const YAML::Node& n, const std::string& f, AgentConfig* a) {
  if (!L.Map(n, f, {"description", "method", "url", "headers", "secret_headers", "schema", "policy", "on_unknown",
                    "status_url", "timeout", "max_attempts", "retry", "heartbeat_timeout", "schedule_to_start_timeout",
                    "max_response_bytes", "record_payload"})) {
    return;
  }
  auto action = std::make_shared<ActionConfig>();
  L.String(n, "description", f, &a->description);
  L.Enum<std::string>(n, "method", f, {{"POST", "POST"}, {"PUT", "PUT"}, {"PATCH", "PATCH"}, {"DELETE", "DELETE"}},
                      &action->method);
  if (YAML::Node s = n["schema"]) action->schema = LoadSchema(L, s, f + ".schema");
  std::set<std::string> fields;
  if (YAML::Node props = n["schema"] ? n["schema"]["properties"] : YAML::Node(); props && props.IsMap()) {
    for (auto it = props.begin(); it != props.end(); ++it) fields.insert(it->first.Scalar());
  }
  if (L.String(n, "url", f, &action->url, /*required=*/true)) {
    action->host = CheckUrlTemplate(L, n["url"], f + ".url", action->url, fields);
  }
  LoadPlainHeaders(L, n, f, &action->headers);
  LoadSecretHeaders(L, n, f, &action->secret_headers);
  if (YAML::Node p = n["policy"];
      p && L.Map(p, f + ".policy", {"allowed_hosts", "max_bytes", "scan_secrets", "redact_pii", "strip_markup"})) {
    SanitizePolicy& policy = action->policy;
    if (YAML::Node hosts = p["allowed_hosts"]) {
      if (!hosts.IsSequence()) {
        L.Error(hosts, f + ".policy.allowed_hosts", "expected a list of host names");
      } else {
        for (const auto& h : hosts) policy.allowed_hosts.push_back(absl::AsciiStrToLower(h.Scalar()));
      }
    }
    L.Number<size_t>(p, "max_bytes", f + ".policy", &policy.max_bytes, size_t{2}, size_t{64} << 20);
    L.Bool(p, "scan_secrets", f + ".policy", &policy.scan_secret_shapes);
    L.Bool(p, "redact_pii", f + ".policy", &policy.redact_pii);
    L.Bool(p, "strip_markup", f + ".policy", &policy.strip_markup);
  }
  using U = ActionConfig::OnUnknown;
  L.Enum<U>(n, "on_unknown", f, {{"retry", U::kRetry}, {"status", U::kStatus}, {"stop", U::kStop}}, &action->on_unknown);
  if (L.String(n, "status_url", f, &action->status_url)) {
    std::string host = CheckUrlTemplate(L, n["status_url"], f + ".status_url", action->status_url, {"effect_id"});
    if (action->status_url.find("{effect_id}") == std::string::npos) {
      L.Error(n["status_url"], f + ".status_url", "must contain {effect_id} (how the system finds the effect)");
    } else if (!host.empty() && host != action->host && !HostAllowed(action->policy, host)) {
      L.Error(n["status_url"], f + ".status_url", "host '" + host + "' is neither the url's nor in policy.allowed_hosts");
    }
  }
  if ((action->on_unknown == U::kStatus) != !action->status_url.empty()) {
    L.Error(n["status_url"] ? n["status_url"] : n, f + ".status_url",
            action->on_unknown == U::kStatus ? "is required with on_unknown: status"
                                             : "applies only with on_unknown: status");
  }
  L.Number<size_t>(n, "max_response_bytes", f, &action->max_response_bytes, size_t{1}, size_t{64} << 20);
  L.Bool(n, "record_payload", f, &action->record_payload);
  a->timeout = absl::Seconds(30);
  a->max_attempts = 5;
  L.Duration(n, "timeout", f, &a->timeout);
  L.Duration(n, "schedule_to_start_timeout", f, &a->schedule_to_start_timeout);
  L.Duration(n, "heartbeat_timeout", f, &a->heartbeat_timeout);
  L.Number<int>(n, "max_attempts", f, &a->max_attempts, 1, 100);
  LoadRetry(L, n, f, &a->retry);
  a->provider = kActionProvider;
  a->models = {{"default", "@action"}};
  a->max_tokens = 0;
  a->action = std::move(action);
}

// Actions become agents of their own kind (AgentConfig::action): they share
// the agents' names (one work topic each) and their dispatch.
void LoadActions(Loader& L, const YAML::Node& actions, FleetConfig* cfg) {
  if (!L.Map(actions, "actions", {})) return;
  for (auto it = actions.begin(); it != actions.end(); ++it) {
    AgentConfig a;
    a.name = it->first.Scalar();
    std::string f = "actions." + a.name;
    if (!std::regex_match(a.name, NameRegex())) {
      L.Error(it->first, f, "action names must match [a-z][a-z0-9_-]* (they name topics)");
    }
    if (cfg->agents.count(a.name)) {
      L.Error(it->first, f, "an agent has this name too (agents and actions share work topics)");
      continue;
    }
    LoadAction(L, it->second, f, &a);
    cfg->agents[a.name] = std::move(a);
  }
}

// Workflows need the agents loaded.
void LoadWorkflows(Loader& L, const YAML::Node& root, FleetConfig* cfg) {
  YAML::Node workflows = root["workflows"];
  if (!workflows) {
    L.Error(root, "workflows", "is required");
    return;
  }
  if (!L.Map(workflows, "workflows", {})) return;
  for (auto it = workflows.begin(); it != workflows.end(); ++it) {
    WorkflowConfig w;
    w.name = it->first.Scalar();
    LoadWorkflow(L, it->second, "workflows." + w.name, *cfg, &w);
    cfg->workflows[w.name] = std::move(w);
  }
  // Child workflows name workflows of this file (any order; recursion is
  // bounded at run time by coordinator.max_child_depth).
  for (auto it = workflows.begin(); it != workflows.end(); ++it) {
    const WorkflowConfig& w = cfg->workflows[it->first.Scalar()];
    YAML::Node steps = it->second["steps"];
    for (size_t i = 0; i < w.steps.size() && steps && steps.IsSequence() && i < steps.size(); ++i) {
      const std::string& child = w.steps[i].child_workflow;
      if (!child.empty() && cfg->workflows.count(child) == 0) {
        L.Error(steps[i]["workflow"], absl::StrCat("workflows.", w.name, ".steps[", i, "].workflow"),
                "unknown workflow '" + child + "'");
      }
    }
  }
}

void LoadCoordinator(Loader& L, const YAML::Node& c, CoordinatorConfig* cc) {
  if (!L.Map(c, "coordinator", {"group_id", "max_payload_bytes", "processing", "commit_policy", "commit_interval",
                                "finished_retention", "transaction_timeout", "lag_interval", "capacity_drain_time",
                                "static_membership", "max_child_depth"})) {
    return;
  }
  L.String(c, "group_id", "coordinator", &cc->group_id);
  L.Number<size_t>(c, "max_payload_bytes", "coordinator", &cc->max_payload_bytes, 1024);
  using P = CoordinatorConfig::Processing;
  L.Enum<P>(c, "processing", "coordinator", {{"exactly_once", P::kExactlyOnce}, {"at_least_once", P::kAtLeastOnce}},
            &cc->processing);
  using C = CoordinatorConfig::CommitPolicy;
  L.Enum<C>(c, "commit_policy", "coordinator", {{"adaptive", C::kAdaptive}, {"interval", C::kInterval}},
            &cc->commit_policy);
  L.Duration(c, "commit_interval", "coordinator", &cc->commit_interval);
  L.Duration(c, "finished_retention", "coordinator", &cc->finished_retention);
  L.Duration(c, "transaction_timeout", "coordinator", &cc->transaction_timeout);
  L.Duration(c, "lag_interval", "coordinator", &cc->lag_interval);
  if (L.Duration(c, "capacity_drain_time", "coordinator", &cc->capacity_drain_time) &&
      cc->capacity_drain_time < absl::Seconds(1)) {
    L.Error(c["capacity_drain_time"], "coordinator.capacity_drain_time", "must be at least 1s");
  }
  L.Bool(c, "static_membership", "coordinator", &cc->static_membership);
  L.Number<int>(c, "max_child_depth", "coordinator", &cc->max_child_depth, 1, 16);
}

void LoadTracing(Loader& L, const YAML::Node& t, TracingConfig* tc) {
  if (!L.Map(t, "tracing", {"otlp_endpoint", "export_interval", "timeout", "max_queue"})) return;
  L.String(t, "otlp_endpoint", "tracing", &tc->otlp_endpoint);
  const std::string& e = tc->otlp_endpoint;
  if (!e.empty() && e.rfind("http://", 0) != 0 && e.rfind("https://", 0) != 0) {
    L.Error(t["otlp_endpoint"], "tracing.otlp_endpoint", "expected an http:// or https:// URL, got '" + e + "'");
  }
  L.Duration(t, "export_interval", "tracing", &tc->export_interval);
  L.Duration(t, "timeout", "tracing", &tc->timeout);
  L.Number<size_t>(t, "max_queue", "tracing", &tc->max_queue, 1);
}

void LoadWorker(Loader& L, const YAML::Node& w, WorkerConfig* wc) {
  if (!L.Map(w, "worker", {"group_prefix", "max_in_flight", "max_payload_bytes", "heartbeat_interval",
                           "shutdown_grace", "receipt_delay", "stall_after", "pools"})) {
    return;
  }
  if (YAML::Node pools = w["pools"]) {
    if (!pools.IsSequence() || pools.size() == 0) {
      L.Error(pools, "worker.pools", "expected a non-empty list of worker pool names");
    } else {
      wc->pools.clear();
      for (const auto& p : pools) {
        if (!p.IsScalar() || p.Scalar().empty()) {
          L.Error(p, "worker.pools", "expected a pool name");
        } else {
          wc->pools.push_back(p.Scalar());
        }
      }
    }
  }
  L.String(w, "group_prefix", "worker", &wc->group_prefix);
  L.Number<int>(w, "max_in_flight", "worker", &wc->max_in_flight, 1, 100000);
  L.Number<size_t>(w, "max_payload_bytes", "worker", &wc->max_payload_bytes, 1024);
  L.Duration(w, "heartbeat_interval", "worker", &wc->heartbeat_interval);
  L.Duration(w, "shutdown_grace", "worker", &wc->shutdown_grace);
  L.Duration(w, "receipt_delay", "worker", &wc->receipt_delay);
  L.Duration(w, "stall_after", "worker", &wc->stall_after);
}

// What holds between sections: one size limit end to end (nothing is read
// that could not be written; unset payload limits follow
// kafka.max_message_bytes), and heartbeat timeouts longer than the interval.
void CheckAcrossSections(Loader& L, const YAML::Node& root, FleetConfig* cfg) {
  if (!(root["coordinator"] && root["coordinator"]["max_payload_bytes"])) {
    cfg->coordinator.max_payload_bytes = cfg->kafka.max_message_bytes;
  }
  if (!(root["worker"] && root["worker"]["max_payload_bytes"])) {
    cfg->worker.max_payload_bytes = cfg->kafka.max_message_bytes;
  }
  for (const auto& [section, limit] : {std::pair<const char*, size_t>{"coordinator", cfg->coordinator.max_payload_bytes},
                                       {"worker", cfg->worker.max_payload_bytes}}) {
    if (limit > cfg->kafka.max_message_bytes) {
      YAML::Node at = root[section] && root[section]["max_payload_bytes"] ? root[section]["max_payload_bytes"]
                                                                          : YAML::Node(root);
      L.Error(at, std::string(section) + ".max_payload_bytes",
              absl::StrCat("must not exceed kafka.max_message_bytes (", cfg->kafka.max_message_bytes, ")"));
    }
  }
  // A heartbeat timeout shorter than the interval would time out healthy work.
  for (const auto& [name, agent] : cfg->agents) {
    if (agent.heartbeat_timeout <= cfg->worker.heartbeat_interval) {
      const char* section = agent.action ? "actions" : "agents";
      L.Error(root[section][name], std::string(section) + "." + name + ".heartbeat_timeout",
              "must be longer than worker.heartbeat_interval (" +
                  absl::FormatDuration(cfg->worker.heartbeat_interval) + ")");
    }
  }
}

// A trigger's `$event...` / `$key` strings, checked.
void CheckTriggerTemplate(Loader& L, const YAML::Node& n, const std::string& f) {
  if (n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it) CheckTriggerTemplate(L, it->second, f + "." + it->first.Scalar());
  } else if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i) CheckTriggerTemplate(L, n[i], absl::StrCat(f, "[", i, "]"));
  } else if (n.IsScalar() && absl::StartsWith(n.Scalar(), "$") && !absl::StartsWith(n.Scalar(), "$$") &&
             n.Scalar() != "$key" && n.Scalar() != "$event" && !absl::StartsWith(n.Scalar(), "$event.")) {
    L.Error(n, f, "a trigger's input reads $event, $event.FIELD or $key, not '" + n.Scalar() + "'");
  }
}

void LoadTriggers(Loader& L, const YAML::Node& triggers, FleetConfig* cfg) {
  if (!L.Map(triggers, "triggers", {})) return;
  std::set<std::string> topics;
  for (auto it = triggers.begin(); it != triggers.end(); ++it) {
    TriggerConfig t;
    t.name = it->first.Scalar();
    std::string f = "triggers." + t.name;
    YAML::Node key = it->first;  // copies: the iterator's pair is a temporary
    YAML::Node n = it->second;
    if (!std::regex_match(t.name, NameRegex())) L.Error(key, f, "must match [a-z][a-z0-9_-]* (at most 63 characters)");
    if (!L.Map(n, f, {"topic", "workflow", "task_id", "input", "tenant"})) continue;
    if (L.String(n, "topic", f, &t.topic, true)) {
      if (!std::regex_match(t.topic, TopicRegex())) {
        L.Error(n["topic"], f + ".topic", "not a Kafka topic name ([a-zA-Z0-9._-], at most 249 characters)");
      } else if (absl::StartsWith(t.topic, cfg->kafka.topic_prefix)) {
        L.Error(n["topic"], f + ".topic", "is one of the fleet's own topics (prefix '" + cfg->kafka.topic_prefix + "')");
      } else if (!topics.insert(t.topic).second) {
        L.Error(n["topic"], f + ".topic", "another trigger reads '" + t.topic + "'");
      }
    }
    if (L.String(n, "workflow", f, &t.workflow, true) && cfg->workflows.count(t.workflow) == 0) {
      L.Error(n["workflow"], f + ".workflow", "unknown workflow '" + t.workflow + "'");
    }
    std::string id = "$key";
    L.String(n, "task_id", f, &id);
    if (absl::StartsWith(id, "$event.") && id.size() > 7) {
      t.id_field = absl::StrSplit(id.substr(7), '.');
    } else if (id != "$key") {
      L.Error(n["task_id"], f + ".task_id", "expected $key or $event.FIELD, got '" + id + "'");
    }
    if (YAML::Node in = n["input"]) {
      CheckTriggerTemplate(L, in, f + ".input");
      t.input = L.ToJson(in);
    }
    L.String(n, "tenant", f, &t.tenant);
    cfg->triggers[t.name] = std::move(t);
  }
}

// The sections in the order they depend on each other.
void LoadRoot(Loader& L, const YAML::Node& root, FleetConfig* cfg) {
  if (!L.Map(root, "", {"kafka", "providers", "pricing", "agents", "workflows", "coordinator", "worker", "tenants", "tracing",
                        "triggers", "actions", "spend_limit"})) {
    return;
  }
  if (YAML::Node n = root["tenants"]) LoadTenants(L, n, cfg);
  if (YAML::Node n = root["spend_limit"]) LoadSpendLimit(L, n, cfg);
  if (YAML::Node n = root["kafka"]) LoadKafka(L, n, &cfg->kafka);
  if (YAML::Node n = root["providers"]) LoadProviders(L, n, cfg);
  if (YAML::Node n = root["pricing"]) LoadPricing(L, n, cfg);
  LoadAgents(L, root, cfg);
  if (YAML::Node n = root["actions"]) LoadActions(L, n, cfg);
  LoadWorkflows(L, root, cfg);
  if (YAML::Node n = root["triggers"]) LoadTriggers(L, n, cfg);
  if (YAML::Node n = root["coordinator"]) LoadCoordinator(L, n, &cfg->coordinator);
  if (YAML::Node n = root["tracing"]) LoadTracing(L, n, &cfg->tracing);
  if (YAML::Node n = root["worker"]) LoadWorker(L, n, &cfg->worker);
  CheckAcrossSections(L, root, cfg);
}

}  // namespace

absl::StatusOr<FleetConfig> LoadConfigString(const std::string& text, const std::string& source) {
  Loader loader(source);
  // YAML is Unicode, but yaml-cpp does not check: bytes that are not UTF-8
  // would reach prompts and schemas (and made JSON serialization throw; found
  // by fuzz/config_fuzzer). nlohmann's serializer finds the first bad byte.
  try {
    (void)Json(text).dump();
  } catch (const Json::type_error& e) {
    std::string what = e.what();
    size_t at = what.find("index ");
    size_t index = at == std::string::npos ? 0 : std::strtoul(what.c_str() + at + 6, nullptr, 10);
    size_t line = 1 + std::count(text.begin(), text.begin() + std::min(index, text.size()), '\n');
    size_t bracket = what.find("] ");  // past "[json.exception.type_error.316] "
    return absl::InvalidArgumentError(absl::StrCat(source, ":", line, ": the file is not valid UTF-8 (",
                                                   bracket == std::string::npos ? what : what.substr(bracket + 2),
                                                   ")"));
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    loader.Error(e.mark, "(syntax)", e.msg);
    return absl::InvalidArgumentError(loader.Report());
  }
  FleetConfig cfg;
  cfg.source = source;
  if (!root || root.IsNull()) {
    return absl::InvalidArgumentError(source + ": the file is empty");
  }
  // yaml-cpp throws on some malformed accesses; keep them as config errors.
  try {
    if (root.IsMap()) {
      for (const auto& section : root) cfg.sections[section.first.Scalar()] = YAML::Dump(section.second);
    }
    LoadRoot(loader, root, &cfg);
  } catch (const YAML::Exception& e) {
    loader.Error(e.mark, "(structure)", e.msg);
  }
  if (!loader.ok()) return absl::InvalidArgumentError(loader.Report());
  return cfg;
}

std::vector<std::string> ApplyLiveSections(const FleetConfig& fresh, FleetConfig* live) {
  live->tenants = fresh.tenants;
  live->spend_limit = fresh.spend_limit;
  std::set<std::string> names;
  for (const auto& [name, text] : live->sections) names.insert(name);
  for (const auto& [name, text] : fresh.sections) names.insert(name);
  std::vector<std::string> changed;
  for (const std::string& name : names) {
    auto before = live->sections.find(name);
    auto after = fresh.sections.find(name);
    const bool same = before != live->sections.end() && after != fresh.sections.end() && before->second == after->second;
    const bool is_live = std::find(std::begin(kLiveSections), std::end(kLiveSections), name) != std::end(kLiveSections);
    if (is_live) {
      if (after != fresh.sections.end()) {
        live->sections[name] = after->second;
      } else {
        live->sections.erase(name);
      }
    } else if (!same) {
      changed.push_back(name);
    }
  }
  return changed;
}

absl::StatusOr<FleetConfig> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot read config file " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  return LoadConfigString(buf.str(), path);
}

}  // namespace agentfleet
