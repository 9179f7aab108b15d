#!/usr/bin/env bash
# The sanitizer stage of the test command: builds everything with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer (any report fails) into
# build-sanitize, runs the unit and integration tests with those binaries
# (real processes on the real Kafka broker), then each libFuzzer target for FUZZ_SECONDS
# (default 20) from its seed corpus. Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh test
build="${SANITIZE_BUILD_DIR:-build-sanitize}"
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DAGENTFLEET_SANITIZE=ON -DAGENTFLEET_FUZZ=ON > /dev/null
cmake --build "$build" --parallel "$(nproc)"
# Leaks are reported by the fuzzers; the services' exits are checked for
# crashes and undefined behaviour only (they exit without freeing singletons).
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Every unit and integration test but the chaos tests and the checks that run
# no agentfleet code of their own (chart, monitoring) or time it (bench).
(cd "$build" && ctest --output-on-failure --timeout 600 -LE chaos \
   -E '^(bench_smoke|chart_check|monitoring_check)$' "$@")
BUILD_DIR="$build" fuzz/run.sh "${FUZZ_SECONDS:-20}"
