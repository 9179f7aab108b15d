// What an action's payload must pass before it leaves (safety/sanitize.h):
// each policy kind catches what it should and leaves ordinary text alone,
// and no violation repeats the secret it found.
#include "safety/sanitize.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> Kinds(const SanitizeResult& r) {
  std::vector<std::string> kinds;
  for (const Violation& v : r.violations) kinds.push_back(v.kind + "@" + v.path);
  return kinds;
}

TEST(SanitizeTest, URLsMayNameOnlyAllowedHosts) {
  SanitizePolicy p;
  p.allowed_hosts = {"api.example.com", "*.cdn.example.com"};
  Json ok = {{"link", "see https://api.example.com/v1/orders?id=1 and http://img.cdn.example.com/a.png"}};
  EXPECT_THAT(Kinds(Sanitize(p, ok)), IsEmpty());
  Json bad = {{"note", "click http://evil.test/x"},
              {"items", {"fine", "https://user:pw@api.example.com.evil.test/"}},
              {"port", "HTTPS://EVIL.TEST:8443/"},
              {"apex", "https://cdn.example.com/"}};
  EXPECT_THAT(Kinds(Sanitize(p, bad)),
              ::testing::UnorderedElementsAre("url_not_allowed@$.note", "url_not_allowed@$.items[1]",
                                              "url_not_allowed@$.port", "url_not_allowed@$.apex"));
  SanitizePolicy none;
  EXPECT_THAT(Kinds(Sanitize(none, Json("https://api.example.com/"))), ::testing::ElementsAre("url_not_allowed@$"))
      << "an empty allowlist lets no URL out";
}

TEST(SanitizeTest, AnActionsOwnURLIsHttpOnAnAllowedHostWithoutCredentials) {
  SanitizePolicy p;
  p.allowed_hosts = {"api.example.com"};
  EXPECT_TRUE(CheckUrl(p, "https://api.example.com/v1/refunds").ok());
  EXPECT_TRUE(CheckUrl(p, "http://API.example.com:8080").ok());
  EXPECT_THAT(std::string(CheckUrl(p, "https://other.example.com/").message()), HasSubstr("not in the allowed hosts"));
  EXPECT_THAT(std::string(CheckUrl(p, "https://a:b@api.example.com/").message()), HasSubstr("user:password@"));
  EXPECT_THAT(std::string(CheckUrl(p, "file:///etc/passwd").message()), HasSubstr("not an http or https URL"));
  EXPECT_THAT(std::string(CheckUrl(p, "https://api.example.com.evil.test/").message()), HasSubstr("evil.test"));
}

