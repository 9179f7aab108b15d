#!/usr/bin/env bash
# CI smoke test of `agentfleet bench --quick --only steady` on the test Kafka
# (the part is real Kafka only: the development broker runs at_least_once
# alone): every exactly_once run is set against its round's at_least_once,
# with the commits its coordinator's /metrics counted. It checks the report's
# shape and that the figures are measurements, never how fast anything was.
#   bench/steady_smoke_test.sh BIN_DIR
# The broker: $AGENTFLEET_TEST_BOOTSTRAP, or the file $AGENTFLEET_TEST_BOOTSTRAP_FILE names.
set -euo pipefail
bin="$(cd "$1" && pwd)"
fail() { echo "steady smoke: $*" >&2; exit 1; }
bootstrap="${AGENTFLEET_TEST_BOOTSTRAP:-}"
if [ -z "$bootstrap" ] && [ -n "${AGENTFLEET_TEST_BOOTSTRAP_FILE:-}" ]; then bootstrap="$(cat "$AGENTFLEET_TEST_BOOTSTRAP_FILE")"; fi
[ -n "$bootstrap" ] || fail "no test broker (AGENTFLEET_TEST_BOOTSTRAP or AGENTFLEET_TEST_BOOTSTRAP_FILE)"
work="$(mktemp -d /tmp/agentfleet-steady-smoke.XXXXXX)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && timeout 600 "$bin/agentfleet" bench --kafka "$bootstrap" --kafka_name Kafka --kafka_only --quick \
   --only steady --output "$work/steady.md" > "$work/stdout" 2> "$work/stderr") \
  || { tail -30 "$work/stderr" >&2; fail "agentfleet bench --quick --only steady failed"; }
steady="$(cat "$work/steady.md")"
# 2 rounds x 2 exactly_once fleets, each with a ratio, its CPU, its commits (at least one) and the time in them.
[ "$(grep -Ec '^\| Kafka \| [12] \| exactly_once[^|]* \| [0-9,]+ \| [0-9,]+ \| [0-9]+% \| [0-9.]+ µs \| [1-9][0-9,]* \([0-9,]+\) \| [0-9]+% \|' <<<"$steady")" = 4 ] \
  || fail "expected 4 exactly_once runs with their commits: $steady"
[ "$(grep -Ec '^\| Kafka \| [12] \| at_least_once \| [0-9,]+ \| [0-9,]+ \|  \| [0-9.]+ µs \|' <<<"$steady")" = 2 ] \
  || fail "expected 2 at_least_once runs: $steady"
[ "$(grep -c '^| Kafka | \*\*median\*\* | exactly_once' <<<"$steady")" = 2 ] || fail "expected 2 medians: $steady"
dir="$(sed -n 's/.*logs and configs in \([^ ]*\).*/\1/p' "$work/stderr" | head -1)"
[ -n "$dir" ] || fail "the bench did not name its directory"
! pgrep -f "$dir/" >/dev/null || fail "processes left behind"
echo "steady smoke: exactly_once and at_least_once ran in rounds, with their commits"
