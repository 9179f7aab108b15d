#include "config/config.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kafka/topics.h"

namespace agentfleet {
namespace {

using ::testing::HasSubstr;

constexpr char kValid[] = R"(kafka:
  topic_prefix: t.
  partitions: 4
providers:
  sim: {type: simulated, latency: {distribution: fixed, mean_ms: 5}}
pricing:
  m1: {input_per_mtok: 1, output_per_mtok: 2}
agents:
  a:
    provider: sim
    models: {default: m1}
    output_schema: {type: object, required: [x], properties: {x: {type: string}}}
  b:
    provider: sim
    models: {default: m1}
workflows:
  w:
    steps:
      - id: first
        agent: a
        input: {q: $task.question}
      - id: fan
        agent: b
        for_each: $task.items
        input: {item: $item, prior: $steps.first.x}
      - id: last
        agent: a
        input: {all: $steps.fan}
)";

// Replaces the first occurrence of `from` in kValid with `to`.
std::string Variant(const std::string& from, const std::string& to) {
  std::string text = kValid;
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return text.replace(at, from.size(), to);
}

// The load error of `base` with its first `from` replaced by `to` (which must be an error).
std::string ErrorOfEdit(std::string base, const std::string& from, const std::string& to, const std::string& source) {
  size_t at = base.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) base.replace(at, from.size(), to);
  auto c = LoadConfigString(base, source);
  EXPECT_FALSE(c.ok()) << to;
  return c.ok() ? std::string() : std::string(c.status().message());
}

std::string ErrorOf(const std::string& text) {
  auto config = LoadConfigString(text, "fleet.yaml");
  EXPECT_FALSE(config.ok());
  return config.ok() ? "" : std::string(config.status().message());
}

