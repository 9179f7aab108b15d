#!/usr/bin/env bash
# Checks the monitoring assets with the real tools (scripts/install-deps.sh test
# installs them): the alert rules with `promtool check rules` and their unit
# tests with `promtool test rules`; the Grafana dashboard type-checked against
# @grafana/schema with tsc, and every panel's PromQL with promtool.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
promtool check rules alerts.yml
promtool test rules alerts_test.yml
promtool test rules alerts_cost_test.yml
cd typecheck
# Pinned by package-lock.json; installed once into typecheck/node_modules.
if [ ! -x node_modules/.bin/tsc ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node check-dashboard.mjs
node_modules/.bin/tsc -p .
echo "dashboard: type-checks against @grafana/schema"
promtool check rules generated/panel-queries.yml
