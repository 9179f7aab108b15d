#include "codec/codec.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "codec/json_value.h"
#include "codec/trace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet {
namespace {

using ::testing::HasSubstr;

std::string ReadGolden(const std::string& name) {
  std::ifstream in(std::string(AGENTFLEET_SOURCE_DIR) + "/tests/golden/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

v1::TaskSubmission Submission() {
  v1::TaskSubmission s;
  s.set_task_id("t-1");
  s.set_workflow("support");
  *s.mutable_input() = ToStruct(nlohmann::json{{"q", "why"}, {"n", 2}});
  return s;
}

TEST(CodecTest, RoundTripsWithSchemaHeaders) {
  Encoded e = Encode(Submission(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  EXPECT_EQ(FindHeader(e.headers, kSchemaHeader), "agentfleet.v1.TaskSubmission");
  EXPECT_EQ(FindHeader(e.headers, kSchemaVersionHeader), "1");
  EXPECT_EQ(FindHeader(e.headers, kTraceparentHeader), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  auto decoded = Decode<v1::TaskSubmission>(e.payload, e.headers);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->task_id(), "t-1");
  EXPECT_EQ(FromStruct(decoded->input()), (nlohmann::json{{"q", "why"}, {"n", 2}}));
}

TEST(CodecTest, RejectsGarbageWrongSchemaUnknownVersionAndOversize) {
  EXPECT_THAT(Decode<v1::TaskSubmission>("\xff\xff\xff garbage", {}).status().message(),
              HasSubstr("not a valid agentfleet.v1.TaskSubmission"));
  Encoded e = Encode(Submission(), "");
  EXPECT_THAT(Decode<v1::WorkEvent>(e.payload, e.headers).status().message(),
              HasSubstr("schema header says agentfleet.v1.TaskSubmission but this topic carries agentfleet.v1.WorkEvent"));
  Headers v2 = {{kSchemaVersionHeader, "2"}};
  EXPECT_THAT(Decode<v1::TaskSubmission>(e.payload, v2).status().message(),
              HasSubstr("unsupported schema version 2"));
  EXPECT_THAT(Decode<v1::TaskSubmission>(e.payload, {}, 4).status().message(),
              HasSubstr("exceeds the limit of 4 bytes"));
}

TEST(CodecTest, ValidationNamesTheField) {
  v1::TaskSubmission s = Submission();
  s.set_task_id("");
  Encoded e = Encode(s, "");
  EXPECT_THAT(Decode<v1::TaskSubmission>(e.payload, e.headers).status().message(), HasSubstr("task_id is empty"));
  s = Submission();
  s.mutable_budget()->set_max_cost_usd(-1);
  e = Encode(s, "");
  EXPECT_THAT(Decode<v1::TaskSubmission>(e.payload, e.headers).status().message(),
              HasSubstr("budget.max_cost_usd is negative"));
  v1::WorkEvent ev;
  ev.set_task_id("t");
  ev.set_step("s");
  ev.set_attempt(1);
  e = Encode(ev, "");
  EXPECT_THAT(Decode<v1::WorkEvent>(e.payload, e.headers).status().message(), HasSubstr("no receipt, heartbeat or result"));
}

TEST(CodecTest, InvalidUtf8InAStringFieldIsRejected) {
  // Field 1 (task_id), length 2, bytes 0xC3 0x28: not UTF-8.
  std::string payload = std::string("\x0a\x02\xc3\x28", 4) + "\x1a\x01w";
  auto decoded = Decode<v1::TaskSubmission>(payload, {});
  ASSERT_FALSE(decoded.ok());
  // The reason names the field (protobuf's own diagnosis, kept for the DLQ).
  EXPECT_THAT(decoded.status().message(), HasSubstr("agentfleet.v1.TaskSubmission.task_id"));
  EXPECT_THAT(decoded.status().message(), HasSubstr("invalid UTF-8"));
}

TEST(CodecTest, TruncatedPayloadsAreRejectedAsTruncated) {
  Encoded e = Encode(Submission(), "");
  for (size_t cut : {size_t{1}, e.payload.size() / 2, e.payload.size() - 1}) {
    auto decoded = Decode<v1::TaskSubmission>(absl::string_view(e.payload).substr(0, cut), {});
    ASSERT_FALSE(decoded.ok()) << cut;
    EXPECT_THAT(decoded.status().message(), HasSubstr("not a valid agentfleet.v1.TaskSubmission")) << cut;
  }
}

nlohmann::json Nested(int levels) {
  nlohmann::json j = "leaf";
  for (int i = 0; i < levels; ++i) j = (i % 2) ? nlohmann::json{{"k", j}} : nlohmann::json::array({j});
  return nlohmann::json{{"deep", j}};
}

TEST(CodecTest, DeeplyNestedInputsAreRejectedSayingHowDeep) {
  v1::TaskSubmission s = Submission();
  *s.mutable_input() = ToStruct(Nested(20));
  Encoded ok = Encode(s, "");
  EXPECT_TRUE(Decode<v1::TaskSubmission>(ok.payload, ok.headers).ok());
  // Deeper than our limit, within protobuf's: our reason.
  *s.mutable_input() = ToStruct(Nested(30));
  Encoded deep = Encode(s, "");
  EXPECT_THAT(Decode<v1::TaskSubmission>(deep.payload, deep.headers).status().message(),
              HasSubstr("input nests more than 24 levels deep"));
  // Past protobuf's recursion limit (100): the parse itself refuses, saying so.
  *s.mutable_input() = ToStruct(Nested(200));
  Encoded deeper = Encode(s, "");
  auto decoded = Decode<v1::TaskSubmission>(deeper.payload, deeper.headers);
  ASSERT_FALSE(decoded.ok());
  EXPECT_THAT(decoded.status().message(), HasSubstr("nested deeper than protobuf allows"));
}

TEST(CodecTest, AbsurdBudgetsAreRejectedNamingTheField) {
  struct Case {
    std::function<void(v1::Budget*)> set;
    std::string reason;
  };
  std::vector<Case> cases = {
      {[](v1::Budget* b) { b->set_max_tokens(-5); }, "budget.max_tokens is negative"},
      {[](v1::Budget* b) { b->set_max_cost_usd(std::nan("")); }, "budget.max_cost_usd is negative or not finite"},
      {[](v1::Budget* b) { b->set_max_cost_usd(INFINITY); }, "budget.max_cost_usd is negative or not finite"},
      {[](v1::Budget* b) { b->set_max_steps(-1); }, "budget.max_steps is negative"},
      {[](v1::Budget* b) { b->set_max_fanout_depth(-2); }, "budget.max_fanout_depth is negative"},
  };
  for (const Case& c : cases) {
    v1::TaskSubmission s = Submission();
    c.set(s.mutable_budget());
    Encoded e = Encode(s, "");
    EXPECT_THAT(Decode<v1::TaskSubmission>(e.payload, e.headers).status().message(), HasSubstr(c.reason));
  }
}

TEST(GoldenTest, CurrentFixtureDecodesAndReencodesByteForByte) {
  std::string bytes = ReadGolden("task_submission_v1.bin");
  auto s = Decode<v1::TaskSubmission>(bytes, {});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->task_id(), "golden-1");
  EXPECT_EQ(s->tenant(), "acme");
  EXPECT_EQ(s->budget().max_tokens(), 5000);
  EXPECT_DOUBLE_EQ(s->budget().max_cost_usd(), 0.25);
  EXPECT_EQ(s->priority(), v1::PRIORITY_INTERACTIVE);
  EXPECT_EQ(s->labels().at("team"), "support");
  EXPECT_EQ(Encode(*s, "").payload, bytes);
}

TEST(GoldenTest, ReaderKeepsFieldsItDoesNotKnow) {
  std::string bytes = ReadGolden("task_submission_v1_future.bin");
  auto s = Decode<v1::TaskSubmission>(bytes, {});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->task_id(), "golden-2");
  EXPECT_EQ(s->priority(), v1::PRIORITY_BATCH);
  // Fields 20-22 are unknown here but kept...
  EXPECT_FALSE(s->GetReflection()->GetUnknownFields(*s).empty());
  // ...through a copy (as the coordinator keeps the submission)...
  v1::TaskSubmission copy = *s;
  // ...and written back unchanged.
  EXPECT_EQ(Encode(copy, "").payload, bytes);
  EXPECT_NE(Encode(copy, "").payload.find("from a newer client"), std::string::npos);
}

TEST(GoldenTest, SignalsAndCancellationsDecodeAndReencodeByteForByte) {
  std::string bytes = ReadGolden("task_signal_v1.bin");
  auto s = Decode<v1::TaskSignal>(bytes, {});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->task_id(), "golden-1");
  EXPECT_EQ(s->name(), "approve");
  EXPECT_EQ(FromValue(s->payload()), (nlohmann::json{{"ok", true}}));
  EXPECT_EQ(s->sender(), "alice@example.com");
  EXPECT_FALSE(s->cancel());
  EXPECT_EQ(Encode(*s, "").payload, bytes);
  std::string cancel_bytes = ReadGolden("task_signal_v1_cancel.bin");
  auto c = Decode<v1::TaskSignal>(cancel_bytes, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->cancel());
  EXPECT_EQ(c->reason(), "customer withdrew the ticket");
  EXPECT_EQ(Encode(*c, "").payload, cancel_bytes);
}

TEST(GoldenTest, AResultWithAgentQuestionsAndRescopesDecodesAndReencodesByteForByte) {
  std::string bytes = ReadGolden("task_result_v1_signals.bin");
  auto r = Decode<v1::TaskResult>(bytes, {});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->steps_size(), 1);
  ASSERT_EQ(r->steps(0).questions_size(), 1);
  const v1::AgentQuestion& q = r->steps(0).questions(0);
  EXPECT_EQ(q.question(), "Which order is this about?");
  EXPECT_EQ(FromValue(q.answer()), (nlohmann::json{{"answer", "A-17"}}));
  EXPECT_EQ(q.answered_by(), "alice");
  ASSERT_EQ(r->rescopes_size(), 1);
  EXPECT_EQ(r->rescopes(0).planner(), "plan");
  EXPECT_EQ(r->rescopes(0).fan_index(), 1);
  EXPECT_EQ(Encode(*r, "").payload, bytes);
}

TEST(CodecTest, ASignalWithoutATaskOrANameIsRefusedSayingWhich) {
  v1::TaskSignal s;
  s.set_name("approve");
  EXPECT_THAT(std::string(Decode<v1::TaskSignal>(Encode(s, "").payload, {}).status().message()),
              ::testing::HasSubstr("task_id is empty"));
  s.set_task_id("t");
  s.clear_name();
  EXPECT_THAT(std::string(Decode<v1::TaskSignal>(Encode(s, "").payload, {}).status().message()),
              ::testing::HasSubstr("name is empty"));
  s.set_cancel(true);  // a cancellation needs no name
  EXPECT_TRUE(Decode<v1::TaskSignal>(Encode(s, "").payload, {}).ok());
}

TEST(TraceTest, ParsesAndDerivesTraceparents) {
  std::string tp = NewTraceparent();
  EXPECT_TRUE(IsValidTraceparent(tp));
  std::string child = ChildTraceparent(tp);
  EXPECT_TRUE(IsValidTraceparent(child)) << child;
  EXPECT_EQ(TraceId(child), TraceId(tp));
  EXPECT_NE(child, tp);
  // The parent's flags are kept (not sampled stays not sampled); each child
  // gets its own span id.
  const std::string unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
  std::set<std::string> spans;
  for (int i = 0; i < 100; ++i) {
    std::string c = ChildTraceparent(unsampled);
    ASSERT_TRUE(IsValidTraceparent(c)) << c;
    EXPECT_EQ(c.substr(0, 36), unsampled.substr(0, 36));
    EXPECT_EQ(c.substr(52), "-00");
    spans.insert(c.substr(36, 16));
  }
  EXPECT_EQ(spans.size(), 100u);
  // An invalid parent starts a new trace.
  std::string fresh = ChildTraceparent("garbage");
  EXPECT_TRUE(IsValidTraceparent(fresh)) << fresh;
  EXPECT_NE(TraceId(fresh), TraceId(tp));
  EXPECT_FALSE(IsValidTraceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01"));
  EXPECT_FALSE(IsValidTraceparent("garbage"));
}

TEST(TraceTest, APackedTraceparentGivesBackWhatItWasGivenAndDropsWhatIsInvalid) {
  const std::string tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  EXPECT_EQ(PackedTraceparent(tp).str(), tp);
  EXPECT_EQ(PackedTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00").str(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00");  // not sampled
  for (int i = 0; i < 100; ++i) {
    std::string fresh = NewTraceparent();
    EXPECT_EQ(PackedTraceparent(fresh).str(), fresh);
  }
  EXPECT_TRUE(PackedTraceparent().empty());
  EXPECT_EQ(PackedTraceparent().str(), "");
  EXPECT_TRUE(PackedTraceparent("garbage").empty());
  EXPECT_TRUE(PackedTraceparent("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01").empty());  // uppercase
  EXPECT_TRUE(PackedTraceparent("").empty());
  EXPECT_LE(sizeof(PackedTraceparent), 26u);
}

TEST(JsonValueTest, CanonicalJsonSortsKeysAndKeepsIntegers) {
  nlohmann::json j = FromStruct(ToStruct(nlohmann::json{{"b", 1}, {"a", {{"z", true}, {"y", 2.5}}}}));
  EXPECT_EQ(CanonicalJson(j), R"({"a":{"y":2.5,"z":true},"b":1})");
}

}  // namespace
}  // namespace agentfleet
