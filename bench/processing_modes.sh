#!/usr/bin/env bash
# Measures the coordinator's two processing modes on a real Kafka broker, in
# the same run: latency of one task at a time (low load) and throughput of
# 2,000 tasks submitted at once, with zero-latency simulated agents (so the
# fleet itself is measured). Prints a Markdown table.
#
#   bench/processing_modes.sh [BUILD_DIR]
#
# Starts the test broker (tests/kafka/kafka.sh) unless AGENTFLEET_TEST_BOOTSTRAP
# is set; stops everything it started, by PID.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$(cd "${1:-$repo/build}" && pwd)/bin"
work="$(mktemp -d /tmp/agentfleet-bench.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]+"${pids[@]}"}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${AGENTFLEET_TEST_BOOTSTRAP:-}" ] || "$repo/tests/kafka/kafka.sh" stop "$work/kafka"
}
trap cleanup EXIT
"$repo/tests/kafka/kafka.sh" start "$work/kafka"
bootstrap="$(cat "$work/kafka/bootstrap")"
samples="${SAMPLES:-30}"
tasks="${TASKS:-2000}"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
p99() { sort -n | awk '{a[NR]=$1} END {i=int(NR*0.99+0.5); if(i<1)i=1; print a[i]}'; }
field() { grep -o "\"$1\":[0-9.e+-]*" | cut -d: -f2; }

echo "| mode | commits | 1 task p50 | 1 task p99 | ${tasks} tasks: tasks/s | steps/s | p50 | p99 |"
echo "|---|---|---|---|---|---|---|---|"
# exactly_once: adaptive (the default: when the input is drained), then a
# fixed interval (commit_policy: interval) of 100 ms and of 20 ms.
for spec in "exactly_once adaptive" "exactly_once 100ms" "exactly_once 20ms" "at_least_once -"; do
  set -- $spec
  mode=$1 interval=$2
  dir="$work/$mode-$interval"
  mkdir -p "$dir"
  extra="processing: $mode"
  case "$interval" in
    -|adaptive) ;;
    *) extra="$extra, commit_policy: interval, commit_interval: $interval" ;;
  esac
  sed -e "s/topic_prefix: agentfleet\./topic_prefix: bench.$mode.${interval%ms}./" \
      -e "s/bootstrap.servers: 127.0.0.1:9092/bootstrap.servers: $bootstrap/" \
      -e "s/latency: {distribution: lognormal, p50_ms: 20, p99_ms: 80}/latency: {distribution: fixed, mean_ms: 0}/" \
      "$repo/examples/support.yaml" > "$dir/fleet.yaml"
  printf '\ncoordinator: {group_id: bench-%s-%s, %s}\nworker: {group_prefix: bench-%s-%s}\n' \
      "$mode" "${interval%ms}" "$extra" "$mode" "${interval%ms}" >> "$dir/fleet.yaml"
  "$bin/agentfleet" topics create --config "$dir/fleet.yaml" > /dev/null
  "$bin/agentfleet-coordinator" --config "$dir/fleet.yaml" --instance bench > "$dir/coordinator.log" 2>&1 & pids+=($!)
  "$bin/agentfleet-worker" --config "$dir/fleet.yaml" --id w1 > "$dir/w1.log" 2>&1 & pids+=($!)
  "$bin/agentfleet-worker" --config "$dir/fleet.yaml" --id w2 > "$dir/w2.log" 2>&1 & pids+=($!)
  one='{"workflow":"support","input":{"ticket":{"subject":"s","body":"b"},"sources":["a","b","c"]},"task_id":"ID"}'
  # Warm up: the groups join, the topics' leaders are known.
  echo "${one/ID/warm-$mode}" | "$bin/agentfleet" submit --config "$dir/fleet.yaml" --wait --json --timeout 120s > /dev/null 2>&1
  : > "$dir/latency.txt"
  for i in $(seq 1 "$samples"); do
    echo "${one/ID/one-$i}" | "$bin/agentfleet" submit --config "$dir/fleet.yaml" --wait --json 2>/dev/null | tail -1 | field p50_ms >> "$dir/latency.txt"
  done
  for i in $(seq 1 "$tasks"); do echo "${one/ID/many-$i}"; done > "$dir/many.jsonl"
  summary="$("$bin/agentfleet" submit --config "$dir/fleet.yaml" --wait --json "$dir/many.jsonl" 2>/dev/null | tail -1)"
  tps="$(echo "$summary" | field tasks_per_s)"
  # Each task of the example workflow is 6 steps here (classify, 3 research, respond, review).
  printf '| %s | %s | %.1f ms | %.1f ms | %.0f | %.0f | %.0f ms | %.0f ms |\n' "$mode" "$interval" \
      "$(median < "$dir/latency.txt")" "$(p99 < "$dir/latency.txt")" "$tps" "$(echo "$tps * 6" | bc -l)" \
      "$(echo "$summary" | field p50_ms)" "$(echo "$summary" | field p99_ms)"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
done
