// The OTLP/JSON body agentfleet posts to a collector, and the tracing config.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tracing/otlp_exporter.h"

namespace agentfleet {
namespace {

TEST(OtlpTest, SpanFromTraceparentsAndItsJsonEncoding) {
  std::string parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  std::string self = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
  Span span = SpanFrom(self, parent, "call triage", Span::Kind::kClient, absl::FromUnixNanos(1000),
                       absl::FromUnixNanos(5000));
  span.attributes = {{"agentfleet.agent", std::string("triage")},
                     {"gen_ai.usage.input_tokens", int64_t{42}},
                     {"agentfleet.cost_usd", 0.5},
                     {"agentfleet.cached", true}};
  span.error = true;
  span.status_message = "rate_limited: slow down";
  auto body = nlohmann::json::parse(OtlpJson("agentfleet-worker", {span}));
  const auto& rs = body["resourceSpans"][0];
  EXPECT_EQ(rs["resource"]["attributes"][0]["key"], "service.name");
  EXPECT_EQ(rs["resource"]["attributes"][0]["value"]["stringValue"], "agentfleet-worker");
  const auto& s = rs["scopeSpans"][0]["spans"][0];
  // OTLP/JSON: ids as hex, times and int64 values as decimal strings.
  EXPECT_EQ(s["traceId"], "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(s["spanId"], "00f067aa0ba902b7");
  EXPECT_EQ(s["parentSpanId"], "b7ad6b7169203331");
  EXPECT_EQ(s["kind"], 3);
  EXPECT_EQ(s["startTimeUnixNano"], "1000");
  EXPECT_EQ(s["endTimeUnixNano"], "5000");
  EXPECT_EQ(s["attributes"][0]["value"]["stringValue"], "triage");
  EXPECT_EQ(s["attributes"][1]["value"]["intValue"], "42");
  EXPECT_EQ(s["attributes"][2]["value"]["doubleValue"], 0.5);
  EXPECT_EQ(s["attributes"][3]["value"]["boolValue"], true);
  EXPECT_EQ(s["status"]["code"], 2);
  EXPECT_EQ(s["status"]["message"], "rate_limited: slow down");
}

TEST(OtlpTest, AParentOfAnotherTraceOrInvalidIsNoParent) {
  std::string self = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
  EXPECT_EQ(SpanFrom(self, "garbage", "x", Span::Kind::kInternal, absl::Now(), absl::Now()).parent_span_id, "");
  EXPECT_EQ(SpanFrom(self, "00-11111111111111111111111111111111-b7ad6b7169203331-01", "x", Span::Kind::kInternal,
                     absl::Now(), absl::Now())
                .parent_span_id,
            "");
  auto body = nlohmann::json::parse(OtlpJson("s", {SpanFrom(self, "", "x", Span::Kind::kInternal, absl::Now(), absl::Now())}));
  EXPECT_FALSE(body["resourceSpans"][0]["scopeSpans"][0]["spans"][0].contains("parentSpanId"));
}

TEST(OtlpTest, TracingOffWithoutAnEndpointAndABadUrlFailsAtStart) {
  EXPECT_EQ(OtlpExporter::Start(TracingConfig{}, "x"), nullptr);
  auto bad = LoadConfigString("tracing: {otlp_endpoint: 'collector:4318'}\n", "fleet.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              ::testing::HasSubstr("fleet.yaml:1:26: tracing.otlp_endpoint: expected an http:// or https:// URL"));
}

}  // namespace
}  // namespace agentfleet
