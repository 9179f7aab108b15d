#!/usr/bin/env bash
# The integration tests' Kafka broker: a real, single-node Apache Kafka in
# KRaft mode, run as a plain process on 127.0.0.1 with ports chosen free at
# run time.
#
#   kafka.sh fetch                     download the pinned broker from Maven Central (cached)
#   kafka.sh start STATE_DIR [NODES]   start it (or a KRaft cluster of NODES nodes, each broker
#                                      and controller, replication factor 3, min ISR 2);
#                                      writes STATE_DIR/bootstrap
#   kafka.sh stop STATE_DIR            stop every node by PID and delete the data
#   kafka.sh kill STATE_DIR [NODE]     SIGKILL node NODE (default 1); its data stays
#   kafka.sh restart STATE_DIR [NODE]  start it again on the same ports and data
#   kafka.sh pid STATE_DIR [NODE]      its PID (to SIGSTOP it)
# A single node lives in STATE_DIR (kafka.log, pid, data), node N of a cluster
# in STATE_DIR/node-N.
#
# AGENTFLEET_KAFKA_VERSION picks the Apache Kafka version (default: pom.xml's,
# 3.7.2; any 3.7+ or 4.x that Maven Central serves, e.g. 4.4.0).
#
# With AGENTFLEET_TEST_BOOTSTRAP set, `start` starts nothing and the tests run
# against that cluster instead. AGENTFLEET_KAFKA_HOST (default 127.0.0.1) is
# the address the brokers' client listener binds and advertises (the network
# partition test puts it on a bridge, tests/netns/netns.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="${AGENTFLEET_KAFKA_VERSION:-$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")}"
major="${version%%.*}"
cache="${AGENTFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentfleet}/kafka-$version"

fetch() {
  if [ -f "$cache/.complete" ]; then return 0; fi
  echo "kafka.sh: fetching Apache Kafka $version from Maven Central into $cache" >&2
  mkdir -p "$cache"
  local profile=()
  [ "$major" -ge 4 ] && profile=(-Dkafka4)
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies "-Dkafka.version=$version" "${profile[@]}" \
      -DoutputDirectory="$cache/libs" -DincludeScope=runtime >&2
  touch "$cache/.complete"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A free port below the kernel's ephemeral range (ip_local_port_range), so
# that no client socket on this machine can be holding it as its local port
# when the broker binds it (a connect test cannot see those).
free_port() {
  local p low
  low="$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
  for _ in $(seq 1 200); do
    p=$((10000 + RANDOM % (low - 10000)))
    if ! port_in_use "$p"; then echo "$p"; return 0; fi
  done
  echo "kafka.sh: no free port found" >&2
  return 1
}

# The directory of node N: the state dir itself for a single node (as before),
# STATE_DIR/node-N in a cluster.
node_dir() {
  local state="$1" node="$2"
  if [ -f "$state/nodes" ] && [ "$(cat "$state/nodes")" -gt 1 ]; then echo "$state/node-$node"; else echo "$state"; fi
}

# Starts node dir $1 (its server.properties and data already there) and waits
# until it serves.
run_node() {
  local dir="$1" heap="$2"
  local cp="$cache/libs/*"
  local log4j="-Dlog4j.configuration=file:$dir/log4j.properties"
  [ "$major" -ge 4 ] && log4j="-Dlog4j2.configurationFile=$dir/log4j2.properties"
  # setsid: the broker outlives this script; it is stopped by PID (kafka.sh stop).
  setsid java "-Xms128m" "-Xmx$heap" -XX:+UseG1GC "$log4j" -cp "$cp" kafka.Kafka "$dir/server.properties" \
      >> "$dir/kafka.log" 2>&1 < /dev/null &
  echo $! > "$dir/pid"
}

wait_started() {
  local dir="$1" before="$2"
  for _ in $(seq 1 600); do
    if [ "$(grep -c "Kafka Server started" "$dir/kafka.log" 2>/dev/null)" -gt "$before" ]; then return 0; fi
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      echo "kafka.sh: the broker in $dir exited; its log:" >&2
      tail -n 30 "$dir/kafka.log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "kafka.sh: the broker in $dir did not start within 120 s" >&2
  return 1
}

started_count() { grep -c "Kafka Server started" "$1/kafka.log" 2>/dev/null || true; }

start() {
  local state="$1" nodes="${2:-1}"
  mkdir -p "$state"
  if [ -n "${AGENTFLEET_TEST_BOOTSTRAP:-}" ] && [ "$nodes" = 1 ]; then
    echo "$AGENTFLEET_TEST_BOOTSTRAP" > "$state/bootstrap"
    echo "kafka.sh: using the cluster at $AGENTFLEET_TEST_BOOTSTRAP" >&2
    return 0
  fi
  if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
    echo "kafka.sh: already running (pid $(cat "$state/pid"))" >&2
    return 0
  fi
  fetch
  echo "$nodes" > "$state/nodes"
  rm -f "$state/bootstrap"
  local ports=() controllers=() voters="" bootstrap="" p host="${AGENTFLEET_KAFKA_HOST:-127.0.0.1}"
  for n in $(seq 1 "$nodes"); do
    p="$(free_port)"; while [[ " ${ports[*]} ${controllers[*]} " == *" $p "* ]]; do p="$(free_port)"; done
    ports+=("$p")
    p="$(free_port)"; while [[ " ${ports[*]} ${controllers[*]} " == *" $p "* ]]; do p="$(free_port)"; done
    controllers+=("$p")
    voters="${voters:+$voters,}$n@127.0.0.1:$p"
    bootstrap="${bootstrap:+$bootstrap,}$host:${ports[$((n - 1))]}"
  done
  # A cluster replicates everything three ways (at most) and needs two in sync.
  local rf=$(( nodes < 3 ? nodes : 3 )) isr=$(( nodes < 3 ? 1 : 2 ))
  local cluster_id
  cluster_id="$(java -cp "$cache/libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null)"
  for n in $(seq 1 "$nodes"); do
    local dir port="${ports[$((n - 1))]}" controller="${controllers[$((n - 1))]}"
    dir="$(node_dir "$state" "$n")"
    mkdir -p "$dir"
    rm -rf "$dir/data" "$dir/kafka.log"
    cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://$host:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://$host:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=4
default.replication.factor=$rf
min.insync.replicas=$isr
auto.create.topics.enable=false
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=8
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=16777216
PROPS
    cat > "$dir/log4j.properties" <<'PROPS'
log4j.rootLogger=WARN, stdout
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
# Transaction aborts and fencing: the evidence for takeover problems.
log4j.logger.kafka.coordinator.transaction=INFO
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
PROPS
    # Kafka 4 logs through log4j2: the same loggers, its properties format.
    cat > "$dir/log4j2.properties" <<'PROPS'
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.raft.name=kafka.server.KafkaRaftServer
logger.raft.level=INFO
logger.server.name=kafka.server.KafkaServer
logger.server.level=INFO
logger.broker.name=kafka.server.BrokerServer
logger.broker.level=INFO
logger.txn.name=kafka.coordinator.transaction
logger.txn.level=INFO
PROPS
    local log4j_opt="-Dlog4j.configuration=file:$dir/log4j.properties"
    [ "$major" -ge 4 ] && log4j_opt="-Dlog4j2.configurationFile=$dir/log4j2.properties"
    java -cp "$cache/libs/*" "$log4j_opt" kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$dir/server.properties" > "$dir/format.log" 2>&1
  done
  # One node: 768 MiB of heap as always; a cluster's nodes get 384 MiB each.
  local heap=768m
  [ "$nodes" -gt 1 ] && heap=384m
  for n in $(seq 1 "$nodes"); do run_node "$(node_dir "$state" "$n")" "$heap"; done
  for n in $(seq 1 "$nodes"); do
    if ! wait_started "$(node_dir "$state" "$n")" 0; then
      # Another process took a chosen port between the check and the bind:
      # choose new ports (a race of this setup step, not a test retried).
      local taken=""
      for m in $(seq 1 "$nodes"); do
        grep -q "Address already in use" "$(node_dir "$state" "$m")/kafka.log" 2>/dev/null && taken=1
      done
      stop "$state"
      if [ -n "$taken" ] && [ "${KAFKA_SH_PORT_TRIES:-0}" -lt 3 ]; then
        echo "kafka.sh: a port was taken before the broker could bind it; choosing new ports" >&2
        KAFKA_SH_PORT_TRIES=$(( ${KAFKA_SH_PORT_TRIES:-0} + 1 )) start "$state" "$nodes"
        return $?
      fi
      return 1
    fi
  done
  echo "$bootstrap" > "$state/bootstrap"
  echo "kafka.sh: Apache Kafka $version (KRaft, $nodes node(s)) at $bootstrap" >&2
}

