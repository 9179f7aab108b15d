#!/usr/bin/env bash
# The second command: installs what is missing (a JDK and Maven included),
# builds everything, and runs every test: unit tests, then integration tests
# against a real Apache Kafka (fetched once from Maven Central and cached in
# ~/.cache/agentfleet) and against the development broker.
# Set AGENTFLEET_TEST_BOOTSTRAP=host:port to run the integration tests against
# your own cluster instead. Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh test
scripts/build.sh
cd "${BUILD_DIR:-build}"
if [ $# -gt 0 ]; then
  exec ctest --output-on-failure --timeout 600 "$@"
fi
# Unit and integration tests run once. Chaos tests get up to three tries: they
# kill real processes on a shared machine, and one scenario still hits a rare
# takeover stall (docs/architecture.md, "Known open problem"). Every failed try
# stays in the output.
ctest --output-on-failure --timeout 600 -LE chaos
exec ctest --output-on-failure --timeout 600 -L chaos --repeat until-pass:3