TEST(ConfigTest, LoadsValidConfigWithDerivedDependenciesAndOutputStep) {
  auto config = LoadConfigString(kValid, "fleet.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const WorkflowConfig* w = config->FindWorkflow("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->output_step, "last");
  EXPECT_THAT(w->FindStep("fan")->depends_on, ::testing::ElementsAre("first"));
  EXPECT_THAT(w->FindStep("last")->depends_on, ::testing::ElementsAre("fan"));
  EXPECT_TRUE(w->FindStep("fan")->for_each.has_value());
  EXPECT_EQ(config->kafka.partitions, 4);
  EXPECT_EQ(config->agents.at("a").max_attempts, 3);  // default
  EXPECT_DOUBLE_EQ(config->Cost("m1", 1'000'000, 500'000), 2.0);
}

// Found by fuzz/config_fuzzer: bytes that are not UTF-8 in a schema made the
// loader throw (and the process abort) instead of naming the line.
TEST(ConfigTest, BytesThatAreNotUtf8AreAnErrorNamingTheLine) {
  std::string text = std::string(kValid);
  size_t third_line = text.find('\n', text.find('\n') + 1) + 1;
  text.insert(third_line, "# caf\xc3\x28\n");
  auto config = LoadConfigString(text, "fleet.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("fleet.yaml:3: the file is not valid UTF-8"));
  auto cut = LoadConfigString(std::string(kValid) + "# \xe2\x94", "fleet.yaml");
  ASSERT_FALSE(cut.ok());
  EXPECT_THAT(cut.status().message(), HasSubstr("not valid UTF-8"));
}

TEST(ConfigTest, UnknownKeyNamesFileLineAndField) {
  std::string err = ErrorOf(Variant("  partitions: 4", "  partitions: 4\n  partitons: 9"));
  EXPECT_THAT(err, HasSubstr("fleet.yaml:4:3: kafka.partitons: unknown key"));
}

TEST(ConfigTest, WrongTypeNamesTheField) {
  std::string err = ErrorOf(Variant("partitions: 4", "partitions: four"));
  EXPECT_THAT(err, HasSubstr("fleet.yaml:3:15: kafka.partitions: expected an integer, got 'four'"));
}

TEST(ConfigTest, UnknownAgentInStep) {
  std::string err = ErrorOf(Variant("agent: b", "agent: nobody"));
  EXPECT_THAT(err, HasSubstr("workflows.w.steps[1].agent: unknown agent 'nobody'"));
  EXPECT_THAT(err, HasSubstr("fleet.yaml:23:16"));
}

TEST(ConfigTest, DependencyCycleIsReportedWithItsPath) {
  std::string err = ErrorOf(Variant("input: {q: $task.question}", "input: {q: $steps.last.x}"));
  EXPECT_THAT(err, HasSubstr("dependency cycle: first -> last -> fan -> first"));
}

// The cycle check belongs to the workflow model, usable without a file.
TEST(WorkflowConfigTest, DependencyCycleIsThePathThatClosesItOrEmptyForADag) {
  WorkflowConfig w;
  auto step = [](std::string id, std::vector<std::string> deps) {
    StepConfig s;
    s.id = std::move(id);
    s.depends_on = std::move(deps);
    return s;
  };
  w.steps = {step("a", {}), step("b", {"a"}), step("c", {"a", "b"})};
  EXPECT_TRUE(w.DependencyCycle().empty());
  w.steps = {step("a", {"c"}), step("b", {"a"}), step("c", {"b"}), step("d", {"d", "zzz"})};
  EXPECT_EQ(w.DependencyCycle(), (std::vector<std::string>{"a", "c", "b", "a"}));
  w.steps = {step("d", {"d", "zzz"})};
  EXPECT_TRUE(w.DependencyCycle().empty()) << "a self-reference or an unknown step is reported elsewhere";
}

// Every enumerated setting names its choices when given another value.
TEST(ConfigTest, AnUnknownChoiceNamesTheChoices) {
  std::string err = ErrorOf(Variant("pricing:\n", "coordinator: {processing: twice}\npricing:\n"));
  EXPECT_THAT(err, HasSubstr("coordinator.processing: expected exactly_once or at_least_once, got 'twice'"));
}

TEST(ConfigTest, ReferenceToUnknownStep) {
  std::string err = ErrorOf(Variant("prior: $steps.first.x", "prior: $steps.frist.x"));
  EXPECT_THAT(err, HasSubstr("workflows.w.steps[1]: references unknown step 'frist'"));
}

TEST(ConfigTest, ItemOutsideFanOutIsAnError) {
  std::string err = ErrorOf(Variant("input: {q: $task.question}", "input: {q: $item}"));
  EXPECT_THAT(err, HasSubstr("workflows.w.steps[0].input.q: $item is only defined in a step with for_each"));
}

TEST(ConfigTest, ModelWithoutPriceIsAnError) {
  std::string err = ErrorOf(Variant("models: {default: m1}", "models: {default: m2}"));
  EXPECT_THAT(err, HasSubstr("agents.a.models.default: model 'm2' has no entry in pricing"));
}

TEST(ConfigTest, SeveralFinalStepsNeedAnOutput) {
  std::string err = ErrorOf(Variant("input: {all: $steps.fan}", "input: {all: $task}"));
  EXPECT_THAT(err, HasSubstr("workflows.w.output: several final steps (fan, last)"));
}

TEST(ConfigTest, DuplicateStepIds) {
  std::string err = ErrorOf(Variant("- id: last", "- id: first"));
  EXPECT_THAT(err, HasSubstr("duplicate step id 'first'"));
}

TEST(ConfigTest, SchemaRequiredMustBeAProperty) {
  std::string err = ErrorOf(Variant("required: [x]", "required: [y]"));
  EXPECT_THAT(err, HasSubstr("agents.a.output_schema.required: 'y' is not among the properties"));
}

TEST(ConfigTest, BadDurationAndRange) {
  std::string err = ErrorOf(Variant("    models: {default: m1}\n    output_schema",
                                    "    models: {default: m1}\n    timeout: soon\n    max_attempts: 0\n    output_schema"));
  EXPECT_THAT(err, HasSubstr("agents.a.timeout: expected a positive duration"));
  EXPECT_THAT(err, HasSubstr("agents.a.max_attempts: must be >= 1"));
}

TEST(ConfigTest, YamlSyntaxErrorHasAPosition) {
  std::string err = ErrorOf("kafka: {partitions: [1,\n");
  EXPECT_THAT(err, HasSubstr("fleet.yaml:"));
  EXPECT_THAT(err, HasSubstr("(syntax)"));
}

TEST(ConfigTest, ReportsAllErrorsAtOnce) {
  std::string text = Variant("agent: b", "agent: nobody");
  size_t at = text.find("partitions: 4");
  text.replace(at, 13, "partitions: -1");
  std::string err = ErrorOf(text);
  EXPECT_THAT(err, HasSubstr("kafka.partitions: must be >= 1"));
  EXPECT_THAT(err, HasSubstr("unknown agent 'nobody'"));
}

TEST(ConfigTest, MissingFileIsNotFound) {
  auto config = LoadConfigFile("/nonexistent/fleet.yaml");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
}

TEST(ConfigTest, ShippedExampleLoads) {
  auto config = LoadConfigFile(std::string(AGENTFLEET_SOURCE_DIR) + "/examples/support.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const WorkflowConfig* w = config->FindWorkflow("support");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->output_step, "review");
  EXPECT_THAT(w->FindStep("respond")->depends_on, ::testing::UnorderedElementsAre("classify", "research"));
}

TEST(ConfigTest, ShippedLlmExampleLoadsWithHttpProvidersAndPrompts) {
  auto config = LoadConfigFile(std::string(AGENTFLEET_SOURCE_DIR) + "/examples/llm.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const ProviderConfig& local = config->providers.at("local");
  EXPECT_EQ(local.type, ProviderConfig::Type::kOpenAi);
  EXPECT_EQ(local.base_url, "http://127.0.0.1:8000/v1");
  EXPECT_EQ(config->providers.at("claude").type, ProviderConfig::Type::kAnthropic);
  EXPECT_EQ(config->providers.at("claude").api_key_env, "ANTHROPIC_API_KEY");
  const AgentConfig& classifier = config->agents.at("classifier");
  ASSERT_TRUE(classifier.prompt.has_value());
  EXPECT_EQ(classifier.output_schema_json["required"], nlohmann::json({"category", "urgency"}));
  EXPECT_EQ(classifier.temperature, 0.0);
}

constexpr char kHttpProvider[] = "  sim: {type: simulated, latency: {distribution: fixed, mean_ms: 5}}";

TEST(ConfigTest, HttpProviderNeedsAUrlAndRejectsKeysOfOtherKinds) {
  std::string err = ErrorOf(Variant(kHttpProvider, "  sim: {type: openai, failure_rate: 0.1, anthropic_version: x}"));
  EXPECT_THAT(err, HasSubstr("providers.sim.base_url: is required"));
  EXPECT_THAT(err, HasSubstr("providers.sim.failure_rate: does not apply to a provider of type 'openai'"));
  EXPECT_THAT(err, HasSubstr("providers.sim.anthropic_version: does not apply"));
  err = ErrorOf(Variant(kHttpProvider, "  sim: {type: openai, base_url: 'ftp://x'}"));
  EXPECT_THAT(err, HasSubstr("fleet.yaml:5:33: providers.sim.base_url: expected an http:// or https:// URL"));
  err = ErrorOf(Variant(kHttpProvider, "  sim: {type: grpc}"));
  EXPECT_THAT(err, HasSubstr("unknown provider type 'grpc' (supported: simulated, openai, anthropic)"));
}

TEST(ConfigTest, CredentialsInTheConfigFileAreRefused) {
  std::string err = ErrorOf(Variant(
      kHttpProvider, "  sim: {type: anthropic, base_url: 'https://x', headers: {X-Api-Key: sk-secret}}"));
  EXPECT_THAT(err, HasSubstr("providers.sim.headers.X-Api-Key: credentials do not belong in the config file"));
  err = ErrorOf(Variant(kHttpProvider,
                        "  sim: {type: openai, base_url: 'https://x', api_key_env: K, api_key_file: /k}"));
  EXPECT_THAT(err, HasSubstr("give api_key_env or api_key_file, not both"));
}

TEST(ConfigTest, PromptFieldsMustBeInEveryStepInput) {
  // Agent a reads {{q}}: step "first" gives q, step "last" does not.
  std::string err = ErrorOf(Variant("    models: {default: m1}\n    output_schema",
                                    "    models: {default: m1}\n    prompt: 'Q: {{q}}'\n    output_schema"));
  EXPECT_THAT(err, HasSubstr("workflows.w.steps[2].input: agent 'a' has a prompt that reads {{q}}"));
  EXPECT_THAT(err, ::testing::Not(HasSubstr("steps[0]")));
  // A placeholder under a reference is known only at run time: no error.
  auto ok = LoadConfigString(Variant("  b:\n    provider: sim\n", "  b:\n    provider: sim\n    prompt: '{{prior.deep}}'\n"),
                             "fleet.yaml");
  EXPECT_TRUE(ok.ok()) << ok.status();
  err = ErrorOf(Variant("  b:\n    provider: sim\n", "  b:\n    provider: sim\n    system_prompt: 'x {{item'\n"));
  EXPECT_THAT(err, HasSubstr("agents.b.system_prompt: unclosed '{{' at character 3"));
}


namespace agentfleet {
namespace {

TEST(ConfigTest, WorkerPoolsAndLagIntervalForTheLagMetric) {
  auto config = LoadConfigString(std::string(kValid) + "\nworker: {pools: [fast, batch]}\ncoordinator: {lag_interval: 3s}\n",
                                 "fleet.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->worker.pools, ::testing::ElementsAre("fast", "batch"));
  EXPECT_EQ(config->coordinator.lag_interval, absl::Seconds(3));
  auto defaults = LoadConfigString(kValid, "fleet.yaml");
  ASSERT_TRUE(defaults.ok());
  EXPECT_THAT(defaults->worker.pools, ::testing::ElementsAre("default"));
  EXPECT_THAT(ErrorOf(std::string(kValid) + "\nworker: {pools: []}\n"),
              HasSubstr("worker.pools: expected a non-empty list of worker pool names"));
}

TEST(ConfigTest, StaticMembershipIsOffUnlessTurnedOn) {
  auto defaults = LoadConfigString(kValid, "fleet.yaml");
  ASSERT_TRUE(defaults.ok());
  EXPECT_FALSE(defaults->coordinator.static_membership);
  auto on = LoadConfigString(std::string(kValid) + "\ncoordinator: {static_membership: true}\n", "fleet.yaml");
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_TRUE(on->coordinator.static_membership);
  EXPECT_THAT(ErrorOf(std::string(kValid) + "\ncoordinator: {static_membership: sometimes}\n"),
              HasSubstr("coordinator.static_membership"));
}

TEST(ConfigTest, CommitsAreAdaptiveUnlessTheIntervalPolicyIsChosen) {
  auto defaults = LoadConfigString(kValid, "fleet.yaml");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->coordinator.commit_policy, CoordinatorConfig::CommitPolicy::kAdaptive);
  auto interval = LoadConfigString(std::string(kValid) + "\ncoordinator: {commit_policy: interval}\n", "fleet.yaml");
  ASSERT_TRUE(interval.ok()) << interval.status();
  EXPECT_EQ(interval->coordinator.commit_policy, CoordinatorConfig::CommitPolicy::kInterval);
  std::string error = ErrorOf(std::string(kValid) + "\ncoordinator: {commit_policy: sometimes}\n");
  EXPECT_THAT(error, HasSubstr("fleet.yaml:"));
  EXPECT_THAT(error, HasSubstr("coordinator.commit_policy"));
  EXPECT_THAT(error, HasSubstr("adaptive"));
}

}  // namespace
}  // namespace agentfleet

namespace agentfleet {
namespace {

TEST(ConfigTest, KafkaSecretsComeFromTheEnvironmentNeverFromTheFile) {
  std::string err = ErrorOf(Variant("  partitions: 4", "  partitions: 4\n  properties: {sasl.password: hunter22}"));
  EXPECT_THAT(err, HasSubstr("kafka.properties.sasl.password: credentials do not belong in the config file"));
  std::string path = ::testing::TempDir() + "/secret_env.yaml";
  std::ofstream(path) << Variant("  partitions: 4", "  partitions: 4\n  properties_env: {sasl.password: AF_TEST_SASL_PASSWORD}");
  unsetenv("AF_TEST_SASL_PASSWORD");
  auto missing = LoadProcessConfig(path, "", false);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("kafka.properties_env.sasl.password: environment variable AF_TEST_SASL_PASSWORD is not set"));
  setenv("AF_TEST_SASL_PASSWORD", "s3cret-from-a-k8s-secret", 1);
  auto loaded = LoadProcessConfig(path, "", false);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->kafka.properties.at("sasl.password"), "s3cret-from-a-k8s-secret");
  EXPECT_EQ(ProducerProperties(loaded->kafka).at("sasl.password"), "s3cret-from-a-k8s-secret");
  unsetenv("AF_TEST_SASL_PASSWORD");
}

}  // namespace
}  // namespace agentfleet

namespace agentfleet {
namespace {

// Issue 18: a step's `when:` is parsed and type-checked at load; the steps it
// reads become dependencies; a mistake names file:line:column of the spot.
constexpr char kWhen[] = R"(providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a: {provider: sim, models: {default: m}}
workflows:
  w:
    steps:
      - {id: classify, agent: a}
      - id: billing
        agent: a
        when: $steps.classify.intent == 'billing' and $task.amount > 10
      - id: general
        agent: a
        when: "WHEN"
        after: [billing]
      - {id: respond, agent: a, after: [billing, general]}
)";

std::string WithWhen(const std::string& when) {
  std::string s = kWhen;
  s.replace(s.find("WHEN"), 4, when);
  return s;
}

TEST(ConfigTest, AStepsConditionIsParsedAndItsStepsAreDependencies) {
  auto c = LoadConfigString(WithWhen("not exists($steps.billing.reply)"), "w.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const StepConfig* billing = c->workflows.at("w").FindStep("billing");
  ASSERT_NE(billing->when, nullptr);
  EXPECT_EQ(billing->when_text, "$steps.classify.intent == 'billing' and $task.amount > 10");
  EXPECT_THAT(billing->depends_on, ::testing::ElementsAre("classify"));
  EXPECT_EQ(c->workflows.at("w").FindStep("classify")->when, nullptr);
}

TEST(ConfigTest, ABadConditionNamesFileLineAndTheColumnOfTheMistake) {
  // Line 14: the quote is at column 15, the expression starts at 16, its "=" at 39.
  auto c = LoadConfigString(WithWhen("$steps.classify.intent = 'x'"), "w.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(),
              HasSubstr("w.yaml:14:39: workflows.w.steps[2].when: unknown operator '=' (use == or !=)"));
  auto item = LoadConfigString(WithWhen("$item.x == 1"), "w.yaml");
  ASSERT_FALSE(item.ok());
  EXPECT_THAT(item.status().message(), HasSubstr("workflows.w.steps[2].when: $item is not defined in a condition"));
  auto unknown = LoadConfigString(WithWhen("$steps.nope.x == 1"), "w.yaml");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(), HasSubstr("references unknown step 'nope'"));
  std::string last_conditional = WithWhen("true");
  last_conditional.replace(last_conditional.find("      - {id: respond"), std::string::npos, "");
  auto output = LoadConfigString(last_conditional, "w.yaml");
  ASSERT_FALSE(output.ok());
  EXPECT_THAT(output.status().message(),
              HasSubstr("w.yaml:14:15: workflows.w.steps: step 'general' gives the workflow's output, so it cannot "
                        "have a when:"));
}

}  // namespace
}  // namespace agentfleet

namespace agentfleet {
namespace {

constexpr char kRoutes[] = R"(providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a: {provider: sim, models: {default: m}}
workflows:
  w:
    steps:
      - {id: classify, agent: a}
      - {id: billing, agent: a}
      - {id: tech, agent: a}
      - {id: general, agent: a}
      - {id: respond, agent: a, after: [billing, tech, general]}
    routes:
      - on: $steps.classify.intent
        cases: {billing: billing, bug: [tech], outage: tech}
        default: general
)";

TEST(ConfigTest, ARouteGivesEachBranchItsConditionAndTheDefaultTheRest) {
  auto c = LoadConfigString(kRoutes, "r.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const WorkflowConfig& w = c->workflows.at("w");
  EXPECT_EQ(w.FindStep("billing")->when_text, R"(routed: $steps.classify.intent in ["billing"])");
  EXPECT_EQ(w.FindStep("tech")->when_text, R"(routed: $steps.classify.intent in ["bug","outage"])");
  EXPECT_EQ(w.FindStep("general")->when_text, R"(routed: $steps.classify.intent not in ["billing","bug","outage"])");
  EXPECT_THAT(w.FindStep("tech")->depends_on, ::testing::ElementsAre("classify"));
  EXPECT_EQ(w.FindStep("respond")->when, nullptr);
}

TEST(ConfigTest, ARouteToAnUnknownOrTwiceRoutedStepIsRefused) {
  std::string unknown = kRoutes;
  unknown.replace(unknown.find("default: general"), 16, "default: nowhere");
  EXPECT_THAT(std::string(LoadConfigString(unknown, "r.yaml").status().message()),
              HasSubstr("workflows.w.routes[0]: routes to unknown step 'nowhere'"));
  std::string twice = kRoutes;
  twice.replace(twice.find("default: general"), 16, "default: billing");
  EXPECT_THAT(std::string(LoadConfigString(twice, "r.yaml").status().message()),
              HasSubstr("r.yaml:16:18: workflows.w.routes[0].default: step 'billing' is both a case and the default"));
  std::string own_when = kRoutes;
  own_when.replace(own_when.find("{id: billing, agent: a}"), 23, "{id: billing, agent: a, when: true}");
  EXPECT_THAT(std::string(LoadConfigString(own_when, "r.yaml").status().message()),
              HasSubstr("step 'billing' is routed twice or has a when: of its own"));
  std::string item = kRoutes;
  item.replace(item.find("on: $steps.classify.intent"), 26, "on: $item.x");
  EXPECT_THAT(std::string(LoadConfigString(item, "r.yaml").status().message()),
              HasSubstr("workflows.w.routes[0].on: cannot route on $item"));
}


constexpr char kWait[] = R"(providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a: {provider: sim, models: {default: m}}
workflows:
  w:
    deadline: 2h
    steps:
      - {id: draft, agent: a}
      - id: approval
        wait: {signal: approve, timeout: 1h, on_timeout: fail}
        after: [draft]
      - {id: send, agent: a, input: {by: $steps.approval.sender}}
)";

TEST(ConfigTest, AWaitStepNamesItsSignalAndTimeoutAndCallsNoAgent) {
  auto c = LoadConfigString(kWait, "wait.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const StepConfig* approval = c->workflows.at("w").FindStep("approval");
  ASSERT_TRUE(approval->wait.has_value());
  EXPECT_EQ(approval->wait->signal, "approve");
  EXPECT_EQ(approval->wait->timeout, absl::Hours(1));
  EXPECT_TRUE(approval->wait->fail_on_timeout);
  EXPECT_TRUE(approval->agent.empty());
  EXPECT_THAT(c->workflows.at("w").FindStep("send")->depends_on, ::testing::ElementsAre("approval"));
}

TEST(ConfigTest, ABadWaitStepNamesFileLineAndField) {
  auto error = [](const std::string& from, const std::string& to) {
    std::string text = kWait;
    text.replace(text.find(from), from.size(), to);
    return std::string(LoadConfigString(text, "wait.yaml").status().message());
  };
  EXPECT_THAT(error("wait: {signal", "agent: a\n        wait: {signal"),
              HasSubstr("wait.yaml:11:16: workflows.w.steps[1].agent: a wait step calls no agent, so it takes no agent"));
  EXPECT_THAT(error("timeout: 1h, ", ""),
              HasSubstr("workflows.w.steps[1].wait.timeout: required"));
  EXPECT_THAT(error("timeout: 1h", "timeout: 3h"),
              HasSubstr("wait.yaml:11:42: workflows.w.steps[1].wait.timeout: must be shorter than the workflow's deadline (2h)"));
  EXPECT_THAT(error("on_timeout: fail", "on_timeout: retry"),
              HasSubstr("workflows.w.steps[1].wait.on_timeout: expected continue or fail, got 'retry'"));
  EXPECT_THAT(error("signal: approve", "signal: Approve!"),
              HasSubstr("workflows.w.steps[1].wait.signal: must match"));
}

constexpr char kAgentSignals[] = R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a: {provider: sim, models: {default: m}}
  helper: {provider: sim, models: {default: m}}
workflows:
  w:
    deadline: 2h
    max_replans: 3
    steps:
      - {id: plan, agent: a}
      - id: work
        agent: a
        input: {plan: $steps.plan}
        signals:
          needs_info: {wait: {signal: info, timeout: 1h}, emit: helpdesk.questions, max_questions: 2}
          rescope: {planner: plan}
      - id: other
        agent: a
        input: {plan: $steps.plan}
        signals: {needs_info: {agent: helper}}
      - id: approval
        wait: {signal: approve, timeout: 1h}
        after: [work, other]
)";

TEST(ConfigTest, AgentSignalsNameWhoAnswersAQuestionAndWhichStepReplans) {
  auto c = LoadConfigString(kAgentSignals, "signals.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const WorkflowConfig& w = c->workflows.at("w");
  EXPECT_EQ(w.max_replans, 3);
  const StepSignalsConfig& work = w.FindStep("work")->signals;
  ASSERT_TRUE(work.needs_info.has_value());
  EXPECT_EQ(work.needs_info->wait->signal, "info");
  EXPECT_EQ(work.needs_info->emit, "helpdesk.questions");
  EXPECT_EQ(work.needs_info->max_questions, 2);
  EXPECT_EQ(work.rescope_planner, "plan");
  EXPECT_EQ(w.FindStep("other")->signals.needs_info->agent, "helper");
  EXPECT_EQ(w.FindStep("other")->signals.needs_info->max_questions, 3) << "the default";
  EXPECT_FALSE(w.FindStep("plan")->signals.any());
}

TEST(ConfigTest, BadAgentSignalsNameFileLineAndField) {
  auto error = [](const std::string& from, const std::string& to) {
    std::string text = kAgentSignals;
    text.replace(text.find(from), from.size(), to);
    return std::string(LoadConfigString(text, "signals.yaml").status().message());
  };
  EXPECT_THAT(error("planner: plan", "planner: other"),
              HasSubstr("signals.yaml:18:30: workflows.w.steps[1].signals.rescope.planner: step 'other' is neither "
                        "this step nor one it depends on"));
  EXPECT_THAT(error("planner: plan", "planner: nope"), HasSubstr("rescope.planner: unknown step 'nope'"));
  EXPECT_THAT(error("      - {id: plan, agent: a}", "      - {id: plan, wait: {signal: go, timeout: 1m}}"),
              HasSubstr("rescope.planner: step 'plan' calls no agent (a wait or child-workflow step)"));
  EXPECT_THAT(error("{agent: helper}", "{agent: ghost}"),
              HasSubstr("workflows.w.steps[2].signals.needs_info.agent: unknown agent 'ghost'"));
  EXPECT_THAT(error("{agent: helper}", "{agent: helper, wait: {signal: x, timeout: 1m}}"),
              HasSubstr("workflows.w.steps[2].signals.needs_info: give exactly one of agent"));
  EXPECT_THAT(error("{agent: helper}", "{agent: helper, emit: t}"),
              HasSubstr("needs_info.emit: only a question that waits for an answer from outside is published"));
  EXPECT_THAT(error("signal: info, timeout: 1h", "signal: info, timeout: 2h"),
              HasSubstr("workflows.w.steps[1].signals.needs_info.wait.timeout: must be shorter than the workflow's deadline"));
  EXPECT_THAT(error("signal: approve", "signal: info"),
              HasSubstr("workflows.w.steps[1].signals.needs_info.wait.signal: signal 'info' is already waited for by "
                        "step 'approval'"));
  EXPECT_THAT(error("rescope: {planner: plan}", "delegate: {to: a}"),
              HasSubstr("signals.delegate: an agent delegates by planning sub-steps: give the step a spawn:"));
  EXPECT_THAT(error("max_replans: 3", "max_replans: -1"), HasSubstr("workflows.w.max_replans"));
  EXPECT_THAT(error("wait: {signal: approve, timeout: 1h}", "wait: {signal: approve, timeout: 1h}\n        signals: {}"),
              HasSubstr("workflows.w.steps[3].signals: only an agent step's agent sends signals"));
}

constexpr char kSecretInputs[] = R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a: {provider: sim, models: {default: m}}
workflows:
  w:
    secret_inputs: [customer.ssn, api_token]
    steps:
      - id: check
        agent: a
        input: {name: $task.customer.name, plan: $task.plan}
        when: exists($task.customer.ssn)
      - {id: approval, wait: {signal: ok, timeout: 10m}, after: [check]}
)";

TEST(ConfigTest, SecretInputsMayBeReadByConditionsButNeverSentToAnAgentOrAChild) {
  auto c = LoadConfigString(kSecretInputs, "secrets.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->workflows.at("w").secret_inputs.size(), 2u);
  auto error = [](const std::string& from, const std::string& to) {
    std::string text = kSecretInputs;
    text.replace(text.find(from), from.size(), to);
    return std::string(LoadConfigString(text, "secrets.yaml").status().message());
  };
  EXPECT_THAT(error("name: $task.customer.name", "name: $task.customer.ssn"),
              HasSubstr("secrets.yaml:12:23: workflows.w.steps[0].input.name: $task.customer.ssn would send the secret "
                        "input 'customer.ssn' to agent 'a'"));
  EXPECT_THAT(error("name: $task.customer.name", "who: $task.customer"),
              HasSubstr("workflows.w.steps[0].input.who: $task.customer would send the secret input 'customer.ssn'"))
      << "an object that holds a secret is refused too";
  EXPECT_THAT(error("plan: $task.plan", "all: [$task]"),
              HasSubstr("workflows.w.steps[0].input.all[0]: $task would send the secret input"));
  EXPECT_THAT(error("plan: $task.plan}", "plan: $task.plan}\n        for_each: $task.api_token"),
              HasSubstr("workflows.w.steps[0].for_each: $task.api_token would send the secret input 'api_token'"));
  EXPECT_THAT(error("secret_inputs: [customer.ssn, api_token]", "secret_inputs: [customer..ssn]"),
              HasSubstr("workflows.w.secret_inputs: expected a field path such as customer.ssn"));
}

}  // namespace
}  // namespace agentfleet

constexpr char kActions[] = R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a: {provider: sim, models: {default: m}}
actions:
  refund:
    method: POST
    url: "https://pay.example.com/v1/orders/{order_id}/refunds"
    secret_headers: {Authorization: "Bearer ${PAY_TOKEN}"}
    schema: {type: object, required: [order_id], properties: {order_id: {type: string}}}
    policy: {allowed_hosts: [docs.example.com], redact_pii: true}
    on_unknown: status
    status_url: "https://pay.example.com/v1/effects/{effect_id}"
    max_attempts: 4
workflows:
  w:
    steps:
      - {id: decide, agent: a, input: {q: $task.q}}
      - {id: pay, action: refund, input: {order_id: $steps.decide.order}}
)";

TEST(ConfigTest, ActionsAreStepsWithAnHttpRequestAndTheirOwnWorkTopic) {
  auto c = LoadConfigString(kActions, "actions.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const AgentConfig* refund = c->FindAgent("refund");
  ASSERT_NE(refund, nullptr);
  ASSERT_TRUE(refund->action);
  EXPECT_EQ(refund->provider, kActionProvider);
  EXPECT_EQ(refund->action->host, "pay.example.com");
  EXPECT_EQ(refund->action->on_unknown, ActionConfig::OnUnknown::kStatus);
  EXPECT_EQ(refund->max_attempts, 4);
  EXPECT_TRUE(refund->action->policy.redact_pii);
  EXPECT_TRUE(c->HasActions());
  const StepConfig* pay = c->workflows.at("w").FindStep("pay");
  ASSERT_NE(pay, nullptr);
  EXPECT_TRUE(pay->action);
  EXPECT_EQ(pay->agent, "refund");
  bool audit = false, work = false;
  for (const TopicSpec& t : FleetTopics(*c)) {
    if (t.name == "agentfleet.audit") audit = t.configs.at("retention.ms") == "2592000000";
    if (t.name == "agentfleet.work.refund") work = true;
  }
  EXPECT_TRUE(audit) << "the audit topic, kept 30 days by default";
  EXPECT_TRUE(work);
}

TEST(ConfigTest, OneRetentionKeepsEveryTopicOfATasksHistory) {
  auto retention_of = [](const FleetConfig& c) {
    std::map<std::string, std::string> out;
    for (const TopicSpec& t : FleetTopics(c)) out[t.name] = t.configs.count("retention.ms") ? t.configs.at("retention.ms") : "";
    return out;
  };
  auto defaults = LoadConfigString(kActions, "actions.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  auto d = retention_of(*defaults);
  for (const char* topic : {"tasks", "events", "signals", "results", "dlq", "work.refund", "audit"}) {
    EXPECT_EQ(d[absl::StrCat("agentfleet.", topic)], "2592000000") << topic << ": 30 days by default";
  }
  EXPECT_EQ(d["agentfleet.state"], "") << "compacted: kept while the task is";
  // One setting moves them all, the audit topic too unless it has its own.
  auto week = LoadConfigString(absl::StrCat("kafka: {retention: 168h}\n", kActions), "actions.yaml");
  ASSERT_TRUE(week.ok()) << week.status();
  auto w = retention_of(*week);
  for (const char* topic : {"tasks", "events", "signals", "results", "dlq", "work.refund", "audit"}) {
    EXPECT_EQ(w[absl::StrCat("agentfleet.", topic)], "604800000") << topic;
  }
  auto own = LoadConfigString(absl::StrCat("kafka: {retention: 168h, audit_retention: 8760h}\n", kActions), "a.yaml");
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(retention_of(*own)["agentfleet.audit"], "31536000000");
  EXPECT_EQ(retention_of(*own)["agentfleet.tasks"], "604800000");
  auto bad = LoadConfigString(absl::StrCat("kafka: {retention: 10m}\n", kActions), "a.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("a.yaml:1:20: kafka.retention: must be at least 1h"));
}

TEST(ConfigTest, BadActionsNameFileLineAndField) {
  auto error = [](const std::string& from, const std::string& to) { return ErrorOfEdit(kActions, from, to, "actions.yaml"); };
  EXPECT_THAT(error("https://pay.example.com/v1/orders", "https://{host}/v1/orders"),
              HasSubstr("actions.yaml:9:10: actions.refund.url: expected http(s)://HOST[:PORT]/PATH with a literal host"));
  EXPECT_THAT(error("{order_id}/refunds", "{amount}/refunds"),
              HasSubstr("actions.refund.url: placeholder {amount} is not one of order_id"));
  EXPECT_THAT(error("secret_headers: {Authorization: \"Bearer ${PAY_TOKEN}\"}", "headers: {Authorization: \"Bearer x\"}"),
              HasSubstr("actions.refund.headers.Authorization: credentials do not belong in the config file"));
  EXPECT_THAT(error("\"Bearer ${PAY_TOKEN}\"", "\"Bearer abc\""),
              HasSubstr("actions.refund.secret_headers.Authorization: expected a value with an ${ENV_VAR} reference"));
  EXPECT_THAT(error("    status_url: \"https://pay.example.com/v1/effects/{effect_id}\"\n", ""),
              HasSubstr("actions.refund.status_url: is required with on_unknown: status"));
  EXPECT_THAT(error("effects/{effect_id}", "effects/x"), HasSubstr("must contain {effect_id}"));
  EXPECT_THAT(error("https://pay.example.com/v1/effects", "https://other.example.com/v1/effects"),
              HasSubstr("host 'other.example.com' is neither the url's nor in policy.allowed_hosts"));
  EXPECT_THAT(error("on_unknown: status", "on_unknown: guess"), HasSubstr("actions.refund.on_unknown"));
  EXPECT_THAT(error("{id: pay, action: refund,", "{id: pay, agent: refund,"),
              HasSubstr("workflows.w.steps[1].agent: 'refund' is an action; use action: refund"));
  EXPECT_THAT(error("{id: pay, action: refund,", "{id: pay, action: a,"),
              HasSubstr("workflows.w.steps[1].action: unknown action 'a'"));
  EXPECT_THAT(error("{id: pay, action: refund,", "{id: pay, action: refund, model_tier: cheap,"),
              HasSubstr("workflows.w.steps[1].model_tier: an action step takes no model_tier"));
  EXPECT_THAT(error("actions:\n  refund:", "actions:\n  a:"),
              HasSubstr("actions.a: an agent has this name too"));
  // Templates that could expose a secret are load errors.
  EXPECT_THAT(error("/v1/orders/{order_id}/refunds", "/v1/orders/{order_id}/refunds?key=${PAY_TOKEN}"),
              HasSubstr("actions.refund.url: a URL cannot read the environment"));
  EXPECT_THAT(error("    secret_headers: {Authorization: \"Bearer ${PAY_TOKEN}\"}\n",
                    "    headers: {X-Key: \"${PAY_TOKEN}\"}\n"),
              HasSubstr("actions.refund.headers.X-Key: an ${ENV} value is a secret: put it in secret_headers"));
  EXPECT_THAT(error("  a: {provider: sim, models: {default: m}}", "  a: {provider: sim, models: {default: m}, prompt: \"key ${PAY_TOKEN}\"}"),
              HasSubstr("agents.a.prompt: a prompt cannot read the environment"));
  std::string with_secret = kActions;
  with_secret.replace(with_secret.find("workflows:\n  w:\n"), 16, "workflows:\n  w:\n    secret_inputs: [card]\n");
  EXPECT_THAT(ErrorOfEdit(with_secret, "{order_id: $steps.decide.order}", "{order_id: $task.card}", "actions.yaml"),
              HasSubstr("$task.card would send the secret input 'card' to action 'refund' (an external system)"));
}


constexpr char kTools[] = R"(
providers:
  llm: {type: openai, base_url: "http://127.0.0.1:8000/v1"}
  sim: {type: simulated}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  a:
    provider: llm
    models: {default: m}
    tool_loop: {max_turns: 3, max_tokens: 9000}
    tools:
      - name: lookup_order
        description: Looks an order up.
        parameters: {type: object, required: [order_id], properties: {order_id: {type: string}}}
        url: "http://orders.example.com/v1/orders/{order_id}"
        secret_headers: {Authorization: "Bearer ${ORDERS_TOKEN}"}
        timeout: 3s
workflows:
  w:
    steps:
      - {id: s, agent: a, input: {q: $task.q}}
)";

TEST(ConfigTest, AgentsDeclareToolsWithAnHttpEndpointAndTheLoopsBounds) {
  auto c = LoadConfigString(kTools, "tools.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const AgentConfig& a = c->agents.at("a");
  ASSERT_EQ(a.tools.size(), 1u);
  EXPECT_EQ(a.tools[0].host, "orders.example.com");
  EXPECT_EQ(a.tools[0].method, "GET");
  EXPECT_EQ(a.tools[0].timeout, absl::Seconds(3));
  EXPECT_EQ(a.tools[0].parameters["required"][0], "order_id");
  EXPECT_EQ(a.max_tool_turns, 3);
  EXPECT_EQ(a.tool_max_tokens, 9000);
  auto error = [](const std::string& from, const std::string& to) { return ErrorOfEdit(kTools, from, to, "tools.yaml"); };
  EXPECT_THAT(error("provider: llm", "provider: sim"), HasSubstr("agents.a.tools: tools need an HTTP provider"));
  EXPECT_THAT(error("name: lookup_order", "name: respond"), HasSubstr("'respond' is the tool an Anthropic model answers with"));
  EXPECT_THAT(error("{order_id}\"", "{id}\""), HasSubstr("agents.a.tools[0].url: placeholder {id} is not one of order_id"));
  EXPECT_THAT(error("secret_headers: {Authorization: \"Bearer ${ORDERS_TOKEN}\"}", "headers: {Authorization: x}"),
              HasSubstr("agents.a.tools[0].headers.Authorization: credentials do not belong in the config file"));
  EXPECT_THAT(error("max_turns: 3", "max_turns: 0"), HasSubstr("agents.a.tool_loop.max_turns"));
  EXPECT_THAT(error("        timeout: 3s\n", "        timeout: 3s\n        method: DELETE\n"),
              HasSubstr("agents.a.tools[0].method"));
}


constexpr char kUntrusted[] = R"(
providers: {sim: {type: simulated}}
pricing: {m: {input_per_mtok: 1, output_per_mtok: 1}}
agents:
  triage:
    provider: sim
    models: {default: m}
    system_prompt: "You triage tickets for {{team}}."
    prompt: "{{message}}"
  writer: {provider: sim, models: {default: m}}
actions:
  reply: {url: "https://help.example.com/v1/replies"}
workflows:
  w:
    untrusted_inputs: [ticket.body]
    steps:
      - {id: screen, screen: builtin, input: {text: $task.ticket.body}}
      - {id: triage, agent: triage, input: {team: $task.team, message: $task.ticket.body}, when: $steps.screen.flagged == false}
      - {id: draft, agent: writer, input: {triage: $steps.triage, customer: $task.customer}}
      - {id: send, action: reply, input: {text: $steps.draft.text, to: $task.customer}}
)";

TEST(ConfigTest, UntrustedInputsTaintWhatTheyReachAndNeverASystemPrompt) {
  auto c = LoadConfigString(kUntrusted, "untrusted.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const WorkflowConfig& w = c->workflows.at("w");
  EXPECT_TRUE(w.FindStep("screen")->screen);
  EXPECT_FALSE(w.FindStep("screen")->tainted_output) << "a detector's verdict is not the text it read";
  EXPECT_EQ(w.FindStep("triage")->untrusted_fields, std::vector<std::string>{"message"});
  EXPECT_TRUE(w.FindStep("triage")->tainted_output);
  EXPECT_EQ(w.FindStep("draft")->untrusted_fields, std::vector<std::string>{"triage"}) << "derived from untrusted text";
  EXPECT_EQ(w.FindStep("send")->untrusted_fields, std::vector<std::string>{"text"});
  auto error = [](const std::string& from, const std::string& to) { return ErrorOfEdit(kUntrusted, from, to, "untrusted.yaml"); };
  EXPECT_THAT(error("{team: $task.team,", "{team: $task.ticket.body,"),
              HasSubstr("untrusted.yaml:18:51: workflows.w.steps[1].input.team: agent 'triage''s system_prompt reads "
                        "{{team}}, which is untrusted here"));
  EXPECT_THAT(error("screen: builtin,", "screen: llamaguard,"), HasSubstr("workflows.w.steps[0].screen: expected builtin"));
  EXPECT_THAT(error("screen: builtin, input: {text: $task.ticket.body}", "screen: builtin, agent: writer"),
              HasSubstr("workflows.w.steps[0].agent: a screen step calls no agent"));
}

}  // namespace
}  // namespace agentfleet

namespace agentfleet {
namespace {

TEST(ConfigTest, IssueTwentysKeysAreCheckedNamingTheirField) {
  // spend_limit needs a limit; critical is a boolean; a tenant may give only a weight.
  EXPECT_THAT(ErrorOf(Variant("workflows:", "spend_limit: {period: day}\nworkflows:")),
              ::testing::HasSubstr("spend_limit: give max_cost_usd, max_tokens or both"));
  EXPECT_THAT(ErrorOf(Variant("workflows:", "spend_limit: {period: week, max_cost_usd: 1}\nworkflows:")),
              ::testing::HasSubstr("spend_limit.period"));
  EXPECT_THAT(ErrorOf(Variant("    models: {default: m1}\n", "    models: {default: m1}\n    critical: maybe\n")),
              ::testing::HasSubstr("agents.a.critical"));
  EXPECT_THAT(ErrorOf(Variant("workflows:", "tenants: {acme: {weight: 0}}\nworkflows:")),
              ::testing::HasSubstr("tenants.acme.weight"));
  EXPECT_THAT(ErrorOf(Variant("workflows:", "coordinator: {capacity_drain_time: 0s}\nworkflows:")),
              ::testing::HasSubstr("coordinator.capacity_drain_time"));
  auto ok = LoadConfigString(
      Variant("workflows:", "spend_limit: {period: month, max_cost_usd: 900}\ntenants: {acme: {weight: 3}}\n"
                            "coordinator: {capacity_drain_time: 1m}\nworkflows:"),
      "fleet.yaml");
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_TRUE(ok->spend_limit.has_value());
  EXPECT_EQ(ok->spend_limit->max_cost_usd, 900);
  EXPECT_EQ(ok->FindTenant(kFleetLedger), &*ok->spend_limit);
  EXPECT_EQ(ok->FindTenant("acme"), nullptr) << "a weight alone sets no budget";
  EXPECT_EQ(ok->TenantWeight("acme"), 3);
  EXPECT_EQ(ok->TenantWeight("other"), 1);
  EXPECT_EQ(ok->coordinator.capacity_drain_time, absl::Minutes(1));
  EXPECT_TRUE(ok->agents.at("a").critical);
}

}  // namespace
}  // namespace agentfleet
