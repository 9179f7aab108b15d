#include "safety/injection.h"

#include <memory>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "re2/re2.h"

namespace agentfleet {
namespace {

re2::StringPiece Piece(absl::string_view v) { return re2::StringPiece(v.data(), v.size()); }

constexpr size_t kMaxScanBytes = 256 * 1024;

struct Rule {
  const char* rule;
  const char* language;
  const char* pattern;  // RE2, over normalized (lowercase) text
};

// Phrasings of the attacks OWASP's LLM01 and the published injection corpora
// (Greshake et al. 2023, Perez & Ribeiro 2022) show, per language.
const std::vector<std::pair<Rule, std::unique_ptr<RE2>>>& Rules() {
  static const auto* rules = [] {
    static const Rule kRules[] = {
        // Overriding the instructions.
        {"override", "en", R"(\b(?:ignore|disregard|forget|override|bypass|skip)\b.{0,40}\b(?:previous|prior|above|earlier|preceding|all|any|your|the|system|original)\b.{0,30}\b(?:instructions?|prompts?|rules?|directions?|guidelines?|context|messages?)\b)"},
        {"override", "en", R"(\b(?:new|updated|real|actual)\s+(?:instructions?|system prompt|rules)\s*(?::|are|follow))"},
        {"override", "en", R"(\bdo not follow (?:the|your) (?:previous|original|system)\b)"},
        {"override", "es", R"(\b(?:ignora|olvida|omite|descarta)\b.{0,40}\b(?:instrucciones|indicaciones|reglas)\b)"},
        {"override", "fr", R"(\b(?:ignore[rz]?|oublie[rz]?)\b.{0,40}\b(?:instructions|consignes|règles)\b)"},
        {"override", "de", R"(\b(?:ignoriere|ignorieren|vergiss|vergessen)\b.{0,50}\b(?:anweisungen|anweisung|vorgaben|regeln|instruktionen)\b)"},
        {"override", "pt", R"(\b(?:ignore|ignora|esqueça|esqueca|desconsidere)\b.{0,40}\b(?:instruções|instrucoes|regras)\b)"},
        {"override", "it", R"(\b(?:ignora|dimentica)\b.{0,40}\b(?:istruzioni|regole)\b)"},
        {"override", "ru", R"((?:игнорируй|игнорировать|забудь|проигнорируй).{0,60}(?:инструкци|указани|правил))"},
        {"override", "zh", R"((?:忽略|无视|忘记|忽视).{0,20}(?:指令|指示|说明|规则|提示))"},
        {"override", "ja", R"((?:無視|忘れ).{0,20}(?:指示|命令|ルール|プロンプト)|(?:指示|命令|ルール|プロンプト).{0,20}(?:無視|忘れ))"},
        // Re-assigning the model's role.
        {"role", "en", R"(\b(?:you are now|from now on,? you are|you must now act as|act as|pretend (?:to be|you are))\s+(?:a |an |the |in |my |our )?(?:\w+[ -]){0,2}\w*(?:assistant|bot|ai|model|agent|admin|administrator|developer|approver|manager|operator|mode|dan|system)\b)"},
        {"role", "en", R"(\b(?:developer|admin|god|dan|jailbreak)\s+mode\b)"},
        {"role", "es", R"(\b(?:ahora eres|a partir de ahora eres|actúa como|actua como)\b)"},
        {"role", "fr", R"(\b(?:tu es maintenant|désormais,? tu es|agis comme)\b)"},
        {"role", "de", R"(\b(?:du bist jetzt|ab jetzt bist du|verhalte dich wie)\b)"},
        {"role", "zh", R"((?:你现在是|从现在开始你是|扮演))"},
        // Asking for the hidden prompt or secrets.
        {"reveal", "en", R"(\b(?:reveal|print|show|repeat|output|display|leak|tell me)\b.{0,40}\b(?:system prompt|your (?:instructions|prompt|rules)|hidden (?:prompt|instructions)|initial prompt|api key|secret|password|canary)\b)"},
        {"reveal", "en", R"(\b(?:repeat|print|output|copy|recite)\b.{0,20}\b(?:text|words|everything|instructions|lines)\b.{0,10}\b(?:above|before|preceding|so far)\b)"},
        {"reveal", "es", R"(\b(?:revela|muestra|repite|imprime)\b.{0,40}\b(?:prompt del sistema|instrucciones|clave|contraseña)\b)"},
        {"reveal", "de", R"(\b(?:zeige|verrate|wiederhole|gib)\b.{0,40}\b(?:systemprompt|system-prompt|anweisungen|passwort|schlüssel)\b)"},
        {"reveal", "fr", R"(\b(?:révèle|revele|affiche|répète|repete)\b.{0,40}\b(?:prompt système|instructions|mot de passe|clé)\b)"},
        {"reveal", "zh", R"((?:显示|泄露|输出|告诉我).{0,20}(?:系统提示|提示词|指令|密码|密钥))"},
        // Exfiltration and side effects the reader did not ask for.
        {"exfiltrate", "en", R"(\b(?:send|forward|email|post|upload|transfer|refund|wire)\b.{0,60}\b(?:to|into)\b.{0,20}(?:https?://|\S+@\S+\.\S+))"},
        {"exfiltrate", "en", R"(!\[[^\]]*\]\(https?://[^)]*\?[^)]*=)"},
        {"exfiltrate", "any", R"(\b(?:transfer|refund|wire|send)\b.{0,30}\b\d{3,}\b.{0,30}\b(?:immediately|now|urgent)\b)"},
        // Forged conversation structure and tool calls.
        {"delimiter", "any", R"((?:^|\s)(?:system|assistant|developer)\s*:\s|<\|?(?:im_start|im_end|system|endoftext)\|?>|\[/?(?:inst|system)\]|</?untrusted)"},
        {"delimiter", "any", R"(#{2,}\s*(?:system|instructions?|new task)\b)"},
        {"tool", "any", R"(\b(?:call|invoke|use|run|execute)\b.{0,20}\b(?:the )?(?:tool|function|action)\b.{0,40}\b(?:with|argument|parameter))"},
    };
    auto* out = new std::vector<std::pair<Rule, std::unique_ptr<RE2>>>();
    RE2::Options options;
    options.set_max_mem(8 << 20);
    options.set_log_errors(false);
    for (const Rule& r : kRules) out->emplace_back(r, std::make_unique<RE2>(r.pattern, options));
    return out;
  }();
  return *rules;
}

// One UTF-8 code point at `s[*i]` (advances *i); invalid bytes come back as
// themselves, one at a time.
uint32_t NextCodePoint(absl::string_view s, size_t* i) {
  unsigned char c = static_cast<unsigned char>(s[*i]);
  int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || *i + len > s.size()) {
    ++*i;
    return c;
  }
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < len; ++k) {
    unsigned char cc = static_cast<unsigned char>(s[*i + k]);
    if ((cc >> 6) != 0x2) {
      ++*i;
      return c;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  *i += len;
  return cp;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool Invisible(uint32_t cp) {
  return (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x2064) ||
         cp == 0xFEFF || cp == 0x00AD || (cp >= 0xE0000 && cp <= 0xE007F);  // tag characters too
}

// Decoded forms worth a second look: base64 runs, hex runs, percent and HTML
// entity encoding, JSON \\u escapes.
std::vector<std::pair<std::string, std::string>> Decodings(absl::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  static const RE2 kBase64(R"(([A-Za-z0-9+/_-]{24,}={0,2}))");
  static const RE2 kHex(R"(\b((?:[0-9a-fA-F]{2}){16,})\b)");
  re2::StringPiece in = Piece(text);
  std::string token;
  int found = 0;
  while (found < 16 && RE2::FindAndConsume(&in, kBase64, &token)) {
    std::string decoded;
    if ((absl::Base64Unescape(token, &decoded) || absl::WebSafeBase64Unescape(token, &decoded)) && !decoded.empty()) {
      out.emplace_back("base64", std::move(decoded));
      ++found;
    }
  }
  in = Piece(text);
  found = 0;
  while (found < 16 && RE2::FindAndConsume(&in, kHex, &token)) {
    out.emplace_back("hex", absl::HexStringToBytes(token));
    ++found;
  }
  if (text.find('%') != absl::string_view::npos) {
    std::string decoded;
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '%' && i + 2 < text.size() && absl::ascii_isxdigit(text[i + 1]) && absl::ascii_isxdigit(text[i + 2])) {
        decoded += absl::HexStringToBytes(text.substr(i + 1, 2));
        i += 2;
      } else {
        decoded += text[i] == '+' ? ' ' : text[i];
      }
    }
    out.emplace_back("percent", std::move(decoded));
  }
  if (text.find("\\u") != absl::string_view::npos) {
    // JSON's \uXXXX escapes (a tool's answer as JSON hides every non-ASCII
    // letter behind them), surrogate pairs joined.
    std::string decoded;
    for (size_t i = 0; i < text.size(); ++i) {
      auto hex4 = [&](size_t at, uint32_t* cp) {
        if (at + 6 > text.size() || text[at] != '\\' || text[at + 1] != 'u') return false;
        for (size_t k = 2; k < 6; ++k) {
          if (!absl::ascii_isxdigit(text[at + k])) return false;
        }
        *cp = static_cast<uint32_t>(std::strtoul(std::string(text.substr(at + 2, 4)).c_str(), nullptr, 16));
        return true;
      };
      uint32_t cp = 0, low = 0;
      if (!hex4(i, &cp)) {
        decoded += text[i];
        continue;
      }
      i += 5;
      if (cp >= 0xD800 && cp < 0xDC00 && hex4(i + 1, &low) && low >= 0xDC00 && low < 0xE000) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        i += 6;
      }
      AppendUtf8(cp, &decoded);
    }
    out.emplace_back("json_escapes", std::move(decoded));
  }
  if (text.find("&#") != absl::string_view::npos) {
    static const RE2 kEntity(R"(&#(x?)([0-9a-fA-F]{1,6});)");
    std::string decoded;
    re2::StringPiece rest = Piece(text);
    const char* last = text.data();
    std::string hex, digits;
    while (RE2::FindAndConsume(&rest, kEntity, &hex, &digits)) {
      const char* match_end = rest.data();
      size_t match_len = 3 + hex.size() + digits.size();
      decoded.append(last, match_end - match_len - last);
      uint32_t cp = static_cast<uint32_t>(std::strtoul(digits.c_str(), nullptr, hex.empty() ? 10 : 16));
      if (cp > 0 && cp < 0x110000) AppendUtf8(cp, &decoded);
      last = match_end;
    }
    decoded.append(last, text.data() + text.size() - last);
    out.emplace_back("html_entities", std::move(decoded));
  }
  return out;
}

