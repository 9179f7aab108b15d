#!/usr/bin/env bash
# The second command: installs what is missing (a JDK, Maven and clang
# included), builds everything with clang, AddressSanitizer,
# UndefinedBehaviorSanitizer and -Wthread-safety into build-test/, every
# warning an error (any sanitizer report fails the test that caused it),
# and runs every test with those binaries: unit tests,
# integration tests against a real Apache Kafka (fetched once from Maven
# Central and cached in ~/.cache/agentfleet; 3.7.2, then again on 4.4.0) and
# the development broker,
# the chaos tests, then each libFuzzer target for FUZZ_SECONDS (default 10)
# from its seed corpus (fuzz/run.sh).
# Set AGENTFLEET_TEST_BOOTSTRAP=host:port to run the integration tests against
# your own cluster instead. Extra arguments go to ctest (e.g. -L unit) and skip
# the fuzzers. The demo and the benchmarks use the plain builds (build/,
# build-release/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh test
build="${TEST_BUILD_DIR:-build-test}"
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DAGENTFLEET_SANITIZE=ON -DAGENTFLEET_FUZZ=ON -DAGENTFLEET_WERROR=ON \
  -DAGENTFLEET_CHECK_STATE_CACHE=ON > /dev/null
cmake --build "$build" --parallel "$(nproc)"
# Leaks are the fuzzers' to find (fuzz/run.sh turns detection on); the
# services exit without freeing their singletons.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
if [ $# -gt 0 ]; then
  cd "$build"
  exec ctest --output-on-failure --timeout 600 "$@"
fi
# Every test runs once: a test that fails sometimes is a bug in the product
# or in the test, never something to retry (scripts/chaos-repeat.sh runs the
# chaos scenarios many times in a row to find such bugs).
# The Apache Kafka versions (AGENTFLEET_KAFKA_VERSIONS, default "3.7.2 4.4.0"):
# every test runs on the first; the integration tests run again on each of
# the others, but for those that never talk to the real broker (the
# development broker's, the config's, the providers' and the chart's), so a
# new real-broker test is covered on every version without being listed
# (docs/brokers.md); two scheduling tests and the semantic-cache corpus run
# are left to the first on purpose.
read -ra versions <<< "${AGENTFLEET_KAFKA_VERSIONS:-3.7.2 4.4.0}"
no_real_broker='^(DevBrokerTest|StartupTest|DemoTest|HttpClientTest|GeneratedClassesTest)\.|ProviderTest\.|ActionTest\.|ToolTest\.|BatchTest\.|^(monitoring_check|chart_check|bench_smoke)$'
# The coordinator's scheduling measured against a quota (fair queues, the
# capacity signal) asks nothing of the broker its other tests do not: once
# is enough (CI time).
no_real_broker+='|^QuotaAndPool/FairDispatchTest\.|^RealKafkaTest\.TheCapacitySignalAsksForWhatAQuotaCanUseWhereLagAsksForMore$'
# The semantic cache's corpus run measures the embedding model, not the broker.
no_real_broker+='|^SemanticCacheFleetTest\.'
# The coordinator's decisions (routing, approvals, cancellation, child
# workflows, actions, provider batches, shared quotas, budgets, reloads) ride
# the same transactions, groups and topics as the tests that stay: once.
no_real_broker+='|^(OrchestrationTest|ActionFleetTest|BatchFleetTest)\.'
no_real_broker+='|^RealKafkaTest\.(TwoReplicasShareOneProviderQuota|ATenantNeverSpendsPastItsBudgetForThePeriod|RaisingTheSpendLimitByAReloadReleasesTheHeldCalls)$'
# A fork is a submission like any other; the replay of a recorded task stays (TraceShows...).
no_real_broker+='|^ObservabilityTest\.AForkRerunsOnlyTheFailedStepOnAFixedModel$'
# The console's pages in a browser render what its API (tested on both) returns.
no_real_broker+='|^ConsoleTest\.TheTaskPageAndTheDeadLetterQueueWorkInARealBrowser$'
# The fleet page's held queues are read from the state topic, which every broker test reads.
no_real_broker+='|^ConsoleTest\.TheFleetPageShowsTheAttemptsWaitingForAModelsQuota$'
(cd "$build" && AGENTFLEET_KAFKA_VERSION="${versions[0]}" ctest --output-on-failure --timeout 600 -LE chaos)
echo "test.sh: the console's screenshots from headless Chromium are in $build/artifacts/console/"
for version in "${versions[@]:1}"; do
  echo "test.sh: the tests that use a real broker, on Apache Kafka $version"
  (cd "$build" && AGENTFLEET_KAFKA_VERSION="$version" ctest --output-on-failure --timeout 600 -L integration \
      -E "$no_real_broker")
done
(cd "$build" && AGENTFLEET_KAFKA_VERSION="${versions[0]}" ctest --output-on-failure --timeout 600 -L chaos)
BUILD_DIR="$build" fuzz/run.sh "${FUZZ_SECONDS:-10}"
