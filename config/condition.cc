#include "config/condition.h"

#include <cctype>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace agentfleet {
namespace {

using Kind = Condition::Kind;

// Conditions nest at most this deep (parentheses and `not`): a bound for
// the recursive parser, far above anything written by hand.
constexpr int kMaxDepth = 32;

struct Token {
  enum class Type { kEnd, kRef, kString, kNumber, kWord, kOp, kOpen, kClose, kLBracket, kRBracket, kComma };
  Type type = Type::kEnd;
  std::string text;
  int column = 1;
};

absl::Status Error(int column, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("column ", column, ": ", what));
}

absl::StatusOr<std::vector<Token>> Tokenize(absl::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  auto is_ref_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' || c == '$'; };
  while (i < s.size()) {
    char c = s[i];
    int column = static_cast<int>(i) + 1;
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    Token t;
    t.column = column;
    if (c == '$') {
      size_t j = i + 1;
      while (j < s.size() && is_ref_char(s[j])) ++j;
      t.type = Token::Type::kRef;
      t.text = std::string(s.substr(i, j - i));
      i = j;
    } else if (c == '\'' || c == '"') {
      size_t j = i + 1;
      std::string text;
      while (j < s.size() && s[j] != c) {
        if (s[j] == '\\' && j + 1 < s.size()) ++j;
        text.push_back(s[j++]);
      }
      if (j >= s.size()) return Error(column, "unterminated string");
      t.type = Token::Type::kString;
      t.text = std::move(text);
      i = j + 1;
    } else if (std::isdigit(static_cast<unsigned char>(c)) ||
               (c == '-' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      size_t j = i + 1;
      while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '.' || s[j] == 'e' ||
                              s[j] == 'E' || ((s[j] == '-' || s[j] == '+') && (s[j - 1] == 'e' || s[j - 1] == 'E')))) {
        ++j;
      }
      t.type = Token::Type::kNumber;
      t.text = std::string(s.substr(i, j - i));
      i = j;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i + 1;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      t.type = Token::Type::kWord;
      t.text = std::string(s.substr(i, j - i));
      i = j;
    } else if (c == '(' || c == ')' || c == '[' || c == ']' || c == ',') {
      t.type = c == '(' ? Token::Type::kOpen
               : c == ')' ? Token::Type::kClose
               : c == '[' ? Token::Type::kLBracket
               : c == ']' ? Token::Type::kRBracket
                          : Token::Type::kComma;
      t.text = std::string(1, c);
      ++i;
    } else if (c == '=' || c == '!' || c == '<' || c == '>') {
      bool two = i + 1 < s.size() && s[i + 1] == '=';
      t.text = std::string(s.substr(i, two ? 2 : 1));
      if (t.text == "=" || t.text == "!") return Error(column, absl::StrCat("unknown operator '", t.text, "' (use == or !=)"));
      t.type = Token::Type::kOp;
      i += two ? 2 : 1;
    } else {
      return Error(column, absl::StrCat("unexpected character '", std::string(1, c), "'"));
    }
    out.push_back(std::move(t));
  }
  Token end;
  end.column = static_cast<int>(s.size()) + 1;
  out.push_back(end);
  return out;
}

