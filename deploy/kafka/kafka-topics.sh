#!/bin/sh
exec java -Xmx128m -Dlog4j.configuration=file:/dev/null -cp "/opt/kafka/libs/*" org.apache.kafka.tools.TopicCommand "$@"