TEST(SanitizeTest, ConfiguredSecretsAndKeyShapedTextNeverLeaveAndAreNotRepeated) {
  SanitizePolicy p;
  p.secrets = {{"crm_token", "tok_9f8e7d6c5b4a"}, {"short", "abc"}};
  const std::string openai = "sk-proj-" + std::string(40, 'A');
  Json payload = {{"body", "the token is tok_9f8e7d6c5b4a, thanks"},
                  {"abc", "abc is too short to search for"},
                  {"keys", {"AKIAIOSFODNN7EXAMPLE", openai, "ghp_" + std::string(36, 'x'),
                            "-----BEGIN RSA PRIVATE KEY-----", "Authorization: Bearer " + std::string(32, 'z')}},
                  {"fine", "an ordinary sentence about skis and asks"}};
  SanitizeResult r = Sanitize(p, payload);
  EXPECT_THAT(Kinds(r), ::testing::UnorderedElementsAre("secret@$.body", "secret@$.keys[0]", "secret@$.keys[1]",
                                                         "secret@$.keys[2]", "secret@$.keys[3]", "secret@$.keys[4]"));
  for (const Violation& v : r.violations) {
    EXPECT_THAT(v.detail, ::testing::Not(HasSubstr("tok_9f8e7d6c5b4a")));
    EXPECT_THAT(v.detail, ::testing::Not(HasSubstr(openai)));
  }
  EXPECT_EQ(SecretShape("AKIAIOSFODNN7EXAMPLE"), "aws_access_key");
  EXPECT_EQ(SecretShape("sk-ant-api03-" + std::string(30, 'b')), "anthropic_key");
  EXPECT_EQ(SecretShape("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
            "jwt");
  EXPECT_EQ(SecretShape("sk_live_" + std::string(24, '4')), "stripe_key");
  EXPECT_EQ(SecretShape("nothing to see: skip-ahead, task-1234"), "");
}

TEST(SanitizeTest, PIIIsRedactedCardsOnlyWhenTheyPassLuhn) {
  EXPECT_TRUE(LuhnValid("4111 1111 1111 1111"));
  EXPECT_TRUE(LuhnValid("5555-5555-5555-4444"));
  EXPECT_FALSE(LuhnValid("4111 1111 1111 1112"));
  int n = 0;
  EXPECT_EQ(RedactPii("card 4111 1111 1111 1111, order 4111 1111 1111 1112", &n), "card [card], order 4111 1111 1111 1112");
  EXPECT_EQ(RedactPii("mail jane.doe+billing@mail.example.co.uk now", &n), "mail [email] now");
  EXPECT_EQ(RedactPii("call +44 20 7946 0958 or (555) 123-4567 today", &n), "call [phone] or ([phone] today");
  EXPECT_EQ(n, 4);
  EXPECT_EQ(RedactPii("order 12345, 3 items, total 42.50, 2026-12-01"), "order 12345, 3 items, total 42.50, 2026-12-01")
      << "short numbers and dates are not phone numbers";
  SanitizePolicy p;
  p.redact_pii = true;
  SanitizeResult r = Sanitize(p, Json{{"to", "jane@example.com"}, {"n", 4111111111111111}});
  EXPECT_EQ(r.payload, (Json{{"to", "[email]"}, {"n", 4111111111111111}})) << "only strings are rewritten";
  EXPECT_EQ(r.redactions, 1);
}

TEST(SanitizeTest, MarkupIsStrippedScriptsWithTheirContent) {
  EXPECT_EQ(StripMarkup("<p>Hello <b>Jane</b></p><script>steal()</script><!-- x --><style>p{}</style>!"), "Hello Jane!");
  EXPECT_EQ(StripMarkup("a < b and c > d"), "a < b and c > d") << "comparisons are not tags";
  EXPECT_EQ(StripMarkup("ok <script src=x>never closed"), "ok ");
  EXPECT_EQ(StripMarkup("ht<<b>b>tp://evil.test"), "http://evil.test") << "stripped until nothing is left to strip";
  SanitizePolicy p;
  p.strip_markup = true;
  EXPECT_THAT(Kinds(Sanitize(p, Json("ht<<b>b>tp://evil.test"))), ::testing::ElementsAre("url_not_allowed@$"))
      << "the URL the markup hid is checked";
}

TEST(SanitizeTest, SizeAndDepthAreBoundedWithoutCrashing) {
  SanitizePolicy p;
  p.max_bytes = 100;
  EXPECT_THAT(Kinds(Sanitize(p, Json{{"body", std::string(200, 'a')}})), ::testing::ElementsAre("too_large@$"));
  Json deep = "leaf";
  for (int i = 0; i < 200; ++i) deep = Json::array({deep});
  SanitizeResult r = Sanitize(SanitizePolicy(), deep);
  ASSERT_EQ(r.violations.size(), 1u);
  EXPECT_EQ(r.violations[0].kind, "too_deep");
}

TEST(SanitizeTest, HostileTextIsScannedInLinearTime) {
  // Patterns that backtrack would take minutes on this; RE2 does not.
  std::string text(200000, 'a');
  text += "@";
  text += std::string(200000, '1');
  SanitizePolicy p;
  p.redact_pii = true;
  p.strip_markup = true;
  SanitizeResult r = Sanitize(p, Json(text));
  EXPECT_THAT(Kinds(r), ::testing::ElementsAre("too_large@$"));
}

}  // namespace
}  // namespace agentfleet
