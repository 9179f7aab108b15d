#!/usr/bin/env bash
# The full benchmark suite, as docs/benchmarks.md reports it: a Release build,
# the real Apache Kafka test broker (tests/kafka/kafka.sh) and the development
# broker, `agentfleet bench` on both (its section of docs/benchmarks.md and
# docs/benchmarks-scaleout.svg are rewritten), then the micro-benchmarks.
#
#   bench/run.sh [--quick]
#
# Installs what it needs (scripts/install-deps.sh test), builds into
# build-release/, stops the broker it started. Takes about 15 minutes; use
# a quiet machine, and run it twice: the figures move by 10-20% between runs.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
scripts/install-deps.sh test
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build-release --target agentfleet agentfleet-coordinator agentfleet-worker agentfleet_micro_bench
kafka_dir="$repo/build-release/bench-kafka"
tests/kafka/kafka.sh start "$kafka_dir"
trap 'tests/kafka/kafka.sh stop "$kafka_dir"' EXIT
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' tests/kafka/pom.xml)"
build-release/bin/agentfleet bench --kafka "$(cat "$kafka_dir/bootstrap")" \
  --kafka_name "Apache Kafka${version:+ $version}" --output docs/benchmarks.md "$@"
echo
echo "micro-benchmarks (CPU per step outside Kafka):"
build-release/bin/agentfleet_micro_bench --benchmark_min_time=1
