#!/usr/bin/env bash
# The semantic cache's measurements (docs/benchmarks.md, "Semantic cache"):
# the threshold table against a real embedding model (all-MiniLM-L6-v2, in
# the Python environment of tests/fake_llm/embedding-env.sh, built once in
# ~/.cache/agentfleet/embedding-env), then the lookup cost per call
# (BM_SemanticLookup, from BUILD_DIR, default build-release).
#   bench/semantic_cache.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="$(tests/fake_llm/embedding-env.sh "$HOME/.cache/agentfleet/embedding-env")"
"$python" bench/semantic_threshold.py
build="${1:-build-release}"
if [ -x "$build/bin/agentfleet_micro_bench" ]; then
  "$build/bin/agentfleet_micro_bench" --benchmark_filter=BM_SemanticLookup
else
  echo "semantic_cache.sh: no $build/bin/agentfleet_micro_bench (cmake --build $build first); lookup cost skipped" >&2
fi
