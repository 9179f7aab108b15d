#!/usr/bin/env bash
# Regenerates the shipped protobuf classes (agentfleet/v1/*_pb2.py and .pyi)
# from proto/agentfleet/v1 with Debian's protoc. CI checks they are current
# (tests/integration/clients_test.cc).
#
#   clients/python/generate.sh [OUT_DIR]   (default: clients/python)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here}"
mkdir -p "$out"
protoc -I "$here/../../proto" --python_out="$out" --pyi_out="$out" "$here"/../../proto/agentfleet/v1/*.proto
for d in "$out/agentfleet" "$out/agentfleet/v1"; do
  [ -f "$d/__init__.py" ] || echo '"""Generated from proto/agentfleet/v1 (clients/python/generate.sh)."""' > "$d/__init__.py"
done
