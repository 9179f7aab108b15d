#!/usr/bin/env bash
# CI smoke test of `agentfleet bench --quick` on the development broker: the
# whole suite runs, writes its section into a copy of docs/benchmarks.md
# (keeping the hand-written parts) and draws the plot. It checks the report's
# shape and that every figure is a measurement, never how fast anything was.
#   bench/smoke_test.sh BIN_DIR
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$(cd "$1" && pwd)"
work="$(mktemp -d /tmp/agentfleet-bench-smoke.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cp "$repo/docs/benchmarks.md" "$work/benchmarks.md"
fail() { echo "bench smoke: $*" >&2; exit 1; }
# The directory the bench names for its logs (kept when a run fails).
bench_dir() { sed -n 's/.*logs and configs in \([^ ]*\).*/\1/p' "$work/stderr" | head -1; }

(cd "$work" && timeout 600 "$bin/agentfleet" bench --quick --output "$work/benchmarks.md" > "$work/stdout" 2> "$work/stderr") \
  || { tail -30 "$work/stderr" >&2
       # The fleet's warnings and errors, from the directory a failed run keeps.
       kept="$(bench_dir)"
       [ -n "$kept" ] && grep -h '"level":"\(warning\|error\)"' "$kept"/*/*.log 2>/dev/null | tail -20 >&2
       fail "agentfleet bench --quick failed"; }

md="$work/benchmarks.md"
# The hand-written parts are kept, the generated section appears once.
grep -q '^## A worker holding 2,000 HTTP calls' "$md" || fail "the hand-written section was lost"
[ "$(grep -c '^<!-- agentfleet bench: begin' "$md")" = 1 ] || fail "expected one generated section"
[ "$(grep -c '^<!-- agentfleet bench: end' "$md")" = 1 ] || fail "expected one end marker"
section="$(sed -n '/^<!-- agentfleet bench: begin/,/^<!-- agentfleet bench: end/p' "$md")"
# Every part of the suite produced its rows.
for row in 'step latency p50, at_least_once' 'step latency p99, exactly_once' 'steps/s, at_least_once' \
           'steps/s, exactly_once'; do
  line="$(grep -F "| $row" <<<"$section")" || fail "no row '$row'"
  # raw, fleet and ratio are numbers, the ratio a positive one
  grep -Eq '\| [0-9][0-9,.]* ?(ms|/s) \| [0-9][0-9,.]* ?(ms|/s) \| [0-9]+\.[0-9]+× \|' <<<"$line" || fail "bad row: $line"
done
[ "$(grep -Ec '^\| development broker \| low_latency \(linger.ms 0\) \| (at_least_once|exactly_once) \| [0-9.]+ ms \| [0-9.]+ ms \| [0-9.]+× \|' <<<"$section")" = 2 ] \
  || fail "expected the low-latency profile's two modes"
grep -Eq '^- development broker: step p50 [0-9.]+× of raw \(\*\*(met|not met)\*\*\)' <<<"$section" || fail "no verdict on the targets"
[ "$(grep -c '^| development broker | [12] | [124] | ' <<<"$section")" = 6 ] || fail "expected 6 scale-out points"
[ "$(grep -Ec '^\| development broker \| (1|10|100) \| [0-9.]+ ms / ' <<<"$section")" = 3 ] || fail "expected 3 fan-out widths"
[ "$(grep -Ec '^\| development broker \| (1|100|10,000) \| [0-9,]+ \| [0-9.]+ MiB' <<<"$section")" = 3 ] || fail "expected 3 tenant counts"
grep -Eq '^\| development broker \| 2,000 \| [0-9.]+ MiB \| [0-9.]+ MiB \| -?[0-9,]+ \| 400, 2,000 \| [0-9.]+ MiB \| [0-9.]+ ms \| [0-9,]+ \|' <<<"$section" \
  || fail "bad concurrency row"
# The plot: an SVG with the two coordinator series of the broker.
svg="$work/benchmarks-scaleout.svg"
[ -s "$svg" ] || fail "no plot"
grep -q '<svg' "$svg" || fail "the plot is not SVG"
grep -q 'development broker, 2 coordinators' "$svg" || fail "the plot lacks a series"
grep -q '!\[steps/s by worker processes\](benchmarks-scaleout.svg)' "$md" || fail "the report does not show the plot"
# Nothing left running, nothing left behind.
dir="$(bench_dir)"
[ -n "$dir" ] || fail "the bench did not name its directory"
! pgrep -f "$dir/" >/dev/null || fail "processes left behind"
[ ! -e "$dir" ] || fail "$dir left behind after a successful run"
echo "bench smoke: the suite ran and wrote its report and plot"
