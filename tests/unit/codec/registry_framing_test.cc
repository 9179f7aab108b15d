// The Schema Registry wire format (codec/registry_framing.h): what Confluent's
// Protobuf serializers write is read as the plain message; framing for
// another message type, or cut short, is refused with a reason.
#include "codec/registry_framing.h"

#include "codec/codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet {
namespace {

using ::testing::HasSubstr;

v1::TaskSubmission Submission() {
  v1::TaskSubmission t;
  t.set_task_id("t-1");
  t.set_workflow("support");
  (*t.mutable_input()->mutable_fields())["q"].set_string_value("hello");
  return t;
}

TEST(RegistryFramingTest, AFramedSubmissionDecodesAsThePlainOne) {
  v1::TaskSubmission t = Submission();
  std::string framed = FrameForRegistry(258, t);
  // magic byte, id 258 big-endian, the shorthand [0], then the message.
  EXPECT_EQ(framed.substr(0, 6), std::string("\x00\x00\x00\x01\x02\x00", 6));
  EXPECT_EQ(framed.substr(6), t.SerializeAsString());
  auto decoded = Decode<v1::TaskSubmission>(framed, {});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->SerializeAsString(), t.SerializeAsString());
  EXPECT_EQ(ReadableTaskId(framed, 1 << 20), "t-1");
}

TEST(RegistryFramingTest, TheIndexPathNamesNestedTypesAndIsReadBack) {
  EXPECT_EQ(MessageIndexPath(*v1::TaskSubmission::descriptor()), std::vector<int>{0});
  EXPECT_EQ(MessageIndexPath(*v1::TaskResult::descriptor()), std::vector<int>{2});
  const auto* labels_entry = v1::TaskSubmission::descriptor()->FindFieldByName("labels")->message_type();
  EXPECT_EQ(MessageIndexPath(*labels_entry), (std::vector<int>{0, 0}));
  v1::TaskResult r;
  r.set_task_id("t-1");
  r.set_status(v1::TASK_STATUS_COMPLETED);
  std::string framed = FrameForRegistry(7, r);
  // A count of 1 and the index 2, both zigzag: 0x02 0x04.
  EXPECT_EQ(framed.substr(5, 2), std::string("\x02\x04", 2));
  auto parsed = ParseRegistryFraming(framed);
  ASSERT_TRUE(parsed.ok() && parsed->has_value());
  EXPECT_EQ((*parsed)->schema_id, 7);
  EXPECT_EQ((*parsed)->message_indexes, std::vector<int>{2});
  auto decoded = Decode<v1::TaskResult>(framed, {});
  EXPECT_TRUE(decoded.ok()) << decoded.status();
}

TEST(RegistryFramingTest, APlainMessageIsNotFramed) {
  auto parsed = ParseRegistryFraming(Submission().SerializeAsString());
  ASSERT_TRUE(parsed.ok());
  EXPECT_FALSE(parsed->has_value());
}

TEST(RegistryFramingTest, FramingForAnotherTypeOrCutShortIsRefusedWithAReason) {
  v1::TaskResult r;
  r.set_task_id("t-1");
  auto wrong = Decode<v1::TaskSubmission>(FrameForRegistry(9, r), {});
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.status().message(),
              HasSubstr("Schema Registry framing (schema id 9) names message index path [2], not "
                        "agentfleet.v1.TaskSubmission ([0] in agentfleet/v1/task.proto)"));
  auto cut = Decode<v1::TaskSubmission>(std::string("\x00\x00\x01", 3), {});
  ASSERT_FALSE(cut.ok());
  EXPECT_THAT(cut.status().message(), HasSubstr("cut short"));
  auto no_count = Decode<v1::TaskSubmission>(std::string("\x00\x00\x00\x00\x01", 5), {});
  ASSERT_FALSE(no_count.ok());
  EXPECT_THAT(no_count.status().message(), HasSubstr("no valid message-index count"));
  auto runaway = Decode<v1::TaskSubmission>(std::string("\x00\x00\x00\x00\x01\xff\xff\xff\xff\xff\xff", 11), {});
  EXPECT_FALSE(runaway.ok());
  EXPECT_EQ(ReadableTaskId(std::string("\x00\x00\x01", 3), 1 << 20), "");
}

}  // namespace
}  // namespace agentfleet