void Scan(absl::string_view text, const std::string& via, std::set<std::string>* seen, InjectionScan* scan) {
  std::string normalized = NormalizeForScan(text);
  for (const auto& [rule, re] : Rules()) {
    if (!re->ok() || !RE2::PartialMatch(Piece(normalized), *re)) continue;
    std::string key = absl::StrCat(rule.rule, "/", rule.language, "/", via);
    if (!seen->insert(key).second) continue;
    scan->flagged = true;
    if (scan->findings.size() < 16) scan->findings.push_back({rule.rule, rule.language, via});
  }
}

}  // namespace

std::string NormalizeForScan(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool space = false;
  for (size_t i = 0; i < text.size();) {
    uint32_t cp = NextCodePoint(text, &i);
    if (Invisible(cp)) continue;
    if (cp >= 0xFF01 && cp <= 0xFF5E) cp -= 0xFEE0;  // full-width ASCII
    if (cp == '\t' || cp == '\n' || cp == '\r' || cp == 0x3000 || cp == 0xA0) cp = ' ';
    if (cp == ' ') {
      if (!space) out.push_back(' ');
      space = true;
      continue;
    }
    space = false;
    if (cp < 0x80) {
      out.push_back(absl::ascii_tolower(static_cast<unsigned char>(cp)));
    } else if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) || (cp >= 0x410 && cp <= 0x42F)) {
      AppendUtf8(cp + (cp >= 0x410 ? 0x20 : 0x20), &out);  // Latin-1 and Cyrillic capitals
    } else {
      AppendUtf8(cp, &out);
    }
  }
  return out;
}

InjectionScan DetectInjection(absl::string_view text) {
  InjectionScan scan;
  text = text.substr(0, kMaxScanBytes);
  std::set<std::string> seen;
  Scan(text, "text", &seen, &scan);
  for (const auto& [via, decoded] : Decodings(text)) Scan(decoded, via, &seen, &scan);
  return scan;
}

}  // namespace agentfleet
