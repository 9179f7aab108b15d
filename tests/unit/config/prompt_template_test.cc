#include "config/prompt_template.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet {
namespace {

using ::testing::HasSubstr;

TEST(PromptTemplateTest, FillsFieldsFromTheInput) {
  auto t = PromptTemplate::Parse("Subject: {{ ticket.subject }}\nUrgency {{urgency}}; tags {{tags}}; all {{.}}");
  ASSERT_TRUE(t.ok()) << t.status();
  nlohmann::json input = {{"ticket", {{"subject", "Refund"}}}, {"urgency", 3}, {"tags", {"a", "b"}}};
  auto text = t->Render(input);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "Subject: Refund\nUrgency 3; tags [\"a\",\"b\"]; all " + input.dump());
  EXPECT_EQ(t->Fields().size(), 4u);
  EXPECT_EQ(t->Fields()[0], (std::vector<std::string>{"ticket", "subject"}));
  EXPECT_TRUE(t->Fields()[3].empty());
}

TEST(PromptTemplateTest, AMissingFieldIsAnErrorNotAnEmptyString) {
  auto t = PromptTemplate::Parse("Hello {{user.name}}");
  ASSERT_TRUE(t.ok());
  auto text = t->Render({{"user", {{"id", 7}}}});
  ASSERT_FALSE(text.ok());
  EXPECT_THAT(text.status().message(), HasSubstr("{{user.name}}"));
  EXPECT_FALSE(t->Render({{"user", "a string"}}).ok());
}

TEST(PromptTemplateTest, MalformedPlaceholdersAreRejected) {
  EXPECT_THAT(PromptTemplate::Parse("a {{b").status().message(), HasSubstr("unclosed '{{' at character 3"));
  EXPECT_THAT(PromptTemplate::Parse("a {{}}").status().message(), HasSubstr("is not a field path"));
  EXPECT_THAT(PromptTemplate::Parse("{{a..b}}").status().message(), HasSubstr("is not a field path"));
  EXPECT_THAT(PromptTemplate::Parse("{{a b}}").status().message(), HasSubstr("is not a field path"));
  auto plain = PromptTemplate::Parse("no placeholders } here");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain->Render(nlohmann::json::object()), "no placeholders } here");
}

}  // namespace
}  // namespace agentfleet
