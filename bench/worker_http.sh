#!/usr/bin/env bash
# One worker holding thousands of HTTP model calls at once: a coordinator and
# one worker (max_in_flight 2000) on a real Kafka broker, both providers of
# examples/llm.yaml pointed at the local model server (tests/fake_llm/), each
# call answered after DELAY seconds. Samples the worker's CPU and RSS once a
# second from /proc and prints a Markdown report.
#
#   bench/worker_http.sh [BUILD_DIR]      TASKS=4000 DELAY=1 IN_FLIGHT=2000
#
# Starts the test broker (tests/kafka/kafka.sh); stops everything it started, by PID.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$(cd "${1:-$repo/build}" && pwd)/bin"
work="$(mktemp -d /tmp/agentfleet-bench-http.XXXXXX)"
tasks="${TASKS:-4000}" delay="${DELAY:-1}" in_flight="${IN_FLIGHT:-2000}"
pids=()
cleanup() {
  for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]+"${pids[@]}"}"; do wait "$p" 2>/dev/null || true; done
  "$repo/tests/kafka/kafka.sh" stop "$work/kafka"
}
trap cleanup EXIT
"$repo/tests/kafka/kafka.sh" start "$work/kafka" >&2
bootstrap="$(cat "$work/kafka/bootstrap")"

/usr/bin/python3 "$repo/tests/fake_llm/fake_llm.py" --port-file "$work/fake.port" --delay "$delay" \
    > "$work/fake.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do [ -s "$work/fake.port" ] && break; sleep 0.1; done
fake="http://127.0.0.1:$(cat "$work/fake.port")"

sed -e "s|topic_prefix: agentfleet\.|topic_prefix: bench.http.|" \
    -e "s|bootstrap.servers: 127.0.0.1:9092|bootstrap.servers: $bootstrap|" \
    -e "s|http://127.0.0.1:8000/v1|$fake/v1|" -e "s|https://api.anthropic.com|$fake|" \
    "$repo/examples/llm.yaml" > "$work/fleet.yaml"
printf '\ncoordinator: {group_id: bench-http}\nworker: {group_prefix: bench-http}\n' >> "$work/fleet.yaml"
export LOCAL_LLM_API_KEY=bench ANTHROPIC_API_KEY=bench
"$bin/agentfleet" topics create --config "$work/fleet.yaml" > /dev/null
"$bin/agentfleet-coordinator" --config "$work/fleet.yaml" --http_address 127.0.0.1:0 \
    > "$work/coordinator.log" 2>&1 & pids+=($!)
"$bin/agentfleet-worker" --config "$work/fleet.yaml" --id w1 --max_in_flight "$in_flight" \
    --http_address 127.0.0.1:0 > "$work/worker.log" 2>&1 & worker=$!; pids+=($worker)

one='{"workflow":"support","input":{"ticket":{"subject":"s ID","body":"b"},"sources":["a","b","c"]},"task_id":"ID"}'
echo "${one//ID/warm}" | "$bin/agentfleet" submit --config "$work/fleet.yaml" --wait --json --timeout 120s > /dev/null 2>&1
for i in $(seq 1 "$tasks"); do echo "${one//ID/t-$i}"; done > "$work/tasks.jsonl"

# Sample the worker: CPU ticks and RSS once a second, and the server's calls in flight.
tick=$(getconf CLK_TCK)
sample() {
  local prev now rss
  prev=$(awk '{print $14+$15}' "/proc/$worker/stat")
  while kill -0 "$worker" 2>/dev/null; do
    sleep 1
    now=$(awk '{print $14+$15}' "/proc/$worker/stat" 2>/dev/null) || break
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$worker/status" 2>/dev/null) || break
    inflight=$(curl -s "$fake/_stats" | grep -o '"in_flight": [0-9]*' | grep -o '[0-9]*$')
    echo "$(( (now - prev) * 100 / tick )) $(( rss / 1024 )) ${inflight:-0}"
    prev=$now
  done
}
sample > "$work/samples.txt" & sampler=$!
summary="$("$bin/agentfleet" submit --config "$work/fleet.yaml" --wait --json --timeout 600s "$work/tasks.jsonl" 2>/dev/null | tail -1)"
kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
field() { echo "$summary" | grep -o "\"$1\":[0-9.e+-]*" | cut -d: -f2; }
stats="$(curl -s "$fake/_stats")"
calls=$(echo "$stats" | grep -o '"requests": [0-9]*' | grep -o '[0-9]*$')
peak=$(echo "$stats" | grep -o '"max_in_flight": [0-9]*' | grep -o '[0-9]*$')
hwm=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$worker/status")
cpu_total=$(awk -v t="$tick" '{printf "%.2f", ($14+$15)/t}' "/proc/$worker/stat")
# Seconds with at least half of max_in_flight calls in flight: the steady state.
half=$((in_flight / 2))
busy=$(awk -v h="$half" '$3 >= h' "$work/samples.txt")
cpu_busy=$(echo "$busy" | awk '{print $1}' | sort -n | awk '{a[NR]=$1} END {if (NR) printf "min %d%%, median %d%%, max %d%% over %d s", a[1], a[int((NR+1)/2)], a[NR], NR}')
rss_busy=$(echo "$busy" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {if (NR) printf "%d–%d MiB", a[1], a[NR]}')

cat <<REPORT
| measure | value |
|---|---|
| tasks (support workflow, 6 calls each) | $tasks submitted, $(field completed) completed, lost $(field lost), duplicates $(field duplicates) |
| model calls answered by the server | $calls, each after ${delay} s |
| most calls in flight at once (server's count) | $peak (worker max_in_flight $in_flight) |
| worker CPU while ≥ $half calls were in flight (100% = one core) | $cpu_busy |
| worker CPU in total | ${cpu_total} s, $(echo "scale=3; $cpu_total * 1000 / $calls" | bc -l) ms per call |
| worker RSS while ≥ $half calls were in flight | $rss_busy |
| worker peak RSS (VmHWM) | $hwm MiB |
| tasks/s end to end | $(printf "%.0f" "$(field tasks_per_s)") |
REPORT