// Whether a node yields true or false (a reference may: checked when evaluated).
bool MayBeBoolean(const Condition& c) {
  if (c.kind == Kind::kLiteral) return c.literal.is_boolean();
  return true;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  absl::StatusOr<std::unique_ptr<Condition>> Parse() {
    auto c = Or(0);
    if (!c.ok()) return c.status();
    if (Peek().type != Token::Type::kEnd) {
      return Error(Peek().column, absl::StrCat("unexpected '", Peek().text, "' after a complete condition"));
    }
    if (!MayBeBoolean(**c)) return Error((*c)->column, "a condition must be true or false, not a value");
    return c;
  }

 private:
  const Token& Peek() const { return tokens_[pos_]; }
  const Token& Next() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }
  bool IsWord(absl::string_view w) const { return Peek().type == Token::Type::kWord && Peek().text == w; }

  static std::unique_ptr<Condition> Node(Kind kind, int column) {
    auto c = std::make_unique<Condition>();
    c->kind = kind;
    c->column = column;
    return c;
  }

  absl::Status Boolean(const Condition& c, absl::string_view op) {
    if (MayBeBoolean(c)) return absl::OkStatus();
    return Error(c.column, absl::StrCat("'", op, "' needs true or false on each side, not a value"));
  }

  absl::StatusOr<std::unique_ptr<Condition>> Or(int depth) {
    auto left = And(depth);
    if (!left.ok()) return left;
    if (!IsWord("or")) return left;
    auto node = Node(Kind::kOr, (*left)->column);
    if (absl::Status s = Boolean(**left, "or"); !s.ok()) return s;
    node->children.push_back(std::move(*left));
    while (IsWord("or")) {
      Next();
      auto right = And(depth);
      if (!right.ok()) return right;
      if (absl::Status s = Boolean(**right, "or"); !s.ok()) return s;
      node->children.push_back(std::move(*right));
    }
    return node;
  }

  absl::StatusOr<std::unique_ptr<Condition>> And(int depth) {
    auto left = Not(depth);
    if (!left.ok()) return left;
    if (!IsWord("and")) return left;
    auto node = Node(Kind::kAnd, (*left)->column);
    if (absl::Status s = Boolean(**left, "and"); !s.ok()) return s;
    node->children.push_back(std::move(*left));
    while (IsWord("and")) {
      Next();
      auto right = Not(depth);
      if (!right.ok()) return right;
      if (absl::Status s = Boolean(**right, "and"); !s.ok()) return s;
      node->children.push_back(std::move(*right));
    }
    return node;
  }

  absl::StatusOr<std::unique_ptr<Condition>> Not(int depth) {
    if (!IsWord("not")) return Comparison(depth);
    int column = Next().column;
    if (depth >= kMaxDepth) return Error(column, absl::StrCat("nested more than ", kMaxDepth, " levels deep"));
    auto operand = Not(depth + 1);
    if (!operand.ok()) return operand;
    if (absl::Status s = Boolean(**operand, "not"); !s.ok()) return s;
    auto node = Node(Kind::kNot, column);
    node->children.push_back(std::move(*operand));
    return node;
  }

  absl::StatusOr<std::unique_ptr<Condition>> Comparison(int depth) {
    auto left = Operand(depth);
    if (!left.ok()) return left;
    Kind kind;
    std::string op = Peek().text;
    int column = Peek().column;
    if (Peek().type == Token::Type::kOp) {
      kind = op == "==" ? Kind::kEq : op == "!=" ? Kind::kNe : op == "<" ? Kind::kLt
             : op == "<=" ? Kind::kLe : op == ">" ? Kind::kGt : Kind::kGe;
      Next();
    } else if (IsWord("in")) {
      kind = Kind::kIn;
      Next();
    } else if (IsWord("not") && pos_ + 1 < tokens_.size() && tokens_[pos_ + 1].type == Token::Type::kWord &&
               tokens_[pos_ + 1].text == "in") {
      kind = Kind::kNotIn;
      op = "not in";
      Next();
      Next();
    } else {
      return left;
    }
    if (Peek().type == Token::Type::kEnd) return Error(Peek().column, absl::StrCat("expected a value after '", op, "'"));
    auto right = Operand(depth);
    if (!right.ok()) return right;
    const Condition& l = **left;
    const Condition& r = **right;
    auto is_list = [](const Condition& c) { return c.kind == Kind::kLiteral && c.literal.is_array(); };
    if (kind == Kind::kIn || kind == Kind::kNotIn) {
      if (r.kind != Kind::kRef && !is_list(r)) {
        return Error(r.column, absl::StrCat("'", op, "' needs a list or a reference on its right"));
      }
      if (is_list(l)) return Error(l.column, absl::StrCat("'", op, "' needs a single value on its left, not a list"));
    } else {
      for (const Condition* side : {&l, &r}) {
        if (is_list(*side)) return Error(side->column, absl::StrCat("'", op, "' compares single values, not lists"));
      }
      bool ordering = kind != Kind::kEq && kind != Kind::kNe;
      if (ordering) {
        for (const Condition* side : {&l, &r}) {
          if (side->kind == Kind::kLiteral && !side->literal.is_number() && !side->literal.is_string()) {
            return Error(side->column, absl::StrCat("'", op, "' orders numbers or strings, not ", side->literal.dump()));
          }
        }
        if (l.kind == Kind::kLiteral && r.kind == Kind::kLiteral && l.literal.is_number() != r.literal.is_number()) {
          return Error(r.column, absl::StrCat("'", op, "' cannot order a number and a string"));
        }
      }
    }
    auto node = Node(kind, column);
    node->children.push_back(std::move(*left));
    node->children.push_back(std::move(*right));
    return node;
  }

  absl::StatusOr<nlohmann::json> Scalar() {
    const Token& t = Peek();
    switch (t.type) {
      case Token::Type::kString:
        Next();
        return nlohmann::json(t.text);
      case Token::Type::kNumber: {
        std::string text = t.text;
        Next();
        char* end = nullptr;
        double v = std::strtod(text.c_str(), &end);
        if (end != text.c_str() + text.size()) return Error(t.column, absl::StrCat("'", text, "' is not a number"));
        return nlohmann::json(v);
      }
      case Token::Type::kWord:
        if (t.text == "true" || t.text == "false") {
          Next();
          return nlohmann::json(t.text == "true");
        }
        if (t.text == "null") {
          Next();
          return nlohmann::json(nullptr);
        }
        return Error(t.column, absl::StrCat("unknown word '", t.text, "' (strings are quoted: '", t.text, "')"));
      default:
        return Error(t.column, t.type == Token::Type::kEnd ? std::string("expected a value at the end")
                                                           : absl::StrCat("expected a value, found '", t.text, "'"));
    }
  }

  absl::StatusOr<std::unique_ptr<Condition>> Operand(int depth) {
    const Token& t = Peek();
    if (depth >= kMaxDepth) return Error(t.column, absl::StrCat("nested more than ", kMaxDepth, " levels deep"));
    if (t.type == Token::Type::kOpen) {
      Next();
      auto inner = Or(depth + 1);
      if (!inner.ok()) return inner;
      if (Peek().type != Token::Type::kClose) return Error(Peek().column, "expected ')'");
      Next();
      return inner;
    }
    if (t.type == Token::Type::kRef) {
      auto ref = ParseReference(t.text);
      if (!ref.ok()) return Error(t.column, ref.status().message());
      auto node = Node(Kind::kRef, t.column);
      node->ref = *ref;
      Next();
      return node;
    }
    if (t.type == Token::Type::kWord && t.text == "exists") {
      int column = Next().column;
      if (Peek().type != Token::Type::kOpen) return Error(Peek().column, "expected '(' after exists");
      Next();
      if (Peek().type != Token::Type::kRef) return Error(Peek().column, "exists() takes a reference ($task..., $steps...)");
      auto ref = ParseReference(Peek().text);
      if (!ref.ok()) return Error(Peek().column, ref.status().message());
      Next();
      if (Peek().type != Token::Type::kClose) return Error(Peek().column, "expected ')'");
      Next();
      auto node = Node(Kind::kExists, column);
      node->ref = *ref;
      return node;
    }
    if (t.type == Token::Type::kLBracket) {
      auto node = Node(Kind::kLiteral, Next().column);
      node->literal = nlohmann::json::array();
      while (Peek().type != Token::Type::kRBracket) {
        if (!node->literal.empty()) {
          if (Peek().type != Token::Type::kComma) return Error(Peek().column, "expected ',' or ']' in a list");
          Next();
        }
        auto v = Scalar();
        if (!v.ok()) return v.status();
        node->literal.push_back(std::move(*v));
      }
      Next();
      return node;
    }
    int column = t.column;
    auto v = Scalar();
    if (!v.ok()) return v.status();
    auto node = Node(Kind::kLiteral, column);
    node->literal = std::move(*v);
    return node;
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
};

void CollectSteps(const Condition& c, std::vector<std::string>* out) {
  if ((c.kind == Kind::kRef || c.kind == Kind::kExists) && c.ref.root == Reference::Root::kStep) {
    bool seen = false;
    for (const auto& s : *out) seen |= s == c.ref.step;
    if (!seen) out->push_back(c.ref.step);
  }
  for (const auto& child : c.children) CollectSteps(*child, out);
}

}  // namespace

std::vector<std::string> Condition::Steps() const {
  std::vector<std::string> out;
  CollectSteps(*this, &out);
  return out;
}

absl::StatusOr<std::unique_ptr<Condition>> ParseCondition(absl::string_view text) {
  auto tokens = Tokenize(text);
  if (!tokens.ok()) return tokens.status();
  if (tokens->size() == 1) return Error(1, "empty condition");
  return Parser(std::move(*tokens)).Parse();
}

}  // namespace agentfleet
