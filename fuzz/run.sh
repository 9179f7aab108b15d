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
jobs="${FUZZ_JOBS:-$(nproc)}"
printf '%-28s %12s %10s %8s\n' target executions exec/s corpus
# One target: its log in fuzz-artifacts; non-zero on a crash, leak or report.
fuzz_one() {
  local t="$1" work="$build/fuzz-corpus/$1"
  mkdir -p "$work"
  # -rss_limit_mb: a leak or blow-up fails; -max_len bounds one input (the
  # decoders' size limits are tested separately).
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$build/bin/$t" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$build/fuzz-artifacts/$t-" "$work" "fuzz/corpus/$t" > "$build/fuzz-artifacts/$t.log" 2>&1
}
# FUZZ_JOBS targets at a time (default: one per core), each for SECONDS of
# its own; results printed in the targets' order.
for ((i = 0; i < ${#targets[@]}; i += jobs)); do
  batch=("${targets[@]:i:jobs}")
  pids=()
  for t in "${batch[@]}"; do
    fuzz_one "$t" &
    pids+=($!)
  done
  for k in "${!batch[@]}"; do
    t="${batch[$k]}"
    log="$build/fuzz-artifacts/$t.log"
    if ! wait "${pids[$k]}"; then
      echo "fuzz/run.sh: $t FAILED; its log ($log) ends:" >&2
      tail -n 40 "$log" >&2
      wait  # the rest of the batch
      exit 1
    fi
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
    printf '%-28s %12s %10s %8s\n' "$t" "$runs" "$rate" "$(ls "$build/fuzz-corpus/$t" | wc -l)"
  done
done