# SIGKILLs node N (default 1); its data stays for `restart`.
kill_node() {
  local dir
  dir="$(node_dir "$1" "${2:-1}")"
  if [ -f "$dir/pid" ]; then
    kill -9 "$(cat "$dir/pid")" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$(cat "$dir/pid")" 2>/dev/null || break; sleep 0.1; done
  fi
}

# Starts node N (default 1) again on its old ports and data; waits until it serves.
restart_node() {
  local dir heap=768m
  dir="$(node_dir "$1" "${2:-1}")"
  [ "$(cat "$1/nodes" 2>/dev/null || echo 1)" -gt 1 ] && heap=384m
  local before
  before="$(started_count "$dir")"
  run_node "$dir" "$heap"
  wait_started "$dir" "${before:-0}"
}

stop() {
  local state="$1"
  local dirs=("$state")
  for d in "$state"/node-*; do [ -d "$d" ] && dirs+=("$d"); done
  for dir in "${dirs[@]}"; do
    if [ -f "$dir/pid" ]; then
      local pid
      pid="$(cat "$dir/pid")"
      kill -CONT "$pid" 2>/dev/null || true
      kill "$pid" 2>/dev/null || true
    fi
  done
  for dir in "${dirs[@]}"; do
    if [ -f "$dir/pid" ]; then
      local pid
      pid="$(cat "$dir/pid")"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/pid"
    fi
    rm -rf "$dir/data"
  done
}

case "${1:-}" in
  fetch) fetch ;;
  start) start "${2:?state dir}" "${3:-1}" ;;
  stop) stop "${2:?state dir}" ;;
  kill) kill_node "${2:?state dir}" "${3:-1}" ;;
  restart) restart_node "${2:?state dir}" "${3:-1}" ;;
  pid) cat "$(node_dir "${2:?state dir}" "${3:-1}")/pid" ;;
  *) echo "usage: kafka.sh fetch | start STATE_DIR [NODES] | stop STATE_DIR | kill STATE_DIR [NODE] |" \
          "restart STATE_DIR [NODE] | pid STATE_DIR [NODE]" >&2; exit 2 ;;
esac
