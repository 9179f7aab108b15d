#!/bin/sh
# Writes server.properties from the KAFKA_* environment (KAFKA_FOO_BAR=x ->
# foo.bar=x, as the apache/kafka image does), formats the KRaft log directory
# once, and runs the broker in the foreground.
set -eu
props=/var/lib/kafka/server.properties
: > "$props"
env | sort | while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_HEAP_OPTS|KAFKA_CLUSTER_ID|KAFKA_LOG4J_OPTS) ;;
    KAFKA_*) echo "$(echo "${name#KAFKA_}" | tr 'A-Z_' 'a-z.')=$value" >> "$props" ;;
  esac
done
grep -q '^log.dirs=' "$props" || echo "log.dirs=/var/lib/kafka/data" >> "$props"
cat > /var/lib/kafka/log4j.properties <<'PROPS'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
PROPS
export KAFKA_LOG4J_OPTS="-Dlog4j.configuration=file:/var/lib/kafka/log4j.properties"
cp="/opt/kafka/libs/*"
heap="${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}"
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  java $KAFKA_LOG4J_OPTS -cp "$cp" kafka.tools.StorageTool format -t "${KAFKA_CLUSTER_ID:-4L6g3nShT-eMCtK--X86sw}" -c "$props" >/dev/null
fi
exec java $heap $KAFKA_LOG4J_OPTS -cp "$cp" kafka.Kafka "$props"
