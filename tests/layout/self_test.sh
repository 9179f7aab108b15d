#!/usr/bin/env bash
# check.sh can fail: a tree with one violation of each kind must be refused,
# naming each; the same tree without them must pass.
set -euo pipefail
check="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check.sh"
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree"/{common,coordinator,worker,kafka,bench,cli}
echo '#include "common/log.h"' > "$tree/common/log.cc"
echo '#include "kafka/kafka.h"' > "$tree/coordinator/coordinator.cc"
echo '#include <librdkafka/rdkafkacpp.h>' > "$tree/kafka/rdkafka_client.cc"
echo '#include "bench/suite.h"' > "$tree/cli/main.cc"
"$check" "$tree" > /dev/null || { echo "self test: a clean tree was refused"; exit 1; }
echo '#include "worker/worker.h"' >> "$tree/coordinator/coordinator.cc"
echo '#include "kafka/kafka.h"' >> "$tree/common/log.cc"
echo '#include <librdkafka/rdkafka.h>' > "$tree/worker/worker.cc"
echo '#include "cli/commands.h"' > "$tree/bench/suite.cc"
mkdir -p "$tree/newthing" && echo '#include "common/log.h"' > "$tree/newthing/a.cc"
if out="$("$check" "$tree" 2>&1)"; then
  echo "self test: violations were not found"; exit 1
fi
for expected in "coordinator/coordinator.cc:2: coordinator/ may not include worker/" \
                "common/log.cc:2: common/ may not include kafka/" \
                "worker/worker.cc:1: only kafka/ includes librdkafka" \
                "bench/suite.cc:1: bench/ may not include cli/" \
                "newthing/: a source folder without a rule"; do
  grep -qF "$expected" <<< "$out" || { echo "self test: missing '$expected' in:"; echo "$out"; exit 1; }
done
if "$check" "$tree/missing" > /dev/null 2>&1; then
  echo "self test: a root that does not exist passed"; exit 1
fi
echo "self test: check.sh refuses each kind of violation, and a root that does not exist"
