#!/usr/bin/env bash
# The source layout's dependency rules (README "Layout"), checked on every
# test run: each folder includes only the folders listed for it, and only
# kafka/ includes librdkafka. Prints every violation as FILE:LINE: RULE and
# exits 1 if there is any.
#
#   tests/layout/check.sh [ROOT]      (ROOT: the source tree; default: this one)
#
# Generated Protobuf headers (agentfleet/v1/...) may be included anywhere.
set -euo pipefail
root="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"

# folder -> the agentfleet folders its sources may include (itself included).
# Foundation (common, codec, config, workflow) knows no component; the
# coordinator and the worker never include each other; no component includes
# the CLI.
declare -A allowed=(
  [common]="common"
  [codec]="common codec"
  [config]="common config safety"
  [workflow]="common codec config workflow"
  [kafka]="common config kafka"
  [http]="common http"
  # What a payload must pass before it leaves (issue 19): pure, nothing of ours.
  [safety]="safety"
  [provider]="common codec config provider safety"
  # The cost ledger's entries and the reports built from them (issue 20): pure.
  [cost]="common codec cost"
  [tracing]="common codec config tracing"
  [metrics]="common codec config http kafka metrics"
  [service]="common config http kafka metrics service"
  [coordinator]="common codec config cost kafka metrics safety service tracing workflow coordinator"
  [worker]="common codec config kafka metrics provider service tracing worker"
  # A local fleet of processes and its results: for the CLI's demo and the bench.
  [fleet]="common codec config kafka fleet"
  # The audit's reference run is the one place besides the services that
  # uses the coordinator's engine and the worker's execution.
  [audit]="common codec config kafka provider coordinator worker audit"
  # The micro-benchmarks (bench/micro) time the coordinator's and the
  # worker's code in process; the suite serves acted4's tool endpoint (http).
  [bench]="common codec config kafka http provider coordinator worker fleet audit bench"
  # The CLI runs `agentfleet bench`; nothing includes the CLI.
  [cli]="common codec config cost kafka http metrics provider safety tracing workflow service fleet audit bench cli"
)
# Files besides kafka/ that may include librdkafka, and why (none today).
declare -A librdkafka_exceptions=()

if [ ! -d "$root" ]; then
  echo "layout: $root is not a directory" >&2
  exit 2
fi
violations=0
# Every folder with sources has a rule (tests/ and fuzz/ may include anything).
for dir in "$root"/*/; do
  folder="$(basename "$dir")"
  case "$folder" in tests | fuzz | build*) continue ;; esac
  [ -n "${allowed[$folder]+x}" ] && continue
  if [ -n "$(find "$dir" \( -name '*.h' -o -name '*.cc' \) -print -quit)" ]; then
    echo "$folder/: a source folder without a rule in tests/layout/check.sh"
    violations=$((violations + 1))
  fi
done
for folder in "${!allowed[@]}"; do
  [ -d "$root/$folder" ] || continue
  while IFS= read -r hit; do
    file="${hit%%:*}"
    rest="${hit#*:}"
    line="${rest%%:*}"
    target="$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z_]*\)\/.*/\1/p' <<< "${rest#*:}")"
    [ -n "$target" ] || continue
    [ "$target" = agentfleet ] && continue  # generated Protobuf headers
    [ -n "${allowed[$target]+x}" ] || continue  # not one of our folders
    if [[ " ${allowed[$folder]} " != *" $target "* ]]; then
      echo "${file#"$root"/}:$line: $folder/ may not include $target/ (allowed: ${allowed[$folder]})"
      violations=$((violations + 1))
    fi
  done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$root/$folder" --include='*.h' --include='*.cc' || true)
done
while IFS= read -r hit; do
  file="${hit%%:*}"
  relative="${file#"$root"/}"
  [[ "$relative" == kafka/* ]] && continue
  [ -n "${librdkafka_exceptions[$relative]+x}" ] && continue
  rest="${hit#*:}"
  echo "$relative:${rest%%:*}: only kafka/ includes librdkafka"
  violations=$((violations + 1))
done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<librdkafka/' "$root" --include='*.h' --include='*.cc' \
           --exclude-dir='build*' --exclude-dir=.git || true)
if [ "$violations" -gt 0 ]; then
  echo "layout: $violations violation(s)" >&2
  exit 1
fi
echo "layout: every include follows the dependency rules"
