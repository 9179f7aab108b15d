#include "provider/simulated_provider.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "codec/json_value.h"
#include "common/error_codes.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;

uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Uniform in [0, 1) from a hash state; advances the state.
double NextUnit(uint64_t* state) {
  *state = Mix(*state);
  return static_cast<double>(*state >> 11) * (1.0 / 9007199254740992.0);
}

constexpr const char* kWords[] = {"alpha", "bravo", "delta", "echo",  "gamma", "kappa",
                                  "lima",  "omega", "sigma", "tango", "zulu",  "vector"};

Json Generate(const JsonSchema* s, uint64_t* state, int depth) {
  double u = NextUnit(state);
  if (s != nullptr && !s->enum_values.empty()) {
    return s->enum_values[static_cast<size_t>(u * s->enum_values.size())];
  }
  JsonSchema::Type type = s ? s->type : JsonSchema::Type::kAny;
  switch (type) {
    case JsonSchema::Type::kObject: {
      Json obj = Json::object();
      for (const auto& [name, sub] : s->properties) obj[name] = Generate(&sub, state, depth + 1);
      return obj;
    }
    case JsonSchema::Type::kArray: {
      size_t lo = s->min_items.value_or(1), hi = s->max_items.value_or(std::max<size_t>(lo, 3));
      size_t n = lo + static_cast<size_t>(u * (hi - lo + 1));
      Json arr = Json::array();
      for (size_t i = 0; i < n && depth < 8; ++i) arr.push_back(Generate(s->items.get(), state, depth + 1));
      return arr;
    }
    case JsonSchema::Type::kInteger: {
      double lo = s->minimum.value_or(0), hi = s->maximum.value_or(100);
      return static_cast<int64_t>(std::ceil(lo) + std::floor(u * (std::floor(hi) - std::ceil(lo) + 1)));
    }
    case JsonSchema::Type::kNumber: {
      double lo = s->minimum.value_or(0), hi = s->maximum.value_or(1);
      return std::round((lo + u * (hi - lo)) * 1000) / 1000;
    }
    case JsonSchema::Type::kBoolean:
      return u < 0.5;
    case JsonSchema::Type::kNull:
      return nullptr;
    case JsonSchema::Type::kString:
    case JsonSchema::Type::kAny: {
      std::string text;
      int words = 3 + static_cast<int>(u * 5);
      for (int i = 0; i < words; ++i) {
        if (!text.empty()) text += ' ';
        text += kWords[static_cast<size_t>(NextUnit(state) * std::size(kWords))];
      }
      text += absl::StrCat(" #", *state % 100000);
      if (s && s->max_length && text.size() > *s->max_length) text.resize(*s->max_length);
      while (s && s->min_length && text.size() < *s->min_length) text += '.';
      if (type == JsonSchema::Type::kAny) return Json{{"text", text}};
      return text;
    }
  }
  return nullptr;
}

double DrawLatencyMs(const LatencyConfig& lat, uint64_t state) {
  using D = LatencyConfig::Distribution;
  double u = NextUnit(&state);
  switch (lat.distribution) {
    case D::kFixed:
      return lat.mean_ms;
    case D::kUniform:
      return lat.min_ms + u * (lat.max_ms - lat.min_ms);
    case D::kExponential:
      return -lat.mean_ms * std::log(1 - u);
    case D::kLogNormal: {
      // p99 = p50 * exp(2.326 sigma); Box-Muller for the normal draw.
      double sigma = std::log(lat.p99_ms / lat.p50_ms) / 2.3263478740408408;
      double u2 = NextUnit(&state);
      double z = std::sqrt(-2 * std::log(1 - u)) * std::cos(2 * M_PI * u2);
      return lat.p50_ms * std::exp(sigma * z);
    }
  }
  return 0;
}

int64_t Tokens(size_t bytes) { return std::max<int64_t>(1, static_cast<int64_t>((bytes + 3) / 4)); }

}  // namespace

uint64_t StableHash(absl::string_view data, uint64_t seed) {
  uint64_t h = 1469598103934665603ULL ^ Mix(seed);
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return Mix(h);
}

Json GenerateFromSchema(const JsonSchema* schema, uint64_t seed) {
  uint64_t state = seed;
  return Generate(schema, &state, 0);
}

SimulatedProvider::SimulatedProvider(const ProviderConfig& config, Scheduler* scheduler)
    : config_(config), scheduler_(scheduler) {}

