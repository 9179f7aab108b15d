#include "safety/sanitize.h"

#include <algorithm>
#include <cctype>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "re2/re2.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;

constexpr int kMaxDepth = 64;

// RE2 of this Debian release speaks re2::StringPiece.
re2::StringPiece Piece(absl::string_view v) { return re2::StringPiece(v.data(), v.size()); }
absl::string_view View(re2::StringPiece p) { return absl::string_view(p.data(), p.size()); }
constexpr size_t kMinSecretBytes = 8;

struct Shape {
  const char* kind;
  const char* pattern;
};

// Common key and token formats, as their issuers document them.
const std::vector<std::pair<std::string, std::unique_ptr<RE2>>>& Shapes() {
  static const auto* shapes = [] {
    static const Shape kShapes[] = {
        {"aws_access_key", R"(\b(?:AKIA|ASIA)[0-9A-Z]{16}\b)"},
        {"anthropic_key", R"(\bsk-ant-[A-Za-z0-9_-]{20,})"},
        {"openai_key", R"(\bsk-(?:proj-)?[A-Za-z0-9_-]{20,})"},
        {"github_token", R"(\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}))"},
        {"slack_token", R"(\bxox[abposr]-[A-Za-z0-9-]{10,})"},
        {"google_api_key", R"(\bAIza[0-9A-Za-z_-]{35})"},
        {"stripe_key", R"(\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,})"},
        {"private_key", R"(-----BEGIN [A-Z ]*PRIVATE KEY-----)"},
        {"jwt", R"(\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"},
        {"bearer_token", R"((?i)\bbearer\s+[A-Za-z0-9._~+/-]{20,}=*)"},
    };
    auto* out = new std::vector<std::pair<std::string, std::unique_ptr<RE2>>>();
    for (const Shape& s : kShapes) out->emplace_back(s.kind, std::make_unique<RE2>(s.pattern));
    return out;
  }();
  return *shapes;
}

const RE2& UrlPattern() {
  // The authority of an absolute URL: what follows the scheme up to the path.
  static const RE2 re(R"((?i)\b(?:https?|ftp|wss?)://([^/\s?#"'<>\\]+))");
  return re;
}

// The host of an authority: without user:password@ and :port, lowercased.
std::string HostOf(absl::string_view authority) {
  if (size_t at = authority.rfind('@'); at != absl::string_view::npos) authority.remove_prefix(at + 1);
  if (!authority.empty() && authority.front() == '[') {  // [IPv6]:port
    size_t close = authority.find(']');
    return absl::AsciiStrToLower(authority.substr(0, close == absl::string_view::npos ? authority.size() : close + 1));
  }
  if (size_t colon = authority.find(':'); colon != absl::string_view::npos) authority = authority.substr(0, colon);
  while (!authority.empty() && authority.back() == '.') authority.remove_suffix(1);
  return absl::AsciiStrToLower(authority);
}

int Digits(absl::string_view text) {
  return static_cast<int>(std::count_if(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }));
}

// Replaces each match of `re` (one capturing group around the whole) in `*text` for which `accept` holds by `with`.
int ReplaceIf(const RE2& re, std::string* text, const std::string& with, bool (*accept)(absl::string_view)) {
  std::string out;
  absl::string_view rest(*text);
  re2::StringPiece piece;
  int replaced = 0;
  while (RE2::PartialMatch(Piece(rest), re, &piece)) {
    absl::string_view match = View(piece);
    size_t at = static_cast<size_t>(match.data() - rest.data());
    out.append(rest.data(), at);
    if (accept(match)) {
      out += with;
      ++replaced;
    } else {
      out.append(match.data(), match.size());
    }
    size_t next = at + match.size();
    if (match.empty()) {  // never loop on an empty match
      if (next < rest.size()) out.push_back(rest[next]);
      ++next;
    }
    rest.remove_prefix(std::min(next, rest.size()));
  }
  out.append(rest.data(), rest.size());
  if (replaced > 0) *text = std::move(out);
  return replaced;
}

void Check(const SanitizePolicy& policy, const Json& in, Json* out, const std::string& path, int depth,
           SanitizeResult* result);

void CheckText(const SanitizePolicy& policy, absl::string_view text, const std::string& path,
               SanitizeResult* result) {
  for (const auto& [name, value] : policy.secrets) {
    if (value.size() >= kMinSecretBytes && absl::StrContains(text, value)) {
      result->violations.push_back({"secret", path, absl::StrCat("contains the configured secret '", name, "'")});
    }
  }
  if (policy.scan_secret_shapes) {
    if (std::string kind = SecretShape(text); !kind.empty()) {
      result->violations.push_back({"secret", path, absl::StrCat("contains something shaped like a ", kind)});
    }
  }
  re2::StringPiece rest = Piece(text);
  re2::StringPiece authority;
  while (RE2::FindAndConsume(&rest, UrlPattern(), &authority)) {
    std::string host = HostOf(View(authority));
    if (!HostAllowed(policy, host)) {
      result->violations.push_back({"url_not_allowed", path, absl::StrCat("a URL to host '", host, "'")});
    }
  }
}

