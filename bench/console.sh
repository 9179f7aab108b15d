#!/usr/bin/env bash
# The web console on a large history (docs/benchmarks.md, "The web
# console"): N tasks' submissions and results on a real broker, then
# `agentfleet console` from BUILD_DIR: time until /readyz, its memory, and
# the time and size of each page and API answer; then `agentfleet dlq`'s
# list, replay and discard.
#   bench/console.sh BOOTSTRAP [N] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bootstrap=$1
n=${2:-100000}
build=${3:-build-release}
work=$(mktemp -d)
prefix="bench-console-$$."
console_pid=""
trap '[ -n "$console_pid" ] && kill "$console_pid" 2>/dev/null; rm -rf "$work"' EXIT
sed "s/^  topic_prefix: .*//; s/^kafka:/kafka:\n  topic_prefix: \"$prefix\"/" examples/support.yaml > "$work/fleet.yaml"
"$build/bin/agentfleet" topics create --config "$work/fleet.yaml" --bootstrap "$bootstrap" > /dev/null
start=$(date +%s%N)
/usr/bin/python3 bench/console_load.py "$bootstrap" "$prefix" "$n" >&2
echo "load: $(( ($(date +%s%N) - start) / 1000000 )) ms" >&2
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start=$(date +%s%N)
"$build/bin/agentfleet" console --config "$work/fleet.yaml" --bootstrap "$bootstrap" \
    --http_address "127.0.0.1:$port" > "$work/console.log" 2>&1 &
console_pid=$!
base="http://127.0.0.1:$port"
until curl -fs -o /dev/null "$base/readyz"; do
  kill -0 "$console_pid" || { cat "$work/console.log"; exit 1; }
  sleep 0.05
done
ready_ms=$(( ($(date +%s%N) - start) / 1000000 ))
rss=$(awk '/VmRSS/ {print $2}' "/proc/$console_pid/status")
echo "| what | result |"
echo "|---|---|"
echo "| tasks indexed | $n (submissions, results and state snapshots: about $((3 * n)) records) |"
echo "| start to /readyz (history read) | $ready_ms ms |"
echo "| resident memory when ready | $((rss / 1024)) MiB ($((rss * 1024 / n)) bytes per task) |"
measure() {  # measure NAME PATH: the median of 5 timed requests, and the answer's size
  local times=() size
  for _ in 1 2 3 4 5; do
    times+=("$(curl -s -o "$work/body" -w '%{time_total}' "$base$2")")
  done
  size=$(stat -c %s "$work/body")
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
  echo "| $1 | $(awk -v t="$median" 'BEGIN {printf "%.1f", t * 1000}') ms, $((size / 1024)) KiB |"
}
measure "/tasks (the newest 500 of all)" "/tasks"
measure "/api/tasks?status=FAILED&tenant=tenant-9 (a tenth of a twentieth's tenants: the newest 500)" "/api/tasks?status=FAILED&tenant=tenant-9"
measure "/api/tasks?id=load-00500 (an id prefix: the newest 100)" "/api/tasks?id=load-00500"
measure "/tasks/load-0000001 (the oldest task's page: its records read from Kafka)" "/tasks/load-0000001"
measure "/tasks/load-$(printf '%07d' $((n - 1))) (the newest task's page)" "/tasks/load-$(printf '%07d' $((n - 1)))"
measure "/fleet" "/fleet"
rss=$(awk '/VmRSS/ {print $2}' "/proc/$console_pid/status")
echo "| resident memory after the requests | $((rss / 1024)) MiB |"
echo "| the console's answers were | $(grep -c '"level":"error"' "$work/console.log" || true) errors in its log |"
sleep 10
rss=$(awk '/VmRSS/ {print $2}' "/proc/$console_pid/status")
echo "| resident memory 10 s later | $((rss / 1024)) MiB |"
held=$(curl -s "$base/api/fleet" | /usr/bin/python3 -c 'import json,sys; print(sum(q["attempts"] for q in json.load(sys.stdin)["queues"]))')
echo "| attempts the fleet page counts as held in a quota's queue | $held |"
timed() {  # timed WHAT COMMAND...: one run's wall time
  local what=$1 t0
  shift
  t0=$(date +%s%N)
  "$@" > "$work/out" 2> "$work/err" || { cat "$work/out" "$work/err" >&2; exit 1; }
  echo "| $what | $(( ($(date +%s%N) - t0) / 1000000 )) ms |"
}
dlq=("$build/bin/agentfleet" dlq --config "$work/fleet.yaml" --bootstrap "$bootstrap")
timed '`agentfleet dlq` (the 1,000 dead letters, newest first)' "${dlq[@]}"
grep -q '^1000 dead letter(s)' "$work/out" || { cat "$work/out" >&2; exit 1; }
newest=$(awk 'NR == 2 {print $1}' "$work/out")
next=$(awk 'NR == 3 {print $1}' "$work/out")
timed '`agentfleet dlq discard` (fence, read dlq.actions, commit the record)' "${dlq[@]}" discard "$newest" --sender bench
timed '`agentfleet dlq replay` (also read the dead letter again and commit its copy)' "${dlq[@]}" replay "$next" --sender bench
