#!/usr/bin/env bash
# The combined soak (not in CI): a mixed workload on the real Kafka test broker
# for a while, with coordinator and worker processes SIGKILLed at random
# intervals and agent failure spikes, then the audit: 0 lost, 0 duplicated,
# 0 overspent, every output equal to the reference run's.
#
#   scripts/soak.sh [--minutes N] [--rate TASKS_PER_S] [--seed S] [--keep]
#
# The fleet: two coordinator replicas (exactly_once), three workers. The
# workload: tasks of the support workflow with 1-5 knowledge sources (fan-out),
# 8 tenants, both priorities, a third with a token or cost budget (a tenth of
# them too small to finish: BUDGET_EXHAUSTED), submitted in batches each second.
# The faults, every 5-30 s (random, --seed): a coordinator or a worker killed
# with SIGKILL and started again under the same name, or a failure spike
# (a worker restarted with its simulated provider failing 40% of calls for 20 s).
# Builds first (scripts/build.sh); starts Kafka (tests/kafka/kafka.sh) unless
# AGENTFLEET_TEST_BOOTSTRAP is set; stops every process it started, by PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"
minutes=10 rate=50 seed=$RANDOM keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: scripts/soak.sh [--minutes N] [--rate TASKS_PER_S] [--seed S] [--keep]" >&2; exit 2 ;;
  esac
done
RANDOM=$seed
scripts/install-deps.sh test
scripts/build.sh > /dev/null
bin="$repo/${BUILD_DIR:-build}/bin"
work="$(mktemp -d /tmp/agentfleet-soak.XXXXXX)"
declare -A pid_of=()
cleanup() {
  for name in "${!pid_of[@]}"; do kill -TERM "${pid_of[$name]}" 2>/dev/null || true; done
  sleep 2
  for name in "${!pid_of[@]}"; do kill -KILL "${pid_of[$name]}" 2>/dev/null || true; done
  [ -z "${AGENTFLEET_TEST_BOOTSTRAP:-}" ] && tests/kafka/kafka.sh stop "$work/kafka" || true
  if [ "$keep" = 0 ] && [ "${soak_ok:-0}" = 1 ]; then rm -rf "$work"; else echo "soak: logs in $work" >&2; fi
}
trap cleanup EXIT
tests/kafka/kafka.sh start "$work/kafka"
bootstrap="$(cat "$work/kafka/bootstrap")"
prefix="soak-$(date +%s)."
# The fleet's config: the example with this run's prefix; the spike config
# differs only in the simulated provider's failure rate.
sed -e "s|topic_prefix: agentfleet.|topic_prefix: $prefix|" -e "s|bootstrap.servers: 127.0.0.1:9092|bootstrap.servers: $bootstrap|" \
    examples/support.yaml > "$work/fleet.yaml"
printf '\ncoordinator: {group_id: %scoordinator}\nworker: {group_prefix: %sworkers}\n' "$prefix" "$prefix" >> "$work/fleet.yaml"
sed -e 's|failure_rate: 0.0|failure_rate: 0.4|' "$work/fleet.yaml" > "$work/spike.yaml"
"$bin/agentfleet" topics create --config "$work/fleet.yaml" > /dev/null

start() {  # name, then the command
  local name="$1"; shift
  "$@" >> "$work/$name.log" 2>&1 &
  pid_of[$name]=$!
}
start_coordinator() { start "$1" "$bin/agentfleet-coordinator" --config "$work/fleet.yaml" --instance "$1" --http_address 127.0.0.1:0; }
start_worker() { start "$1" "$bin/agentfleet-worker" --config "${2:-$work/fleet.yaml}" --id "$1" --http_address 127.0.0.1:0; }
start_coordinator c1
start_coordinator c2
for w in w1 w2 w3; do start_worker "$w"; done

