#!/usr/bin/env bash
# Runs console.mjs (arguments passed on) after installing its pinned
# packages (package-lock.json: puppeteer-core, which downloads no browser;
# Chromium is Debian's, from scripts/install-deps.sh test).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
exec node console.mjs "$@"