void Check(const SanitizePolicy& policy, const Json& in, Json* out, const std::string& path, int depth,
           SanitizeResult* result) {
  if (depth > kMaxDepth) {
    result->violations.push_back({"too_deep", path, absl::StrCat("nests more than ", kMaxDepth, " levels")});
    *out = nullptr;
    return;
  }
  if (in.is_string()) {
    std::string text = in.get<std::string>();
    if (policy.strip_markup) text = StripMarkup(text);
    if (policy.redact_pii) text = RedactPii(text, &result->redactions);
    CheckText(policy, text, path, result);
    *out = std::move(text);
    return;
  }
  if (in.is_object()) {
    *out = Json::object();
    for (auto it = in.begin(); it != in.end(); ++it) {
      std::string at = absl::StrCat(path, ".", it.key());
      CheckText(policy, it.key(), at, result);
      Check(policy, it.value(), &(*out)[it.key()], at, depth + 1, result);
    }
    return;
  }
  if (in.is_array()) {
    *out = Json::array();
    for (size_t i = 0; i < in.size(); ++i) {
      out->push_back(nullptr);
      Check(policy, in[i], &out->back(), absl::StrCat(path, "[", i, "]"), depth + 1, result);
    }
    return;
  }
  *out = in;  // numbers, booleans, null
}

}  // namespace

bool HostAllowed(const SanitizePolicy& policy, absl::string_view host) {
  std::string h = absl::AsciiStrToLower(host);
  for (const std::string& allowed : policy.allowed_hosts) {
    std::string a = absl::AsciiStrToLower(allowed);
    if (absl::StartsWith(a, "*.")) {
      if (h.size() > a.size() - 1 && absl::EndsWith(h, a.substr(1))) return true;
    } else if (h == a) {
      return true;
    }
  }
  return false;
}

absl::Status CheckUrl(const SanitizePolicy& policy, absl::string_view url) {
  static const RE2 re(R"((?i)^(https?)://([^/?#]*)(?:[/?#].*)?$)");
  std::string scheme, authority;
  if (!RE2::FullMatch(Piece(url), re, &scheme, &authority)) {
    return absl::InvalidArgumentError("not an http or https URL");
  }
  if (absl::StrContains(authority, "@")) {
    return absl::InvalidArgumentError("a URL with user:password@ is refused (credentials go in headers from secrets)");
  }
  std::string host = HostOf(authority);
  if (host.empty()) return absl::InvalidArgumentError("the URL has no host");
  if (!HostAllowed(policy, host)) {
    return absl::InvalidArgumentError(absl::StrCat("host '", host, "' is not in the allowed hosts"));
  }
  return absl::OkStatus();
}

bool LuhnValid(absl::string_view number) {
  int sum = 0, n = 0;
  for (auto it = number.rbegin(); it != number.rend(); ++it) {
    if (*it == ' ' || *it == '-') continue;
    if (*it < '0' || *it > '9') return false;
    int d = *it - '0';
    if (n++ % 2 == 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return n >= 2 && sum % 10 == 0;
}

std::string RedactPii(absl::string_view text, int* count) {
  // Each is one capturing group: the match ReplaceIf looks at.
  static const RE2 card(R"((\b(?:\d[ -]?){12,18}\d\b))");
  static const RE2 email(R"(([A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}))");
  static const RE2 phone(R"(((?:\+\d|\b\d)[\d ().-]{6,20}\d\b))");
  std::string out(text);
  int n = 0;
  n += ReplaceIf(card, &out, "[card]", [](absl::string_view m) {
    int d = Digits(m);
    return d >= 13 && d <= 19 && LuhnValid(m);
  });
  n += ReplaceIf(email, &out, "[email]", [](absl::string_view) { return true; });
  n += ReplaceIf(phone, &out, "[phone]", [](absl::string_view m) {
    int d = Digits(m);
    return d >= 9 && d <= 15;
  });
  if (count != nullptr) *count += n;
  return out;
}

std::string StripMarkup(absl::string_view text) {
  static const RE2 elements(R"((?is)<(script|style)\b[^>]*>.*?</(?:script|style)\s*>)");
  static const RE2 open_elements(R"((?is)<(?:script|style)\b.*$)");  // never closed: drop the rest
  static const RE2 comments(R"((?s)<!--.*?-->)");
  static const RE2 tags(R"(</?[A-Za-z!][^<>]*>)");
  // Until nothing changes: "<<b>b>" is a tag again once "<b>" is gone, and
  // what leaves must not become markup (or a URL) when stripped once more.
  std::string out(text);
  for (int round = 0; round < 8; ++round) {
    int removed = RE2::GlobalReplace(&out, elements, "") + RE2::GlobalReplace(&out, open_elements, "") +
                  RE2::GlobalReplace(&out, comments, "") + RE2::GlobalReplace(&out, tags, "");
    if (removed == 0) return out;
  }
  // Nested past any honest use: no angle brackets at all.
  out.erase(std::remove_if(out.begin(), out.end(), [](char c) { return c == '<' || c == '>'; }), out.end());
  return out;
}

std::string SecretShape(absl::string_view text) {
  for (const auto& [kind, re] : Shapes()) {
    if (RE2::PartialMatch(Piece(text), *re)) return kind;
  }
  return "";
}

SanitizeResult Sanitize(const SanitizePolicy& policy, const Json& payload) {
  SanitizeResult result;
  Check(policy, payload, &result.payload, "$", 0, &result);
  size_t bytes = result.payload.dump(-1, ' ', false, Json::error_handler_t::replace).size();
  if (bytes > policy.max_bytes) {
    result.violations.push_back(
        {"too_large", "$", absl::StrCat(bytes, " bytes as JSON; the limit is ", policy.max_bytes)});
  }
  return result;
}

}  // namespace agentfleet
