#!/usr/bin/env bash
# The first command: installs what is missing, builds everything, and runs
# the demo — a development broker, a coordinator and two workers as separate
# processes, 1,000 sample tasks, a progress bar and a summary.
# Extra arguments go to `agentfleet demo` (e.g. --tasks 5000 --json).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh build
scripts/build.sh
exec "${BUILD_DIR:-build}/bin/agentfleet" demo --config examples/support.yaml "$@"