// For development: the embedding of a text as hashed word counts (feature
// hashing into 256 signed dimensions, lower-cased words of letters and
// digits), L2-normalised. Texts sharing most of their words come out
// similar; it knows nothing of meaning (tests of the semantic cache use a
// real model, tests/fake_llm/embedding.py).
std::vector<float> SimulatedEmbedding(const std::string& text) {
  std::vector<float> v(256, 0.0f);
  std::string word;
  auto add = [&]() {
    if (word.empty()) return;
    uint64_t h = StableHash(word, 0x5eed);
    v[h % v.size()] += (h >> 63) != 0 ? 1.0f : -1.0f;
    word.clear();
  };
  for (char c : text) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c))) {
      word += absl::ascii_tolower(static_cast<unsigned char>(c));
    } else {
      add();
    }
  }
  add();
  double norm = 0;
  for (float x : v) norm += x * x;
  if (norm > 0) {
    for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
  }
  return v;
}

ModelResponse SimulatedProvider::Respond(const ModelRequest& request) const {
  ModelResponse r;
  r.model = request.model;
  if (!request.embed_text.empty()) {
    // An embedding request: quick (a twentieth of a call's drawn latency).
    r.input_tokens = Tokens(request.embed_text.size());
    uint64_t attempt_hash = StableHash(request.idempotency_key, config_.seed);
    r.latency = absl::Milliseconds(std::max(0.0, DrawLatencyMs(config_.latency, attempt_hash ^ 0x1a7e)) / 20);
    r.ok = true;
    r.embedding = SimulatedEmbedding(request.embed_text);
    return r;
  }
  std::string input = CanonicalJson(request.input);
  r.input_tokens = Tokens(input.size());
  uint64_t attempt_hash = StableHash(request.idempotency_key, config_.seed);
  r.latency = absl::Milliseconds(std::max(0.0, DrawLatencyMs(config_.latency, attempt_hash ^ 0x1a7e)));
  if (config_.failure_rate > 0) {
    uint64_t state = attempt_hash ^ 0xfa11;
    if (NextUnit(&state) < config_.failure_rate) {
      r.error = {kProviderUnavailable, "simulated provider failure", true};
      r.output_tokens = 0;
      return r;
    }
  }
  uint64_t content_seed =
      StableHash(absl::StrCat(request.agent, "\x1f", request.model, "\x1f", input), config_.seed);
  r.output = GenerateFromSchema(request.output_schema, content_seed);
  // An agent signal instead, drawn from the input: an input that already
  // carries answers (or reasons) got what the agent needed.
  if (config_.needs_info_rate > 0 || config_.rescope_rate > 0) {
    uint64_t state = content_seed ^ 0x5167;
    double draw = NextUnit(&state);
    bool has = request.input.is_object();
    if (draw < config_.needs_info_rate && !(has && request.input.contains("_info"))) {
      r.output = {{kAgentSignalField,
                   {{"type", "needs_info"}, {"question", "simulated: which order is this about?"}}}};
    } else if (draw >= 1 - config_.rescope_rate && !(has && request.input.contains("_rescope"))) {
      r.output = {{kAgentSignalField, {{"type", "rescope"}, {"reason", "simulated: the plan does not fit the input"}}}};
    }
  }
  r.output_tokens = Tokens(CanonicalJson(r.output).size());
  if (request.max_tokens > 0 && r.output_tokens > request.max_tokens) {
    r.output_tokens = request.max_tokens;
    r.output = nullptr;
    r.error = {kMaxTokensExceeded,
               absl::StrCat("output needs more than max_tokens=", request.max_tokens), false};
    return r;
  }
  if (r.latency > request.timeout) {
    r.latency = request.timeout;
    r.output = nullptr;
    r.error = {kTimeout, "simulated call exceeded the agent's timeout", true};
    return r;
  }
  r.ok = true;
  return r;
}

namespace {

Scheduler::Timed Answer(ModelResponse response, std::function<void(ModelResponse)> done) {
  absl::Duration delay = response.latency;
  return {delay, [done = std::move(done), response = std::move(response)]() mutable { done(std::move(response)); }};
}

}  // namespace

void SimulatedProvider::Call(ModelRequest request, std::function<void(ModelResponse)> done) {
  Scheduler::Timed t = Answer(Respond(request), std::move(done));
  scheduler_->RunAfter(t.delay, std::move(t.fn));
}

void SimulatedProvider::CallAll(std::vector<Pending> calls) {
  std::vector<Scheduler::Timed> answers;
  answers.reserve(calls.size());
  for (Pending& c : calls) answers.push_back(Answer(Respond(c.request), std::move(c.done)));
  scheduler_->RunAfterAll(std::move(answers));
}

}  // namespace agentfleet
