#!/usr/bin/env bash
# Builds and runs the Java client flow of docs/protocol.md against a fleet:
# the jars from Maven Central (cached in ~/.cache/agentfleet/java-client),
# agentfleet.v1 classes generated with Debian's protoc, javac, java.
#
#   clients/java/run.sh BOOTSTRAP TOPIC_PREFIX WORKFLOW COUNT
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${AGENTFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentfleet}/java-client"
if [ ! -f "$cache/.complete" ]; then
  mkdir -p "$cache"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$cache/libs" -DincludeScope=runtime >&2
  touch "$cache/.complete"
fi
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
mkdir -p "$build/src" "$build/classes"
protoc -I "$here/../../proto" --java_out="$build/src" "$here"/../../proto/agentfleet/v1/*.proto
javac -nowarn -d "$build/classes" -cp "$cache/libs/*" \
  $(find "$build/src" -name '*.java') "$here/src/main/java/dev/agentfleet/example/SubmitAndWait.java"
java -cp "$build/classes:$cache/libs/*" dev.agentfleet.example.SubmitAndWait "$@"
