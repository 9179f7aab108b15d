// Parsing and type-checking `when:` conditions (config/condition.h): what
// parses, the tree it gives, and every kind of mistake with its column.
#include "config/condition.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Kind = Condition::Kind;

std::string ErrorOf(absl::string_view text) {
  auto c = ParseCondition(text);
  return c.ok() ? "(parsed)" : std::string(c.status().message());
}

TEST(ConditionTest, PrecedenceIsOrThenAndThenNotThenComparison) {
  auto c = ParseCondition("$steps.a.x == 'y' or not $task.b and $steps.c.n >= 2");
  ASSERT_TRUE(c.ok()) << c.status();
  const Condition& root = **c;
  ASSERT_EQ(root.kind, Kind::kOr);
  ASSERT_EQ(root.children.size(), 2u);
  EXPECT_EQ(root.children[0]->kind, Kind::kEq);
  const Condition& both = *root.children[1];
  ASSERT_EQ(both.kind, Kind::kAnd);
  EXPECT_EQ(both.children[0]->kind, Kind::kNot);
  EXPECT_EQ(both.children[1]->kind, Kind::kGe);
  EXPECT_EQ(both.children[1]->children[1]->literal, 2.0);
  EXPECT_THAT(root.Steps(), ElementsAre("a", "c"));
}

TEST(ConditionTest, ListsExistsParenthesesAndNotIn) {
  auto c = ParseCondition("($task.region in ['eu', \"uk\", 3]) and exists($steps.s.out) and $item not in $task.seen");
  ASSERT_TRUE(c.ok()) << c.status();
  const Condition& root = **c;
  ASSERT_EQ(root.kind, Kind::kAnd);
  ASSERT_EQ(root.children.size(), 3u);
  EXPECT_EQ(root.children[0]->kind, Kind::kIn);
  EXPECT_EQ(root.children[0]->children[1]->literal, nlohmann::json::parse(R"(["eu", "uk", 3.0])"));
  EXPECT_EQ(root.children[1]->kind, Kind::kExists);
  EXPECT_EQ(root.children[1]->ref.step, "s");
  EXPECT_EQ(root.children[2]->kind, Kind::kNotIn);
  EXPECT_EQ(root.children[2]->column, 70);  // the "not" of "not in"
}

TEST(ConditionTest, MistakesAreNamedWithTheirColumn) {
  EXPECT_EQ(ErrorOf(""), "column 1: empty condition");
  EXPECT_EQ(ErrorOf("$steps.a.x = 'y'"), "column 12: unknown operator '=' (use == or !=)");
  EXPECT_EQ(ErrorOf("$steps.a.x == "), "column 15: expected a value after '=='");
  EXPECT_EQ(ErrorOf("$steps.a.x == billing"), "column 15: unknown word 'billing' (strings are quoted: 'billing')");
  EXPECT_EQ(ErrorOf("$task.n < 'a' or $task.n > true"), "column 28: '>' orders numbers or strings, not true");
  EXPECT_EQ(ErrorOf("1 < 'a'"), "column 5: '<' cannot order a number and a string");
  EXPECT_EQ(ErrorOf("$task.r in 'eu'"), "column 12: 'in' needs a list or a reference on its right");
  EXPECT_EQ(ErrorOf("$task.r == ['a']"), "column 12: '==' compares single values, not lists");
  EXPECT_EQ(ErrorOf("'yes'"), "column 1: a condition must be true or false, not a value");
  EXPECT_EQ(ErrorOf("$task.a and 3"), "column 13: 'and' needs true or false on each side, not a value");
  EXPECT_EQ(ErrorOf("($task.a"), "column 9: expected ')'");
  EXPECT_EQ(ErrorOf("$task.a $task.b"), "column 9: unexpected '$task.b' after a complete condition");
  EXPECT_EQ(ErrorOf("$task.s == 'open"), "column 12: unterminated string");
  EXPECT_EQ(ErrorOf("exists('x')"), "column 8: exists() takes a reference ($task..., $steps...)");
  EXPECT_EQ(ErrorOf("[1, 2"), "column 6: expected ',' or ']' in a list");
  EXPECT_THAT(ErrorOf("$nope.x"), HasSubstr("column 1: "));
  EXPECT_EQ(ErrorOf("$task.a # b"), "column 9: unexpected character '#'");
}

TEST(ConditionTest, NestingIsBounded) {
  std::string deep(40, '(');
  deep += "$task.a" + std::string(40, ')');
  EXPECT_THAT(ErrorOf(deep), HasSubstr("nested more than 32 levels deep"));
  std::string nots;
  for (int i = 0; i < 40; ++i) nots += "not ";
  EXPECT_THAT(ErrorOf(nots + "$task.a"), HasSubstr("nested more than 32 levels deep"));
}

}  // namespace
}  // namespace agentfleet
