#!/usr/bin/env bash
# Creates bench/flower/.venv with the pinned Flower benchmark dependencies (no torch).
# Idempotent: reinstalls only when the pins below change. PYTHON picks the interpreter
# (default python3; flwr 1.42 needs Python >= 3.11).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
pins=(flwr==1.42.0 numpy==2.4.6 zstandard==0.25.0 safetensors==0.8.0)
marker="$venv/.aginet-pins"

if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
if [[ "$(cat "$marker" 2>/dev/null || true)" != "${pins[*]}" ]]; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "${pins[@]}"
    echo "${pins[*]}" > "$marker"
fi
"$venv/bin/python" -c 'import flwr, sys; print("flwr", flwr.__version__, "ready in", sys.prefix)'
