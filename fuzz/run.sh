#!/usr/bin/env bash
# Runs every libFuzzer target for SECONDS (default 30) each, from the seed
# corpus in fuzz/corpus/TARGET plus what earlier runs found (kept in
# BUILD_DIR/fuzz-corpus), with AddressSanitizer and UndefinedBehaviorSanitizer.
# Prints executions per target; exits non-zero on the first crash, leak or
# sanitizer report (the reproducer is left in BUILD_DIR/fuzz-artifacts).
#   fuzz/run.sh [SECONDS]        BUILD_DIR defaults to build-test (scripts/test.sh builds it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-30}"
build="${BUILD_DIR:-build-test}"
targets=(decode_fuzzer coordinator_input_fuzzer config_fuzzer tasks_input_fuzzer provider_response_fuzzer json_fuzzer
  condition_fuzzer sanitize_fuzzer tool_call_fuzzer)
mkdir -p "$build/fuzz-artifacts"
printf '%-28s %12s %10s %8s\n' target executions exec/s corpus
for t in "${targets[@]}"; do
  work="$build/fuzz-corpus/$t"
  mkdir -p "$work"
  log="$build/fuzz-artifacts/$t.log"
  # -rss_limit_mb: a leak or blow-up fails; -max_len bounds one input (the
  # decoders' size limits are tested separately).
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$build/bin/$t" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="$build/fuzz-artifacts/$t-" "$work" "fuzz/corpus/$t" > "$log" 2>&1; then
    echo "fuzz/run.sh: $t FAILED; its log ($log) ends:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
  printf '%-28s %12s %10s %8s\n' "$t" "$runs" "$rate" "$(ls "$work" | wc -l)"
done