# The workload: one file per second, submitted without waiting.
python3 - "$work/tasks" "$minutes" "$rate" "$seed" <<'PY'
import json, os, random, sys
out, minutes, rate, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
os.makedirs(out, exist_ok=True)
n = 0
for second in range(minutes * 60):
    with open(f"{out}/{second:06d}.jsonl", "w") as f:
        for _ in range(rate):
            n += 1
            sources = rng.sample(["billing-kb", "invoices", "status-page", "runbooks", "changelog"], rng.randint(1, 5))
            task = {"task_id": f"soak-{seed}-{n}", "tenant": f"tenant-{rng.randint(0, 7)}", "workflow": "support",
                    "priority": rng.choice(["PRIORITY_INTERACTIVE", "PRIORITY_BATCH"]),
                    "input": {"ticket": {"id": n, "subject": f"Question {n}", "body": "It does not work " * rng.randint(1, 20),
                                         "customer": f"c-{rng.randint(1, 500)}"}, "sources": sources}}
            r = rng.random()
            if r < 0.033:
                task["budget"] = {"max_tokens": "60"}             # too small: BUDGET_EXHAUSTED
            elif r < 0.2:
                task["budget"] = {"max_tokens": str(rng.randint(2000, 20000))}
            elif r < 0.33:
                task["budget"] = {"max_cost_usd": rng.uniform(0.002, 0.05)}
            f.write(json.dumps(task) + "\n")
PY
submitted=0 faults=0 kills=0 spikes=0
end=$(( $(date +%s) + minutes * 60 ))
next_fault=$(( $(date +%s) + 5 + RANDOM % 26 ))
spike_end=0 spiked=""
echo "soak: $minutes min at $rate tasks/s on $bootstrap (seed $seed); logs in $work" >&2
for file in "$work"/tasks/*.jsonl; do
  [ "$(date +%s)" -ge "$end" ] && break
  "$bin/agentfleet" submit "$file" --config "$work/fleet.yaml" > /dev/null
  submitted=$(( submitted + rate ))
  now=$(date +%s)
  if [ -n "$spiked" ] && [ "$now" -ge "$spike_end" ]; then
    kill -TERM "${pid_of[$spiked]}" 2>/dev/null || true; wait "${pid_of[$spiked]}" 2>/dev/null || true
    start_worker "$spiked"; spiked=""
  fi
  if [ "$now" -ge "$next_fault" ]; then
    faults=$(( faults + 1 ))
    case $(( RANDOM % 3 )) in
      0) victim="c$(( 1 + RANDOM % 2 ))"
         kill -KILL "${pid_of[$victim]}" 2>/dev/null || true; wait "${pid_of[$victim]}" 2>/dev/null || true
         start_coordinator "$victim"; kills=$(( kills + 1 )); what="SIGKILL coordinator $victim" ;;
      1) victim="w$(( 1 + RANDOM % 3 ))"
         [ "$victim" = "$spiked" ] && victim=w1
         kill -KILL "${pid_of[$victim]}" 2>/dev/null || true; wait "${pid_of[$victim]}" 2>/dev/null || true
         start_worker "$victim"; kills=$(( kills + 1 )); what="SIGKILL worker $victim" ;;
      2) if [ -z "$spiked" ]; then
           spiked="w$(( 1 + RANDOM % 3 ))"
           kill -TERM "${pid_of[$spiked]}" 2>/dev/null || true; wait "${pid_of[$spiked]}" 2>/dev/null || true
           start_worker "$spiked" "$work/spike.yaml"; spike_end=$(( now + 20 )); spikes=$(( spikes + 1 ))
           what="failure spike on $spiked (40% of calls fail for 20 s)"
         else what="(spike already running)"; fi ;;
    esac
    echo "soak: +$(( now - end + minutes * 60 ))s: $what; $submitted submitted" >&2
    next_fault=$(( now + 5 + RANDOM % 26 ))
  fi
  sleep 1
done
if [ -n "$spiked" ]; then
  kill -TERM "${pid_of[$spiked]}" 2>/dev/null || true; wait "${pid_of[$spiked]}" 2>/dev/null || true
  start_worker "$spiked"
fi
echo "soak: $submitted tasks submitted, $faults faults ($kills kills, $spikes spikes); waiting for every result" >&2
# Every task has its result once the audit finds none lost (10 min at most).
for _ in $(seq 1 60); do
  if "$bin/agentfleet" audit --config "$work/fleet.yaml" --json > "$work/audit.json" 2>/dev/null; then break; fi
  sleep 10
done
"$bin/agentfleet" audit --verify --config "$work/fleet.yaml" | tee "$work/audit.txt"
soak_ok=1
