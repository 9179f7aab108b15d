// Triggers and emits (issue 18, item 7): the submission an event starts (id
// from the key or a field, input from the template, bad events refused with
// the reason), the config's errors with file:line:col, and the records a
// step's and a task's emit: add to the outbox.
#include "coordinator/trigger.h"

#include "codec/json_value.h"
#include "coordinator/task_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine_test_util.h"

namespace agentfleet {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

constexpr char kConfig[] = R"(providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a: {provider: sim, models: {default: m}}
workflows:
  ingest:
    emit: docs.done
    steps:
      - {id: read, agent: a, input: {doc: $task.doc}, emit: docs.read}
      - {id: sum, agent: a, input: {text: $steps.read.text}}
triggers:
  uploaded:
    topic: docs.uploaded
    workflow: ingest
    task_id: $event.doc.id
    input: {doc: $event.doc, source: $key, literal: $$event}
    tenant: acme
  by_key:
    topic: docs.keyed
    workflow: ingest
)";

FleetConfig Config() {
  auto c = LoadConfigString(kConfig, "t.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : FleetConfig();
}

TEST(TriggerTest, AnEventBecomesASubmissionWithAStableIdAndItsMappedInput) {
  FleetConfig config = Config();
  const TriggerConfig& t = config.triggers.at("uploaded");
  auto s = TriggeredSubmission(t, "k1", R"({"doc": {"id": "d-42", "url": "s3://b/d-42"}, "size": 9})");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->task_id(), "uploaded/d-42");
  EXPECT_EQ(s->workflow(), "ingest");
  EXPECT_EQ(s->tenant(), "acme");
  EXPECT_EQ(FromStruct(s->input()),
            (Json{{"doc", {{"id", "d-42"}, {"url", "s3://b/d-42"}}}, {"source", "k1"}, {"literal", "$event"}}));
  // The same event again, under another key: the same task.
  EXPECT_EQ(TriggeredSubmission(t, "k2", R"({"doc": {"id": "d-42"}})")->task_id(), "uploaded/d-42");
  // An integer id; the whole event as input by default; the key as id.
  EXPECT_EQ(TriggeredSubmission(t, "", R"({"doc": {"id": 7}})")->task_id(), "uploaded/7");
  auto keyed = TriggeredSubmission(config.triggers.at("by_key"), "doc-9", R"({"doc": "x"})");
  ASSERT_TRUE(keyed.ok());
  EXPECT_EQ(keyed->task_id(), "by_key/doc-9");
  EXPECT_EQ(FromStruct(keyed->input()), (Json{{"doc", "x"}}));
}

TEST(TriggerTest, AnEventThatCannotStartATaskSaysWhy) {
  FleetConfig config = Config();
  const TriggerConfig& t = config.triggers.at("uploaded");
  EXPECT_THAT(std::string(TriggeredSubmission(t, "k", "not json").status().message()), HasSubstr("not JSON"));
  EXPECT_THAT(std::string(TriggeredSubmission(t, "k", R"({"doc": {}})").status().message()),
              HasSubstr("$event.doc.id (the task id) is missing"));
  EXPECT_THAT(std::string(TriggeredSubmission(t, "k", R"({"doc": {"id": [1]}})").status().message()),
              HasSubstr("not a string or an integer"));
  EXPECT_THAT(std::string(TriggeredSubmission(config.triggers.at("by_key"), "", "{}").status().message()),
              HasSubstr("no key"));
  EXPECT_THAT(std::string(TriggeredSubmission(config.triggers.at("by_key"), "k", "[1, 2]").status().message()),
              HasSubstr("not a JSON object"));
}

TEST(TriggerTest, ABadTriggerNamesFileLineAndField) {
  auto error = [](const std::string& from, const std::string& to) {
    std::string text = kConfig;
    text.replace(text.find(from), from.size(), to);
    return std::string(LoadConfigString(text, "t.yaml").status().message());
  };
  EXPECT_THAT(error("workflow: ingest\n    task_id", "workflow: nope\n    task_id"),
              HasSubstr("t.yaml:14:15: triggers.uploaded.workflow: unknown workflow 'nope'"));
  EXPECT_THAT(error("task_id: $event.doc.id", "task_id: $task.id"),
              HasSubstr("triggers.uploaded.task_id: expected $key or $event.FIELD, got '$task.id'"));
  EXPECT_THAT(error("source: $key", "source: $steps.x"),
              HasSubstr("triggers.uploaded.input.source: a trigger's input reads $event, $event.FIELD or $key"));
  EXPECT_THAT(error("topic: docs.keyed", "topic: docs.uploaded"), HasSubstr("another trigger reads 'docs.uploaded'"));
  EXPECT_THAT(error("topic: docs.keyed", "topic: agentfleet.tasks"), HasSubstr("is one of the fleet's own topics"));
  EXPECT_THAT(error("emit: docs.read", "emit: 'no spaces'"), HasSubstr("steps[0].emit: not a Kafka topic name"));
}

class EmitTest : public engine_test::EngineTest {
 protected:
  EmitTest() : EngineTest(kConfig) {}
};

TEST_F(EmitTest, AStepsOutputAndTheTasksResultArePublishedWhereTheyAsk) {
  Outbox out;
  ASSERT_TRUE(engine_->Submit(engine_test::Submission("t1", "ingest", {{"doc", "d"}}), "", 0, &out).ok());
  EXPECT_TRUE(out.records.empty());
  Outbox read = engine_test::Answer(*engine_, config_, engine_test::ItemFor(out, "read"), {{"text", "hello"}});
  ASSERT_EQ(read.records.size(), 1u) << "the read step's output, emitted with the dispatch of the next step";
  EXPECT_EQ(read.records[0].topic, "docs.read");
  EXPECT_EQ(read.records[0].key, "t1");
  EXPECT_EQ(Json::parse(read.records[0].payload),
            (Json{{"task_id", "t1"}, {"tenant", ""}, {"workflow", "ingest"}, {"step", "read"}, {"output", {{"text", "hello"}}}}));
  Outbox done = engine_test::Answer(*engine_, config_, engine_test::ItemFor(read, "sum"), {{"summary", "hi"}});
  ASSERT_EQ(done.results.size(), 1u);
  ASSERT_EQ(done.records.size(), 1u) << "the sum step emits nothing; the result goes to docs.done";
  EXPECT_EQ(done.records[0].topic, "docs.done");
  Json result = Json::parse(done.records[0].payload);
  EXPECT_EQ(result["task_id"], "t1");
  EXPECT_EQ(result["status"], "TASK_STATUS_COMPLETED");
  EXPECT_EQ(result["output"], (Json{{"summary", "hi"}}));
}

}  // namespace
}  // namespace agentfleet
