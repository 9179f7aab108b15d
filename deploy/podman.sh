#!/usr/bin/env bash
# The container image built and run without Docker or a registry: Debian's
# Podman (runc, cgroupfs), a bookworm base image made with debootstrap,
# Apache Kafka and Prometheus images built locally (deploy/kafka,
# deploy/prometheus), then
#   run:     the fleet as containers on a podman network (Kafka, a coordinator,
#            two workers), 200 sample tasks submitted from a CLI container and
#            audited;
#   compose: deploy/docker-compose.yml with podman-compose (images from the
#            environment), the same tasks and audit, then down.
# Prints the image sizes and start times. About 6 minutes the first time
# (debootstrap, apt, the compile); not part of the test command.
#
#   deploy/podman.sh [all|images|run|compose]     (default: all)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
what="${1:-all}"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
kafka_version=3.7.2
base=localhost/debian:bookworm
image=localhost/agentfleet:dev
kafka_image=localhost/agentfleet-kafka:$kafka_version
prometheus_image=localhost/agentfleet-prometheus:bookworm
pm() { podman --runtime runc "$@"; }
say() { echo "podman.sh: $*" >&2; }

setup() {
  local missing=()
  for p in podman runc debootstrap podman-compose; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -q '^installed$' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
  fi
  # crun (the default) fails here on rlimits and the hybrid cgroup layout.
  if [ ! -f /etc/containers/containers.conf ]; then
    $sudo mkdir -p /etc/containers
    printf '[containers]\ndefault_ulimits = []\npids_limit = 0\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n' \
      | $sudo tee /etc/containers/containers.conf > /dev/null
  fi
}

images() {
  if ! podman image exists "$base"; then
    say "making $base with debootstrap (minbase)"
    local rootfs
    rootfs="$(mktemp -d)"
    $sudo debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian > /dev/null
    $sudo tar -C "$rootfs" -c . | podman import - "$base" > /dev/null
    $sudo rm -rf "$rootfs"
  fi
  say "building $image (deploy/Dockerfile)"
  local t0=$SECONDS
  pm build --pull=never --build-arg "BASE=$base" -t "$image" -f deploy/Dockerfile . >&2
  say "built $image in $((SECONDS - t0)) s"
  local jars="${AGENTFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentfleet}/kafka-image-$kafka_version"
  if [ ! -f "$jars/.complete" ]; then
    mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies "-Dkafka.version=$kafka_version" \
      -DoutputDirectory="$jars/libs" -DincludeScope=runtime >&2
    touch "$jars/.complete"
  fi
  local ctx
  ctx="$(mktemp -d)"
  cp -r deploy/kafka/. "$ctx/"
  cp -r "$jars/libs" "$ctx/libs"
  pm build --pull=never --build-arg "BASE=$base" -t "$kafka_image" "$ctx" >&2
  rm -rf "$ctx"
  pm build --pull=never --build-arg "BASE=$base" -t "$prometheus_image" deploy/prometheus >&2
  for i in "$image" "$kafka_image" "$prometheus_image"; do
    say "$i: $(podman image inspect --format '{{.Size}}' "$i" | awk '{printf "%.1f MiB", $1/1048576}')"
  done
}

