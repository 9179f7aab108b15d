#!/usr/bin/env bash
# Runs every chaos scenario N times in a row (default 10), each run on its own
# Kafka and fleet, stopping a scenario at its first failure; prints one line
# per scenario (runs passed, wall time) and exits non-zero if any failed.
# A scenario that does not pass N in a row has a bug, in the product or in
# the test: its failed run's output is in $LOG_DIR/<scenario>.log.
#
#   scripts/chaos-repeat.sh [N] [CTEST_REGEX]
#
# Uses the sanitizer build of scripts/test.sh (build-test/; TEST_BUILD_DIR
# overrides), building it first if needed. Not part of the test command:
# 10 runs of the 9 scenarios take about two hours on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${1:-10}"
regex="${2:-.}"
build="${TEST_BUILD_DIR:-build-test}"
if [ ! -x "$build/bin/chaos_tests" ]; then scripts/test.sh -R '^$' > /dev/null; fi
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
log_dir="${LOG_DIR:-$build/chaos-repeat}"
mkdir -p "$log_dir"
mapfile -t scenarios < <(cd "$build" && ctest -N -L chaos -R "$regex" | sed -n 's/^ *Test *#[0-9]*: //p')
failed=0
for t in "${scenarios[@]}"; do
  start=$(date +%s)
  passed=0
  for i in $(seq 1 "$runs"); do
    if (cd "$build" && ctest --output-on-failure --timeout 600 -R "^${t}\$") > "$log_dir/$t.log" 2>&1; then
      passed=$((passed + 1))
    else
      break
    fi
  done
  secs=$(( $(date +%s) - start ))
  printf '%-80s %2d of %2d in a row  (%d s)\n' "$t" "$passed" "$runs" "$secs"
  [ "$passed" -eq "$runs" ] || failed=1
done
exit "$failed"
