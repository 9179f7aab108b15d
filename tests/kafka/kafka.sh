#!/usr/bin/env bash
# The integration tests' Kafka broker: a real, single-node Apache Kafka in
# KRaft mode, run as a plain process on 127.0.0.1 with ports chosen free at
# run time.
#
#   kafka.sh fetch             download the pinned broker from Maven Central (cached)
#   kafka.sh start STATE_DIR   start it; writes STATE_DIR/bootstrap and STATE_DIR/pid
#   kafka.sh stop STATE_DIR    stop it by PID and delete its data
#
# With AGENTFLEET_TEST_BOOTSTRAP set, `start` starts nothing and the tests run
# against that cluster instead.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
cache="${AGENTFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentfleet}/kafka-$version"

fetch() {
  if [ -f "$cache/.complete" ]; then return 0; fi
  echo "kafka.sh: fetching Apache Kafka $version from Maven Central into $cache" >&2
  mkdir -p "$cache"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$cache/libs" -DincludeScope=runtime >&2
  touch "$cache/.complete"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    if ! port_in_use "$p"; then echo "$p"; return 0; fi
  done
  echo "kafka.sh: no free port found" >&2
  return 1
}

start() {
  local state="$1"
  mkdir -p "$state"
  if [ -n "${AGENTFLEET_TEST_BOOTSTRAP:-}" ]; then
    echo "$AGENTFLEET_TEST_BOOTSTRAP" > "$state/bootstrap"
    echo "kafka.sh: using the cluster at $AGENTFLEET_TEST_BOOTSTRAP" >&2
    return 0
  fi
  if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
    echo "kafka.sh: already running (pid $(cat "$state/pid"))" >&2
    return 0
  fi
  fetch
  local port controller
  port="$(free_port)"
  controller="$(free_port)"
  while [ "$controller" = "$port" ]; do controller="$(free_port)"; done
  rm -rf "$state/data" "$state/bootstrap"
  cat > "$state/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$state/data
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=16777216
PROPS
  cat > "$state/log4j.properties" <<'PROPS'
log4j.rootLogger=WARN, stdout
log4j.logger.kafka.server.KafkaRaftServer=INFO
# Transaction aborts and fencing: the evidence for takeover problems.
log4j.logger.kafka.coordinator.transaction=INFO
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
PROPS
  local cp="$cache/libs/*" log4j="-Dlog4j.configuration=file:$state/log4j.properties"
  java -cp "$cp" "$log4j" kafka.tools.StorageTool format -t "$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null)" \
      -c "$state/server.properties" > "$state/format.log" 2>&1
  # setsid: the broker outlives this script; it is stopped by PID (kafka.sh stop).
  setsid java -Xms256m -Xmx768m -XX:+UseG1GC "$log4j" -cp "$cp" kafka.Kafka "$state/server.properties" \
      > "$state/kafka.log" 2>&1 < /dev/null &
  echo $! > "$state/pid"
  for _ in $(seq 1 600); do
    if grep -q "Kafka Server started" "$state/kafka.log" 2>/dev/null; then
      echo "127.0.0.1:$port" > "$state/bootstrap"
      echo "kafka.sh: Apache Kafka $version (KRaft) at 127.0.0.1:$port, pid $(cat "$state/pid")" >&2
      return 0
    fi
    if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      echo "kafka.sh: the broker exited; its log:" >&2
      tail -n 30 "$state/kafka.log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "kafka.sh: the broker did not start within 120 s" >&2
  stop "$state"
  return 1
}

stop() {
  local state="$1"
  if [ -f "$state/pid" ]; then
    local pid
    pid="$(cat "$state/pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$state/pid"
  fi
  rm -rf "$state/data"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start "${2:?state dir}" ;;
  stop) stop "${2:?state dir}" ;;
  *) echo "usage: kafka.sh fetch | start STATE_DIR | stop STATE_DIR" >&2; exit 2 ;;
esac
