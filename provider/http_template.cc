#include "provider/http_template.h"

#include <cstdlib>
#include <regex>

#include "absl/strings/str_cat.h"
#include "provider/http_client.h"

namespace agentfleet {

using Json = nlohmann::json;

std::pair<std::string, std::string> SplitUrl(const std::string& url) {
  static const std::regex kUrl("^[A-Za-z][A-Za-z0-9+.-]*://([^/:?#]*)(:[0-9]+)?([^#]*)");
  std::smatch m;
  if (!std::regex_search(url, m, kUrl)) return {"", ""};
  std::string path = m[3].str();
  return {m[1].str(), path.empty() ? "/" : path};
}

absl::StatusOr<std::string> FillUrl(const std::string& url_template, const Json& payload) {
  static const std::regex kPlaceholder("\\{([A-Za-z_][A-Za-z0-9_]*)\\}");
  std::string out;
  size_t last = 0;
  for (auto it = std::sregex_iterator(url_template.begin(), url_template.end(), kPlaceholder);
       it != std::sregex_iterator(); ++it) {
    std::string name = (*it)[1].str();
    if (!payload.is_object() || !payload.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat("the url's {", name, "} is not in the payload"));
    }
    const Json& v = payload[name];
    std::string text;
    if (v.is_string()) {
      text = v.get<std::string>();
    } else if (v.is_number() || v.is_boolean()) {
      text = v.dump();
    } else {
      return absl::InvalidArgumentError(absl::StrCat("the url's {", name, "} is not a string, number or boolean"));
    }
    if (text.empty()) return absl::InvalidArgumentError(absl::StrCat("the url's {", name, "} is empty"));
    out += url_template.substr(last, it->position() - last);
    out += UrlEscape(text);
    last = it->position() + it->length();
  }
  return out + url_template.substr(last);
}

absl::StatusOr<std::string> ResolveEnvRefs(const std::string& value, const std::string& where,
                                           const std::function<const char*(const char*)>& env) {
  static const std::regex kRef("\\$\\{([A-Za-z_][A-Za-z0-9_]*)\\}");
  std::string out;
  size_t last = 0;
  for (auto it = std::sregex_iterator(value.begin(), value.end(), kRef); it != std::sregex_iterator(); ++it) {
    std::string name = (*it)[1].str();
    const char* v = env ? env(name.c_str()) : std::getenv(name.c_str());
    if (v == nullptr || *v == '\0') {
      return absl::InvalidArgumentError(absl::StrCat(where, ": environment variable ", name, " is not set"));
    }
    out += value.substr(last, it->position() - last);
    out += v;
    last = it->position() + it->length();
  }
  return out + value.substr(last);
}

std::string DelimitUntrusted(const std::string& nonce, const std::string& source, const std::string& text) {
  return absl::StrCat("<untrusted-", nonce, " source=\"", source, "\">\n", text, "\n</untrusted-", nonce, ">");
}

}  // namespace agentfleet