# Waits up to $2 seconds for `$1` (a command) to succeed.
wait_for() {
  local deadline=$((SECONDS + $2))
  until eval "$1" > /dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

# The CLI in a container on network $1: agentfleet ARGS...
cli() {
  local net="$1"
  shift
  pm run --rm --network "$net" "$image" agentfleet --config=/usr/local/share/agentfleet/examples/support.yaml \
    --bootstrap=kafka:9092 "$@"
}

# Waits until each container ($2...) has joined its consumer group (up to
# $1 seconds each), submits 200 sample tasks on network $NET from a CLI
# container, waits for them and audits every topic; fails unless clean.
joined_then_audit() {
  local timeout="$1"
  shift
  for c in "$@"; do
    wait_for "podman logs $c 2>&1 | grep -q '\"partitions assigned\"'" "$timeout" || { podman logs "$c" | tail -20 >&2; return 1; }
  done
  say "$* in their groups after $((SECONDS - t0)) s"
  local tasks report
  tasks="$(mktemp)"
  for i in $(seq 1 200); do  # the example tickets under new ids
    sed -n "$(( (i - 1) % 3 + 1 ))p" examples/tasks.jsonl | sed "s/\"task_id\": \"\([^\"]*\)\"/\"task_id\": \"\1-$RANDOM-$i\"/"
  done > "$tasks"
  chmod 644 "$tasks"  # read by the image's non-root user
  pm run --rm --network "$NET" -v "$tasks:/tmp/tasks.jsonl:ro,z" "$image" agentfleet \
    --config=/usr/local/share/agentfleet/examples/support.yaml --bootstrap=kafka:9092 \
    submit --wait --json --timeout=300s /tmp/tasks.jsonl
  rm -f "$tasks"
  report="$(cli "$NET" audit --verify --json)"
  echo "$report"
  grep -q '"clean":true' <<< "$report" || { say "audit not clean"; return 1; }
}

run() {
  local net=agentfleet-podman
  cleanup() { pm rm -f -t 0 --ignore af-kafka af-coordinator af-worker-1 af-worker-2 > /dev/null 2>&1 || true; podman network rm "$net" > /dev/null 2>&1 || true; }
  cleanup
  trap cleanup RETURN
  podman network create "$net" > /dev/null
  local t0=$SECONDS
  pm run -d --name af-kafka --network "$net" --network-alias kafka \
    -e KAFKA_NODE_ID=1 -e KAFKA_PROCESS_ROLES=broker,controller \
    -e KAFKA_LISTENERS=PLAINTEXT://:9092,CONTROLLER://:9093 -e KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://kafka:9092 \
    -e KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER \
    -e KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT \
    -e KAFKA_CONTROLLER_QUORUM_VOTERS=1@kafka:9093 -e KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1 \
    -e KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=1 -e KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1 \
    -e KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS=0 "$kafka_image" > /dev/null
  wait_for "pm exec af-kafka /opt/kafka/bin/kafka-topics.sh --bootstrap-server localhost:9092 --list" 120 \
    || { pm logs af-kafka | tail -20 >&2; return 1; }
  say "Kafka container serving after $((SECONDS - t0)) s"
  local c0=$SECONDS
  pm run -d --name af-coordinator --network "$net" "$image" agentfleet-coordinator \
    --config=/usr/local/share/agentfleet/examples/support.yaml --bootstrap=kafka:9092 --instance=coordinator-1 \
    --http_address=0.0.0.0:9091 > /dev/null
  for w in 1 2; do
    pm run -d --name "af-worker-$w" --network "$net" "$image" agentfleet-worker \
      --config=/usr/local/share/agentfleet/examples/support.yaml --bootstrap=kafka:9092 --id="worker-$w" \
      --http_address=0.0.0.0:9090 > /dev/null
  done
  t0=$c0 NET="$net" joined_then_audit 120 af-coordinator af-worker-1 af-worker-2
  say "run: 200 tasks through the containers, audit clean"
}

compose() {
  local project=agentfleet
  export AGENTFLEET_IMAGE="$image" KAFKA_IMAGE="$kafka_image" PROMETHEUS_IMAGE="$prometheus_image"
  down() { podman-compose -p "$project" -f deploy/docker-compose.yml down > /dev/null 2>&1 || true; }
  down
  trap down RETURN
  local t0=$SECONDS
  podman-compose -p "$project" -f deploy/docker-compose.yml up -d >&2
  local net
  net="$(podman network ls --format '{{.Name}}' | grep "^${project}_" | head -1)"
  wait_for "podman exec ${project}_kafka_1 /opt/kafka/bin/kafka-topics.sh --bootstrap-server localhost:9092 --list" 120
  NET="$net" joined_then_audit 180 "${project}_coordinator_1" "${project}_worker_1"
  wait_for "podman exec ${project}_prometheus_1 true" 30 && say "compose: Prometheus running"
  say "compose: 200 tasks through docker-compose.yml under podman-compose, audit clean"
}

setup
case "$what" in
  images) images ;;
  run) run ;;
  compose) compose ;;
  all) images; run; compose ;;
  *) echo "usage: deploy/podman.sh [all|images|run|compose]" >&2; exit 2 ;;
esac
