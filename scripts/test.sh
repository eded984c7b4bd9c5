#!/usr/bin/env bash
# The README's test command: set up (or reuse) .venv, run the whole test suite
# (unit, slow real-model, notebooks) and build the docs strictly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
if [ -f mkdocs.yml ]; then
  .venv/bin/mkdocs build --strict --quiet --site-dir "${TMPDIR:-/tmp}/kblam-site"
fi
